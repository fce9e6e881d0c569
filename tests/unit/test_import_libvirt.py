"""import-libvirt (driver/migrate.py): a tree shaped like /etc/libvirt/lxc, made from
libvirt's own LXC test definitions and nsvirt's examples, defined in an embed root;
--dry-run changes nothing, autostart links carry over, libvirt's files stay as they
were, a refused definition says why and the others still come."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nsvirt.driver import connect
from tests.conftest import EXAMPLES, shared_dir

CORPUS = shared_dir() / "conformance" / "libvirt" / "lxcxml2xmldata"


def libvirt_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "etc-libvirt-lxc"
    (tree / "autostart").mkdir(parents=True)
    for src in (EXAMPLES / "busybox.xml", EXAMPLES / "bridged.xml"):
        (tree / src.name).write_bytes(src.read_bytes())
    if CORPUS.is_dir():
        (tree / "jessie.xml").write_bytes((CORPUS / "lxc-capabilities.xml").read_bytes())
    (tree / "broken.xml").write_text("<domain type='lxc'><name>broken</name><frob/></domain>")
    os.symlink(tree / "busybox.xml", tree / "autostart" / "busybox.xml")
    return tree


def snapshot(tree: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(tree.rglob("*"))}  # fmt: skip


def nsvirsh(root: Path, *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nsvirt.shell", "-c",
                           f"lxc:///embed?root={root}", *words], capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_dry_run_changes_nothing_and_import_carries_autostart(tmp_path: Path) -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"libvirt's LXC test data is not at {CORPUS}")
    tree, root = libvirt_tree(tmp_path), tmp_path / "root"
    before = snapshot(tree)
    dry = nsvirsh(root, "import-libvirt", "--from", str(tree), "--autostart", "--dry-run")
    assert dry.returncode == 1  # the broken one
    assert f"error: {tree}/broken.xml: " in dry.stderr and "frob" in dry.stderr
    assert "Domain 'busybox' would be imported" in dry.stdout and "(autostart)" in dry.stdout
    assert f"--- {tree}/busybox.xml" in dry.stdout  # the diff of what would be stored
    assert connect(f"lxc:///embed?root={root}").list_all() == []
    done = nsvirsh(root, "import-libvirt", "--from", str(tree), "--autostart")
    assert done.returncode == 1, done.stderr
    conn = connect(f"lxc:///embed?root={root}")
    names = sorted(d.name for d in conn.list_all())
    assert "busybox" in names and "broken" not in names and len(names) == 3
    assert conn.lookup_by_name("busybox").autostart()
    assert not conn.lookup_by_name(names[0] if names[0] != "busybox" else names[1]).autostart()
    assert snapshot(tree) == before  # libvirt's files are only read
    again = nsvirsh(root, "import-libvirt", "--from", str(tree))
    assert "is defined in nsvirt already: not imported" in again.stderr


def test_a_domain_libvirt_runs_is_reported(tmp_path: Path) -> None:
    from nsvirt.driver import migrate

    tree, running = libvirt_tree(tmp_path), tmp_path / "run-libvirt-lxc"
    running.mkdir()
    (running / "busybox.pid").write_text("4242\n")
    conn = connect(f"lxc:///embed?root={tmp_path / 'root'}")
    results = {r.name: r for r in migrate.import_libvirt(conn, str(tree), running=str(running))}
    assert results["busybox"].done and "libvirt runs it now" in results["busybox"].notes[0]
    assert not conn.lookup_by_name("busybox").is_active()  # not taken over
