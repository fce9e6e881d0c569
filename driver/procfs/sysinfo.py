"""sysinfo(2) as the container should see it: the figures of its /proc/meminfo (busybox
`free` and `uptime`, and many runtimes, ask sysinfo, not /proc). The supervisor
answers each call its filter hands over (runtime/unotify.py) with these bytes."""

from __future__ import annotations

import os
import struct
import time

from nsvirt.driver.procfs import sample, views

# struct sysinfo of a 64-bit ABI: uptime, loads[3], totalram, freeram, sharedram,
# bufferram, totalswap, freeswap, procs, pad, totalhigh, freehigh, mem_unit (112 bytes)
SYSINFO = struct.Struct("=q3Q6QHH4xQQI4x")
LOAD_SHIFT = 16  # SI_LOAD_SHIFT: loads are fixed point


def answer(dirs: dict[str, str], boot_offset: int) -> bytes:
    """The struct for a container with cgroup `dirs` whose clock started at host
    boot time `boot_offset`; the load averages are the host's (as the kernel's)."""
    with open("/proc/meminfo") as f:
        host_kib = views.kib_lines(f.read())
    with open("/sys/devices/system/cpu/online") as f:
        s = sample.take(dirs, f.read())
    m = views.memory_figures(host_kib, s)
    up = int(time.clock_gettime(time.CLOCK_BOOTTIME)) - boot_offset
    loads = [int(v * (1 << LOAD_SHIFT)) for v in os.getloadavg()]
    return SYSINFO.pack(max(0, up), *loads, m["MemTotal"] * 1024, m["MemFree"] * 1024,
                        m["Shmem"] * 1024, 0, m["SwapTotal"] * 1024, m["SwapFree"] * 1024,
                        min(_tasks(dirs), 0xFFFF), 0, 0, 0, 1)  # fmt: skip


def _tasks(dirs: dict[str, str]) -> int:
    path = dirs["unified"] if "unified" in dirs else dirs.get("pids", "")
    try:
        with open(f"{path}/pids.current") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0
