"""The start's first step, taken before the supervisor loads its controller: the
container's cgroup, and the intermediate child in it.

Moving a process into a cgroup through cgroup.procs takes the kernel's
threadgroup lock, whose first write waits an RCU grace period (5–16 ms). So on
v2 the intermediate is born in the cgroup (clone3 with CLONE_INTO_CGROUP:
runtime/clone3.py); on v1 it is forked first, loads its code while the
supervisor makes the cgroup, and joins by writing 0 to each `tasks` file (its one
thread: the kernel skips the global lock). Either way it then waits for its
context (the ttys, the seccomp program: supervisor/startup.py sends it) before
it does anything else, while the supervisor loads the rest of itself.
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
    """The forked intermediate child and the supervisor's end of its socket; `joined`:
    born in the cgroup (clone3 on v2), else it joins when told (join_cgroup)."""

    __slots__ = ("joined", "pid", "sock")

    def __init__(self, pid: int, sock: sockets.Socket, joined: bool) -> None:
        self.pid = pid
        self.sock = sock
        self.joined = joined

    def join_cgroup(self) -> None:
        """The cgroup exists: join it (and go on, once the context comes)."""
        if self.joined:
            return
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

    __slots__ = ("cgroup", "error", "intermediate", "loop_fds", "nbd_disks")

    def __init__(self, cgroup: CgroupBackend) -> None:
        self.cgroup = cgroup
        self.intermediate: Intermediate | None = None
        self.error: Exception | None = None
        self.loop_fds: list[int] = []  # the image disks' loop devices, held while it runs
        self.nbd_disks: list[tuple[Any, str, int]] = []  # (disk, nbd device, server pid)


def begin(plan: Any) -> Begun:
    """The container's cgroup and the intermediate in it. On v2 the cgroup is made
    first and the intermediate born in it (clone3); on v1 the intermediate is forked
    first (it loads its code while the cgroup is made) and then told to join."""
    begun = Begun(backend_for(plan.facts, plan.cgroup_partition, plan.cgroup_name))
    if plan.image_disks:
        try:  # first: their nodes and rules are the plan's before anything forks
            begun.loop_fds, begun.nbd_disks = attach_image_disks(plan)
        except OSError as e:
            begun.error = e
            return begun
    born_in = plan.facts["cgroup_mode"] != "v1"
    if not born_in:
        begun.intermediate = fork_intermediate(plan, begun.cgroup, into=False)
    try:
        begun.cgroup.create(plan.limits, plan.device_rules)
        for _, _, server in begun.nbd_disks:  # it ends with the container
            begun.cgroup.attach(server)
    except Exception as e:
        begun.error = e  # the start's teardown discards the intermediate
        return begun
    if born_in:
        begun.intermediate = fork_intermediate(plan, begun.cgroup, into=True)
    begun.intermediate.join_cgroup()  # type: ignore[union-attr]
    return begun


def attach_image_disks(plan: Any) -> tuple[list[int], list[tuple[Any, str, int]]]:
    """Attach each <disk type='file'> image to a loop device (autoclear: released when
    its fd, ours, and the container's opens are gone), or serve it on an nbd device
    (runtime/nbd.py), and add its node /dev/<target> and its rule to the plan; the
    loop fds, to hold while the container runs, and the served (disk, device, pid)."""
    from types import SimpleNamespace

    from nsvirt.driver.runtime import loopdev, nbd

    fds: list[int] = []
    served: list[tuple[Any, str, int]] = []
    try:
        for disk in plan.image_disks:
            if disk.nbd:
                path, server = nbd.connect(disk.source, disk.nbd, disk.readonly)
                served.append((disk, path, server))
                rdev = os.stat(path).st_rdev
            else:
                path, fd = loopdev.attach(disk.source, disk.readonly)
                fds.append(fd)
                rdev = os.fstat(fd).st_rdev
            numbers = {"type": "b", "major": os.major(rdev), "minor": os.minor(rdev)}
            plan.dev_nodes += (SimpleNamespace(name=disk.name, mode=0o660, source=path,
                                               **numbers),)  # fmt: skip
            plan.device_rules += (SimpleNamespace(access="rm" if disk.readonly else "rwm",
                                                  **numbers),)  # fmt: skip
    except BaseException:
        for fd in fds:
            os.close(fd)
        for _, path, _ in served:
            nbd.disconnect(path)
        raise
    return fds, served


def fork_intermediate(plan: Any, cgroup: CgroupBackend, into: bool) -> Intermediate:
    """The intermediate child: born in the (existing) cgroup if `into` and the kernel
    can, else forked and waiting for join_cgroup()."""
    ours, theirs = sockets.socketpair()  # both CLOEXEC: init's exec closes its end
    pid = cgroup.fork_into_payload() if into else None
    joined = pid is not None
    if pid is None:
        pid = os.fork()
    if pid == 0:
        ours.close()
        _intermediate(plan, theirs, cgroup, joined)
    theirs.close()
    return Intermediate(pid, ours, joined)


def _intermediate(plan: Any, sock: sockets.Socket, cgroup: CgroupBackend,
                  joined: bool) -> NoReturn:  # fmt: skip
    try:
        from nsvirt.driver.supervisor import child, protocol  # while the cgroup is made

        if not joined:
            if protocol.read_line(sock, None) != b"cgroup\n":
                os._exit(1)  # EOF: the supervisor gave up on this start, or died
            cgroup.attach_self()  # one thread, as any fork: init inherits the cgroup
        child.intermediate(plan, sock)
    except BaseException as e:
        try:
            sock.sendall(f"error: {e}\n".encode())
        except OSError:
            pass
        os._exit(127)
