"""Start the container's processes: walk the intermediate child (forked by
supervisor/early.py) through the handshake (DESIGN.md §5, step 3) until init has
exec'd the domain's init.

    supervisor                      intermediate / init
    fork (supervisor/early.py) ──▶  join the cgroup
    "context" (ttys, seccomp) ───▶  setns, unshare(CLONE_NEWUSER)
         ◀──────────── "userns"
    write uid_map, gid_map; copy the
    root and binds (idmapped or not)
         "mapped" ────────────────▶ unshare the rest, fork init (pid 1)
         ◀──────────── "init PID"   (the intermediate exits)
    the interfaces, made in init's network namespace (net_setup)
         "continue" + their fds ──▶ init: mounts, pivot_root, seccomp, caps, execve
         ◀──────────── EOF          (execve closed init's end: running)
                     or "error: …"

Every read is bounded; a child that dies answers with EOF.
"""

from __future__ import annotations

import os

from nsvirt.driver.runtime import idmap, idmount, sockets
from nsvirt.driver.runtime import syscalls as sc
from nsvirt.driver.supervisor import child, protocol
from nsvirt.driver.supervisor.child import StartError
from nsvirt.driver.supervisor.faults import Faults

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from nsvirt.driver.supervisor.early import Intermediate

    NetSetup = Callable[[int], None]
    IdMaps = tuple[Sequence[Any], Sequence[Any]]


def start_init(plan: Any, maps: IdMaps, intermediate: Intermediate, context: child.InitContext,
               faults: Faults, timeout: float, net_setup: NetSetup) -> int:  # fmt: skip
    """Walk the intermediate child (supervisor/early.py: forked, joining the cgroup)
    through the start; return init's pid once it runs the domain's init. `maps`: its
    user namespace's (uid map, gid map); `net_setup(init_pid)` makes the interfaces
    while init waits (raises StartError)."""
    # before init can exist: its parent, the intermediate, exits, and init must
    # become our child, not the host's
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1, what="becoming a subreaper")
    sock = intermediate.sock
    try:
        try:
            context.send(sock)
        except OSError:
            pass  # it has failed (joining the cgroup): its error is on the socket
        return _handshake(plan, maps, sock, intermediate.pid, faults, timeout, net_setup)
    finally:
        sock.close()


def _read(sock: sockets.Socket, timeout: float) -> str:
    try:
        return protocol.read_line(sock, timeout).decode(errors="replace").strip()
    except TimeoutError:
        raise StartError(f"the container did not answer within {timeout:g} s") from None


def _handshake(plan: Any, maps: IdMaps, sock: sockets.Socket, intermediate: int,
               faults: Faults, timeout: float, net_setup: NetSetup) -> int:  # fmt: skip
    faults.point("forked")
    line = _read(sock, timeout)
    detached: list[int] = []
    try:
        if line == "userns":
            try:
                idmap.write_id_maps(intermediate, *maps)
                detached = _detached_copies(plan, intermediate)
            except OSError as e:
                raise StartError(str(e)) from None
            faults.point("mapped")
            sock.sendall(b"mapped\n")
            line = _read(sock, timeout)
        return _until_running(plan, sock, intermediate, line, detached, faults, timeout,
                              net_setup)  # fmt: skip
    finally:
        for fd in detached:
            os.close(fd)


def _detached_copies(plan: Any, intermediate: int) -> list[int]:
    """Detached copies of the root and the binds for a user namespace's init (which
    may not reach their host paths), idmapped to it where the plan says (only host
    root may make those), in the order init consumes them."""
    if not plan.detached_mounts:
        return []
    sources = [(plan.root, "/", plan.root_idmapped)] if plan.root != "/" else []
    sources += [(op.source, op.dest, op.idmapped) for op in plan.mounts if op.kind == "bind"]
    if not sources:
        return []
    userns = os.open(f"/proc/{intermediate}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    fds: list[int] = []
    try:
        for source, dest, idmapped in sources:
            what = f"failed to mount {source} on {dest}"
            fds.append(idmount.detached_copy(source, what, userns if idmapped else -1))
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    finally:
        os.close(userns)
    return fds


def _until_running(plan: Any, sock: sockets.Socket, intermediate: int, line: str,
                   detached: list[int], faults: Faults, timeout: float,
                   net_setup: NetSetup) -> int:  # fmt: skip
    try:
        os.waitpid(intermediate, 0)
    except ChildProcessError:
        pass
    if not line.startswith("init "):
        raise StartError(
            line.removeprefix("error: ") or "the container's namespaces could not be set up"
        )
    init_pid = int(line.split()[1])
    faults.point("init")
    if plan.interfaces:
        try:
            net_setup(init_pid)
        except BaseException:
            os.kill(init_pid, 9)  # it waits for "continue": it never runs the domain's init
            reap(init_pid)
            raise
        faults.point("network")
    if detached:
        sockets.send_fds(sock, [b"continue\n"], detached)
    else:
        sock.sendall(b"continue\n")
    faults.point("continue")
    line = _read(sock, timeout)  # EOF: init's exec closed its end, so init is running
    if line:
        reap(init_pid)
        raise StartError(line.removeprefix("error: "))
    return init_pid


def reap(pid: int) -> None:
    """Wait for a child that has been (or is being) killed."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
