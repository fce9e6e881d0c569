"""cgroup limits are written as the XML says, and they bite."""

from __future__ import annotations

from pathlib import Path

import pytest

from nsvirt.driver.state.states import DomainState
from tests.integration.conftest import cg_value, domain_xml, is_v2, start

pytestmark = pytest.mark.v2


def test_limit_files_match_the_xml(conn, rootfs: Path) -> None:
    extra = (
        "<metadata><nsvirt:config xmlns:nsvirt='https://nsvirt.dev/xmlns/domain/1.0'>"
        "<nsvirt:pids max='64'/></nsvirt:config></metadata>"
        "<memtune><soft_limit unit='MiB'>48</soft_limit>"
        "<swap_hard_limit unit='MiB'>96</swap_hard_limit></memtune>"
        "<vcpu cpuset='0'>1</vcpu>"
        "<cputune><shares>512</shares><period>100000</period><quota>25000</quota></cputune>"
    )
    dom = start(conn, domain_xml("limits", rootfs, extra=extra))
    mib = 1 << 20
    assert cg_value(dom, ("memory", "memory.limit_in_bytes"), "memory.max") == str(64 * mib)
    assert cg_value(dom, ("memory", "memory.soft_limit_in_bytes"), "memory.high") == str(48 * mib)
    # v1's memsw is memory + swap; v2's swap.max is the swap part alone
    assert cg_value(dom, ("memory", "memory.memsw.limit_in_bytes"), "memory.swap.max") == str(
        (32 if is_v2(dom) else 96) * mib
    )
    assert cg_value(dom, ("cpu", "cpu.shares"), "cpu.weight") == "512"
    if is_v2(dom):
        assert cg_value(dom, ("", ""), "cpu.max") == "25000 100000"
    else:
        assert cg_value(dom, ("cpu", "cpu.cfs_period_us"), "") == "100000"
        assert cg_value(dom, ("cpu", "cpu.cfs_quota_us"), "") == "25000"
        assert cg_value(dom, ("devices", "devices.list"), "").splitlines()[0] == "c 1:3 rwm"
    assert cg_value(dom, ("cpuset", "cpuset.cpus"), "cpuset.cpus") == "0"
    assert cg_value(dom, ("pids", "pids.max"), "pids.max") == "64"
    # the processes live one level down (payload), which carries the same limits
    procs = cg_value(dom, ("memory", "payload/cgroup.procs"), "payload/cgroup.procs")
    assert str(dom.init_pid()) in procs.split()
    assert cg_value(dom, ("memory", "payload/memory.limit_in_bytes"), "payload/memory.max") == str(
        64 * mib
    )
    info = dom.info()
    assert info.max_memory == 65536 and 0 < info.memory < 65536


def test_init_sees_its_own_cgroup(conn, rootfs: Path, shell_of) -> None:
    dom = start(conn, domain_xml("leafy", rootfs))
    sh = shell_of(dom)
    payload = f"/nsvirt-{conn.tag}/leafy.nsvirt-lxc/payload"
    assert payload in Path(f"/proc/{dom.init_pid()}/cgroup").read_text()  # from the host
    # inside, its cgroup namespace is rooted there: no host path shows
    lines = sh.run("cat /proc/1/cgroup").split()
    assert lines and all(line.endswith(":/") for line in lines), lines
    limit = sh.run("cat /sys/fs/cgroup/memory.max 2>/dev/null"
                   " || cat /sys/fs/cgroup/memory/memory.limit_in_bytes").strip()  # fmt: skip
    assert limit == str(64 << 20)  # it reads its own limit


def test_memory_limit_oom_kills_init_and_domain_crashes(conn, rootfs: Path) -> None:
    # init itself allocates 64 MiB in a 16 MiB container (no swap allowed either)
    extra = "<memtune><swap_hard_limit unit='MiB'>16</swap_hard_limit></memtune>"
    args = ("-c", "read go; exec dd if=/dev/zero of=/dev/null bs=64M count=1")
    dom = start(conn, domain_xml("hog", rootfs, args=args, extra=extra, memory_mib=16))
    with dom.open_console() as console:
        console.write(b"go\n")
        assert dom.wait_for_shutoff(60)
    assert dom.state() == (DomainState.SHUTOFF, 3)  # shut off (crashed)
    log = conn.paths.log("hog").read_text()
    assert "killed by signal 9 (OOM kill)" in log


def test_memory_limit_bites_a_process_inside(conn, rootfs: Path, shell_of) -> None:
    extra = "<memtune><swap_hard_limit unit='MiB'>16</swap_hard_limit></memtune>"
    dom = start(conn, domain_xml("hog2", rootfs, extra=extra, memory_mib=16))
    out = shell_of(dom).run("dd if=/dev/zero of=/dev/null bs=64M count=1 2>&1; echo rc=$?")
    assert "Killed" in out or "rc=137" in out
    assert dom.is_active()  # init survived: only the hog died
    # v1 counts the kill where the limit bit (payload holds the same limit); v2 up the tree
    events = cg_value(dom, ("memory", "payload/memory.oom_control"), "memory.events")
    assert "oom_kill 1" in events


def test_cpu_quota_throttles(conn, rootfs: Path, shell_of) -> None:
    extra = "<cputune><period>10000</period><quota>1000</quota></cputune>"
    dom = start(conn, domain_xml("slow", rootfs, extra=extra))
    sh = shell_of(dom)
    before = dom.info().cpu_time  # the shell's own start counts too (slow in the v2 VM)
    sh.run("timeout 1 sh -c 'while :; do :; done'", timeout=60)
    stat = dict(
        line.split()[:2] for line in cg_value(dom, ("cpu", "cpu.stat"), "cpu.stat").splitlines()
    )
    assert int(stat["nr_throttled"]) > 0
    # 10 % of one CPU for about a second: well under half a second of CPU
    assert dom.info().cpu_time - before < 500_000_000


def test_pids_limit_refuses_forks(conn, rootfs: Path, shell_of) -> None:
    extra = (
        "<metadata><nsvirt:config xmlns:nsvirt='https://nsvirt.dev/xmlns/domain/1.0'>"
        "<nsvirt:pids max='5'/></nsvirt:config></metadata>"
    )
    dom = start(conn, domain_xml("forky", rootfs, extra=extra))
    sh = shell_of(dom)
    sh.stream.write(b"for i in 1 2 3 4 5 6 7 8; do sleep 1000 & done\n")
    sh.read_until("can't fork: Resource temporarily unavailable")
    assert cg_value(dom, ("pids", "pids.current"), "pids.current") == "5"
    # "max N": N forks were refused, counted where the limit bit (payload, which holds
    # the same limit) or, on kernels that count up the tree, also above it
    events = cg_value(dom, ("pids", "payload/pids.events"), "payload/pids.events")
    assert int(events.split()[1]) > 0


def _cap_mask(status: str, field: str) -> int:
    return int(status.split(f"{field}:")[1].split()[0], 16)


CAP_NUMBERS = {
    "sys_module": 16,
    "sys_time": 25,
    "mknod": 27,
    "audit_control": 30,
    "mac_admin": 33,
    "sys_boot": 22,
    "net_admin": 12,
    "chown": 0,
    "kill": 5,
}


def test_default_capabilities_are_dropped(conn, rootfs: Path, shell_of) -> None:
    dom = start(conn, domain_xml("caps", rootfs))
    status = shell_of(dom).run("cat /proc/self/status")
    for field in ("CapBnd", "CapEff"):
        mask = _cap_mask(status, field)
        for name in ("sys_module", "sys_time", "mknod", "audit_control", "mac_admin"):
            assert not mask & (1 << CAP_NUMBERS[name]), (field, name)
        assert mask & (1 << CAP_NUMBERS["sys_boot"])  # reboot(2) is namespaced
        assert mask & (1 << CAP_NUMBERS["chown"])


def test_deny_policy_drops_the_rest(conn, rootfs: Path, shell_of) -> None:
    extra = (
        "<features><capabilities policy='deny'><kill state='on'/>"
        "<chown state='on'/></capabilities></features>"
    )
    dom = start(conn, domain_xml("denied", rootfs, extra=extra))
    status = shell_of(dom).run("cat /proc/self/status")
    expected = (1 << CAP_NUMBERS["kill"]) | (1 << CAP_NUMBERS["chown"])
    assert _cap_mask(status, "CapBnd") == expected
    assert _cap_mask(status, "CapEff") == expected


def test_init_user_group_dir_and_env(conn, rootfs: Path, shell_of) -> None:
    extra = ""
    xml = domain_xml("who", rootfs)
    xml = xml.replace(
        "</init>",
        "</init><initenv name='GREETING'>hi there</initenv>"
        "<initdir>/home/tester</initdir><inituser>tester</inituser>"
        "<initgroup>tty</initgroup>",
    )
    dom = start(conn, xml + extra)
    sh = shell_of(dom)
    assert sh.run("id -u; id -g; pwd; echo $GREETING; echo $HOME").split("\n")[:5] == [
        "1000",
        "5",
        "/home/tester",
        "hi there",
        "/home/tester",
    ]
    assert _cap_mask(sh.run("cat /proc/self/status"), "CapEff") == 0


@pytest.mark.v2
def test_dommemstat_moves_when_memory_is_used_inside(conn, rootfs: Path, shell_of) -> None:
    import subprocess
    import sys

    dom = start(conn, domain_xml("memstat", rootfs, memory_mib=128))
    before = dom.memory_stats()
    assert before["actual"] == 128 * 1024 and before["swap_in"] >= 0 and before["rss"] > 0
    sh = shell_of(dom)
    sh.run("dd if=/dev/zero of=/dev/shm/fill bs=1M count=40 2>/dev/null")  # 40 MiB of shm
    after = dom.memory_stats()
    assert after["rss"] - before["rss"] > 35 * 1024, (before, after)
    run = subprocess.run([sys.executable, "-m", "nsvirt.shell", "-c", conn.uri, "dommemstat",
                          "memstat"], capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert [ln.split()[0] for ln in run.stdout.splitlines()[:3]] == ["actual", "swap_in", "rss"]
    assert run.stdout.endswith("\n\n")
    dom.destroy()
    stopped = subprocess.run([sys.executable, "-m", "nsvirt.shell", "-c", conn.uri,
                              "dommemstat", "memstat"], capture_output=True, text=True)  # fmt: skip
    assert stopped.returncode == 1 and "domain is not running" in stopped.stderr
