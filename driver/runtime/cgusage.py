"""A running container's memory and CPU use, read from the cgroup directories its
run state records (`cgroup`: controller → directory on v1, "unified" → the leaf on
v2). Light on purpose: `dominfo` reads these on the one-shot path, and the
backends (cgroups/v1.py, v2.py) answer through the same functions."""

from __future__ import annotations


def read_value(path: str) -> str:
    """A cgroup file's content, stripped (the backends read theirs through this too)."""
    with open(path) as f:
        return f.read().strip()


def keyed(path: str) -> dict[str, str]:
    """A flat-keyed cgroup file (`key value` lines) as a dict."""
    return dict(line.split(None, 1) for line in read_value(path).splitlines() if " " in line)


def memory_usage(dirs: dict[str, str]) -> int:
    """Bytes in use, page cache included (what v1 and v2 both count)."""
    if "unified" in dirs:
        return int(read_value(dirs["unified"] + "/memory.current"))
    return int(read_value(dirs["memory"] + "/memory.usage_in_bytes"))


def cpu_time_ns(dirs: dict[str, str]) -> int:
    if "unified" in dirs:
        return int(keyed(dirs["unified"] + "/cpu.stat")["usage_usec"]) * 1000
    return int(read_value(dirs["cpuacct"] + "/cpuacct.usage"))


def swap_usage(dirs: dict[str, str]) -> int:
    """Bytes of the container's memory in swap (0 where the kernel does not account
    swap: v1 without swapaccount)."""
    if "unified" in dirs:
        try:
            return int(read_value(dirs["unified"] + "/memory.swap.current"))
        except FileNotFoundError:
            return 0
    try:
        both = int(read_value(dirs["memory"] + "/memory.memsw.usage_in_bytes"))
    except FileNotFoundError:
        return 0
    return max(0, both - memory_usage(dirs))


def usage(dirs: dict[str, str]) -> tuple[int, int]:
    """(memory in use in KiB, CPU time in ns); 0s where the cgroup cannot say (it
    is going away)."""
    try:
        return memory_usage(dirs) // 1024, cpu_time_ns(dirs)
    except (OSError, ValueError, KeyError):
        return 0, 0


USER_HZ = 100  # the unit of v1's cpuacct.stat (clock ticks, USER_HZ on every arch)


def cpu_split_ns(dirs: dict[str, str]) -> tuple[int, int]:
    """(user, system) CPU time in ns."""
    if "unified" in dirs:
        stat = keyed(dirs["unified"] + "/cpu.stat")
        return int(stat["user_usec"]) * 1000, int(stat["system_usec"]) * 1000
    stat = keyed(dirs["cpuacct"] + "/cpuacct.stat")
    tick = 1_000_000_000 // USER_HZ
    return int(stat["user"]) * tick, int(stat["system"]) * tick


def cpu_time_per_cpu(dirs: dict[str, str]) -> list[int] | None:
    """CPU time in ns by host CPU (v1's cpuacct.usage_percpu); None on v2, which
    keeps no per-CPU account of a cgroup."""
    if "unified" in dirs:
        return None
    return [int(v) for v in read_value(dirs["cpuacct"] + "/cpuacct.usage_percpu").split()]


def block_stats(dirs: dict[str, str], device: str | None = None) -> dict[str, int]:
    """Requests and bytes read and written by the container: rd_req, rd_bytes,
    wr_req, wr_bytes (v1's throttle counters, v2's io.stat), of all devices or of
    `device` (MAJOR:MINOR) alone."""
    out = {"rd_req": 0, "rd_bytes": 0, "wr_req": 0, "wr_bytes": 0}
    if "unified" in dirs:
        try:
            text = read_value(dirs["unified"] + "/io.stat")
        except FileNotFoundError:
            return out
        names = {"rios": "rd_req", "rbytes": "rd_bytes", "wios": "wr_req", "wbytes": "wr_bytes"}
        for line in text.splitlines():
            if device is not None and not line.startswith(device + " "):
                continue
            for item in line.split()[1:]:
                key, _, value = item.partition("=")
                if key in names:
                    out[names[key]] += int(value)
        return out
    base = dirs["blkio"] + "/blkio.throttle."
    for file, req in (("io_serviced_recursive", "req"), ("io_service_bytes_recursive", "bytes")):
        for line in read_value(base + file).splitlines():
            words = line.split()
            if device is not None and words[0] != device:
                continue
            if len(words) == 3 and words[1] in ("Read", "Write"):
                out[("rd_" if words[1] == "Read" else "wr_") + req] += int(words[2])
    return out


def pressure(dirs: dict[str, str]) -> dict[str, dict[str, dict[str, float]]] | None:
    """The cgroup's pressure stall information (v2's cpu/memory/io.pressure):
    {"cpu": {"some": {"avg10": %, "avg60": %, "avg300": %, "total": µs}, "full": …}};
    None on v1, which has none per cgroup."""
    if "unified" not in dirs:
        return None
    out: dict[str, dict[str, dict[str, float]]] = {}
    for resource in ("cpu", "memory", "io"):
        try:
            text = read_value(f"{dirs['unified']}/{resource}.pressure")
        except OSError:  # a kernel without PSI, or booted with psi=0 (EOPNOTSUPP)
            continue
        lines = {}
        for line in text.splitlines():
            kind, *items = line.split()
            values = dict(item.split("=", 1) for item in items)
            lines[kind] = {k: (int(v) if k == "total" else float(v)) for k, v in values.items()}
        out[resource] = lines
    return out


def memory_events(dirs: dict[str, str]) -> dict[str, int]:
    """How often the memory limits bit: v2's memory.events (low, high, max, oom,
    oom_kill, oom_group_kill: hierarchical); on v1 oom_kill and, as max, the limit's
    failcnt, each counted at the level whose limit bit: the leaf's and the payload's
    (the cgroups a container makes below are its own, and so are their limits)."""
    if "unified" in dirs:
        return {k: int(v) for k, v in keyed(dirs["unified"] + "/memory.events").items()}
    out = {"max": 0, "oom_kill": 0}
    for level in (dirs["memory"], dirs["memory"] + "/payload"):
        out["max"] += int(read_value(level + "/memory.failcnt"))
        out["oom_kill"] += int(keyed(level + "/memory.oom_control").get("oom_kill", 0))
    return out
