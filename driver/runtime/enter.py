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

from nsvirt.driver.runtime import caps, seccomp
from nsvirt.driver.runtime import syscalls as sc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

# user first (the rest belong to it), mnt last (after it nothing of the host is reachable)
NAMESPACES = (("user", sc.CLONE_NEWUSER), ("ipc", sc.CLONE_NEWIPC), ("uts", sc.CLONE_NEWUTS),
              ("net", sc.CLONE_NEWNET), ("cgroup", sc.CLONE_NEWCGROUP),
              ("pid", sc.CLONE_NEWPID), ("mnt", sc.CLONE_NEWNS))  # fmt: skip
EXEC_FAILED = 127  # B's status when the command cannot be run (its reason on the pipe)


class EnterError(Exception):
    """The command could not be started inside (not: it ran and failed)."""


def run(init_pid: int, argv: Sequence[str], env: Mapping[str, str], cgroup_procs: Sequence[str],
        keep_caps: Sequence[str], seccomp_program: bytes, no_new_privs: bool) -> int:  # fmt: skip
    """Run `argv` inside the container of `init_pid`; its exit status (a signal N: 128+N).
    `cgroup_procs`: the cgroup.procs files of the container's payload cgroup."""
    fds = namespaces_of(init_pid)
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(r)
            sc.close_fds_except(w, *fds.values())
            _enter(fds, cgroup_procs)
            grandchild = os.fork()  # born in the pid namespace
            if grandchild == 0:
                _become_the_containers(argv, env, keep_caps, seccomp_program, no_new_privs, w)
            os.close(w)
            _, status = os.waitpid(grandchild, 0)
            os._exit(_exit_code(status))
        except BaseException as e:
            _report(w, e)
            os._exit(EXEC_FAILED)
    os.close(w)
    for fd in fds.values():
        os.close(fd)
    with os.fdopen(r, "rb") as f:
        said = f.read().decode(errors="replace")  # EOF: B exec'd (CLOEXEC), or failed
    _, status = os.waitpid(child, 0)
    if said:
        raise EnterError(said)
    return _exit_code(status)


def namespaces_of(pid: int, kinds: Sequence[str] = ()) -> dict[str, int]:
    """An fd of each namespace `pid` has that this process does not share (of `kinds`,
    if given); for join()."""
    fds = {}
    for kind, _ in NAMESPACES:
        if kinds and kind not in kinds:
            continue
        theirs = f"/proc/{pid}/ns/{kind}"
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
                           program: bytes, no_new_privs: bool, report: int) -> None:  # fmt: skip
    try:
        os.chdir("/")
        if no_new_privs:
            sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1, what="cannot set no_new_privs")
        if program:
            seccomp.install(program)
        caps.drop_capabilities(keep_caps)
        os.execve(argv[0], list(argv), dict(env))
    except OSError as e:
        _report(report, OSError(e.errno, f"cannot execute {argv[0]}: {e.strerror}"))
    except BaseException as e:
        _report(report, e)
    os._exit(EXEC_FAILED)


def _report(fd: int, e: BaseException) -> None:
    try:
        os.write(fd, (str(e.args[1]) if isinstance(e, OSError) and len(e.args) > 1
                      else str(e)).encode(errors="replace")[:4000] or b"failed")  # fmt: skip
    except OSError:
        pass


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code
