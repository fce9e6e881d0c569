"""Device nodes a user namespace's init cannot make: the host devices a domain passes
in, for a default (unprivileged) domain.

mknod needs CAP_MKNOD over the host, and the host's own node (root:disk 0660, say)
is shut to a root inside that is an unprivileged host uid. So the supervisor, as
host root, makes the nodes on a small tmpfs of its own (detached, never seen on
the host), owned by the container's root, with the host nodes' modes, and hands
it to init, which mounts it on its /dev for a moment and binds each node into
place (runtime/mounts.py's populate_dev). The tmpfs is made in the host's user
namespace, so its nodes open (the device cgroup decides which); it lives as
long as those binds.
"""

from __future__ import annotations

import os
import stat

from nsvirt.driver.runtime import enter, fsmount, inroot, mounts
from nsvirt.driver.runtime import syscalls as sc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any


def holder(nodes: Sequence[Any], uid: int, gid: int) -> int:
    """A detached tmpfs holding a node per DevNode (named 0, 1, … in their order) of
    its numbers and mode, owned by uid:gid; the caller owns the returned fd."""
    fd = fsmount.new_tmpfs("the host devices' nodes", uid, gid)
    umask = os.umask(0)  # the host node's mode, as it is
    try:
        for i, node in enumerate(nodes):
            kind = stat.S_IFCHR if node.type == "c" else stat.S_IFBLK
            os.mknod(str(i), node.mode | kind, os.makedev(node.major, node.minor), dir_fd=fd)
            os.chown(str(i), uid, gid, dir_fd=fd, follow_symlinks=False)
    except BaseException:
        os.close(fd)
        raise
    finally:
        os.umask(umask)
    return fd


def add_in(init_pid: int, nodes: Sequence[Any]) -> None:
    """Make `nodes` in the /dev of a running container (attach-device): in a helper
    child inside its namespaces, resolved in its root; in a user namespace bound from
    a tmpfs of ours (owned by its root), else mknod. Raises OSError."""
    userns, owner = _userns_of(init_pid)
    held = holder(nodes, *owner) if userns else -1
    try:
        keep = (held,) if held >= 0 else ()
        enter.inside(init_pid, lambda root: _add(root, nodes, held), keep)
    finally:
        if held >= 0:
            os.close(held)


def remove_in(init_pid: int, names: Sequence[str]) -> None:
    """Take the nodes /dev/<name> out of a running container (detach-device)."""
    enter.inside(init_pid, lambda root: _remove(root, names))


def _add(root: int, nodes: Sequence[Any], held: int) -> None:
    for node in nodes:
        try:
            os.close(inroot.open_in(root, f"/dev/{node.name}"))
        except FileNotFoundError:
            continue
        raise FileExistsError(f"host device already exists: /dev/{node.name}")
    if held >= 0:
        mounts.bind_passed(root, nodes, held)
        return
    dev = inroot.open_in(root, "/dev")
    try:
        for node in nodes:
            mounts.mknod_on(root, dev, node)
    finally:
        os.close(dev)


def _remove(root: int, names: Sequence[str]) -> None:
    for name in names:
        parent, _, base = f"/dev/{name}".rpartition("/")
        try:
            fd = inroot.open_in(root, f"/dev/{name}")
        except FileNotFoundError:
            continue
        try:
            sc.umount2(inroot.fd_path(fd), sc.MNT_DETACH)  # a bound node (user namespace)
        except OSError:
            pass  # a node made with mknod: not a mount
        finally:
            os.close(fd)
        where = inroot.open_in(root, parent)
        try:
            os.unlink(base, dir_fd=where)
        finally:
            os.close(where)


def _userns_of(pid: int) -> tuple[bool, tuple[int, int]]:
    """Is `pid` in a user namespace of its own, and the host ids of its root."""
    if os.readlink(f"/proc/{pid}/ns/user") == os.readlink("/proc/self/ns/user"):
        return False, (0, 0)
    ids = []
    for kind in ("uid_map", "gid_map"):
        with open(f"/proc/{pid}/{kind}") as f:
            ranges = [tuple(int(x) for x in line.split()) for line in f if line.strip()]
        root = [host for inside, host, count in ranges if inside <= 0 < inside + count]
        if not root:
            raise OSError(f"the container's root has no host id in its {kind}")
        ids.append(root[0] - next(inside for inside, _, _ in ranges if inside <= 0))
    return True, (ids[0], ids[1])
