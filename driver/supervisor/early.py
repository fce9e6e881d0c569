"""The start's first step, taken before the supervisor loads its controller: fork
the intermediate child, create the cgroup, and let the child join it at once.

On cgroup v1 the first move of a process into a cgroup waits out an RCU grace
period (the kernel's threadgroup lock: 6–16 ms measured here, and every start
pays it). The intermediate loads its code while the supervisor creates the
cgroup, waits the grace period out while the supervisor loads the rest of
itself and opens the consoles, then waits for its context (the ttys, the
seccomp program: supervisor/startup.py sends it) before it does anything else.
"""

from __future__ import annotations

import os

from nsvirt.driver.runtime import sockets
from nsvirt.driver.runtime.cgroups import backend_for

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from nsvirt.driver.runtime.cgroups import CgroupBackend


class Intermediate:
    """The forked intermediate child and the supervisor's end of its socket."""

    __slots__ = ("pid", "sock")

    def __init__(self, pid: int, sock: sockets.Socket) -> None:
        self.pid = pid
        self.sock = sock

    def join_cgroup(self) -> None:
        """The cgroup exists: join it (and go on, once the context comes)."""
        try:
            self.sock.sendall(b"cgroup\n")
        except OSError:
            pass  # it has failed: its error is on the socket, read at the handshake

    def discard(self) -> None:
        """A start that failed before the handshake: end the child (by its pid: it is
        ours and not yet reaped, so the pid cannot have been reused)."""
        self.sock.close()
        try:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


class Begun:
    """What begin() made: the cgroup backend, and the intermediate joining it (or the
    error that stopped the cgroup's creation, raised later where the start's
    failures are handled)."""

    __slots__ = ("cgroup", "error", "intermediate")

    def __init__(self, cgroup: CgroupBackend) -> None:
        self.cgroup = cgroup
        self.intermediate: Intermediate | None = None
        self.error: Exception | None = None


def begin(plan: Any) -> Begun:
    """Fork the intermediate (it loads its code meanwhile), create the container's
    cgroup and tell the intermediate to join it."""
    begun = Begun(backend_for(plan.facts, plan.cgroup_partition, plan.cgroup_name))
    begun.intermediate = fork_intermediate(plan, begun.cgroup)
    try:
        begun.cgroup.create(plan.limits, plan.device_rules)
    except Exception as e:
        begun.error = e  # the start's teardown discards the intermediate
        return begun
    begun.intermediate.join_cgroup()
    return begun


def fork_intermediate(plan: Any, cgroup: CgroupBackend) -> Intermediate:
    """The intermediate child, waiting for join_cgroup()."""
    ours, theirs = sockets.socketpair()  # both CLOEXEC: init's exec closes its end
    pid = os.fork()
    if pid == 0:
        ours.close()
        _intermediate(plan, theirs, cgroup)
    theirs.close()
    return Intermediate(pid, ours)


def _intermediate(plan: Any, sock: sockets.Socket, cgroup: CgroupBackend) -> NoReturn:
    try:
        from nsvirt.driver.supervisor import child, protocol  # while the cgroup is made

        if protocol.read_line(sock, None) != b"cgroup\n":
            os._exit(1)  # EOF: the supervisor gave up on this start, or died
        cgroup.attach_self()  # one thread, as any fork: init inherits the cgroup from here
        child.intermediate(plan, sock)
    except BaseException as e:
        try:
            sock.sendall(f"error: {e}\n".encode())
        except OSError:
            pass
        os._exit(127)
