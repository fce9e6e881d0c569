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
