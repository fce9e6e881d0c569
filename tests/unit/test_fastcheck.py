"""The fast schema pre-check accepts only what xmlschema accepts (domxml/fastcheck.py).

Its one promise: certainly_valid() is True only for documents xmlschema finds no
error in. Proved here on every document we have (examples, test data, libvirt's
conformance corpus, the bad-input corpus) and on seeded mutations of the valid ones
(thousands of near-misses: a value, an element, an attribute, text, out of place);
and that real domains do take the fast path, without importing xmlschema.
"""

from __future__ import annotations

import copy
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from nsvirt.driver.domxml import fastcheck, parser
from tests.conftest import EXAMPLES, REPO, corpus
from tests.unit.test_bad_input import CASES
from tests.unit.test_netxml import DEFAULT

DATA = Path(__file__).parent / "data"
VALID = sorted(EXAMPLES.glob("*.xml")) + sorted(DATA.glob("*.xml"))


@pytest.fixture(scope="module")
def table() -> dict:
    t = fastcheck.compile_table(parser.schema(), "domain")
    assert not [e for e in t["types"] if e["k"] == "defer"]  # the whole schema is modelled
    return t


def schema_errors(root: etree._Element, schema_file: str = "domain.xsd") -> list:
    return list(parser.schema(schema_file).iter_errors(root.getroottree()))


def parse(data: bytes) -> etree._Element | None:
    try:
        return etree.fromstring(data, etree.XMLParser(resolve_entities=False, load_dtd=False,
                                                      no_network=True))  # fmt: skip
    except etree.XMLSyntaxError:
        return None


def agrees(root: etree._Element, table: dict) -> bool:
    """The promise, for one document: fast True ⇒ xmlschema valid."""
    return not fastcheck.certainly_valid(root, table) or not schema_errors(root)


@pytest.mark.parametrize("path", VALID, ids=[p.name for p in VALID])
def test_real_domains_take_the_fast_path(path: Path, table: dict) -> None:
    root = etree.fromstring(path.read_bytes())
    assert fastcheck.certainly_valid(root, table) and not schema_errors(root)


def test_the_corpora(table: dict) -> None:
    docs = [p.read_bytes() for p in VALID]
    for sub in ("lxcxml2xmldata", "lxcconf2xmldata"):
        docs += [p.read_bytes() for p in sorted(corpus(sub).glob("*.xml"))]
    docs += [case[0] for case in CASES.values()]
    checked = 0
    for data in docs:
        root = parse(data)
        if root is not None:
            assert agrees(root, table), data[:300]
            checked += 1
    assert checked > 50


MUTATIONS = 3000
VALUES = ["", " ", "yes", "no", "0", "1", "-1", "+7", "007", "4294967296", "18446744073709551616",
          "abc", " 12 ", "bind", "mount", "ram", "file", "block", "template", "capabilities",
          "misc", "storage", "net", "usb", "subsystem", "bridge", "network", "ethernet", "direct",
          "00:16:3e:aa:bb:cc", "01:00:5e:00:00:01", "/x", "x/../y", "KiB", "MiB", "G", "lxc", "kvm",
          "exe", "pty", "on", "off", "192.0.2.1", "2001:db8::1", "ipv4", "ipv6", "24", "129",
          "restart", "destroy", "rw", "passthrough", "mapped", "0-3", "1,5", "\u00e9", "a b",
          "\t1\n"]  # fmt: skip


def mutate(root: etree._Element, rng: random.Random, names: list[str], attrs: list[str]) -> None:
    elements = [e for e in root.iter() if isinstance(e.tag, str)]
    el = rng.choice(elements)
    how = rng.randrange(10)
    if how == 0 and el is not root:
        el.getparent().remove(el)
    elif how == 1 and el is not root:
        el.addnext(copy.deepcopy(el))
    elif how == 2:
        el.tag = rng.choice(names)
    elif how in (3, 4):
        el.set(rng.choice(attrs), rng.choice(VALUES))
    elif how == 5 and el.attrib:
        del el.attrib[rng.choice(list(el.attrib))]
    elif how == 6:
        el.text = rng.choice(VALUES)
    elif how == 7:
        el.append(etree.Comment("c") if rng.random() < 0.3 else etree.Element(rng.choice(names)))
    elif how == 8 and el is not root:  # move it elsewhere
        el.getparent().remove(el)
        rng.choice([e for e in root.iter() if isinstance(e.tag, str)]).append(el)
    else:
        el.set(rng.choice(attrs), str(rng.choice([0, 1, 2**31, 2**32 - 1, 2**32, -5, 10**20])))


def mutations(bases: list[etree._Element], table: dict, schema_file: str,
              count: int) -> dict[str, int]:  # fmt: skip
    """`count` seeded mutations of the bases, each checked against the promise."""
    rng = random.Random(13)
    names = sorted({e.tag for b in bases for e in b.iter() if isinstance(e.tag, str)})
    names += ["bogus", "{https://nsvirt.dev/xmlns/domain/1.0}bogus",
              "{http://www.w3.org/2001/XMLSchema-instance}type"]  # fmt: skip
    attrs = [*sorted({a for b in bases for e in b.iter() for a in e.attrib}), "bogus"]
    outcomes = {"refused by both": 0, "accepted by both": 0, "left to xmlschema": 0}
    for n in range(count):
        root = copy.deepcopy(bases[n % len(bases)])
        for _ in range(rng.randrange(1, 3)):
            mutate(root, rng, names, attrs)
        fast = fastcheck.certainly_valid(root, table)
        valid = not schema_errors(root, schema_file)
        assert valid or not fast, etree.tostring(root).decode()
        key = "accepted by both" if fast else ("left to xmlschema" if valid else "refused by both")
        outcomes[key] += 1
    print(outcomes)
    return outcomes


def test_mutations_never_turn_a_refusal_into_an_acceptance(table: dict) -> None:
    bases = [etree.fromstring(p.read_bytes()) for p in VALID]
    outcomes = mutations(bases, table, "domain.xsd", MUTATIONS)
    assert outcomes["refused by both"] > MUTATIONS // 3  # the mutations do break documents
    assert outcomes["accepted by both"] > MUTATIONS // 20  # and some stay valid, and fast


def test_network_mutations_too() -> None:
    # networks (net-define) take the same path, with their own schema and table
    table = fastcheck.compile_table(parser.schema("network.xsd"), "network")
    bases = [etree.fromstring(DEFAULT.encode()),
             etree.fromstring(b"<network><name>v6</name><ip family='ipv6' "
                              b"address='2001:db8::1' prefix='64'/></network>")]  # fmt: skip
    assert all(fastcheck.certainly_valid(b, table) for b in bases)
    outcomes = mutations(bases, table, "network.xsd", 1000)
    assert outcomes["refused by both"] > 1000 // 3 and outcomes["accepted by both"] > 1000 // 20


def test_the_table_follows_the_schema_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           table: dict) -> None:  # fmt: skip
    monkeypatch.setenv("NSVIRT_SCHEMA_CACHE", str(tmp_path / "cache"))
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    for xsd in Path(parser._schema_dir()).glob("*.xsd"):
        (schemas / xsd.name).write_bytes(xsd.read_bytes())
    built: list[int] = []

    def build() -> object:
        built.append(1)
        return parser.schema()

    first = fastcheck.table_for(str(schemas), "domain.xsd", build)
    assert first is not None and built == [1]
    assert fastcheck.table_for(str(schemas), "domain.xsd", build) == first and built == [1]
    (cached,) = (tmp_path / "cache").glob("fastcheck-domain.xsd-*.json")
    cached.write_bytes(b"{not json")  # corrupt: compiled again, never used
    assert fastcheck.table_for(str(schemas), "domain.xsd", build) == first and len(built) == 2
    with (schemas / "types.xsd").open("a") as f:
        f.write("<!-- changed -->\n")  # another schema: another table
    fastcheck.table_for(str(schemas), "domain.xsd", build)
    assert len(built) == 3 and len(list((tmp_path / "cache").glob("fastcheck-*.json"))) == 1
    os.chmod(tmp_path / "cache", 0o777)  # others could write it: not read
    fastcheck.table_for(str(schemas), "domain.xsd", build)
    assert len(built) == 4
    monkeypatch.setenv("NSVIRT_FASTCHECK", "off")
    assert fastcheck.table_for(str(schemas), "domain.xsd", build) is None


def test_validating_a_real_domain_imports_no_xmlschema(tmp_path: Path) -> None:
    code = ("import sys; from nsvirt.driver import domxml; "
            f"domxml.load_file({str(EXAMPLES / 'busybox.xml')!r}); "
            "print('xmlschema' in sys.modules)")  # fmt: skip
    env = {**os.environ, "NSVIRT_SCHEMA_CACHE": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.strip()
            for _ in range(2)]  # fmt: skip
    assert runs == ["True", "False"]  # the first builds the table, the next needs none
