"""Run a command inside a running container (lxc-enter-namespace): in its cgroup and
every namespace its init has of its own, as its root, with its capability bounds,
its seccomp filter and no_new_privs as init has them, and the caller's stdio.

    caller ── fork ──▶ A: joins the cgroup (host paths), setns user, ipc, uts, net,
                          cgroup, pid, mnt (the root becomes the container's)
                          ── fork ──▶ B: born in the pid namespace; no_new_privs,
                                      seccomp, capabilities, execve CMD
                       A waits for B and exits with its status
    the caller waits for A: the command's exit status

A stays out of the container's pid namespace: nothing inside can see or signal it.
"""

from __future__ import annotations

import os

from nsvirt.driver.runtime import caps, inroot, seccomp, sockets
from nsvirt.driver.runtime import syscalls as sc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

# user first (the rest belong to it), mnt last (after it nothing of the host is reachable)
NAMESPACES = (("user", sc.CLONE_NEWUSER), ("ipc", sc.CLONE_NEWIPC), ("uts", sc.CLONE_NEWUTS),
              ("net", sc.CLONE_NEWNET), ("cgroup", sc.CLONE_NEWCGROUP),
              ("time", sc.CLONE_NEWTIME), ("pid", sc.CLONE_NEWPID),
              ("mnt", sc.CLONE_NEWNS))  # fmt: skip
EXEC_FAILED = 127  # B's status when the command cannot be run (its reason on the pipe)


class EnterError(Exception):
    """The command could not be started inside (not: it ran and failed)."""


def run(init_pid: int, argv: Sequence[str], env: Mapping[str, str], cgroup_procs: Sequence[str],
        keep_caps: Sequence[str], seccomp_program: bytes, no_new_privs: bool,
        sysinfo: tuple[bytes, Callable[[int], bool], Callable[[int], None]] | None = None,
        ) -> int:  # fmt: skip
    """Run `argv` inside the container of `init_pid`; its exit status (a signal N: 128+N).
    `cgroup_procs`: the cgroup.procs files of the container's payload cgroup;
    `sysinfo`: (a filter handing sysinfo(2) to a listener, a function that hands the
    listener over to whoever answers, and one that answers one call on it if that
    fails), so the command's sysinfo is the container's as init's is."""
    fds = namespaces_of(init_pid)
    ours, theirs = sockets.socketpair()
    w = theirs.fileno()
    child = os.fork()
    if child == 0:
        try:
            ours.close()
            sc.close_fds_except(w, *fds.values())
            _enter(fds, cgroup_procs)
            grandchild = os.fork()  # born in the pid namespace
            if grandchild == 0:
                _become_the_containers(argv, env, keep_caps, seccomp_program, no_new_privs, w,
                                       sysinfo[0] if sysinfo else b"")  # fmt: skip
            os.close(w)
            _, status = os.waitpid(grandchild, 0)
            os._exit(_exit_code(status))
        except BaseException as e:
            _report(w, e)
            os._exit(EXEC_FAILED)
    theirs.close()
    for fd in fds.values():
        os.close(fd)
    listener, said = _hear(ours)  # EOF: B exec'd (CLOEXEC), or failed
    try:
        if listener >= 0 and sysinfo is not None and not sysinfo[1](listener):
            _answer_until_exit(child, listener, sysinfo[2])
        _, status = os.waitpid(child, 0)
    finally:
        if listener >= 0:
            os.close(listener)
    if said:
        raise EnterError(said)
    return _exit_code(status)


def _hear(sock: sockets.Socket) -> tuple[int, str]:
    """B's sysinfo listener (a message of one NUL byte), then its error text, if any."""
    listener, chunks = -1, []
    with sock:
        while True:
            data, fds, _, _ = sockets.recv_fds(sock, 4096, 1)
            for fd in fds:
                if listener < 0:
                    listener = fd
                else:
                    os.close(fd)
            if not data:
                break
            chunks.append(data.lstrip(b"\0") if fds else data)
    return listener, b"".join(chunks).decode(errors="replace")


def _answer_until_exit(child: int, listener: int, serve: Callable[[int], None]) -> None:
    """Answer the command's sysinfo(2) calls until A (and so the command) has exited."""
    pidfd = os.pidfd_open(child)
    try:
        while True:
            ready = sockets.wait_readable([pidfd, listener], None)
            if pidfd in ready:
                return
            serve(listener)
    finally:
        os.close(pidfd)


def namespaces_of(pid: int, kinds: Sequence[str] = ()) -> dict[str, int]:
    """An fd of each namespace `pid` has that this process does not share (of `kinds`,
    if given); for join()."""
    fds = {}
    for kind, _ in NAMESPACES:
        if kinds and kind not in kinds:
            continue
        theirs = f"/proc/{pid}/ns/{kind}"
        if kind == "time" and not os.path.exists(theirs):
            continue  # a kernel before 5.6 has no time namespaces
        if os.readlink(theirs) != os.readlink(f"/proc/self/ns/{kind}"):
            fds[kind] = os.open(theirs, os.O_RDONLY | os.O_CLOEXEC)
    return fds


def _enter(fds: dict[str, int], cgroup_procs: Sequence[str]) -> None:
    for path in cgroup_procs:  # first: these are host paths
        with open(path, "w") as f:
            f.write("0")
    join(fds)


def join(fds: dict[str, int]) -> None:
    """Enter the namespaces of namespaces_of() (closing their fds), in the order that
    works: user first (the others belong to it), mnt last; then become its root. The
    caller must be one thread; a pid namespace holds only its children from then on."""
    for kind, flag in NAMESPACES:
        if kind in fds:
            sc.setns(fds[kind], flag, f"cannot enter the container's {kind} namespace")
            os.close(fds[kind])
    if "user" in fds:
        os.setresgid(0, 0, 0)  # its root: our host ids mean nothing in there
        os.setresuid(0, 0, 0)


def _become_the_containers(argv: Sequence[str], env: Mapping[str, str], keep_caps: Sequence[str],
                           program: bytes, no_new_privs: bool, report: int,
                           sysinfo_filter: bytes) -> None:  # fmt: skip
    try:
        os.chdir("/")
        if no_new_privs:
            sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1, what="cannot set no_new_privs")
        if program:
            seccomp.install(program)
        if sysinfo_filter:  # its listener goes to the caller, who answers
            try:
                listener = seccomp.install_listener(sysinfo_filter, seccomp.host_arch())
            except OSError:
                pass  # the kernel's sysinfo, then: no reason not to run the command
            else:
                sockets.send_fds(_socket_of(report), [b"\0"], [listener])
                os.close(listener)
        caps.drop_capabilities(keep_caps)
        os.execve(argv[0], list(argv), dict(env))
    except OSError as e:
        _report(report, OSError(e.errno, f"cannot execute {argv[0]}: {e.strerror}"))
    except BaseException as e:
        _report(report, e)
    os._exit(EXEC_FAILED)


def _socket_of(fd: int) -> sockets.Socket:
    import _socket

    return _socket.socket(fileno=os.dup(fd))  # closed with the exec (CLOEXEC)


def _report(fd: int, e: BaseException) -> None:
    try:
        os.write(fd, (str(e.args[1]) if isinstance(e, OSError) and len(e.args) > 1
                      else str(e)).encode(errors="replace")[:4000] or b"failed")  # fmt: skip
    except OSError:
        pass


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


HELPER_TIMEOUT = 10.0  # a bound on a helper's few syscalls, not a delay
_PR_SET_DUMPABLE = 4


def inside(pid: int, work: Callable[[int], None], keep: Sequence[int] = ()) -> None:
    """Run work(root fd) in a helper inside `pid`'s pid namespace (so that the
    container's /proc knows it: /proc/self/fd paths), its user namespace if it has one
    (what is made on its /dev must be owned by an id it knows, as init's own are) and
    its mount namespace (the helper's root becomes the container's: nothing more can
    be imported from there); join() enters them. The helper's error
    is raised here.

    Inside, the helper is the container's to signal (a SIGSTOP, say): so its parent,
    which stays out of the pid namespace where the container cannot see it, holds the
    deadline and kills it (SIGKILL ends a stopped process too); and neither holds any
    of the caller's fds but `keep` (a holder tmpfs) and the error pipe."""
    fds = namespaces_of(pid, ("user", "pid", "mnt"))
    r, w = os.pipe()
    child = os.fork()
    if child == 0:  # a fresh process: one thread, as setns(CLONE_NEWNS) needs
        try:
            os.close(r)
            sc.close_fds_except(w, *fds.values(), *keep)
            null = os.open(os.devnull, os.O_RDWR)  # nor the caller's terminal
            for std in (0, 1, 2):
                os.dup2(null, std)
            os.close(null)
            join(fds)
            helper = os.fork()  # born in the pid namespace
            if helper:
                os._exit(_bounded_wait(helper, HELPER_TIMEOUT, w))
            # not dumpable (a change of ids reset it): its memory is the host's
            sc.prctl(_PR_SET_DUMPABLE, 0, what="making the helper not dumpable")
            work(inroot.open_root("/"))
            os._exit(0)
        except BaseException as e:
            os.write(w, str(e).encode(errors="replace")[:4000] or b"failed")
            os._exit(1)
    os.close(w)
    for fd in fds.values():
        os.close(fd)
    chunks = []
    try:  # the child ends within its bound (it kills the helper at the deadline)
        while sockets.wait_readable([r], HELPER_TIMEOUT + 5):
            chunk = os.read(r, 4096)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(r)
        _, status = os.waitpid(child, 0)
    said = b"".join(chunks).decode(errors="replace")
    if said or os.waitstatus_to_exitcode(status) != 0:
        raise OSError(said or "the helper in the container's namespaces failed")


def _bounded_wait(pid: int, timeout: float, report: int) -> int:
    """Wait for the helper `pid` at most `timeout` s, then kill it; its exit code."""
    pidfd = os.pidfd_open(pid)
    try:
        if not sockets.wait_readable([pidfd], timeout):
            os.kill(pid, 9)
            os.write(report, b"the helper in the container's namespaces did not finish")
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) & 0xFF
    finally:
        os.close(pidfd)
