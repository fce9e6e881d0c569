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
    s = sample.take(dirs)
    m = views.memory_figures(host_kib, s)
    up = int(time.clock_gettime(time.CLOCK_BOOTTIME)) - boot_offset
    loads = [int(v * (1 << LOAD_SHIFT)) for v in os.getloadavg()]
    return SYSINFO.pack(max(0, up), *loads, m["MemTotal"] * 1024, m["MemFree"] * 1024,
                        m["Shmem"] * 1024, 0, m["SwapTotal"] * 1024, m["SwapFree"] * 1024,
                        min(_tasks(dirs), 0xFFFF), 0, 0, 0, 1)  # fmt: skip


def answerable(denied: set[str], has_fuse: bool) -> bool:
    """Can an answer be written into a caller's memory without waiting on the
    container? Not if it may back that memory with a page-fault handler of its own
    (userfaultfd allowed, or /dev/fuse): the write would wait for it."""
    return "userfaultfd" in denied and not has_fuse


def boot_offset(init_pid: int) -> int:
    """Host boot-time seconds at which the container's clock starts: its time
    namespace's offset (supervisor/child.py), or now where it has none."""
    try:
        with open(f"/proc/{init_pid}/timens_offsets") as f:
            for line in f:
                words = line.split()
                if words[:1] in (["boottime"], ["7"]):
                    return -int(words[1])
    except (OSError, ValueError, IndexError):
        pass
    return int(time.clock_gettime(time.CLOCK_BOOTTIME))


def serve(listener: int, dirs: dict[str, str], offset: int) -> None:
    """Answer one sysinfo(2) call waiting on the seccomp `listener`: with the
    container's figures, or by the kernel (the host's) if its cgroup cannot be read."""
    import errno

    from nsvirt.driver.runtime import unotify

    call = unotify.receive(listener)
    if call is None:
        return
    try:
        data = answer(dirs, offset)
    except (OSError, ValueError, KeyError):
        return unotify.answer(listener, call, kernel=True)
    if not unotify.still_waiting(listener, call):
        return  # its caller is gone: the pid may be another process's now
    if unotify.write_memory(call.pid, call.args[0], data):
        unotify.answer(listener, call, 0)
    else:
        unotify.answer(listener, call, error=errno.EFAULT)


def _tasks(dirs: dict[str, str]) -> int:
    path = dirs["unified"] if "unified" in dirs else dirs.get("pids", "")
    try:
        with open(f"{path}/pids.current") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0
