"""The container's figures that its /proc files show (procfs/views.py), read from its
cgroup (`dirs`: the run state's controller → directory on v1, "unified" → the leaf
on v2) by the /proc server, which runs on the host."""

from __future__ import annotations

import math

from nsvirt.driver.domxml.units import parse_cpuset
from nsvirt.driver.runtime.cgusage import cpu_split_ns, keyed, memory_usage, read_value, swap_usage

UNLIMITED_FROM = 1 << 62  # v1 writes "no limit" as the largest page-aligned long
# memory.stat's names on v2 → on v1 (the hierarchical totals: the container's sub-cgroups too)
_V1_STAT = {"anon": "total_rss", "file": "total_cache", "shmem": "total_shmem",
            "mapped": "total_mapped_file", "active_anon": "total_active_anon",
            "inactive_anon": "total_inactive_anon", "active_file": "total_active_file",
            "inactive_file": "total_inactive_file", "unevictable": "total_unevictable"}  # fmt: skip
_V2_STAT = {"mapped": "file_mapped"}
STAT_KEYS = (*_V1_STAT, "slab_reclaimable", "slab_unreclaimable")


class Sample:
    """Bytes (limit None: none), the visible CPUs, CPU time in ns."""

    __slots__ = ("cpus", "limit", "memory_stat", "swap_limit", "swap_usage", "system_ns",
                 "usage", "user_ns")  # fmt: skip

    def __init__(self, limit: int | None, usage: int, memory_stat: dict[str, int],
                 swap_limit: int | None, swap_used: int, cpus: list[int], user_ns: int,
                 system_ns: int) -> None:  # fmt: skip
        self.limit, self.usage, self.memory_stat = limit, usage, memory_stat
        self.swap_limit, self.swap_usage = swap_limit, swap_used
        self.cpus, self.user_ns, self.system_ns = cpus, user_ns, system_ns


def memory(dirs: dict[str, str]) -> tuple[int | None, dict[str, int], int | None]:
    """(the memory limit, memory.stat's figures under v2's names, the swap limit)."""
    if "unified" in dirs:
        d = dirs["unified"]
        limits = [_v2_limit(f"{d}/memory.max"), _v2_limit(f"{d}/memory.high")]
        limit = min((v for v in limits if v is not None), default=None)
        raw = keyed(f"{d}/memory.stat")
        st = {k: int(raw.get(_V2_STAT.get(k, k), 0)) for k in STAT_KEYS}
        try:
            swap = _v2_limit(f"{d}/memory.swap.max")
        except FileNotFoundError:
            swap = 0
        return limit, st, swap
    d = dirs["memory"]
    limit = _v1_limit(f"{d}/memory.limit_in_bytes")
    raw = keyed(f"{d}/memory.stat")
    st = {k: int(raw.get(v1, 0)) for k, v1 in _V1_STAT.items()}
    st["slab_reclaimable"] = st["slab_unreclaimable"] = 0  # v1's memory.stat has no slab
    try:
        both = _v1_limit(f"{d}/memory.memsw.limit_in_bytes")
    except FileNotFoundError:
        return limit, st, 0  # no swap accounting: the container's swap cannot be told
    swap = None if both is None or limit is None else max(0, both - limit)
    return limit, st, swap


def visible_cpus(dirs: dict[str, str], host_online: str) -> list[int]:
    """The CPUs the cpuset allows (of those online), and of them as many as the CPU
    quota buys, rounded up: the first ones."""
    cpus = parse_cpuset(host_online.strip())
    try:
        if "unified" in dirs:
            own = read_value(dirs["unified"] + "/cpuset.cpus.effective")
        else:
            own = read_value(dirs["cpuset"] + "/cpuset.effective_cpus")
        if own:
            cpus &= parse_cpuset(own)
    except (FileNotFoundError, KeyError):
        pass  # no cpuset controller here: every online CPU
    ordered = sorted(cpus)
    quota = _quota(dirs)
    if quota is not None:
        ordered = ordered[: max(1, math.ceil(quota))]
    return ordered


def take(dirs: dict[str, str], host_online: str | None = None) -> Sample:
    """The container's figures; its CPUs and CPU time only given the host's online
    CPUs (meminfo and sysinfo need none of them)."""
    limit, st, swap_limit = memory(dirs)
    cpus, user, system = [], 0, 0
    if host_online is not None:
        cpus = visible_cpus(dirs, host_online)
        user, system = cpu_split_ns(dirs)
    return Sample(limit, memory_usage(dirs), st, swap_limit, swap_usage(dirs), cpus, user,
                  system)  # fmt: skip


def tasks(dirs: dict[str, str]) -> int:
    """The tasks (processes and threads) in the container's cgroup: pids.current."""
    path = dirs["unified"] if "unified" in dirs else dirs["pids"]
    return int(read_value(f"{path}/pids.current"))


def _quota(dirs: dict[str, str]) -> float | None:
    """CPUs' worth of time the quota allows per period; None without a quota."""
    try:
        if "unified" in dirs:
            quota, period = read_value(dirs["unified"] + "/cpu.max").split()
            return None if quota == "max" else int(quota) / int(period)
        quota = int(read_value(dirs["cpu"] + "/cpu.cfs_quota_us"))
        period = int(read_value(dirs["cpu"] + "/cpu.cfs_period_us"))
    except (FileNotFoundError, KeyError):
        return None
    return None if quota < 0 else quota / period


def _v2_limit(path: str) -> int | None:
    text = read_value(path)
    return None if text == "max" else int(text)


def _v1_limit(path: str) -> int | None:
    value = int(read_value(path))
    return None if value >= UNLIMITED_FROM else value
