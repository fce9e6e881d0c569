"""The container's side of the start: the intermediate child, then init.

The supervisor forks the intermediate child, which joins the cgroup
(supervisor/early.py), waits for its context (the ttys, the seccomp program),
enters the user namespace first (so it owns the namespaces created next), then
the others, then forks init: the first fork after unshare(CLONE_NEWPID) becomes
pid 1, so nothing else may fork before it. Both talk to the supervisor over
one socket and wait on it, so a supervisor that dies at any point makes them
exit (EOF) instead of running on unsupervised.

Every failure is sent back as `error: <reason>` and the process exits 127.
"""

from __future__ import annotations

import _signal as signal  # signal.py without its enums (enum: ~3 ms a start)
import binascii
import os
import select

from nsvirt.driver.runtime import caps, mounts, netdev, seccomp, sockets, tty, users, uts
from nsvirt.driver.runtime import syscalls as sc
from nsvirt.driver.state import jsonlite
from nsvirt.driver.supervisor import protocol

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any, NoReturn


class StartError(Exception):
    """A step of the start failed; str() is the reason the user sees."""


class InitContext:
    """What init needs from the supervisor besides the plan (plans are host-neutral)."""

    __slots__ = ("boot_offset", "cgroup_dirs", "consoles", "detached", "mountpoint", "seccomp")

    def __init__(self, mountpoint: str, consoles: Sequence[str],
                 cgroup_dirs: Mapping[str, str], seccomp_program: bytes = b"",
                 boot_offset: int = 0) -> None:  # fmt: skip
        self.mountpoint = mountpoint  # where an app container's root is bound
        self.consoles = tuple(consoles)  # host ptys, bound onto /dev/console, /dev/ttyN
        self.cgroup_dirs = dict(cgroup_dirs)  # shown read-only at /sys/fs/cgroup
        self.seccomp = seccomp_program  # runtime/seccomp.py's filter, b"": none
        self.detached: list[int] = []  # copies of the root and binds, sent with "continue"
        # host boot-time seconds where init's clock starts (its time namespace); 0: none
        self.boot_offset = boot_offset

    def send(self, sock: sockets.Socket) -> None:
        """To the intermediate child, forked before the supervisor had all this."""
        program = binascii.b2a_base64(self.seccomp, newline=False).decode()
        word = {"mountpoint": self.mountpoint, "consoles": self.consoles,
                "cgroup_dirs": self.cgroup_dirs, "seccomp": program,
                "boot_offset": self.boot_offset}  # fmt: skip
        sock.sendall(b"context " + jsonlite.dumps(word).encode() + b"\n")

    @classmethod
    def receive(cls, sock: sockets.Socket) -> InitContext:
        line = protocol.read_line(sock, None)
        if not line:
            os._exit(1)  # the supervisor died: do not run on unsupervised
        if not line.startswith(b"context "):
            raise StartError(f"unexpected word from the supervisor: {line[:64]!r}")
        word = jsonlite.loads(line.removeprefix(b"context ").decode())
        return cls(word["mountpoint"], word["consoles"], word["cgroup_dirs"],
                   binascii.a2b_base64(word["seccomp"]), word["boot_offset"])  # fmt: skip


def _send(sock: sockets.Socket, text: str) -> None:
    sock.sendall(text.encode() + b"\n")


def _expect_with_fds(sock: sockets.Socket, word: str) -> tuple[list[str], list[int]]:
    """Wait for `word` and its arguments, which may carry fds (SCM_RIGHTS); EOF: the
    supervisor is gone."""
    data, fds, _, _ = sockets.recv_fds(sock, 4096, 253)
    if not data:
        os._exit(1)
    said = data.decode(errors="replace").split()
    if not said or said[0] != word:
        raise StartError(f"unexpected word from the supervisor: {data!r}")
    return said[1:], fds


def _expect(sock: sockets.Socket, word: str) -> None:
    """Wait for the supervisor's `word`; EOF means the supervisor is gone."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            os._exit(1)  # the supervisor died: do not run on unsupervised
        line += chunk
    if line.decode().strip() != word:
        raise StartError(f"unexpected word from the supervisor: {line!r}")


def _fail(sock: sockets.Socket, err: BaseException) -> NoReturn:
    try:
        _send(sock, f"error: {err}")
    except OSError:
        pass
    os._exit(127)


def intermediate(plan: Any, sock: sockets.Socket) -> NoReturn:
    """Run in the supervisor's first fork, in the container's cgroup (supervisor/early.py);
    never returns."""
    try:
        context = InitContext.receive(sock)
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
            users.become(0, 0)  # root of the new namespace
        flags = 0
        for kind in plan.namespaces:
            if kind != "user":
                flags |= sc.NAMESPACE_FLAGS[kind]
        sc.unshare(flags, "cannot create the container's namespaces")
        if context.boot_offset:
            _own_clock(context.boot_offset)
        pid = os.fork()  # the first fork after CLONE_NEWPID: init, pid 1
        if pid == 0:
            init(plan, sock, context)
        _send(sock, f"init {pid}")
    except BaseException as e:
        _fail(sock, e)
    os._exit(0)


def init(plan: Any, sock: sockets.Socket, context: InitContext) -> NoReturn:
    """pid 1 of the container: set up its world, then exec the domain's init."""
    try:
        args, context.detached = _expect_with_fds(sock, "continue")
        sysinfo = args[:1] == ["sysinfo"]  # hand sysinfo(2) to the supervisor
        args = args[1:] if sysinfo else args
        procfs: list[tuple[int, str]] = []
        if args[:1] == ["procfs"]:  # the last fds: the /proc server's files, for these paths
            cut = len(context.detached) - len(args[1:])
            procfs = list(zip(context.detached[cut:], args[1:], strict=True))
            context.detached = context.detached[:cut]
        # Only now is our parent the supervisor (the intermediate has exited):
        # tie our life to it, then make sure it did not die before that.
        sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
        if _peer_closed(sock):
            os._exit(1)
        root = mounts.build_tree(plan, context.mountpoint, context.consoles, context.cgroup_dirs,
                                 context.detached, procfs)  # fmt: skip
        mounts.pivot_into(root)
        if plan.hostname is not None:
            uts.set_hostname(plan.hostname)
        if plan.privnet:
            netdev.loopback_up()
        tty.become_controlling_tty("/dev/console")
        uid, gid, home = users.resolve(plan.user, plan.group)
        env = dict(plan.env)
        if plan.user is not None:
            env["HOME"] = home
        try:
            os.chdir(plan.cwd)
        except OSError as e:
            raise StartError(f"cannot change to directory {plan.cwd}: {e.strerror}") from None
        if plan.no_new_privs:
            sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1, what="cannot set no_new_privs")
        if context.seccomp:  # while init may still install it (CAP_SYS_ADMIN), after mounts
            seccomp.install(context.seccomp)
        if sysinfo:
            _hand_over_sysinfo(sock, plan.facts["arch"])
        caps.drop_capabilities(plan.keep_caps)  # last: mount(2), sethostname(2) need caps
        if plan.user is not None or plan.group is not None:
            users.become(uid, gid)
        sc.close_fds_except(sock.fileno())  # only the container's own fds reach init
        try:
            os.execve(plan.init, list(plan.argv), env)  # closes `sock` (CLOEXEC): success
        except OSError as e:
            raise StartError(f"cannot execute {plan.init}: {e.strerror}") from None
    except BaseException as e:
        _fail(sock, e)


def _hand_over_sysinfo(sock: sockets.Socket, arch: str) -> None:
    """A filter that hands our (and our descendants') sysinfo(2) calls to the
    supervisor, which answers with the container's memory; its listener goes there."""
    program = seccomp.sysinfo_filter(arch)
    if program is None:
        _send(sock, "listener none")
        return
    fd = seccomp.install_listener(program, arch)
    try:
        sockets.send_fds(sock, [b"listener\n"], [fd])
    finally:
        os.close(fd)


_PR_GET_DUMPABLE, _PR_SET_DUMPABLE = 3, 4


def _own_clock(offset: int) -> None:
    """A time namespace whose boot time is 0 at host boot time `offset` (s): init and
    its children count their uptime (and ps their start times) from the container's
    start; none where the kernel has none (before 5.6) or refuses one."""
    if not os.path.exists("/proc/self/ns/time"):
        return
    try:
        sc.unshare(sc.CLONE_NEWTIME, "cannot create a time namespace")
        # our /proc files are host root's since the change of ids made us undumpable;
        # for this write they are ours (nothing else runs as our ids yet)
        dumpable = sc.prctl(_PR_GET_DUMPABLE)
        sc.prctl(_PR_SET_DUMPABLE, 1)
        try:
            with open("/proc/self/timens_offsets", "w") as f:  # the one init will be in
                f.write(f"boottime {-offset} 0\n")
        finally:
            sc.prctl(_PR_SET_DUMPABLE, dumpable)
    except OSError:
        pass


def _peer_closed(sock: sockets.Socket) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLRDHUP)
    return any(ev & (select.POLLRDHUP | select.POLLHUP) for _, ev in poller.poll(0))
