"""Persistent definitions over lxc:///embed?root=DIR (nothing on the host is touched)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from nsvirt.driver import connect, connection
from nsvirt.driver.errors import InvalidURI, NoDomainError, OperationFailed
from nsvirt.driver.launch.hostfacts import host_arch

UUID_A = "05621346-d353-4bab-acc3-5004556ddd1a"
UUID_B = "92e8c4dd-d4d1-45de-845e-c56f9d500b79"


def xml(name: str, uuid: str | None = UUID_A, memory: int = 64, arch: str = "") -> str:
    uuid_el = f"<uuid>{uuid}</uuid>" if uuid else ""
    arch_attr = f" arch='{arch}'" if arch else ""
    return (
        f"<domain type='lxc'><name>{name}</name>{uuid_el}"
        f"<memory unit='MiB'>{memory}</memory>"
        f"<os><type{arch_attr}>exe</type><init>/bin/sh</init></os></domain>"
    )


@pytest.fixture
def conn(tmp_path: Path) -> connection.Connection:
    return connect(f"lxc:///embed?root={tmp_path}")


@pytest.mark.parametrize(("uri", "canonical"), [
    ("lxc:///", "lxc:///system"), ("lxc:///system", "lxc:///system"),
    ("lxc:///embed?root=/tmp/x/", "lxc:///embed?root=/tmp/x"),
])  # fmt: skip
def test_uris(uri: str, canonical: str) -> None:
    assert connect(uri).uri == canonical


@pytest.mark.parametrize(
    "uri",
    [
        "qemu:///system",
        "lxc:///session",
        "lxc:///embed",
        "lxc:///embed?root=relative",
        "lxc://remote/system",
    ],
)
def test_bad_uris(uri: str) -> None:
    with pytest.raises(InvalidURI):
        connect(uri)


def test_default_uri_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NSVIRT_DEFAULT_URI", f"lxc:///embed?root={tmp_path}")
    assert connect().paths.root == tmp_path
    monkeypatch.delenv("NSVIRT_DEFAULT_URI")
    assert connect().uri == "lxc:///system"


def test_define_stores_canonical_xml_with_host_arch(conn: connection.Connection) -> None:
    dom = conn.define_xml(xml("web"))
    assert (dom.name, dom.uuid) == ("web", UUID_A)
    text = dom.xml_desc()
    assert f"<type arch='{host_arch()}'>exe</type>" in text
    assert "<memory unit='KiB'>65536</memory>" in text
    path = conn.paths.config("web")
    assert path.read_text() == text
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert not list(path.parent.glob(".*.tmp"))


def test_define_dumpxml_define_is_byte_stable(conn: connection.Connection) -> None:
    first = conn.define_xml(xml("web", uuid=None)).xml_desc()
    assert conn.define_xml(first).xml_desc() == first


def test_lookup_and_list(conn: connection.Connection) -> None:
    conn.define_xml(xml("web", UUID_A))
    conn.define_xml(xml("db", UUID_B))
    assert [d.name for d in conn.list_all()] == ["db", "web"]
    assert conn.lookup_by_name("web").uuid == UUID_A
    assert conn.lookup_by_uuid(UUID_B.upper()).name == "db"
    assert conn.lookup_by_uuid(UUID_B.replace("-", "")).name == "db"
    with pytest.raises(NoDomainError):
        conn.lookup_by_name("nope")
    with pytest.raises(NoDomainError):
        conn.lookup_by_name("../web")
    with pytest.raises(NoDomainError, match="matching uuid"):
        conn.lookup_by_uuid("6f6b3d6e-0000-4000-8000-000000000000")


def test_redefine_same_uuid_updates(conn: connection.Connection) -> None:
    conn.define_xml(xml("web", memory=64))
    conn.define_xml(xml("web", memory=128))
    assert "<memory unit='KiB'>131072</memory>" in conn.lookup_by_name("web").xml_desc()
    assert len(conn.list_all()) == 1


def test_same_name_other_uuid_is_refused(conn: connection.Connection) -> None:
    conn.define_xml(xml("web", UUID_A))
    with pytest.raises(OperationFailed) as e:
        conn.define_xml(xml("web", UUID_B))
    assert str(e.value) == f"operation failed: domain 'web' already exists with uuid {UUID_A}"


def test_document_without_uuid_updates_the_domain_of_its_name(conn: connection.Connection) -> None:
    # libvirt would generate a new uuid and refuse it; the same file from version
    # control must define again (docs/migrating-from-libvirt-lxc.md)
    conn.define_xml(xml("web", UUID_A, memory=64))
    dom = conn.define_xml(xml("web", uuid=None, memory=128))
    assert dom.uuid == UUID_A
    assert "<memory unit='KiB'>131072</memory>" in dom.xml_desc()
    fresh = conn.define_xml(xml("new", uuid=None))
    assert fresh.uuid not in ("", UUID_A) and len(fresh.uuid) == 36


def test_same_uuid_other_name_is_refused(conn: connection.Connection) -> None:
    conn.define_xml(xml("web", UUID_A))
    with pytest.raises(OperationFailed) as e:
        conn.define_xml(xml("web2", UUID_A))
    assert str(e.value) == (f"operation failed: domain 'web' is already defined with uuid {UUID_A}")


def test_foreign_arch_is_refused(conn: connection.Connection) -> None:
    with pytest.raises(OperationFailed, match="arch=s390x"):
        conn.define_xml(xml("web", arch="s390x"))
    assert conn.list_all() == []


def test_undefine(conn: connection.Connection) -> None:
    dom = conn.define_xml(xml("web"))
    dom.undefine()
    assert conn.list_all() == []
    with pytest.raises(NoDomainError):
        dom.undefine()
    with pytest.raises(NoDomainError):
        dom.xml_desc()


def test_two_roots_do_not_see_each_other(tmp_path: Path) -> None:
    a = connect(f"lxc:///embed?root={tmp_path / 'a'}")
    b = connect(f"lxc:///embed?root={tmp_path / 'b'}")
    a.define_xml(xml("web"))
    assert b.list_all() == []
    assert a.tag != b.tag and len(a.tag) == 8


def test_concurrent_defines_keep_names_unique(conn: connection.Connection) -> None:
    """Many threads race to define one name with different uuids: exactly one wins."""
    uuids = [f"{i:08x}-0000-4000-8000-000000000000" for i in range(1, 9)]
    outcomes: list[str] = []

    def attempt(u: str) -> None:
        try:
            conn.define_xml(xml("web", u))
            outcomes.append("ok")
        except OperationFailed:
            outcomes.append("refused")

    threads = [threading.Thread(target=attempt, args=(u,)) for u in uuids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok"] + ["refused"] * 7
    assert len(conn.list_all()) == 1


def test_write_atomic_leaves_old_file_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nsvirt.driver.state import files

    target = tmp_path / "web.xml"
    files.write_atomic(target, b"old")

    def boom(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        files.write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["web.xml"]


def test_a_run_states_uuid_is_read_again_when_the_file_changes(tmp_path: Path) -> None:
    """The uuids of running domains are remembered by the state's bytes (the API
    starts hundreds): a state rewritten in place, same size, names its new uuid."""
    state = tmp_path / "d.json"
    state.write_text(f'{{"name": "d", "uuid": "{UUID_A}"}}')
    assert connection._state_uuid(str(state)) == UUID_A
    assert connection._state_uuid(str(state)) == UUID_A  # remembered
    with open(state, "r+") as f:  # same inode, same size
        f.write(f'{{"name": "d", "uuid": "{UUID_B}"}}')
    assert connection._state_uuid(str(state)) == UUID_B
    state.write_text("{broken")
    assert connection._state_uuid(str(state)) is None
    state.unlink()
    assert connection._state_uuid(str(state)) is None


def test_a_made_uuid_skips_the_uuid_scan_but_never_the_name(conn: connection.Connection,
                                                          monkeypatch) -> None:  # fmt: skip
    """Without a <uuid>, define and create make one (122 random bits): no other
    domain's files are read for it, and a clash of names is still refused."""
    conn.define_xml(xml("a", uuid=None))
    conn.define_xml(xml("b", uuid=UUID_B))
    read: list[str] = []
    monkeypatch.setattr(connection.store, "head_uuid", lambda p: read.append(p))
    with pytest.raises(OperationFailed, match="domain 'a' already exists"):
        conn.create_xml(xml("a", uuid=None))
    assert read and all(p.endswith("/a.xml") for p in read)  # b's was never opened
    monkeypatch.undo()
    with pytest.raises(OperationFailed, match="is already defined with uuid"):
        conn.define_xml(xml("c", uuid=UUID_B))  # a given uuid is still checked
