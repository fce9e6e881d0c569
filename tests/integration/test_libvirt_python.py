"""libvirt-python's names (driver/libvirt.py): three scripts in the style of
libvirt-python's own examples (examples/libvirt-python/), written for
`import libvirt`, run against an embed root with only the import changed; and the
error numbers scripts test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nsvirt.driver import libvirt
from tests.conftest import EXAMPLES
from tests.integration.conftest import domain_xml, start

SCRIPTS = EXAMPLES / "libvirt-python"
POLITE = ("-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait; done")


def script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPTS / name), *args], capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_the_scripts_need_only_their_import_changed() -> None:
    for path in SCRIPTS.glob("*.py"):
        text = path.read_text()
        assert "from nsvirt.driver import libvirt  # was: import libvirt" in text
        assert "nsvirt." not in text.replace("from nsvirt.driver import libvirt", "")


def test_list_start_stop_and_set_memory(conn, rootfs: Path) -> None:
    start(conn, domain_xml("web", rootfs, memory_mib=128, args=POLITE))
    conn.define_xml(domain_xml("db", rootfs, memory_mib=64))
    listed = script("list_domains.py", conn.uri)
    assert listed.returncode == 0, listed.stderr
    web = next(line for line in listed.stdout.splitlines() if line.startswith("web"))
    assert "running" in web and "max=131072 KiB" in web and "persistent=1" in web
    assert any(line.startswith("db ") and "shut off" in line and "id=-1"
               in line for line in listed.stdout.splitlines())  # fmt: skip
    assert "defined: ['db']" in listed.stdout

    started = script("start_stop.py", conn.uri, "db", "start")
    assert started.returncode == 0, started.stderr
    assert "db: active=1 state=[1, 1]" in started.stdout
    assert conn.lookup_by_name("db").is_active()
    stopped = script("start_stop.py", conn.uri, "db", "destroy")
    assert "db: active=0 state=[5, 2]" in stopped.stdout  # shut off, destroyed
    again = script("start_stop.py", conn.uri, "db", "destroy")
    assert again.returncode == 1 and "destroy failed (55)" in again.stderr  # OPERATION_INVALID
    assert script("start_stop.py", conn.uri, "ghost", "start").returncode == 2  # NO_DOMAIN

    changed = script("set_memory.py", conn.uri, "web", str(96 * 1024))
    assert changed.returncode == 0, changed.stderr
    assert "of 131072 KiB" in changed.stdout and "actual: 98304 KiB" in changed.stdout
    limit = Path(conn.lookup_by_name("web").cgroup_dirs()["memory" if "memory" in
                 conn.lookup_by_name("web").cgroup_dirs() else "unified"])  # fmt: skip
    name = "memory.limit_in_bytes" if (limit / "memory.limit_in_bytes").exists() else "memory.max"
    assert (limit / name).read_text().strip() == str(96 << 20)


def test_libvirt_errors_and_calls(conn, rootfs: Path) -> None:
    c = libvirt.open(conn.uri)
    with pytest.raises(libvirt.libvirtError) as e:
        c.lookupByName("ghost")
    assert e.value.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN
    assert e.value.get_error_domain() == libvirt.VIR_FROM_DOM
    dom = c.defineXML(domain_xml("api", rootfs, args=POLITE))
    assert (dom.isActive(), dom.isPersistent(), dom.ID(), dom.autostart()) == (0, 1, -1, 0)
    assert dom.create() == 0 and dom.ID() > 0
    assert c.lookupByID(dom.ID()).name() == "api" and c.lookupByUUIDString(dom.UUIDString())
    active = c.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
    assert [d.name() for d in active] == ["api"]
    assert c.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_INACTIVE) == []
    assert dom.suspend() == 0 and dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED
    assert dom.resume() == 0 and dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert "<name>api</name>" in dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    app, config = "https://example.org/app", libvirt.VIR_DOMAIN_AFFECT_CONFIG
    element = libvirt.VIR_DOMAIN_METADATA_ELEMENT
    assert dom.setMetadata(element, "<owner>ops</owner>", "app", app, config) == 0
    assert "ops" in dom.metadata(element, app, config)
    with pytest.raises(libvirt.libvirtError) as e:
        dom.metadata(libvirt.VIR_DOMAIN_METADATA_TITLE)
    assert e.value.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_METADATA
    assert "cpu_shares" in dom.schedulerParameters()
    assert dom.destroy() == 0
    with pytest.raises(libvirt.libvirtError) as e:
        dom.destroy()
    assert e.value.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID
    ro = libvirt.openReadOnly(conn.uri)
    with pytest.raises(libvirt.libvirtError) as e:
        ro.lookupByName("api").create()
    assert e.value.get_error_code() == libvirt.VIR_ERR_OPERATION_DENIED
    assert dom.undefine() == 0 and c.close() == 0
