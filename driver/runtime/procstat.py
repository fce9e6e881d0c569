"""/proc/PID/stat: a process's state, parent and start time (what tells a live
process from a zombie, and the same process from a reused pid)."""

from __future__ import annotations

import errno
import os


class ProcStat:
    __slots__ = ("ppid", "start_time", "state")

    def __init__(self, state: str, ppid: int, start_time: int) -> None:
        self.state = state  # R, S, D, T (stopped), t, Z (zombie), ...
        self.ppid = ppid
        self.start_time = start_time  # clock ticks after boot


def read(pid: int) -> ProcStat | None:
    """The process's stat fields, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = text.rpartition(")")[2].split()
    return ProcStat(fields[0], int(fields[1]), int(fields[19]))


def start_time(pid: int) -> int:
    """The process's start time (field 22); pid + this identify a process."""
    stat = read(pid)
    if stat is None:
        raise ProcessLookupError(pid)
    return stat.start_time


def kill_and_wait(pid: int, start: int, timeout: float = 10.0) -> None:
    """SIGKILL the process `pid` started at `start` (a stopped one too: SIGKILL needs
    no cooperation) and wait, at most `timeout` seconds, until it is gone. A pid
    reused by another process is left alone."""
    import _signal as signal  # without its enums (~3 ms)

    from nsvirt.driver.runtime import sockets

    fd = open_pidfd(pid)
    if fd is None:
        return
    try:
        stat = read(pid)  # checked after pidfd_open: the fd now pins this very process
        if stat is None or stat.start_time != start or stat.state == "Z":
            return
        signal.pidfd_send_signal(fd, signal.SIGKILL)
        sockets.wait_readable([fd], timeout)
    except ProcessLookupError:
        pass
    finally:
        os.close(fd)


def open_pidfd(pid: int) -> int | None:
    """A pidfd for `pid`, or None if that process is gone (ESRCH; or EINVAL, when its
    pid is still referenced, by the peer credentials of a socket it used, say)."""
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    except OSError as e:
        if e.errno == errno.EINVAL:
            return None
        raise


def exited(pidfd: int) -> bool:
    """Has the process of `pidfd` exited? (A pidfd reads ready once it has.)"""
    from nsvirt.driver.runtime import sockets

    return bool(sockets.wait_readable([pidfd], 0))


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait, at most `timeout` seconds, for `pid` to exit; whether it has."""
    from nsvirt.driver.runtime import sockets

    fd = open_pidfd(pid)
    if fd is None:
        return True
    try:
        return bool(sockets.wait_readable([fd], timeout))
    finally:
        os.close(fd)


def children(pid: int) -> list[int]:
    """The children of `pid` (all its threads')."""
    found: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return found
