"""The cache of built schemas (driver/domxml/schemacache.py): a cached schema refuses
exactly what a freshly built one refuses, and a cache file anyone else could have
written is never loaded (a pickle runs code)."""

from __future__ import annotations

import copy
import os
import pickle
from pathlib import Path

import pytest
import xmlschema
from lxml import etree

from nsvirt.driver.domxml import parser, schemacache
from tests.conftest import EXAMPLES, REPO, corpus
from tests.unit.test_bad_input import CASES

SCHEMAS = str(REPO / "schemas")


def fresh() -> xmlschema.XMLSchema11:
    return xmlschema.XMLSchema11(os.path.join(SCHEMAS, "domain.xsd"))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("NSVIRT_SCHEMA_CACHE", str(directory))
    return directory


def verdicts(schema: xmlschema.XMLSchema11, tree: etree._ElementTree) -> list[tuple[str, str]]:
    return [(str(e.path), str(e.reason)) for e in schema.iter_errors(tree)]


def documents() -> list[etree._ElementTree]:
    """Real files and the bad-input corpus as they are, and the examples and
    tests/data/everything.xml with each element in turn removed, doubled and renamed:
    valid and refused shapes of every part of the schema."""
    safe = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    mutated = [p.read_bytes() for p in sorted(EXAMPLES.glob("*.xml"))]
    mutated.append((REPO / "tests/data/everything.xml").read_bytes())
    as_is = [p.read_bytes() for p in sorted(corpus("lxcxml2xmldata").glob("*.xml"))]
    as_is += [data for data, _, _ in CASES.values()]
    trees = []
    for text in mutated + as_is:
        try:
            root = etree.fromstring(text, safe)
        except (etree.XMLSyntaxError, ValueError):
            continue
        if len(text) > 20_000:
            continue  # the flood cases: the parser's shape bounds refuse them first
        trees.append(etree.ElementTree(root))
        if text not in mutated:
            continue
        for n in range(1, sum(1 for _ in root.iter())):
            for how in ("remove", "double", "rename"):
                mutant = copy.deepcopy(root)
                victim = list(mutant.iter())[n]
                if how == "remove":
                    victim.getparent().remove(victim)
                elif how == "double":
                    victim.addnext(copy.deepcopy(victim))
                else:
                    victim.tag = "bogus"
                trees.append(etree.ElementTree(mutant))
    return trees


def test_a_cached_schema_refuses_exactly_what_a_fresh_one_refuses(cache: Path) -> None:
    schemacache.load(SCHEMAS, "domain.xsd", fresh)  # build and cache
    (cached_file,) = cache.glob("domain.xsd-*.pickle")
    cached = schemacache.load(SCHEMAS, "domain.xsd", lambda: pytest.fail("built again"))
    built = fresh()
    trees = documents()
    assert len(trees) > 300
    refused = 0
    for tree in trees:
        expected = verdicts(built, tree)
        assert verdicts(cached, tree) == expected
        refused += bool(expected)
    assert 0 < refused < len(trees)  # both kinds were tried
    assert oct(cached_file.stat().st_mode & 0o777) == "0o600"


class Planted:
    """A pickle that, if loaded, leaves a file behind."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("loose", ["file", "directory"])
def test_a_cache_others_could_write_is_never_loaded(cache: Path, tmp_path: Path,
                                                    loose: str) -> None:  # fmt: skip
    cache.mkdir(mode=0o700)
    marker = tmp_path / "ran"
    path = cache / f"domain.xsd-{schemacache.key(SCHEMAS)}.pickle"
    path.write_bytes(pickle.dumps(Planted(marker)))
    os.chmod(path, 0o600)
    os.chmod(path if loose == "file" else cache, 0o666 if loose == "file" else 0o777)
    found = schemacache.load(SCHEMAS, "domain.xsd", fresh)
    assert isinstance(found, xmlschema.XMLSchema11) and not marker.exists()
    # the same file, private: it is what is loaded (so the test above could fail)
    os.chmod(cache, 0o700)
    path.write_bytes(pickle.dumps(Planted(marker)))
    os.chmod(path, 0o600)
    schemacache.load(SCHEMAS, "domain.xsd", fresh)
    assert marker.exists()


def test_schemas_of_other_versions_are_removed(cache: Path) -> None:
    cache.mkdir(mode=0o700)
    stale = cache / "domain.xsd-0123456789abcdef01234567.pickle"
    stale.write_bytes(b"old")
    other = cache / "network.xsd-0123456789abcdef01234567.pickle"
    other.write_bytes(b"old")
    schemacache.load(SCHEMAS, "domain.xsd", fresh)
    assert not stale.exists() and other.exists()
    assert len(list(cache.glob("domain.xsd-*.pickle"))) == 1


def test_a_corrupt_cache_is_built_again(cache: Path) -> None:
    schemacache.load(SCHEMAS, "domain.xsd", fresh)
    (path,) = cache.glob("*.pickle")
    path.write_bytes(path.read_bytes()[:1000])
    found = schemacache.load(SCHEMAS, "domain.xsd", fresh)
    assert isinstance(found, xmlschema.XMLSchema11) and found.is_valid(
        (EXAMPLES / "busybox.xml").read_text()
    )
    assert path.stat().st_size > 100_000  # written anew, whole


def test_the_key_follows_the_schema_files(tmp_path: Path) -> None:
    copied = tmp_path / "schemas"
    copied.mkdir()
    for p in Path(SCHEMAS).glob("*.xsd"):
        (copied / p.name).write_bytes(p.read_bytes())
    before = schemacache.key(str(copied))
    assert schemacache.key(str(copied)) == before
    types = copied / "types.xsd"
    types.write_bytes(types.read_bytes().replace(b"</xs:schema>", b"<!-- x --></xs:schema>"))
    assert schemacache.key(str(copied)) != before


def test_the_parser_uses_it(cache: Path) -> None:
    parser.schema.cache_clear()
    try:
        parser.schema()
        assert list(cache.glob("domain.xsd-*.pickle"))
    finally:
        parser.schema.cache_clear()
