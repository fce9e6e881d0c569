"""Compiled definitions (driver/state/compiled.py): what `dominfo` and `list` read
instead of the XML, rebuilt whenever the XML changed, and never used stale."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nsvirt.driver import connect
from nsvirt.driver.connection import Connection
from nsvirt.driver.state import compiled
from nsvirt.shell import quick

XML = """<domain type='lxc'>
  <name>web</name>
  <memory unit='KiB'>65536</memory>
  <vcpu>2</vcpu>
  <os><type>exe</type><init>/bin/sh</init></os>
  <devices><filesystem type='mount'><source dir='/srv/web'/><target dir='/'/></filesystem>
  </devices>
</domain>"""


@pytest.fixture
def conn(tmp_path: Path) -> Connection:
    return connect(f"lxc:///embed?root={tmp_path}")


def paths_of(conn: Connection) -> tuple[str, str]:
    names = conn.paths.names
    return names.config("web"), names.compiled("web", live=False)


def quick_dominfo(conn: Connection) -> str | None:
    """What the one-shot fast path prints for `dominfo web` (None: it steps aside)."""
    return quick.run(["-c", conn.uri, "dominfo", "web"])


def test_define_writes_it_and_the_fast_path_uses_it(conn: Connection) -> None:
    conn.define_xml(XML)
    xml, cache = paths_of(conn)
    found = compiled.read(xml, cache)
    assert found is not None
    assert (found["memory"], found["current_memory"], found["vcpus"]) == (65536, 65536, 2)
    assert found["uuid"] == conn.lookup_by_name("web").uuid
    out = quick_dominfo(conn)
    assert out is not None and "Max memory:     65536 KiB\n" in out and "CPU(s):         2\n" in out


def _edit_behind_our_back(xml: str, old: str, new: str) -> None:
    """Rewrite the file in place, same size, and set its mtime back: only ctime and
    the bytes tell."""
    st = os.stat(xml)
    text = Path(xml).read_text()
    assert len(old) == len(new) and old in text
    with open(xml, "r+") as f:
        f.write(text.replace(old, new))
    os.utime(xml, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(xml).st_size == st.st_size and os.stat(xml).st_mtime_ns == st.st_mtime_ns


def test_rebuilt_when_the_xml_changes_behind_nsvirts_back(conn: Connection) -> None:
    conn.define_xml(XML)
    xml, cache = paths_of(conn)
    _edit_behind_our_back(xml, "<vcpu placement='static'>2</vcpu>",
                          "<vcpu placement='static'>4</vcpu>")  # fmt: skip
    assert compiled.read(xml, cache) is None  # stale: never used
    assert quick_dominfo(conn) is None  # the fast path steps aside…
    assert conn.lookup_by_name("web").info().vcpus == 4  # …the driver reads the XML…
    rebuilt = compiled.read(xml, cache)  # …and compiles it again
    assert rebuilt is not None and rebuilt["vcpus"] == 4
    assert "CPU(s):         4\n" in (quick_dominfo(conn) or "")


def test_the_content_check_catches_what_stat_misses(conn: Connection) -> None:
    """An edit inside one timestamp tick keeps every stat field: the CRC differs."""
    conn.define_xml(XML)
    xml, cache = paths_of(conn)
    raw = json.loads(Path(cache).read_text())
    raw["source"][-1] ^= 1  # the same file by stat, other bytes
    Path(cache).write_text(json.dumps(raw))
    assert compiled.read(xml, cache) is None


@pytest.mark.parametrize("writer", ["99.0 plan 4", f"{compiled.__version__} plan 1"],
                         ids=["another version", "another plan format"])  # fmt: skip
def test_rebuilt_when_nsvirts_version_or_plan_format_changes(
    conn: Connection, monkeypatch, writer: str
) -> None:
    conn.define_xml(XML)
    xml, cache = paths_of(conn)
    assert json.loads(Path(cache).read_text())["version"] == compiled.WRITER
    monkeypatch.setattr(compiled, "WRITER", writer)
    assert compiled.read(xml, cache) is None  # another writer's: not used
    assert quick_dominfo(conn) is None
    assert conn.lookup_by_name("web").info().vcpus == 2
    assert json.loads(Path(cache).read_text())["version"] == writer
    assert compiled.read(xml, cache) is not None


def test_a_prepared_launch_of_another_plan_format_is_not_used(tmp_path: Path) -> None:
    from nsvirt.driver.launch import hostprobe, prepared
    from nsvirt.driver.supervisor.planview import PLAN_FORMAT

    st = os.stat(tmp_path)
    facts = hostprobe.probe()
    for fmt, usable in ((PLAN_FORMAT, True), (PLAN_FORMAT - 1, False)):
        plan = json.dumps({"format": fmt, "facts": facts})
        launch = {"plan": plan, "root": [st.st_dev, st.st_ino], "live": ""}
        assert prepared.usable(launch, str(tmp_path), facts) is usable


@pytest.mark.parametrize(
    "damage",
    ["", "{", "not json", "[1, 2]", '{"format": 2}', "\0" * 100, "NaN",
     "format-only", "wrong-type", "bool-for-int"],
)  # fmt: skip
def test_a_corrupt_one_is_never_used(conn: Connection, damage: str) -> None:
    conn.define_xml(XML)
    xml, cache = paths_of(conn)
    raw = json.loads(Path(cache).read_text())
    if damage == "format-only":
        text = json.dumps({k: raw[k] for k in ("format", "version", "source")})
    elif damage == "wrong-type":
        text = json.dumps({**raw, "memory": "65536"})
    elif damage == "bool-for-int":
        text = json.dumps({**raw, "vcpus": True})
    else:
        text = damage
    Path(cache).write_text(text)
    assert compiled.read(xml, cache) is None
    assert quick_dominfo(conn) is None
    info = conn.lookup_by_name("web").info()  # the driver reads the XML, and rebuilds
    assert (info.max_memory, info.vcpus) == (65536, 2)
    assert compiled.read(xml, cache) is not None


def test_a_missing_one_is_rebuilt_and_undefine_removes_it(conn: Connection) -> None:
    dom = conn.define_xml(XML)
    _, cache = paths_of(conn)
    os.unlink(cache)
    assert quick_dominfo(conn) is None
    assert dom.info().vcpus == 2
    assert os.path.exists(cache)
    dom.undefine()
    assert not os.path.exists(cache)


def test_a_replaced_xml_is_not_compiled_with_old_fields(conn: Connection) -> None:
    """write() records fields only for the bytes it was given: a file another
    writer replaced meanwhile gets no compiled form (the driver makes it later)."""
    conn.define_xml(XML)
    xml, cache = paths_of(conn)
    os.unlink(cache)
    assert not compiled.write(xml, cache, b"<domain>other bytes</domain>", {"vcpus": 9})
    assert not os.path.exists(cache)
