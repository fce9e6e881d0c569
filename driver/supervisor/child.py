"""The container's side of the start: the intermediate child, then init.

The supervisor forks the intermediate child, which joins the cgroup, enters
the user namespace first (so it owns the namespaces created next), then the
others, then forks init: the first fork after unshare(CLONE_NEWPID) becomes
pid 1, so nothing else may fork before it. Both talk to the supervisor over
one socket and wait on it, so a supervisor that dies at any point makes them
exit (EOF) instead of running on unsupervised.

Every failure is sent back as `error: <reason>` and the process exits 127.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import socket
import struct
import sys
import termios
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NoReturn

from nsvirt.driver.runtime import caps, mounts
from nsvirt.driver.runtime import syscalls as sc
from nsvirt.driver.runtime.cgroups import CgroupBackend

if TYPE_CHECKING:  # the supervisor reads plans as plain data
    from nsvirt.driver.plan import LaunchPlan

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


class StartError(Exception):
    """A step of the start failed; str() is the reason the user sees."""


def _send(sock: socket.socket, text: str) -> None:
    sock.sendall(text.encode() + b"\n")


def _expect(sock: socket.socket, word: str) -> None:
    """Wait for the supervisor's `word`; EOF means the supervisor is gone."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            os._exit(1)  # the supervisor died: do not run on unsupervised
        line += chunk
    if line.decode().strip() != word:
        raise StartError(f"unexpected word from the supervisor: {line!r}")


def _fail(sock: socket.socket, err: BaseException) -> NoReturn:
    try:
        _send(sock, f"error: {err}")
    except OSError:
        pass
    os._exit(127)


def intermediate(
    plan: LaunchPlan, sock: socket.socket, cgroup: CgroupBackend, init_args: tuple
) -> NoReturn:
    """Run in the supervisor's first fork; never returns."""
    try:
        cgroup.attach(os.getpid())  # init inherits the cgroup from here
        for kind, path in plan.join:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                sc.setns(fd, sc.NAMESPACE_FLAGS[kind], f"cannot join the {kind} namespace {path}")
            finally:
                os.close(fd)
        if "user" in plan.namespaces:
            sc.unshare(sc.CLONE_NEWUSER, "cannot create a user namespace")
            _send(sock, "userns")
            _expect(sock, "mapped")  # the supervisor wrote uid_map and gid_map
            os.setgroups([])
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        flags = 0
        for kind in plan.namespaces:
            if kind != "user":
                flags |= sc.NAMESPACE_FLAGS[kind]
        sc.unshare(flags, "cannot create the container's namespaces")
        pid = os.fork()  # the first fork after CLONE_NEWPID: init, pid 1
        if pid == 0:
            init(plan, sock, *init_args)
        _send(sock, f"init {pid}")
    except BaseException as e:
        _fail(sock, e)
    os._exit(0)


def init(
    plan: LaunchPlan,
    sock: socket.socket,
    mountpoint: str,
    consoles: Sequence[str],
    cgroup_dirs: Mapping[str, str],
) -> NoReturn:
    """pid 1 of the container: set up its world, then exec the domain's init."""
    try:
        _expect(sock, "continue")
        # Only now is our parent the supervisor (the intermediate has exited):
        # tie our life to it, then make sure it did not die before that.
        sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
        if _peer_closed(sock):
            os._exit(1)
        root = mounts.build_tree(plan, mountpoint, consoles, cgroup_dirs)
        mounts.pivot_into(root)
        if plan.hostname is not None:
            socket.sethostname(plan.hostname)
        if plan.privnet:
            _loopback_up()
        _console_as_controlling_tty("/dev/console")
        uid, gid, home = _resolve_user(plan.user, plan.group)
        env = dict(plan.env)
        if plan.user is not None:
            env["HOME"] = home
        try:
            os.chdir(plan.cwd)
        except OSError as e:
            raise StartError(f"cannot change to directory {plan.cwd}: {e.strerror}") from None
        caps.drop_capabilities(plan.keep_caps)  # last: mount(2), sethostname(2) need caps
        if plan.user is not None or plan.group is not None:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
        sc.close_fds_except(sock.fileno())  # only the container's own fds reach init
        try:
            os.execve(plan.init, list(plan.argv), env)  # closes `sock` (CLOEXEC): success
        except OSError as e:
            raise StartError(f"cannot execute {plan.init}: {e.strerror}") from None
    except BaseException as e:
        _fail(sock, e)


def _peer_closed(sock: socket.socket) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLRDHUP)
    return any(ev & (select.POLLRDHUP | select.POLLHUP) for _, ev in poller.poll(0))


def _loopback_up() -> None:
    """Bring `lo` up in the new network namespace (an ioctl: no netlink library needed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))


def _console_as_controlling_tty(path: str) -> None:
    os.setsid()
    fd = os.open(path, os.O_RDWR)
    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(fd, target)
    if fd > 2:
        os.close(fd)
    sys.stdin = sys.stdout = sys.stderr = None  # type: ignore[assignment]


def _lookup(path: str, key: str) -> list[str] | None:
    try:
        with open(path) as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if fields and fields[0] == key:
                    return fields
    except OSError:
        pass
    return None


def _resolve_user(user: str | None, group: str | None) -> tuple[int, int, str]:
    """inituser/initgroup by the container's own /etc/passwd and /etc/group, or numbers."""
    uid, gid, home = 0, 0, "/"
    if user is not None:
        entry = _lookup("/etc/passwd", user)
        if entry and len(entry) >= 6:
            uid, gid, home = int(entry[2]), int(entry[3]), entry[5] or "/"
        elif user.isdigit():
            uid = int(user)
        else:
            raise StartError(f"user '{user}' is not in the container's /etc/passwd")
    if group is not None:
        entry = _lookup("/etc/group", group)
        if entry and len(entry) >= 3:
            gid = int(entry[2])
        elif group.isdigit():
            gid = int(group)
        else:
            raise StartError(f"group '{group}' is not in the container's /etc/group")
    return uid, gid, home
