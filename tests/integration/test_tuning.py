"""Day-2 tuning and statistics of running containers: setmem, setmaxmem, memtune,
schedinfo, blkiotune, numatune (live and persistent), cpu-stats, domblkstat,
domstats and PSI, domhostname, and virsh's errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nsvirt.driver.errors import OperationInvalid, OperationUnsupported
from nsvirt.driver.runtime import loopdev
from tests.integration.conftest import cg_value, domain_xml, is_v2, start

pytestmark = pytest.mark.v2
MIB = 1 << 20


def nsvirsh(conn, *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nsvirt.shell", "-c", conn.uri, *words],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def both_levels(dom, v1: tuple[str, str], v2: str) -> tuple[str, str]:
    """A cgroup file of the container's leaf and of its payload (where it runs)."""
    return (cg_value(dom, v1, v2), cg_value(dom, (v1[0], "payload/" + v1[1]), "payload/" + v2))


def host_has_swap() -> bool:
    return len(Path("/proc/swaps").read_text().splitlines()) > 1


def stored(conn, name: str) -> str:
    return conn.paths.config(name).read_text()


# ---------------------------------------------------------------- memory


def test_setmem_live_lowers_the_limit_and_it_bites(conn, rootfs: Path, shell_of) -> None:
    dom = start(conn, domain_xml("mem", rootfs, memory_mib=128))
    conn.define_xml(dom.xml_desc(inactive=True))  # persistent, to see --live leave it alone
    sh = shell_of(dom)
    hog = "dd if=/dev/zero of=/dev/null bs=64M count=1 2>&1; echo rc=$?"
    assert "rc=0" in sh.run(hog)  # 64 MiB fits under 128
    definition = stored(conn, "mem")
    proc = nsvirsh(conn, "setmem", "mem", "32M", "--live")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "\n", "")
    limit = both_levels(dom, ("memory", "memory.limit_in_bytes"), "memory.max")
    assert limit == (str(32 * MIB), str(32 * MIB))
    assert dom.info().max_memory == 128 * 1024
    assert dom.memory_stats()["actual"] == 32 * 1024
    assert "<currentMemory unit='KiB'>32768</currentMemory>" in dom.xml_desc()
    assert stored(conn, "mem") == definition  # --live only
    if host_has_swap():  # the hog's pages would go to swap instead
        pytest.skip("the host has swap: a hog over the limit swaps rather than dies")
    out = sh.run(hog)
    assert "Killed" in out or "rc=137" in out, out
    assert dom.is_active()  # only the hog died
    assert dom.stats()["nsvirt"]["memory_events"]["oom_kill"] >= 1


def test_setmem_config_changes_only_the_definition(conn, rootfs: Path) -> None:
    conn.define_xml(domain_xml("memcfg", rootfs, memory_mib=128))
    dom = conn.lookup_by_name("memcfg")
    dom.create()
    proc = nsvirsh(conn, "setmem", "memcfg", "48M", "--config")
    assert proc.returncode == 0, proc.stderr
    assert cg_value(dom, ("memory", "memory.limit_in_bytes"), "memory.max") == str(128 * MIB)
    assert "<currentMemory unit='KiB'>131072</currentMemory>" in dom.xml_desc()
    assert "<currentMemory unit='KiB'>49152</currentMemory>" in stored(conn, "memcfg")
    dom.destroy()
    dom.create()  # the next start has it: a container's balloon is its limit
    assert cg_value(dom, ("memory", "memory.limit_in_bytes"), "memory.max") == str(48 * MIB)


def test_setmaxmem_is_config_only_and_lowers_current_memory(conn, rootfs: Path) -> None:
    conn.define_xml(domain_xml("maxmem", rootfs, memory_mib=128))
    dom = conn.lookup_by_name("maxmem")
    dom.create()
    proc = nsvirsh(conn, "setmaxmem", "maxmem", "64M")  # --current: the running domain
    assert (proc.returncode, proc.stderr) == (
        1, "error: Unable to change MaxMemorySize\nerror: Requested operation is not valid: "
           "Cannot resize the max memory on an active domain\n")  # fmt: skip
    assert nsvirsh(conn, "setmaxmem", "maxmem", "64M", "--config").returncode == 0
    text = stored(conn, "maxmem")
    assert "<memory unit='KiB'>65536</memory>" in text
    assert "<currentMemory unit='KiB'>65536</currentMemory>" in text
    assert dom.info().max_memory == 128 * 1024  # the running one keeps its own


def test_memtune_round_trips_through_the_cgroup(conn, rootfs: Path) -> None:
    dom = start(conn, domain_xml("tune", rootfs, memory_mib=128))
    dom.set_memory_parameters({"hard_limit": 96 * 1024, "soft_limit": 64 * 1024,
                               "swap_hard_limit": 160 * 1024}, live=True, config=False)  # fmt: skip
    hard = both_levels(dom, ("memory", "memory.limit_in_bytes"), "memory.max")
    soft = both_levels(dom, ("memory", "memory.soft_limit_in_bytes"), "memory.high")
    swap = both_levels(dom, ("memory", "memory.memsw.limit_in_bytes"), "memory.swap.max")
    assert hard == (str(96 * MIB),) * 2 and soft == (str(64 * MIB),) * 2
    # v1's memsw is memory + swap; v2's swap.max the swap alone
    assert swap == (str((64 if is_v2(dom) else 160) * MIB),) * 2
    out = nsvirsh(conn, "memtune", "tune").stdout
    assert out == ("hard_limit     : 98304\nsoft_limit     : 65536\n"
                   "swap_hard_limit: 163840\n\n")  # fmt: skip
    assert "<hard_limit unit='KiB'>98304</hard_limit>" in dom.xml_desc()
    # raising the limit above memory + swap's: the order of the writes makes it work
    assert nsvirsh(conn, "memtune", "tune", "--hard-limit", "200M", "--swap-hard-limit",
                   "300M").returncode == 0  # fmt: skip
    assert cg_value(dom, ("memory", "memory.limit_in_bytes"), "memory.max") == str(200 * MIB)
    assert nsvirsh(conn, "memtune", "tune", "--soft-limit", "-1").returncode == 0
    assert "soft_limit     : unlimited\n" in nsvirsh(conn, "memtune", "tune").stdout
    assert cg_value(dom, ("memory", "memory.soft_limit_in_bytes"), "memory.high") in (
        "max", str(2**63 - 4096))  # fmt: skip


# ---------------------------------------------------------------- CPU, block I/O, NUMA


def test_schedinfo_round_trips_through_the_cgroup(conn, rootfs: Path) -> None:
    dom = start(conn, domain_xml("sched", rootfs))
    proc = nsvirsh(conn, "schedinfo", "sched", "--set", "cpu_shares=512", "vcpu_period=50000",
                   "vcpu_quota=25000")  # fmt: skip
    assert proc.stdout == ("Scheduler      : posix\ncpu_shares     : 512\n"
                           "vcpu_period    : 50000\nvcpu_quota     : 25000\n\n")  # fmt: skip
    assert both_levels(dom, ("cpu", "cpu.shares"), "cpu.weight") == ("512", "512")
    if is_v2(dom):
        assert both_levels(dom, ("cpu", ""), "cpu.max") == ("25000 50000",) * 2
    else:
        assert both_levels(dom, ("cpu", "cpu.cfs_quota_us"), "") == ("25000", "25000")
    # raising the quota: the leaf first (v1's payload may never have more than its parent)
    proc = nsvirsh(conn, "schedinfo", "sched", "--set", "vcpu_quota=40000")
    assert proc.returncode == 0, proc.stderr
    assert "40000" in cg_value(dom, ("cpu", "payload/cpu.cfs_quota_us"), "payload/cpu.max")
    # period and quota at once, the bandwidth down then up (v1 checks every write)
    for period, quota in ((1000000, 400000), (10000, 20000)):
        proc = nsvirsh(conn, "schedinfo", "sched", "--set", f"vcpu_period={period}",
                       f"vcpu_quota={quota}")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        if is_v2(dom):
            assert both_levels(dom, ("cpu", ""), "cpu.max") == (f"{quota} {period}",) * 2
        else:
            assert both_levels(dom, ("cpu", "cpu.cfs_period_us"), "") == (str(period),) * 2
            assert both_levels(dom, ("cpu", "cpu.cfs_quota_us"), "") == (str(quota),) * 2
    assert nsvirsh(conn, "schedinfo", "sched", "--set", "vcpu_quota=-1").returncode == 0
    assert nsvirsh(conn, "schedinfo", "sched").stdout.endswith("vcpu_quota     : -1\n\n")
    cputune = dom.definition().cputune
    assert (cputune.shares, cputune.period, cputune.quota) == (512, 10000, -1)


def test_a_period_without_a_quota_starts(conn, rootfs: Path) -> None:
    dom = start(
        conn, domain_xml("period", rootfs, extra="<cputune><period>50000</period></cputune>")
    )
    if is_v2(dom):
        assert cg_value(dom, ("", ""), "cpu.max") == "max 50000"
    else:
        assert cg_value(dom, ("cpu", "cpu.cfs_period_us"), "") == "50000"


def test_statistics_and_teardown_survive_a_deep_cgroup_tree(conn, rootfs: Path) -> None:
    """A privileged container may nest cgroups thousands deep below its payload."""
    dom = start(conn, domain_xml("deep", rootfs))
    dirs = dom.cgroup_dirs()
    level = Path(dirs.get("pids") or dirs["unified"]) / "payload"
    for _ in range(1100):  # deeper than Python's recursion limit
        level = level / "d"
        level.mkdir()
    stats = dom.stats()
    assert stats["state.state"] == 1 and stats["nsvirt"]["memory_events"] is not None
    dom.destroy()  # the fixture then checks that no cgroup is left


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[str]:
    """A loop device of this test's own, on a 4 MiB image."""
    img = tmp_path / "disk.img"
    img.write_bytes(os.urandom(4 * MIB))
    path, fd = loopdev.attach(str(img))
    yield path
    os.close(fd)  # autoclear: detached now


def test_blkiotune_throttles_round_trip_and_apply_at_start(conn, rootfs: Path, loop) -> None:
    rdev = os.stat(loop).st_rdev
    key = f"{os.major(rdev)}:{os.minor(rdev)}"
    tune = (f"<blkiotune><device><path>{loop}</path><read_bytes_sec>1048576</read_bytes_sec>"
            "</device></blkiotune>")  # fmt: skip
    dom = start(conn, domain_xml("blk", rootfs, extra=tune))

    def throttles() -> str:
        if is_v2(dom):
            return next((line for line in cg_value(dom, ("", ""), "io.max").splitlines()
                         if line.startswith(key + " ")), "")  # fmt: skip
        return cg_value(dom, ("blkio", "blkio.throttle.read_bps_device"), "")

    assert throttles() in (f"{key} 1048576", f"{key} rbps=1048576 wbps=max riops=max wiops=max")
    proc = nsvirsh(conn, "blkiotune", "blk", "--device-write-iops-sec", f"{loop},50")
    assert proc.returncode == 0, proc.stderr
    out = nsvirsh(conn, "blkiotune", "blk").stdout.splitlines()
    assert out[2:6] == ["device_read_iops_sec: ", f"device_write_iops_sec: {loop},50",
                        f"device_read_bytes_sec: {loop},1048576",
                        "device_write_bytes_sec: "]  # fmt: skip
    if is_v2(dom):
        assert "wiops=50" in throttles()
    else:
        assert cg_value(dom, ("blkio", "blkio.throttle.write_iops_device"), "") == f"{key} 50"
    for param in ("read-bytes", "write-iops"):  # 0 takes a device's setting away
        assert (
            nsvirsh(conn, "blkiotune", "blk", f"--device-{param}-sec", f"{loop},0").returncode == 0
        )
    assert throttles() == ""
    assert dom.definition().blkio_devices == ()


def test_blkiotune_weight_round_trips_where_the_host_has_one(conn, rootfs: Path) -> None:
    dom = start(conn, domain_xml("weight", rootfs))
    dirs = dom.cgroup_dirs()
    where = Path(dirs.get("blkio") or dirs["unified"])
    files = [f for f in ("blkio.bfq.weight", "blkio.weight", "io.bfq.weight", "io.weight")
             if (where / f).exists()]  # fmt: skip
    proc = nsvirsh(conn, "blkiotune", "weight", "--weight", "300")
    if not files:  # nothing to write: said, and nothing changed
        assert proc.returncode == 1 and "weight" in proc.stderr
        assert dom.definition().blkio_weight is None
        return
    assert proc.returncode == 0, proc.stderr
    assert (where / files[0]).read_text().split()[-1] == "300"
    assert (where / "payload" / files[0]).read_text().split()[-1] == "300"
    assert nsvirsh(conn, "blkiotune", "weight").stdout.startswith("weight         : 300\n")


def test_a_device_weight_needs_and_gets_bfq(conn, rootfs: Path, loop) -> None:
    queue = Path("/sys/block") / Path(loop).name / "queue" / "scheduler"
    if "bfq" not in queue.read_text():
        pytest.skip("needs the BFQ I/O scheduler (modprobe bfq)")
    queue.write_text("none")  # a loop device's default (this one may be reused, as set)
    dom = start(conn, domain_xml("weighted", rootfs))
    rdev = os.stat(loop).st_rdev
    key = f"{os.major(rdev)}:{os.minor(rdev)}"
    refused = nsvirsh(conn, "blkiotune", "weighted", "--device-weights", f"{loop},300")
    assert refused.returncode == 1 and "is not bfq" in refused.stderr, refused.stderr
    assert dom.definition().blkio_devices == ()  # refused: nothing changed
    queue.write_text("bfq")  # this test's own loop device
    proc = nsvirsh(conn, "blkiotune", "weighted", "--device-weights", f"{loop},300")
    assert proc.returncode == 0, proc.stderr
    file = ("blkio", "blkio.bfq.weight_device"), "io.bfq.weight"
    assert f"{key} 300" in cg_value(dom, *file).splitlines()
    assert nsvirsh(conn, "blkiotune", "weighted").stdout.splitlines()[1] == (
        f"device_weight  : {loop},300")  # fmt: skip
    assert nsvirsh(conn, "blkiotune", "weighted", "--device-weights", f"{loop},0").returncode == 0
    assert f"{key} 300" not in cg_value(dom, *file)
    dom.destroy()
    queue.write_text("none")


def test_numatune_sets_the_memory_nodes(conn, rootfs: Path) -> None:
    dom = start(conn, domain_xml("numa", rootfs))
    assert nsvirsh(conn, "numatune", "numa", "--nodeset", "0").returncode == 0
    assert both_levels(dom, ("cpuset", "cpuset.mems"), "cpuset.mems") == ("0", "0")
    assert nsvirsh(conn, "numatune", "numa").stdout == ("numa_mode      : strict\n"
                                                        "numa_nodeset   : 0\n\n")  # fmt: skip
    proc = nsvirsh(conn, "numatune", "numa", "--mode", "interleave")
    assert proc.stderr == ("error: Unable to change numa parameters\nerror: Requested "
                           "operation is not valid: can't change numatune mode for running "
                           "domain\n")  # fmt: skip


# ---------------------------------------------------------------- statistics


def test_cpu_stats_and_domstats_move_under_load(conn, rootfs: Path, shell_of) -> None:
    dom = start(conn, domain_xml("busy", rootfs))
    sh = shell_of(dom)
    before = dom.cpu_stats()[0]
    sh.run("timeout 1 sh -c 'while :; do :; done'", timeout=60)
    after = dom.cpu_stats()[0]
    assert after["cpu_time"] - before["cpu_time"] > 300_000_000, (before, after)
    assert after["user_time"] + after["system_time"] > before["user_time"] + before["system_time"]
    out = nsvirsh(conn, "cpu-stats", "busy", "--total").stdout.splitlines()
    assert out[0] == "Total:" and out[1].startswith("\tcpu_time    ") and out[-1] == ""
    if is_v2(dom):  # no per-CPU account: the totals alone, and a clear error when asked
        with pytest.raises(OperationUnsupported):
            dom.cpu_stats(0, 1)
        assert nsvirsh(conn, "cpu-stats", "busy").stdout.startswith("Total:\n")
    else:
        per_cpu = sum(s["cpu_time"] for s in dom.cpu_stats(0, os.cpu_count() or 1))
        assert abs(per_cpu - dom.cpu_stats()[0]["cpu_time"]) < 100_000_000
        assert nsvirsh(conn, "cpu-stats", "busy").stdout.startswith("CPU0:\n\tcpu_time    ")
    stats = json.loads(nsvirsh(conn, "domstats", "--json").stdout)
    (busy,) = stats
    assert (busy["name"], busy["state.state"]) == ("busy", 1)
    assert busy["cpu.time"] >= after["cpu_time"] and busy["balloon.maximum"] == 65536
    pressure = busy["nsvirt"]["pressure"]
    if is_v2(dom):  # PSI of this container alone
        assert set(pressure) == {"cpu", "memory", "io"}
        assert pressure["cpu"]["some"]["total"] > 0 and "avg10" in pressure["cpu"]["some"]
    else:
        assert pressure is None  # v1 has none per cgroup
    text = nsvirsh(conn, "domstats", "busy").stdout
    assert text.startswith("Domain: 'busy'\n  state.state=1\n  state.reason=1\n  cpu.time=")
    assert "nsvirt" not in text  # nsvirt's own figures are in --json only


def test_domblkstat_counts_a_disks_reads(conn, rootfs: Path, shell_of, loop) -> None:
    disk = f"<disk type='block' device='disk'><source dev='{loop}'/><target dev='vdb'/></disk>"
    dom = start(conn, domain_xml("blkstat", rootfs, devices=disk))
    before = dom.block_stats()
    shell_of(dom).run("dd if=/dev/vdb of=/dev/null bs=64k 2>/dev/null; echo done")
    after = dom.block_stats()
    assert after["rd_bytes"] - before["rd_bytes"] >= 4 * MIB, (before, after)
    assert after["rd_req"] > before["rd_req"]
    assert dom.block_stats("vdb")["rd_bytes"] >= 4 * MIB  # the disk's own, by target
    out = nsvirsh(conn, "domblkstat", "blkstat").stdout.splitlines()
    assert [line.split()[0] for line in out[:4]] == ["rd_req", "rd_bytes", "wr_req", "wr_bytes"]
    assert all(line.startswith(" ") for line in out[:4])  # virsh's empty device column
    proc = nsvirsh(conn, "domblkstat", "blkstat", "vdz")
    assert proc.stderr == ("error: Failed to get block stats for domain 'blkstat' device 'vdz'\n"
                           "error: invalid argument: invalid path: vdz\n")  # fmt: skip


def test_domhostname_is_the_containers_own(conn, rootfs: Path, shell_of) -> None:
    dom = start(conn, domain_xml("named", rootfs))
    sh = shell_of(dom)
    assert nsvirsh(conn, "domhostname", "named").stdout == sh.run("hostname").strip() + "\n\n"
    sh.run("hostname renamed-inside")
    assert dom.hostname() == "renamed-inside"
    sh.run("hostname \"$(printf 'a\\033[2Jb')\"")  # the container chooses any bytes
    assert nsvirsh(conn, "domhostname", "named").stdout == "a\\x1b[2Jb\n\n"
    assert os.uname().nodename != "renamed-inside"  # the host's is its own
    dom.destroy()
    with pytest.raises(OperationInvalid):
        dom.hostname()


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(("words", "stderr"), [
    (["setmem", "bad", "abc"], "error: Scaled numeric value 'abc' for <size> option is "
                               "malformed or out of range\n"),
    (["setmem", "bad", "1T"], "error: invalid argument: Cannot set memory higher than max "
                              "memory\n"),
    (["setmem", "bad", "0"], "error: memory in virDomainSetMemoryFlags must not be zero\n"),
    (["setmem", "ghost", "1M"], "error: failed to get domain 'ghost'\n"),
    (["memtune", "bad", "--hard-limit", "12Q"], "error: Unable to parse integer parameter "
                                                "hard-limit\nerror: invalid argument: unknown "
                                                "suffix 'Q'\n"),
    (["memtune", "bad", "--min-guarantee", "1M"], "error: Unable to change memory parameters\n"
                                                  "error: argument unsupported: parameter "
                                                  "'min_guarantee' not supported\n"),
    (["memtune", "bad", "--hard-limit", "64M", "--swap-hard-limit", "32M"],
     "error: Unable to change memory parameters\nerror: invalid argument: memory hard_limit "
     "tunable value must be lower than or equal to swap_hard_limit\n"),
    (["schedinfo", "bad", "--set", "cpu_shares=1"], "error: invalid argument: shares '1' must "
                                                    "be in range [{low}, {high}]\n"),
    (["schedinfo", "bad", "--set", "emulator_period=1000"], "error: invalid scheduler option: "
                                                            "emulator_period\n"),
    (["schedinfo", "bad", "--set", "vcpu_quota=x"], "error: invalid argument: Invalid value "
                                                    "for field 'vcpu_quota': expected long "
                                                    "long\n"),
    (["schedinfo", "bad", "--set", "vcpu_period=5"], "error: invalid argument: cfs_period '5' "
                                                     "must be in range (1000, 1000000)\n"),
    (["blkiotune", "bad", "--weight", "0"], "error: Invalid value of 0 for I/O weight\n"),
    (["blkiotune", "bad", "--device-read-bytes-sec", "/dev/x"], "error: Unable to change blkio "
                                                                "parameters\nerror: invalid "
                                                                "argument: unable to parse blkio "
                                                                "device 'device_read_bytes_sec' "
                                                                "'/dev/x'\n"),
    (["numatune", "bad", "--mode", "odd"], "error: Invalid mode: odd\n"),
    (["memtune", "bad", "--hard-limit", "0"], "error: Unable to change memory parameters\n"
                                              "error: invalid argument: hard_limit must be at "
                                              "least 1 KiB, or -1 for unlimited\n"),
    (["memtune", "bad", "--swap-hard-limit", "32M"], "error: Unable to change memory "
                                                     "parameters\nerror: invalid argument: "
                                                     "memory hard_limit tunable value must be "
                                                     "lower than or equal to swap_hard_limit\n"),
    # the schema's bound, checked for both before either is written
    (["blkiotune", "bad", "--weight", "50", "--live", "--config"],
     "error: Unable to change blkio parameters\nerror: bad:7: /domain/blkiotune/weight: value "
     "has to be greater or equal than 100\n"),
    (["memtune", "bad", "--live", "--current"], "error: Options --current and --live are "
                                                "mutually exclusive\n"),
])  # fmt: skip
def test_bad_input_is_refused_as_virsh_does_and_changes_nothing(
    conn, rootfs: Path, words: list[str], stderr: str
) -> None:
    conn.define_xml(domain_xml("bad", rootfs))
    dom = conn.lookup_by_name("bad")
    dom.create()
    files = [("memory", "memory.limit_in_bytes", "memory.max"),
             ("cpu", "cpu.shares", "cpu.weight")]  # fmt: skip

    def now() -> tuple[list[str], str, str]:
        values = [cg_value(dom, (c, v1), v2) for c, v1, v2 in files]
        return values, dom.xml_desc(), stored(conn, "bad")

    before = now()
    low, high = (1, 10000) if is_v2(dom) else (2, 262144)
    if "shares '1'" in stderr and is_v2(dom):  # 1 is within v2's range: try 0
        words, stderr = [*words[:-1], "cpu_shares=0"], stderr.replace("'1'", "'0'")
    proc = nsvirsh(conn, *words)
    assert (proc.stdout, proc.stderr, proc.returncode) == (  # and virsh's closing empty line
        ("Scheduler      : posix\n" if words[0] == "schedinfo" else "") + "\n",
        stderr.format(low=low, high=high), 1)  # fmt: skip
    assert now() == before


def test_live_change_of_a_shut_off_domain_is_refused(conn, rootfs: Path) -> None:
    conn.define_xml(domain_xml("off", rootfs))
    definition = stored(conn, "off")
    for words in (["setmem", "off", "32M"], ["memtune", "off", "--hard-limit", "32M", "--live"],
                  ["schedinfo", "off", "--live", "--set", "cpu_shares=512"],
                  ["blkiotune", "off", "--weight", "500", "--live"]):  # fmt: skip
        proc = nsvirsh(conn, *words)
        assert proc.returncode == 1 and proc.stderr.endswith(
            "error: Requested operation is not valid: domain is not running\n"
        ), proc.stderr
    assert stored(conn, "off") == definition
    # without --live, a shut-off domain's definition is what changes (--current)
    assert nsvirsh(conn, "memtune", "off", "--hard-limit", "32M").returncode == 0
    assert "<hard_limit unit='KiB'>32768</hard_limit>" in stored(conn, "off")
