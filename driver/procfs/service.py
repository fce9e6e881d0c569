"""The supervisor's side of the /proc server (procfs/server.py): start it for the
first container of a root that needs it, register a container, hand init the files
to mount over the kernel's, and put the kernel's back when the server is gone.

    <run>/procfs/            mode 0700: no host user reaches the mount
        lock                 flock: a start registers, a leaving server checks, alone
        starting             "PID START": a server forked, getting ready
        server               "PID START": the server serving now (it writes this)
        server.log
    /run/nsvirt/procfs/DEV-INO   the FUSE mount (NAME/{meminfo,cpuinfo,...}): outside
                                 the root, whose removal it must never hold up
        domains/NAME         a registration: the container's cgroup, boot offset, ids

Light: the supervisor imports it (the server's code loads in the server alone).
"""

from __future__ import annotations

import errno
import fcntl
import os
import time

from nsvirt.driver.runtime import procstat
from nsvirt.driver.state import files, jsonlite

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# the server's file → where the container sees it
FILES = (("meminfo", "/proc/meminfo"), ("cpuinfo", "/proc/cpuinfo"), ("stat", "/proc/stat"),
         ("uptime", "/proc/uptime"), ("loadavg", "/proc/loadavg"), ("swaps", "/proc/swaps"),
         ("online", "/sys/devices/system/cpu/online"))  # fmt: skip
FILE_NAMES = tuple(f for f, _ in FILES)
START_TIMEOUT = 5.0  # for a new server to mount and record itself
LOCK_TIMEOUT = 5.0
LOG_LIMIT = 1 << 20  # the server's log is started afresh above this
UMOUNT_NOFOLLOW = 8


class ProcfsError(OSError):
    """The /proc server cannot serve this container (its /proc stays the kernel's)."""


def warm(base: str) -> None:
    """Make sure a server serves `base` or is getting ready (forked now if none is):
    called early in a start, so that attach() seldom waits for one."""
    _dirs(base)
    fd = lock(base)
    try:
        if serving(base) is None and starting(base) is None:
            _fork_server(base)
    finally:
        os.close(fd)


def attach(base: str, name: str, entry: dict[str, Any]) -> tuple[int, list[int]]:
    """Register `name` (its `entry`: cgroup dirs, boot_offset, uid, gid, owner) with
    the server of `base`, starting one if none serves or is getting ready, waiting
    for it at most START_TIMEOUT s; (the server's pid, a detached mount of each of
    FILES for init to move into place)."""
    from nsvirt.driver.runtime import idmount

    _dirs(base)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        fd = lock(base)
        try:  # under the lock, a serving server cannot leave before it sees us
            pid = serving(base)
            if pid is not None:
                files.write_atomic(f"{base}/domains/{name}", jsonlite.dumps(entry).encode(),
                                   durable=False)  # fmt: skip
                break
            if starting(base) is None:
                _fork_server(base)
        finally:
            os.close(fd)
        if time.monotonic() >= deadline:
            raise ProcfsError(errno.ETIMEDOUT, f"no /proc server within {START_TIMEOUT:g} s "
                              f"({base}/server.log may say why)")  # fmt: skip
        time.sleep(0.001)
    fds: list[int] = []
    try:
        for file in FILE_NAMES:
            fds.append(idmount.detached_copy(f"{mount_point(base)}/{name}/{file}",
                                             f"cannot open the /proc server's {file}",
                                             recursive=False))  # fmt: skip
    except BaseException:
        for fd in fds:
            os.close(fd)
        unregister(base, name)
        raise
    return pid, fds


def unregister(base: str, name: str) -> None:
    try:
        os.unlink(f"{base}/domains/{name}")
    except FileNotFoundError:
        pass


def serving(base: str) -> int | None:
    """The pid of the server serving `base` now: alive, the same process, running."""
    return _alive(f"{base}/server")


def starting(base: str) -> int | None:
    """The pid of a server forked for `base` that is getting ready."""
    return _alive(f"{base}/starting")


def record(base: str, which: str, pid: int) -> None:
    """Write the record `which` ("server", "starting") of process `pid`."""
    files.write_atomic(f"{base}/{which}", f"{pid} {procstat.start_time(pid)}\n".encode(),
                       durable=False)  # fmt: skip


def wait_gone(base: str, timeout: float = 10.0) -> bool:
    """Wait (at most `timeout` s) for the server of `base` to leave, its mount with it:
    for whoever removes a connection root right after its last domain stopped."""
    pid = serving(base) or starting(base)
    return pid is None or procstat.wait_gone(pid, timeout)


def forget_server(base: str, pid: int) -> None:
    """Remove the server record if it is `pid`'s (the server does, leaving)."""
    if _alive(f"{base}/server") == pid:
        files.remove(f"{base}/server", durable=False)


def detach(init_pid: int) -> None:
    """Put the kernel's files back in the container of `init_pid`: unmount ours there
    (a dead server's answer nothing), in a bounded helper inside its namespaces."""
    from nsvirt.driver.runtime import enter
    from nsvirt.driver.runtime import syscalls as sc

    def work(_root: int) -> None:
        for _, dest in FILES:
            try:
                sc.umount2(dest, sc.MNT_DETACH | UMOUNT_NOFOLLOW)
            except OSError as e:
                if e.errno not in (errno.EINVAL, errno.ENOENT):  # not ours (any more)
                    raise

    enter.inside(init_pid, work)


def lock(base: str, timeout: float = LOCK_TIMEOUT) -> int:
    """The service's flock (an fd: closing it lets go), waited for at most `timeout` s."""
    path = f"{base}/lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise ProcfsError(errno.ETIMEDOUT, f"the /proc server's lock {path} is held") \
                    from None  # fmt: skip
            time.sleep(0.002)


def _alive(path: str) -> int | None:
    try:
        with open(path) as f:
            pid, start = (int(w) for w in f.read().split())
    except (OSError, ValueError):
        return None
    s = procstat.read(pid)
    if s is None or s.start_time != start or s.state in ("T", "t", "Z"):
        return None  # a stopped server would hang every lookup: as good as gone
    return pid


MOUNTS = "/run/nsvirt/procfs"  # host-wide, 0700: where every root's server mounts


def mount_point(base: str) -> str:
    """Where the server of `base` mounts: named by the directory's device and inode
    (two roots never share it; a root moved elsewhere keeps it)."""
    st = os.stat(base)
    return f"{MOUNTS}/{st.st_dev:x}-{st.st_ino:x}"


def _dirs(base: str) -> None:
    os.makedirs(base, mode=0o700, exist_ok=True)
    os.makedirs(MOUNTS, mode=0o700, exist_ok=True)
    for d in (f"{base}/domains", mount_point(base)):
        try:
            os.makedirs(d, mode=0o700, exist_ok=True)
        except FileExistsError:  # a dead server's mount (ENOTCONN): _fork_server clears it
            pass


def clear_dead(base: str) -> None:
    """Unmount a dead server's mount, unless a new server serves or is starting."""
    from nsvirt.driver.runtime import syscalls as sc

    fd = lock(base)
    try:
        if serving(base) is None and starting(base) is None:
            try:
                sc.umount2(mount_point(base), sc.MNT_DETACH)
            except OSError:
                pass  # not mounted (another supervisor was first)
    finally:
        os.close(fd)


def _fork_server(base: str) -> None:
    """Fork a server (under the lock): detached, a session of its own, none of our
    fds; recorded as starting until it records itself as serving."""
    from nsvirt.driver.runtime import syscalls as sc

    try:
        sc.umount2(mount_point(base), sc.MNT_DETACH)  # a dead server's mount
    except OSError:
        pass
    log = f"{base}/server.log"
    try:
        if os.stat(log).st_size > LOG_LIMIT:
            os.replace(log, log + ".1")
    except FileNotFoundError:
        pass
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.setsid()
            grandchild = os.fork()
            if grandchild:
                os.write(w, f"{grandchild}\n".encode())
                os._exit(0)
            _become_server(base, log)
        except BaseException:
            pass
        os._exit(1)
    os.close(w)
    try:
        os.waitpid(child, 0)
        said = os.read(r, 64).decode().strip()
    finally:
        os.close(r)
    if said.isdigit():
        record(base, "starting", int(said))


def _become_server(base: str, log: str) -> None:
    """In the detached grandchild: stdio to the log, nothing else of ours, no signal
    handling of the supervisor's, then serve. A fork, not a fresh interpreter: the
    supervisor's modules are loaded already, so it serves ~5 ms after the fork where
    an interpreter took ~30 (a cold start waited for it). Its command line is its
    parent's; its name (ps -e, top) is nsvirt-procfs."""
    import _signal as signal

    from nsvirt.driver.runtime import syscalls as sc

    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    sc.close_fds_except(0, 1, 2)
    os.chdir("/")
    from nsvirt.driver.procfs import server

    try:
        server.main(base)
    finally:
        os._exit(0)
