"""What a container's /proc files say, made from the host's and the container's
cgroup figures (procfs/sample.py reads them). Pure: text in, text out.

The files keep the kernel's layout, so every parser that reads the host's reads
these; only the figures the container's limits decide are replaced. CPUs keep their
host numbers (the ones sched_getaffinity and /sys/devices/system/cpu/cpuN give).
"""

from __future__ import annotations

from nsvirt.driver.domxml.units import format_cpuset

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from nsvirt.driver.procfs.sample import Sample

USER_HZ = 100  # /proc/stat's and /proc/uptime's tick on every architecture


def meminfo(host: str, s: Sample) -> str:
    """The host's /proc/meminfo with MemTotal the container's limit (or the host's
    memory, whichever is less) and the rest from the cgroup's use."""
    values = memory_figures(kib_lines(host), s)
    out = []
    for line in host.splitlines():
        key = line.split(":", 1)[0]
        if key in values and line.endswith(" kB"):
            line = f"{key + ':':<16}{values[key]:>8} kB"  # the kernel's widths
        out.append(line)
    return "\n".join(out) + "\n"


def memory_figures(host_kib: dict[str, int], s: Sample) -> dict[str, int]:
    """meminfo's figures (KiB) that the container's cgroup decides."""
    total = min(s.limit // 1024, host_kib.get("MemTotal", 0)) if s.limit else host_kib["MemTotal"]
    st = {k: v // 1024 for k, v in s.memory_stat.items()}
    free = max(0, total - s.usage // 1024)
    swap_total = min(s.swap_limit // 1024, host_kib.get("SwapTotal", 0)) if s.swap_limit \
        is not None else host_kib.get("SwapTotal", 0)  # fmt: skip
    reclaimable = st["active_file"] + st["inactive_file"] + st["slab_reclaimable"]
    return {
        "MemTotal": total,
        "MemFree": free,
        "MemAvailable": min(total, free + reclaimable),
        "Buffers": 0,
        "Cached": st["file"],
        "SwapCached": 0,
        "Active": st["active_anon"] + st["active_file"],
        "Inactive": st["inactive_anon"] + st["inactive_file"],
        "Active(anon)": st["active_anon"],
        "Inactive(anon)": st["inactive_anon"],
        "Active(file)": st["active_file"],
        "Inactive(file)": st["inactive_file"],
        "Unevictable": st["unevictable"],
        "SwapTotal": swap_total,
        "SwapFree": max(0, swap_total - s.swap_usage // 1024),
        "AnonPages": st["anon"],
        "Mapped": st["mapped"],
        "Shmem": st["shmem"],
        "Slab": st["slab_reclaimable"] + st["slab_unreclaimable"],
        "SReclaimable": st["slab_reclaimable"],
        "SUnreclaim": st["slab_unreclaimable"],
    }


def cpuinfo(host: str, cpus: Sequence[int]) -> str:
    """The host's /proc/cpuinfo, the blocks of the visible CPUs only."""
    wanted = set(cpus)
    blocks = [b for b in host.split("\n\n") if b.strip()]
    kept = [b for b in blocks if _processor(b) in wanted]
    if not any(_processor(b) is not None for b in blocks):
        return host  # a layout without per-processor blocks (s390x's): as it is
    return "".join(b.strip("\n") + "\n\n" for b in kept)


def stat(host: str, cpus: Sequence[int], user_ns: int, system_ns: int, uptime: float,
         boot_offset: int) -> str:  # fmt: skip
    """The host's /proc/stat with cpu lines for the visible CPUs only: the container's
    user and system time, shared out evenly (v2 keeps no per-CPU account), idle the
    rest of its uptime; btime moved by the container's time namespace's offset, as
    the kernel does inside it."""
    per_cpu = _cpu_ticks(cpus, user_ns, system_ns, uptime)
    total = [sum(column) for column in zip(*per_cpu.values(), strict=True)] or [0, 0, 0]
    out = [_cpu_line("cpu ", total)]
    out += [_cpu_line(f"cpu{cpu}", ticks) for cpu, ticks in per_cpu.items()]
    for line in host.splitlines():
        if line.startswith("cpu"):
            continue
        if line.startswith("btime "):
            line = f"btime {int(line.split()[1]) + boot_offset}"
        out.append(line)
    return "\n".join(out) + "\n"


def uptime(cpus: Sequence[int], user_ns: int, system_ns: int, up: float) -> str:
    """Seconds since the container started, and its CPUs' idle seconds in that time."""
    idle = sum(ticks[2] for ticks in _cpu_ticks(cpus, user_ns, system_ns, up).values())
    return f"{up:.2f} {idle / USER_HZ:.2f}\n"


def online(cpus: Sequence[int]) -> str:
    """/sys/devices/system/cpu/online: the visible CPUs as a kernel cpu list."""
    return format_cpuset(set(cpus)) + "\n"


def loadavg(averages: Sequence[float], running: int, tasks: int) -> str:
    """/proc/loadavg of the container's tasks (the last pid, which would be the
    host's, is 0)."""
    one, five, fifteen = averages
    return f"{one:.2f} {five:.2f} {fifteen:.2f} {running}/{tasks} 0\n"


def swaps(host: str, total: int, used: int) -> str:
    """/proc/swaps: the header, and the container's swap (its limit, capped to the
    host's) as one line if it may swap at all."""
    header = host.splitlines()[0] if host.strip() else "Filename\tType\tSize\tUsed\tPriority"
    if total <= 0:
        return header + "\n"
    return f"{header}\n{'none':<40}virtual\t\t{total // 1024}\t{used // 1024}\t0\n"


def kib_lines(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        words = rest.split()
        if len(words) == 2 and words[1] == "kB" and words[0].isdigit():
            out[key] = int(words[0])
    return out


def _processor(block: str) -> int | None:
    for line in block.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "processor" and value.strip().isdigit():
            return int(value)
    return None


def _cpu_ticks(cpus: Sequence[int], user_ns: int, system_ns: int,
               up: float) -> dict[int, list[int]]:  # fmt: skip
    """cpu → [user, system, idle] in ticks; the remainders go to the first CPUs."""
    n = max(1, len(cpus))
    user, system = user_ns * USER_HZ // 1_000_000_000, system_ns * USER_HZ // 1_000_000_000
    up_ticks = int(up * USER_HZ)
    out = {}
    for i, cpu in enumerate(cpus):
        u = user // n + (1 if i < user % n else 0)
        s = system // n + (1 if i < system % n else 0)
        out[cpu] = [u, s, max(0, up_ticks - u - s)]
    return out


def _cpu_line(label: str, ticks: Sequence[int]) -> str:
    user, system, idle = ticks
    return f"{label} {user} 0 {system} {idle} 0 0 0 0 0 0"
