"""A container-true /proc (driver/procfs/): what free, nproc-like counts, top and
uptime read inside a container with limits, the /proc server's life, and a
container that outlives it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nsvirt.driver.procfs import service
from nsvirt.driver.runtime import procstat
from tests.integration.conftest import domain_xml, start

pytestmark = pytest.mark.v2

HOST_CPUS = len(os.sched_getaffinity(0))
PROC = "<nsvirt:proc view='host'/>"


def server_of(conn) -> int:
    """The pid of the root's /proc server."""
    return int(Path(conn.paths.root, "run/nsvirt/lxc/procfs/server").read_text().split()[0])


def until(what, timeout: float = 10.0):
    """Poll `what()` until it is true (a bound, not a delay); its last value."""
    deadline = time.monotonic() + timeout
    while not (value := what()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return value


def meminfo_kib(text: str, key: str) -> int:
    return int(re.search(rf"^{key}:\s+(\d+) kB$", text, re.M).group(1))


def inside(conn, name: str, command: str) -> str:
    """`command`'s output in a process entered into the domain (lxc-enter-namespace)."""
    proc = subprocess.run([sys.executable, "-m", "nsvirt.shell", "-c", conn.uri,
                           "lxc-enter-namespace", name, "--noseclabel", "--", "/bin/sh", "-c",
                           command], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def dominfo_json(conn, name: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "nsvirt.shell", "-c", conn.uri, "dominfo",
                           name, "--json"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_free_shows_the_memory_limit_and_the_host_is_unchanged(conn, rootfs, shell_of) -> None:
    host_before = Path("/proc/meminfo").read_text()
    dom = start(conn, domain_xml("mem256", rootfs, memory_mib=256))
    sh = shell_of(dom)
    free = sh.run("free -m").splitlines()
    mem = next(line.split() for line in free if line.startswith("Mem:"))
    assert mem[1] == "256", free  # busybox free asks sysinfo(2): the supervisor answers
    entered = inside(conn, "mem256", "free -m").splitlines()  # entered: answered as well
    assert next(line.split() for line in entered if line.startswith("Mem:"))[1] == "256"
    text = sh.run("cat /proc/meminfo")  # cat: sendfile, the page-cache path
    assert meminfo_kib(text, "MemTotal") == 256 * 1024
    assert 0 < meminfo_kib(text, "MemFree") < 256 * 1024
    assert meminfo_kib(text, "MemAvailable") <= 256 * 1024
    # a stat (ls -l) does not empty the file for a sendfile (busybox cat) after it
    assert "MemTotal" in sh.run("ls -l /proc/meminfo >/dev/null; cat /proc/meminfo")
    # a 64 MiB file in the container's tmpfs is its memory, and shows as used
    sh.run("dd if=/dev/zero of=/dev/shm/fill bs=1M count=64 2>/dev/null")
    filled = until(lambda: (t := sh.run("cat /proc/meminfo")) and meminfo_kib(t, "Shmem")
                   >= 64 * 1024 and t)  # a text is kept 0.1 s  # fmt: skip
    assert meminfo_kib(filled, "Shmem") >= 64 * 1024
    assert meminfo_kib(filled, "MemFree") <= meminfo_kib(text, "MemFree") - 60 * 1024
    host_after = Path("/proc/meminfo").read_text()
    assert meminfo_kib(host_after, "MemTotal") == meminfo_kib(host_before, "MemTotal")
    assert dominfo_json(conn, "mem256")["proc"] == {"view": "container", "served": True,
                                                    "error": None}  # fmt: skip


def test_a_process_an_entered_command_leaves_behind_is_answered_too(conn, rootfs) -> None:
    polite = ("-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait; done")  # not ash at a prompt:
    start(conn, domain_xml("bg", rootfs, memory_mib=192, args=polite))  # it quits on orphans
    inside(conn, "bg", "(sleep 1; free -m > /tmp/later-bg) >/dev/null 2>&1 &")
    later = until(lambda: inside(conn, "bg", "cat /tmp/later-bg 2>/dev/null || true").strip())
    assert next(line.split() for line in later.splitlines() if line.startswith("Mem:"))[1] == "192"


def test_a_cpuset_of_one_cpu_shows_one(conn, rootfs, shell_of) -> None:
    if HOST_CPUS < 2:
        pytest.skip("the host has one CPU: a cpuset of one would change nothing")
    cpu = max(os.sched_getaffinity(0))
    dom = start(conn, domain_xml("onecpu", rootfs, extra=f"<vcpu cpuset='{cpu}'>1</vcpu>"))
    sh = shell_of(dom)
    assert sh.run("grep -c ^processor /proc/cpuinfo").strip() == "1"
    assert sh.run("grep '^processor' /proc/cpuinfo").split()[-1] == str(cpu)
    stat = sh.run("cat /proc/stat")
    assert re.findall(r"^cpu\d+", stat, re.M) == [f"cpu{cpu}"]
    assert sh.run("cat /sys/devices/system/cpu/online").strip() == str(cpu)
    assert sh.run("nproc").strip() == "1"  # its affinity: the kernel's own answer
    host = Path("/proc/stat").read_text()
    assert len(re.findall(r"^cpu\d+", host, re.M)) == HOST_CPUS  # the host's: unchanged


def test_a_cpu_quota_of_one_cpu_shows_one(conn, rootfs, shell_of) -> None:
    if HOST_CPUS < 2:
        pytest.skip("the host has one CPU: a quota of one would change nothing")
    tune = "<cputune><period>100000</period><quota>100000</quota></cputune>"
    dom = start(conn, domain_xml("quota", rootfs, extra=tune))
    sh = shell_of(dom)
    assert sh.run("grep -c ^processor /proc/cpuinfo").strip() == "1"
    assert len(re.findall(r"^cpu\d+", sh.run("cat /proc/stat"), re.M)) == 1
    assert sh.run("cat /sys/devices/system/cpu/online").strip() == str(min(os.sched_getaffinity(0)))
    # one and a half CPUs' worth rounds up to two
    proc = subprocess.run([sys.executable, "-m", "nsvirt.shell", "-c", conn.uri, "schedinfo",
                           "quota", "--set", "vcpu_quota=150000"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # a text is kept 0.1 s: the next one has the new quota
    assert until(lambda: sh.run("grep -c ^processor /proc/cpuinfo").strip() == "2")


def test_uptime_is_the_containers_and_cpu_time_its_own(conn, rootfs, shell_of) -> None:
    host_up = float(Path("/proc/uptime").read_text().split()[0])
    dom = start(conn, domain_xml("up", rootfs))
    sh = shell_of(dom)
    up = float(sh.run("cat /proc/uptime").split()[0])
    assert 0 <= up < 30 < host_up, (up, host_up)
    assert "up 0 min" in sh.run("uptime")  # busybox: sysinfo(2), in the time namespace
    # CPU time in /proc/stat is the container's: a second of work shows as about one
    before = sh.run("head -1 /proc/stat").split()
    sh.run("timeout 1 sh -c 'while :; do :; done'")
    after = sh.run("head -1 /proc/stat").split()
    busy = (int(after[1]) + int(after[3])) - (int(before[1]) + int(before[3]))
    assert 50 <= busy <= 150, (before, after)  # ticks of 1/100 s


def test_killing_the_server_leaves_the_container_running_and_readable(
    conn, rootfs, shell_of
) -> None:
    dom = start(conn, domain_xml("outlive", rootfs, memory_mib=256))
    sh = shell_of(dom)
    assert meminfo_kib(sh.run("cat /proc/meminfo"), "MemTotal") == 256 * 1024
    server = server_of(conn)
    os.kill(server, signal.SIGKILL)
    assert until(lambda: (dom.run_state().procfs or "").startswith("failed"))
    assert dom.is_active()
    text = sh.run("cat /proc/meminfo; echo rc=$?")
    assert "rc=0" in text and meminfo_kib(text, "MemTotal") > 0  # the kernel's now
    assert sh.run("cat /proc/uptime").strip()
    assert "up 0 min" in sh.run("uptime")  # its time namespace needs no server
    free = sh.run("free -m")  # sysinfo agrees with the files now: the kernel's, the host's
    assert next(line.split() for line in free.splitlines() if line.startswith("Mem:"))[1] != "256"
    proc = dominfo_json(conn, "outlive")["proc"]
    assert proc["served"] is False and f"pid {server}" in proc["error"], proc
    # the next start has a new server
    other = start(conn, domain_xml("after", rootfs, memory_mib=128))
    assert other.run_state().procfs == "on"
    assert meminfo_kib(shell_of(other).run("cat /proc/meminfo"), "MemTotal") == 128 * 1024


def test_the_server_leaves_with_the_last_domain_and_a_reboot_keeps_it(conn, rootfs) -> None:
    polite = ("-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait; done")
    a = start(conn, domain_xml("a", rootfs, memory_mib=96, args=polite))
    b = start(conn, domain_xml("b", rootfs, memory_mib=160))
    server = server_of(conn)
    assert meminfo_kib(inside(conn, "a", "cat /proc/meminfo"), "MemTotal") == 96 * 1024
    assert meminfo_kib(inside(conn, "b", "cat /proc/meminfo"), "MemTotal") == 160 * 1024
    until(lambda: float(inside(conn, "a", "cat /proc/uptime").split()[0]) > 1)
    asked = time.monotonic()
    a.reboot(wait=True)
    assert a.run_state().procfs == "on"
    assert meminfo_kib(inside(conn, "a", "cat /proc/meminfo"), "MemTotal") == 96 * 1024
    up = float(inside(conn, "a", "cat /proc/uptime").split()[0])
    assert up <= time.monotonic() - asked + 0.5  # a new boot's clock: since the reboot
    a.destroy()
    assert procstat.read(server) is not None  # b still needs it
    point = service.mount_point(str(conn.paths.root / "run/nsvirt/lxc/procfs"))
    assert f" {point} " in Path("/proc/self/mountinfo").read_text()
    b.destroy()
    assert procstat.wait_gone(server, 10)
    mounts = Path("/proc/self/mountinfo").read_text()
    assert f" {point} " not in mounts and not Path(point).exists()
    shutil.rmtree(conn.paths.root / "run")  # a root goes at once: the mount was never in it


def test_a_domain_can_keep_the_kernels_proc(conn, rootfs, shell_of) -> None:
    host_total = meminfo_kib(Path("/proc/meminfo").read_text(), "MemTotal")
    dom = start(conn, domain_xml("hostview", rootfs, memory_mib=128, config=PROC))
    sh = shell_of(dom)
    assert meminfo_kib(sh.run("cat /proc/meminfo"), "MemTotal") == host_total
    assert dom.run_state().procfs == "off"
    assert not Path(conn.paths.root, "run/nsvirt/lxc/procfs/domains/hostview").exists()
    assert '<nsvirt:proc view="host"/>' in dom.xml_desc()
    assert dominfo_json(conn, "hostview")["proc"] == {"view": "host", "served": None,
                                                      "error": None}  # fmt: skip


def test_the_containers_files_are_read_only_and_its_own(conn, rootfs, shell_of) -> None:
    a = start(conn, domain_xml("ro", rootfs, memory_mib=96))
    start(conn, domain_xml("neighbour", rootfs, memory_mib=160))
    sh = shell_of(a)
    out = sh.run("echo x > /proc/meminfo; echo rc=$?")
    assert "rc=1" in out
    # its mount of the server's tree is its own file, nothing above it
    assert sh.run("grep -c fuse.nsvirt /proc/self/mountinfo").strip() == "7"
    assert "/neighbour/" not in sh.run("cat /proc/self/mountinfo")
