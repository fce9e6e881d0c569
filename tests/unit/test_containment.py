"""Containment without root: the mode a domain gets and why, its nsvirt settings in
XML, the seccomp filter's real effect (installed in a child with no_new_privs), and
the host id range table."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from nsvirt.driver import domxml
from nsvirt.driver.domxml import defaults, parser
from nsvirt.driver.errors import Unsupported, XMLValidationError
from nsvirt.driver.launch import containment, plan
from nsvirt.driver.launch.hostfacts import HostFacts
from nsvirt.driver.records import replace
from nsvirt.driver.runtime import seccomp
from nsvirt.driver.state import idranges

FACTS = HostFacts(cgroup_mode="v2", cgroup2_mount="/sys/fs/cgroup", kernel="6.1.0")
NS = "https://nsvirt.dev/xmlns/domain/1.0"


def domain(config: str = "", extra: str = "", devices: str = "") -> str:
    meta = f"<metadata><nsvirt:config xmlns:nsvirt='{NS}'>{config}</nsvirt:config></metadata>"
    return (
        "<domain type='lxc'><name>web</name><uuid>05621346-d353-4bab-acc3-5004556ddd1a</uuid>"
        f"{meta if config else ''}<memory unit='MiB'>64</memory>{extra}"
        f"<os><type>exe</type><init>/bin/sh</init></os><devices>{devices}</devices></domain>"
    )


IDMAP = (
    "<idmap><uid start='0' target='100000' count='65536'/>"
    "<gid start='0' target='100000' count='65536'/></idmap>"
)
ROOTFS = "<filesystem><source dir='/srv/web'/><target dir='/'/></filesystem>"
RO_ROOTFS = "<filesystem><source dir='/srv/web'/><target dir='/'/><readonly/></filesystem>"


def decide(xml: str) -> containment.Containment:
    return containment.decide(domxml.load(xml.encode()))


def test_default_is_unprivileged_with_idmapped_mounts() -> None:
    c = decide(domain(devices=ROOTFS))
    assert (c.mode, c.auto_ids, c.idmapped_mounts, c.remount_guard) == (
        "unprivileged", 65536, True, False,
    )  # fmt: skip
    assert "<nsvirt:privileged/> opts out" in c.why
    p = plan.build(domxml.load(domain(devices=ROOTFS).encode()), FACTS, partition="/p")
    assert p.namespaces[0] == "user" and p.root_idmapped and p.auto_ids == 65536
    assert not p.uid_map  # the supervisor allocates the range at start


def test_a_read_only_mount_turns_the_remount_guard_on() -> None:
    assert decide(domain(devices=RO_ROOTFS)).remount_guard


def test_an_idmap_keeps_libvirts_meaning() -> None:
    c = decide(domain(extra=IDMAP, devices=ROOTFS))
    assert (c.mode, c.auto_ids, c.idmapped_mounts) == ("idmap", 0, False)
    asked = decide(domain("<nsvirt:idmapped-mounts/>", extra=IDMAP, devices=ROOTFS))
    assert asked.idmapped_mounts and "idmapped-mounts" in asked.why


def test_privileged_opts_out_and_is_hardened() -> None:
    c = decide(domain("<nsvirt:privileged/>", devices=ROOTFS))
    assert (c.mode, c.auto_ids, c.idmapped_mounts, c.remount_guard) == (
        "privileged", 0, False, True,
    )  # fmt: skip
    assert ("open_by_handle_at", "EPERM") in c.seccomp and ("keyctl", "ENOSYS") in c.seccomp
    p = plan.build(domxml.load(domain("<nsvirt:privileged/>").encode()), FACTS, partition="/p")
    assert "user" not in p.namespaces and "cgroup" in p.namespaces
    for dropped in ("dac_read_search", "sys_rawio", "sys_module", "mknod", "mac_override"):
        assert dropped not in p.keep_caps
    assert "sys_boot" in p.keep_caps  # reboot(2) restarts the container, as in libvirt


def test_seccomp_allow_and_no_new_privs() -> None:
    c = decide(domain("<nsvirt:no-new-privs/><nsvirt:seccomp allow='bpf keyctl'/>"))
    names = {name for name, _ in c.seccomp}
    assert "bpf" not in names and "keyctl" not in names and "perf_event_open" in names
    assert c.no_new_privs


def test_an_unknown_syscall_in_allow_is_refused_with_its_line() -> None:
    xml = domain("\n<nsvirt:seccomp allow='bpf reboot'/>")
    with pytest.raises(XMLValidationError) as e:
        domxml.load(xml.encode(), "d.xml")
    assert e.value.line == 2 and "reboot" in str(e.value)


def test_the_schema_names_exactly_the_calls_the_filter_denies() -> None:
    xsd = etree.parse(os.path.join(parser._schema_dir(), "nsvirt.xsd"))
    values = xsd.xpath(
        "//xs:simpleType[@name='filteredSyscall']//xs:enumeration/@value",
        namespaces={"xs": "http://www.w3.org/2001/XMLSchema"},
    )
    assert set(values) == containment.DENIABLE


def test_host_checks() -> None:
    unprivileged = decide(domain())
    with pytest.raises(Unsupported, match=r"user\.max_user_namespaces is 0"):
        containment.check_host(unprivileged, replace(FACTS, user_namespaces=False))
    with pytest.raises(Unsupported, match=r"Linux 5\.12 or later; this host runs 5\.10"):
        containment.check_host(unprivileged, replace(FACTS, kernel="5.10.0"))
    containment.check_host(decide(domain("<nsvirt:privileged/>")), replace(FACTS, kernel="4.19"))
    with pytest.raises(Unsupported, match="no seccomp filter for the ppc64le architecture"):
        containment.check_host(unprivileged, replace(FACTS, arch="ppc64le"))
    assert set(containment.FILTER_ARCHES) == set(seccomp.ABIS)


def test_a_rootfs_other_users_can_reach_is_warned_about(public_dir: Path) -> None:
    from nsvirt.driver.runtime.idmount import reachable_by_others

    open_dir = public_dir / "open"
    (open_dir / "rootfs").mkdir(parents=True)
    open_dir.chmod(0o755)
    assert reachable_by_others(str(open_dir / "rootfs"))
    open_dir.chmod(0o700)
    assert not reachable_by_others(str(open_dir / "rootfs"))
    dom = domxml.load(domain(devices=f"<filesystem><source dir='{open_dir / 'rootfs'}'/>"
                                     "<target dir='/'/></filesystem>").encode())  # fmt: skip
    assert containment.report(dom, FACTS, None, reachable_by_others)["warnings"] == []
    open_dir.chmod(0o755)
    (warning,) = containment.report(dom, FACTS, None, reachable_by_others)["warnings"]
    assert str(open_dir / "rootfs") in warning and "mode 0700" in warning
    privileged = domxml.load(domain("<nsvirt:privileged/>").encode())
    assert containment.report(privileged, FACTS, None, lambda _: True)["warnings"] == []


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory every host user can reach (pytest's own temp tree is private)."""
    top = Path(tempfile.mkdtemp(prefix="nsvirt-public-"))
    top.chmod(0o755)
    yield top
    shutil.rmtree(top)


def test_live_ids_show_in_the_live_xml_and_are_dropped_at_define() -> None:
    live = domain("<nsvirt:userns uid='1879048192' gid='1879048192' count='65536'/>")
    dom = domxml.load(live.encode())
    assert dom.live_idmap is not None and dom.live_idmap.uid == 1879048192
    assert '<nsvirt:userns uid="1879048192"' in domxml.format(dom)
    assert defaults.at_define(dom, "x86_64").live_idmap is None


def test_settings_round_trip() -> None:
    config = "<nsvirt:privileged/><nsvirt:no-new-privs/><nsvirt:seccomp allow='keyctl bpf'/>"
    once = domxml.format(domxml.load(domain(config).encode()))
    assert domxml.format(domxml.load(once.encode())) == once
    assert '<nsvirt:seccomp allow="bpf keyctl"/>' in once


# ---------------------------------------------------------------- the filter itself

FILTER_CHILD = """
import ctypes, errno, json, sys
from nsvirt.driver.runtime import seccomp, syscalls as sc
libc = ctypes.CDLL(None, use_errno=True)
program = seccomp.build(seccomp.host_arch(), json.loads(sys.argv[1]), True)
sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
seccomp.install(program)
def call(nr, *args):
    r = libc.syscall(nr, *args)
    return "ok" if r >= 0 else errno.errorcode[ctypes.get_errno()]
print(json.dumps({
    "keyctl": call(250, 0, 0), "open_by_handle_at": call(304, -1, 0, 0),
    "getpid": call(39), "x32": call(39 | 0x40000000),
    "remount_rw": call(165, None, b"/nonexistent", None, 32 | 4096, None),
    "remount_ro": call(165, None, b"/nonexistent", None, 32 | 4096 | 1, None),
}))
"""


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="numbers checked for x86_64")
def test_the_filter_denies_what_the_plan_names() -> None:
    deny = [["keyctl", "ENOSYS"], ["open_by_handle_at", "EPERM"]]
    out = subprocess.run([sys.executable, "-c", FILTER_CHILD, json.dumps(deny)],
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert json.loads(out.stdout) == {
        "keyctl": "ENOSYS", "open_by_handle_at": "EPERM", "getpid": "ok",
        "x32": "ENOSYS",  # the x32 ABI's numbers are refused as a whole
        "remount_rw": "EPERM",  # a remount without MS_RDONLY: the guard
        "remount_ro": "ENOENT",  # with MS_RDONLY it reaches the kernel (no such path)
    }  # fmt: skip


def test_an_unknown_architecture_gets_no_filter() -> None:
    with pytest.raises(OSError) as e:
        seccomp.build("sparc64", [], False)
    assert e.value.errno == errno.ENOSYS and "sparc64" in str(e.value)


# ---------------------------------------------------------------- the host id table


def test_ranges_are_distinct_stable_and_given_back(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(idranges, "SUBID_FILES", ())
    table = str(tmp_path / "t.json")
    me = {"pid": os.getpid(), "pid_start": _start(os.getpid()), "root": "/r"}
    a = idranges.allocate(table, name="a", uuid="00000000-0000-0000-0000-000000000001", **me)
    b = idranges.allocate(table, name="b", uuid="00000000-0000-0000-0000-000000000001", **me)
    assert a != b and a % 65536 == 0 and idranges.FIRST <= a < idranges.FIRST + 4094 * 65536
    idranges.release(table, a, os.getpid())
    again = idranges.allocate(table, name="a", uuid="00000000-0000-0000-0000-000000000001", **me)
    assert again == a  # the same range while nobody else took it
    assert {e["name"] for e in idranges.held(table)} == {"a", "b"}


def test_a_gone_owners_range_is_free_again(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(idranges, "SUBID_FILES", ())
    table = str(tmp_path / "t.json")
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = {"pid": gone.pid, "pid_start": 1, "root": "/r", "name": "x", "uuid": ""}
    first = idranges.allocate(table, **dead)
    assert idranges.held(table) == []  # its owner is gone
    mine = idranges.allocate(table, pid=os.getpid(), pid_start=_start(os.getpid()),
                             root="/r", name="y", uuid="")  # fmt: skip
    assert mine == first
    assert len(json.loads(Path(table).read_text())["allocated"]) == 1


def test_subordinate_id_ranges_are_never_given(tmp_path: Path, monkeypatch) -> None:
    subuid = tmp_path / "subuid"
    subuid.write_text(f"lxc:{idranges.FIRST}:{3 * 65536}\nbad line\n")
    monkeypatch.setattr(idranges, "SUBID_FILES", (str(subuid),))
    table = str(tmp_path / "t.json")
    got = idranges.allocate(table, pid=os.getpid(), pid_start=_start(os.getpid()), root="/r",
                            name="z", uuid="")  # fmt: skip
    assert got == idranges.FIRST + 3 * 65536


def test_a_corrupt_table_is_refused_not_reset(tmp_path: Path) -> None:
    table = tmp_path / "t.json"
    table.write_text('{"format": 1, "allocated": [')
    with pytest.raises(Exception, match="is unreadable"):
        idranges.allocate(str(table), pid=1, pid_start=1, root="/r", name="z", uuid="")
    assert table.read_text() == '{"format": 1, "allocated": ['


def _start(pid: int) -> int:
    from nsvirt.driver.runtime import procstat

    return procstat.start_time(pid)
