"""libvirt's own LXC test data must parse and format byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from nsvirt.driver import domxml
from tests.conftest import EXAMPLES, corpus, shared_dir

XML2XML = shared_dir() / "conformance/libvirt/lxcxml2xmldata"
CONF2XML = shared_dir() / "conformance/libvirt/lxcconf2xmldata"

# The 13 inputs of libvirt's lxcxml2xmltest; expected output is the input
# itself except where an -out file exists.
XML2XML_NAMES = (
    "capabilities", "disk-formats", "ethernet", "ethernet-hostip", "filesystem-ram",
    "filesystem-root", "hostdev", "idmap", "initdir", "initenv", "inituser", "sharenet",
    "systemd",
)  # fmt: skip


@pytest.mark.parametrize("name", XML2XML_NAMES)
def test_lxcxml2xml_formats_like_libvirt(name: str) -> None:
    src = corpus("lxcxml2xmldata") / f"lxc-{name}.xml"
    out = src.with_name(f"lxc-{name}-out.xml")
    expected = (out if out.exists() else src).read_text()
    assert domxml.format(domxml.load(src.read_bytes(), str(src))) == expected


def test_lxcxml2xml_corpus_is_complete() -> None:
    inputs = {
        p.name for p in corpus("lxcxml2xmldata").glob("*.xml") if not p.name.endswith("-out.xml")
    }
    assert inputs == {f"lxc-{n}.xml" for n in XML2XML_NAMES}


def _conf2xml_files() -> list[Path]:
    return sorted(CONF2XML.glob("*.xml")) if CONF2XML.is_dir() else []


@pytest.mark.parametrize("path", _conf2xml_files(), ids=lambda p: p.stem)
def test_lxcconf2xml_outputs_parse_and_round_trip(path: Path) -> None:
    assert domxml.format(domxml.load(path.read_bytes(), str(path))) == path.read_text()


def test_lxcconf2xml_corpus_present() -> None:
    assert len(list(corpus("lxcconf2xmldata").glob("*.xml"))) == 13


def _all_valid_files() -> list[Path]:
    files = sorted(EXAMPLES.glob("*.xml"))
    for sub in (XML2XML, CONF2XML):
        if sub.is_dir():
            files += sorted(sub.glob("*.xml"))
    files += sorted((Path(__file__).parent / "data").glob("*.xml"))
    return files


@pytest.mark.parametrize("path", _all_valid_files(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_round_trip_is_stable(path: Path) -> None:
    once = domxml.format(domxml.load(path.read_bytes(), str(path)))
    dom = domxml.load(once.encode())
    assert domxml.format(dom) == once
    assert dom == domxml.load(once.encode())
