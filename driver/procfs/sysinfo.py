"""sysinfo(2) as the container should see it: the figures of its /proc/meminfo (busybox
`free` and `uptime`, and many runtimes, ask sysinfo, not /proc). The supervisor
answers each call its filter hands over (runtime/unotify.py) with these bytes."""

from __future__ import annotations

import os
import struct
import time

# struct sysinfo of a 64-bit ABI: uptime, loads[3], totalram, freeram, sharedram,
# bufferram, totalswap, freeswap, procs, pad, totalhigh, freehigh, mem_unit (112 bytes)
SYSINFO = struct.Struct("=q3Q6QHH4xQQI4x")
LOAD_SHIFT = 16  # SI_LOAD_SHIFT: loads are fixed point


def answer(dirs: dict[str, str], boot_offset: int) -> bytes:
    """The struct for a container with cgroup `dirs` whose clock started at host
    boot time `boot_offset`; the load averages are the host's (as the kernel's)."""
    from nsvirt.driver.procfs import sample, views  # on the first call: not every supervisor's

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


class Answerer:
    """Answers one container's sysinfo(2) calls (from init's listener and those of
    entered commands): its figures, kept FRESH s; at most RATE calls a second are
    answered so (the rest, and every call once `kernel_only` is set, get the kernel's
    answer: the host's figures, as the container's /proc then has them too)."""

    RATE = 200.0
    FRESH = 0.1

    def __init__(self, dirs: dict[str, str], offset: int) -> None:
        self.dirs, self.offset = dirs, offset
        self.kernel_only = False
        self.made = (-1.0, b"")
        self.tokens, self.filled = self.RATE, time.monotonic()

    def serve(self, listener: int) -> None:
        """Answer the one call waiting on `listener` (readable)."""
        import errno

        from nsvirt.driver.runtime import unotify

        call = unotify.receive(listener)
        if call is None:
            return
        now = time.monotonic()
        self.tokens = min(self.RATE, self.tokens + (now - self.filled) * self.RATE)
        self.filled = now
        if self.kernel_only or self.tokens < 1:
            return unotify.answer(listener, call, kernel=True)
        self.tokens -= 1
        try:
            if now - self.made[0] > self.FRESH:
                self.made = (now, answer(self.dirs, self.offset))
        except (OSError, ValueError, KeyError):
            return unotify.answer(listener, call, kernel=True)
        written = unotify.write_into(listener, call, call.args[0], self.made[1])
        if written is True:
            unotify.answer(listener, call, 0)
        elif written is False:
            unotify.answer(listener, call, error=errno.EFAULT)
        elif written == unotify.KERNEL:
            unotify.answer(listener, call, kernel=True)
        # None: the caller is gone (its pid may be another process's now)


def _tasks(dirs: dict[str, str]) -> int:
    from nsvirt.driver.procfs import sample

    try:
        return sample.tasks(dirs)
    except (OSError, ValueError, KeyError):
        return 0
