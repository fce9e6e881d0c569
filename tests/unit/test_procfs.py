"""The container's /proc texts (driver/procfs/views.py) from cgroup figures
(procfs/sample.py), sysinfo's struct, and the FUSE messages (runtime/fuse.py):
pure, no root."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from nsvirt.driver.procfs import sample, sysinfo, views
from nsvirt.driver.procfs.sample import Sample
from nsvirt.driver.runtime import fuse, unotify

MIB = 1 << 20
HOST_MEMINFO = """MemTotal:       24684084 kB
MemFree:        23000000 kB
MemAvailable:   23500000 kB
Buffers:            1620 kB
Cached:           296000 kB
SwapCached:            0 kB
Active:           200000 kB
Inactive:         300000 kB
Shmem:              9000 kB
SwapTotal:       1048576 kB
SwapFree:        1048576 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
"""
HOST_CPUINFO = "".join(
    f"processor\t: {n}\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon\n\n" for n in range(4)
)
HOST_STAT = """cpu  100 0 50 9000 0 0 0 0 0 0
cpu0 25 0 12 2250 0 0 0 0 0 0
cpu1 25 0 13 2250 0 0 0 0 0 0
cpu2 25 0 12 2250 0 0 0 0 0 0
cpu3 25 0 13 2250 0 0 0 0 0 0
intr 12345 0 0
ctxt 999
btime 1700000000
processes 4321
procs_running 1
procs_blocked 0
"""


def a_sample(**over: object) -> Sample:
    stat = dict.fromkeys(sample.STAT_KEYS, 0)
    stat.update(file=20 * MIB, shmem=4 * MIB, anon=10 * MIB, active_file=12 * MIB,
                inactive_file=6 * MIB, slab_reclaimable=2 * MIB)  # fmt: skip
    values: dict = {"limit": 256 * MIB, "usage": 40 * MIB, "memory_stat": stat,
                    "swap_limit": 64 * MIB, "swap_used": 8 * MIB, "cpus": [1, 3],
                    "user_ns": 3_000_000_000, "system_ns": 1_000_000_000}  # fmt: skip
    values.update(over)
    return Sample(**values)


def fields(text: str) -> dict[str, int]:
    return views.kib_lines(text)


def test_meminfo_has_the_limit_and_the_cgroups_use_in_the_kernels_layout() -> None:
    text = views.meminfo(HOST_MEMINFO, a_sample())
    f = fields(text)
    assert f["MemTotal"] == 256 * 1024
    assert f["MemFree"] == 216 * 1024  # limit - usage
    assert f["MemAvailable"] == (216 + 12 + 6 + 2) * 1024  # free + reclaimable
    assert f["Cached"] == 20 * 1024 and f["Shmem"] == 4 * 1024 and f["Buffers"] == 0
    assert f["SwapTotal"] == 64 * 1024 and f["SwapFree"] == 56 * 1024
    assert "MemTotal:         262144 kB" in text.splitlines()  # the kernel's widths
    assert "HugePages_Total:       0" in text  # lines the container does not decide: as they are
    assert len(text.splitlines()) == len(HOST_MEMINFO.splitlines())


def test_meminfo_without_a_limit_or_above_the_host_shows_the_hosts_memory() -> None:
    assert fields(views.meminfo(HOST_MEMINFO, a_sample(limit=None)))["MemTotal"] == 24684084
    huge = a_sample(limit=1 << 50)
    assert fields(views.meminfo(HOST_MEMINFO, huge))["MemTotal"] == 24684084
    no_swap = a_sample(swap_limit=None)  # no swap limit: the host's swap
    assert fields(views.meminfo(HOST_MEMINFO, no_swap))["SwapTotal"] == 1048576
    over = a_sample(usage=300 * MIB)  # usage above the limit (a limit just lowered)
    assert fields(views.meminfo(HOST_MEMINFO, over))["MemFree"] == 0


def test_cpuinfo_keeps_the_visible_cpus_blocks() -> None:
    text = views.cpuinfo(HOST_CPUINFO, [1, 3])
    assert [line for line in text.splitlines() if line.startswith("processor")] == [
        "processor\t: 1", "processor\t: 3"]  # fmt: skip
    assert text.endswith("\n\n")
    assert views.cpuinfo("cpu number : 0\nfeatures : x\n", [0]).startswith("cpu number")


def test_stat_shares_the_containers_time_over_its_cpus() -> None:
    text = views.stat(HOST_STAT, [1, 3], 3_010_000_000, 1_000_000_000, 100.0, 5000)
    lines = text.splitlines()
    assert lines[0] == "cpu  301 0 100 19599 0 0 0 0 0 0"
    assert lines[1] == "cpu1 151 0 50 9799 0 0 0 0 0 0"  # the odd tick to the first
    assert lines[2] == "cpu3 150 0 50 9800 0 0 0 0 0 0"
    assert "btime 1700005000" in lines  # moved by the time namespace's offset
    assert "ctxt 999" in lines and "intr 12345 0 0" in lines
    assert not any(line.startswith(("cpu0", "cpu2")) for line in lines)


def test_uptime_online_loadavg_swaps() -> None:
    assert views.uptime([0, 1], 1_000_000_000, 0, 10.0) == "10.00 19.00\n"
    assert views.online([0, 1, 2, 5]) == "0-2,5\n"
    assert views.online([3]) == "3\n"
    assert views.loadavg([0.5, 0.25, 0.125], 1, 7) == "0.50 0.25 0.12 1/7 0\n"
    header = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
    assert views.swaps(header, 0, 0) == header
    assert views.swaps(header, 64 * MIB, 8 * MIB).splitlines()[1].split() == [
        "none", "virtual", "65536", "8192", "0"]  # fmt: skip


def test_sample_reads_v1_and_v2_cgroups(tmp_path: Path) -> None:
    v2 = tmp_path / "v2"
    v2.mkdir()
    for name, text in {
        "memory.max": str(256 * MIB), "memory.high": "max", "memory.swap.max": "max",
        "memory.current": str(40 * MIB), "memory.swap.current": "0",
        "memory.stat": "anon 100\nfile 200\nfile_mapped 30\nshmem 5\n",
        "cpu.stat": "usage_usec 5\nuser_usec 3\nsystem_usec 2\n",
        "cpu.max": "150000 100000", "cpuset.cpus.effective": "1-3",
    }.items():  # fmt: skip
        (v2 / name).write_text(text + "\n")
    s = sample.take({"unified": str(v2)}, "0-3\n")
    assert (s.limit, s.usage, s.swap_limit) == (256 * MIB, 40 * MIB, None)
    assert s.memory_stat["mapped"] == 30 and s.memory_stat["file"] == 200
    assert s.cpus == [1, 2]  # the cpuset's, as many as 1.5 CPUs of quota round up to
    assert (s.user_ns, s.system_ns) == (3000, 2000)
    (v2 / "memory.high").write_text(str(128 * MIB))
    assert sample.memory({"unified": str(v2)})[0] == 128 * MIB  # the lower of max and high

    d = {k: tmp_path / k for k in ("memory", "cpu", "cpuacct", "cpuset")}
    for p in d.values():
        p.mkdir()
    (d["memory"] / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (d["memory"] / "memory.usage_in_bytes").write_text(str(10 * MIB))
    (d["memory"] / "memory.stat").write_text("cache 1\ntotal_cache 200\ntotal_rss 100\n")
    (d["cpu"] / "cpu.cfs_quota_us").write_text("-1\n")
    (d["cpu"] / "cpu.cfs_period_us").write_text("100000\n")
    (d["cpuacct"] / "cpuacct.stat").write_text("user 30\nsystem 20\n")
    (d["cpuset"] / "cpuset.effective_cpus").write_text("0,2\n")
    s = sample.take({k: str(v) for k, v in d.items()}, "0-3\n")
    assert s.limit is None and s.usage == 10 * MIB
    assert s.swap_limit == 0  # no memsw accounting: no swap to show
    assert s.memory_stat["file"] == 200 and s.memory_stat["anon"] == 100
    assert s.cpus == [0, 2] and s.user_ns == 300_000_000


def test_sysinfo_struct_is_the_kernels_layout() -> None:
    assert sysinfo.SYSINFO.size == 112  # struct sysinfo on 64-bit Linux
    raw = sysinfo.SYSINFO.pack(5, 1, 2, 3, 256 * MIB, 200 * MIB, 0, 0, 0, 0, 7, 0, 0, 0, 1)
    uptime, *_ = struct.unpack_from("=q", raw)
    assert uptime == 5
    assert struct.unpack_from("=Q", raw, 32)[0] == 256 * MIB  # totalram after loads[3]
    assert struct.unpack_from("=H", raw, 80)[0] == 7  # procs
    assert struct.unpack_from("=I", raw, 104)[0] == 1  # mem_unit


def test_fuse_messages() -> None:
    request = fuse.Request(
        fuse.IN_HEADER.pack(56, fuse.LOOKUP, 9, 1, 0, 0, 42, 0, 0) + b"meminfo\0"
    )
    assert (request.opcode, request.unique, request.nodeid, request.pid) == (fuse.LOOKUP, 9, 1, 42)
    assert request.body == b"meminfo\0"
    assert fuse.INIT_OUT.size == 64 and fuse.ATTR.size == 88
    assert fuse.ENTRY_OUT.size + fuse.ATTR.size == 128  # fuse_entry_out
    assert fuse.STATFS_OUT.size == 80
    listing = fuse.dirents([(16, "a", fuse.DT_DIR), (32, "bb", fuse.DT_DIR)], 0, 4096)
    assert len(listing) == 2 * 32  # 24-byte header + name, padded to 8
    assert fuse.DIRENT.unpack_from(listing, 32) == (32, 2, 2, fuse.DT_DIR)
    assert fuse.dirents([(16, "a", fuse.DT_DIR), (32, "bb", fuse.DT_DIR)], 1, 4096) == listing[32:]
    assert fuse.dirents([(16, "a", fuse.DT_DIR)], 0, 10) == b""  # does not fit: none


MAPS = b"""00400000-00452000 r-xp 00000000 08:02 173521      /usr/bin/busybox
00651000-00652000 rw-p 00051000 08:02 173521      /usr/bin/busybox
01a2d000-01a4e000 rw-p 00000000 00:00 0           [heap]
7f0000000000-7f0000001000 rw-p 00000000 00:2a 12    /proc/meminfo
7f0000001000-7f0000003000 rw-s 00000000 00:01 4     /dev/zero (deleted)
7f0000003000-7f0000004000 rw-p 00000000 00:00 0
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0     [stack]
"""


def test_a_sysinfo_answer_goes_only_into_plain_private_memory() -> None:
    def kind(address: int, size: int = 112) -> str:
        r, w = os.pipe()
        os.write(w, MAPS)
        os.close(w)
        try:
            return unotify._mapping(r, address, size)
        finally:
            os.close(r)

    assert kind(0x7FFD00000100) == "anonymous"  # the stack
    assert kind(0x01A2D000) == "anonymous" and kind(0x7F0000003000) == "anonymous"
    assert kind(0x7F0000000010) == "file"  # a file's page (its own FUSE file, say): the kernel's
    assert kind(0x7F0000001000) == "file"  # shared
    assert kind(0x00651000) == "file"  # a binary's data: private, but file-backed
    assert kind(0x00400000) == "none"  # not writable: EFAULT
    assert kind(0x7F0000003FC0) == "none"  # runs past the end of the mapping
    assert kind(0x1000) == "none"  # not mapped
