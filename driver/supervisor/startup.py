"""Start the container's processes: walk the intermediate child (forked by
supervisor/early.py) through the handshake (DESIGN.md §5, step 3) until init has
exec'd the domain's init.

    supervisor                      intermediate / init
    fork (supervisor/early.py) ──▶  join the cgroup
    "context" (ttys, seccomp) ───▶  setns, unshare(CLONE_NEWUSER)
         ◀──────────── "userns"
    write uid_map, gid_map
         "mapped" ────────────────▶ unshare the rest, fork init (pid 1)
         ◀──────────── "init PID"   (the intermediate exits)
    detached mounts: copies of the root and
    binds (a user namespace's init may not
    reach them), block and image filesystems
    (mount_fds); the interfaces, made in
    init's network namespace (net_setup)
    the /proc server's files (procfs_setup)
         "continue" + the mounts ─▶ init: mounts, pivot_root, seccomp, caps, execve
         ◀──────────── EOF          (execve closed init's end: running)
                     or "error: …"

Every read is bounded; a child that dies answers with EOF.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

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
    # (the /proc server's fds, the paths they cover, the sysinfo listener's handler)
    ProcfsSetup = Callable[[], tuple[list[int], list[str], Callable[[int], None] | None]]
    IdMaps = tuple[Sequence[Any], Sequence[Any]]


def start_init(plan: Any, maps: IdMaps, intermediate: Intermediate, context: child.InitContext,
               faults: Faults, timeout: float, net_setup: NetSetup,
               procfs_setup: ProcfsSetup) -> int:  # fmt: skip
    """Walk the intermediate child (supervisor/early.py: forked, joining the cgroup)
    through the start; return init's pid once it runs the domain's init. `maps`: its
    user namespace's (uid map, gid map); `net_setup(init_pid)` makes the interfaces
    while init waits (raises StartError); `procfs_setup()` gives the /proc server's
    files, the paths they go over (none: the kernel's stay) and who takes init's
    sysinfo listener: asked while the intermediate makes the namespaces, so the
    start does not wait for it."""
    # before init can exist: its parent, the intermediate, exits, and init must
    # become our child, not the host's
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1, what="becoming a subreaper")
    sock = intermediate.sock
    try:
        try:
            context.send(sock)
        except OSError:
            pass  # it has failed (joining the cgroup): its error is on the socket
        procfs: list[Any] = []  # procfs_setup's, once asked (_handshake)
        try:
            return _handshake(plan, maps, sock, intermediate.pid, faults, timeout,
                              (net_setup, procfs_setup), procfs)  # fmt: skip
        finally:
            for fd in procfs[0] if procfs else ():
                os.close(fd)
    finally:
        sock.close()


def _read(sock: sockets.Socket, timeout: float) -> str:
    try:
        return protocol.read_line(sock, timeout).decode(errors="replace").strip()
    except TimeoutError:
        raise StartError(f"the container did not answer within {timeout:g} s") from None


def _handshake(plan: Any, maps: IdMaps, sock: sockets.Socket, intermediate: int,
               faults: Faults, timeout: float, setups: tuple[NetSetup, ProcfsSetup],
               procfs: list[Any]) -> int:  # fmt: skip
    faults.point("forked")
    if "user" not in plan.namespaces:
        procfs[:] = setups[1]()  # while the intermediate makes the namespaces
    line = _read(sock, timeout)
    if line == "userns":
        try:
            idmap.write_id_maps(intermediate, *maps)
        except OSError as e:
            raise StartError(str(e)) from None
        faults.point("mapped")
        sock.sendall(b"mapped\n")
        procfs[:] = setups[1]()  # while it makes the other namespaces and init
        line = _read(sock, timeout)
    if not procfs:  # it failed before it asked for the maps
        procfs[:] = [], [], None
    return _until_running(plan, maps, sock, intermediate, line, faults, timeout,
                          (setups[0], procfs))  # fmt: skip


def mount_fds(plan: Any, init_pid: int, maps: IdMaps) -> list[int]:
    """The mounts init moves into place, in the order it consumes them: the root's
    (a block or image filesystem, or for a user namespace's init, which may not
    reach its host path, a detached copy), then the nodes of the host devices for a
    user namespace's init (runtime/devnodes.py: it may not make them), then each
    bind's copy (user namespace) and each block or image filesystem, in plan order.
    Only host root may mount those or idmap a mount (to init's user namespace where
    the plan says)."""
    root = plan.root_mount
    if root is None and plan.detached_mounts and plan.root != "/":
        root = SimpleNamespace(kind="bind", source=plan.root, dest="/", loop=False,
                               idmapped=plan.root_idmapped, readonly=False)  # fmt: skip
    ops = [op for op in plan.mounts
           if op.kind == "block" or (op.kind == "bind" and plan.detached_mounts)]  # fmt: skip
    nodes = passed_nodes(plan)
    if root is None and not ops and not nodes:
        return []
    userns = -1
    if "user" in plan.namespaces:
        userns = os.open(f"/proc/{init_pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    fds: list[int] = []
    try:
        if root is not None:
            fds.append(_mount_fd(root, userns))
        if nodes:
            from nsvirt.driver.runtime import devnodes

            fds.append(devnodes.holder(nodes, idmap.host_id(maps[0]), idmap.host_id(maps[1])))
        fds += [_mount_fd(op, userns) for op in ops]
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    finally:
        if userns >= 0:
            os.close(userns)
    return fds


def passed_nodes(plan: Any) -> list[Any]:
    """The host devices' nodes a user namespace's init takes from the supervisor."""
    if "user" not in plan.namespaces:
        return []  # init makes them itself (mknod)
    return [n for n in plan.dev_nodes if n.source]


def _mount_fd(op: Any, userns: int) -> int:
    what = f"failed to mount {op.source} on {op.dest}"
    to = userns if op.idmapped else -1
    if op.kind == "bind":
        return idmount.detached_copy(op.source, what, to)
    return _block_mount(op, what, to)


def _block_mount(op: Any, what: str, userns: int) -> int:
    """A block device's, or an image's (on a loop device), filesystem, detached."""
    from nsvirt.driver.runtime import fsmount, loopdev

    if not op.loop:
        return fsmount.mount_device(op.source, op.readonly, what, op.options or None, userns)
    device, loop_fd = loopdev.attach(op.source, op.readonly)
    try:  # the mount holds the device now; with it gone the kernel detaches it
        return fsmount.mount_device(device, op.readonly, f"{what} (through {device})",
                                    op.options or None, userns)  # fmt: skip
    finally:
        os.close(loop_fd)


def _until_running(plan: Any, maps: IdMaps, sock: sockets.Socket, intermediate: int,
                   line: str, faults: Faults, timeout: float,
                   setups: tuple[NetSetup, Any]) -> int:  # fmt: skip
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
    try:
        detached = mount_fds(plan, init_pid, maps)
    except OSError as e:
        os.kill(init_pid, 9)  # it waits for "continue": it never runs the domain's init
        reap(init_pid)
        raise StartError(str(e)) from None
    procfs, covered, on_listener = setups[1]  # none: the kernel's /proc, no failure
    detached += [os.dup(fd) for fd in procfs]  # closed with the others (start_init keeps its)
    words = ["continue"] + (["sysinfo"] if on_listener else [])
    words += ["procfs", *covered] if covered else []
    try:
        return _continue(plan, sock, init_pid, detached, faults, timeout, setups[0],
                         " ".join(words), on_listener)  # fmt: skip
    finally:
        for fd in detached:
            os.close(fd)


def _continue(plan: Any, sock: sockets.Socket, init_pid: int, detached: list[int],
              faults: Faults, timeout: float, net_setup: NetSetup, word: str,
              on_listener: Callable[[int], None] | None) -> int:  # fmt: skip
    if plan.interfaces:
        try:
            net_setup(init_pid)
        except BaseException:
            os.kill(init_pid, 9)  # it waits for "continue": it never runs the domain's init
            reap(init_pid)
            raise
        faults.point("network")
    if detached:
        sockets.send_fds(sock, [word.encode() + b"\n"], detached)
    else:
        sock.sendall(word.encode() + b"\n")
    faults.point("continue")
    if on_listener is not None:
        _take_listener(sock, timeout, on_listener)
    line = _read(sock, timeout)  # EOF: init's exec closed its end, so init is running
    if line:
        reap(init_pid)
        raise StartError(line.removeprefix("error: "))
    return init_pid


def _take_listener(sock: sockets.Socket, timeout: float,
                   on_listener: Callable[[int], None]) -> None:  # fmt: skip
    """init's sysinfo listener (child._hand_over_sysinfo), if that is what it says
    next (else its error stays on the socket for _read)."""
    if not sockets.wait_readable([sock], timeout):
        return
    if sock.recv(9, sockets.MSG_PEEK) != b"listener\n":
        if sock.recv(14, sockets.MSG_PEEK) == b"listener none\n":
            sock.recv(14)
        return
    _, fds, _, _ = sockets.recv_fds(sock, 9, 1)
    if fds:
        on_listener(fds[0])


def reap(pid: int) -> None:
    """Wait for a child that has been (or is being) killed."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
