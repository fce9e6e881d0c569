"""Build the container's filesystem tree and pivot into it.

Runs in init, inside the new mount namespace, before pivot_root. The tree is the
container's own (its rootfs survives from one run to the next, and may be shared
with another running container), so every destination is resolved inside the new
root with openat2(RESOLVE_IN_ROOT) and mounted on through /proc/self/fd/N
(runtime/inroot.py): a symlink the container planted never leads a mount, a
mkdir or a new file out of its tree. Host paths (bind sources, the console pty,
the container's cgroup directories) are the administrator's and are used as given.
"""

from __future__ import annotations

import errno
import os
import stat

from nsvirt.driver.runtime import idmount, inroot
from nsvirt.driver.runtime import syscalls as sc
from nsvirt.driver.runtime.syscalls import SyscallError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

# statvfs flag bits → the mount flags a read-only remount must keep (in a user
# namespace, nosuid/nodev/noexec/atime flags of a mount are locked).
_KEEP_FLAGS = (
    (os.ST_NOSUID, sc.MS_NOSUID),
    (os.ST_NODEV, sc.MS_NODEV),
    (os.ST_NOEXEC, sc.MS_NOEXEC),
    (os.ST_NOATIME, sc.MS_NOATIME),
    (os.ST_NODIRATIME, sc.MS_NODIRATIME),
    (os.ST_RELATIME, sc.MS_RELATIME),
)
NOSUID_NODEV_NOEXEC = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC


def _resolved(root: int, dest: str, make: str = "") -> int:
    """An O_PATH fd of `dest` inside `root`; make="dir"/"file" creates it if missing."""
    try:
        if make == "dir":
            return inroot.make_dirs(root, dest)
        if make == "file":
            return inroot.make_file(root, dest)
        return inroot.open_in(root, dest)
    except OSError as e:
        what = f"cannot create mount point {dest}" if make else f"cannot open {dest}"
        raise SyscallError(what, e.errno or errno.EIO) from None


def _exists(root: int, dest: str) -> int | None:
    """An O_PATH fd of `dest` inside `root`, or None if nothing is there."""
    try:
        return inroot.open_in(root, dest)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise SyscallError(f"cannot open {dest}", e.errno or errno.EIO) from None


def _mount_on(root: int, dest: str, make: str, source: str | None, fstype: str | None,
              flags: int, data: str | None = None) -> None:  # fmt: skip
    fd = _resolved(root, dest, make)
    try:
        sc.mount(source, inroot.fd_path(fd), fstype, flags, data,
                 what=f"failed to mount {source or fstype} on {dest}")  # fmt: skip
    finally:
        os.close(fd)


def remount_readonly(root: int, dest: str) -> None:
    """Make the mount now at `dest` (inside `root`) read-only, keeping its locked flags."""
    fd = _resolved(root, dest)  # resolved again: the fd must name the new mount's root
    try:
        target = inroot.fd_path(fd)
        keep = sum(ms for st, ms in _KEEP_FLAGS if os.statvfs(target).f_flag & st)
        sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | keep,
                 what=f"failed to make {dest} read-only")  # fmt: skip
    finally:
        os.close(fd)


def bind(source: str, root: int, dest: str, readonly: bool = False,
         recursive: bool = True, detached: int = -1) -> None:  # fmt: skip
    """Bind the host path `source` on `dest` inside `root`, creating the mount point as a
    directory or a file to match the source; `detached`: the supervisor's copy of
    `source` (runtime/idmount.py, idmapped or not), moved there instead."""
    try:  # the copy's own kind: init may not be able to reach `source`
        mode = os.fstat(detached).st_mode if detached >= 0 else os.stat(source).st_mode
    except OSError as e:
        raise SyscallError(f"failed to mount {source} on {dest}", e.errno) from None
    make = "dir" if stat.S_ISDIR(mode) else "file"
    if detached >= 0:
        fd = _resolved(root, dest, make)
        try:
            idmount.move_into(detached, fd, f"failed to mount {source} on {dest}")
        finally:
            os.close(fd)
    else:
        flags = sc.MS_BIND | (sc.MS_REC if recursive else 0)
        _mount_on(root, dest, make, source, None, flags)
    if readonly:
        remount_readonly(root, dest)


def make_root_private() -> None:
    """Stop mount events propagating from this namespace back to the host's."""
    try:
        sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE, what="failed to make / private")
    except SyscallError as e:
        if e.errno == errno.EINVAL and not _root_is_a_mount_point():
            raise SyscallError(
                "failed to make / private: / is not a mount point, as in a chroot. "
                "Run nsvirt where / is a mount point: outside the chroot, or bind-mount "
                "the chroot's directory onto itself (mount --bind DIR DIR) and enter it "
                "with pivot_root instead of chroot",
                e.errno,
            ) from None
        raise


def _root_is_a_mount_point() -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == "/" for line in f)


def prepare_root(plan: Any, mountpoint: str, detached: int = -1) -> str:
    """Make every mount private, then bind the root tree (or move the supervisor's
    copy of it there); return the new root's path."""
    make_root_private()
    # read-only comes last: mount points are made first
    if detached >= 0:  # onto the mount point: the rootfs's own path may be out of reach
        if not stat.S_ISDIR(os.fstat(detached).st_mode):
            raise SyscallError(f"failed to mount {plan.root} on /", errno.ENOTDIR)
        fd = os.open(mountpoint, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            idmount.move_into(detached, fd, f"failed to mount {plan.root} on /")
        finally:
            os.close(fd)
        return mountpoint
    newroot = mountpoint if plan.root == "/" else plan.root
    try:
        is_dir = stat.S_ISDIR(os.stat(plan.root).st_mode)
    except OSError as e:
        raise SyscallError(f"failed to mount {plan.root} on /", e.errno) from None
    if not is_dir:
        raise SyscallError(f"failed to mount {plan.root} on /", errno.ENOTDIR)
    sc.mount(plan.root, newroot, None, sc.MS_BIND | sc.MS_REC,
             what=f"failed to mount {plan.root} on /")  # fmt: skip
    return newroot


def populate_dev(plan: Any, root: int, consoles: Sequence[str], userns: bool,
                 detached: list[int] | None = None) -> None:  # fmt: skip
    """Fill the fresh /dev tmpfs: device nodes, standard links, the console ptys.
    In a user namespace a host device's node is the supervisor's (on the tmpfs that
    is the next of `detached`: runtime/devnodes.py), a standard one the host's own,
    bound."""
    dev = _resolved(root, "/dev")  # the tmpfs just mounted there
    old_umask = os.umask(0)
    try:
        passed = [n for n in plan.dev_nodes if n.source] if userns else []
        if passed:
            bind_passed(root, passed, detached.pop(0) if detached else -1)
        for node in plan.dev_nodes:
            if node in passed:
                continue
            if userns:  # mknod is not allowed in a user namespace: bind the host's node
                bind(f"/dev/{node.name}", root, f"/dev/{node.name}", recursive=False)
            else:
                mknod_on(root, dev, node)
        for name, target in plan.dev_symlinks:
            os.symlink(target, name, dir_fd=dev)
    finally:
        os.umask(old_umask)
        os.close(dev)
    for i, tty in enumerate(consoles):
        if i == 0:
            bind(tty, root, "/dev/console", recursive=False)
        bind(tty, root, f"/dev/tty{i + 1}", recursive=False)


_HOLDER = "/dev/.nsvirt-nodes"


def bind_passed(root: int, nodes: Sequence[Any], holder: int) -> None:
    """Bind each node from the supervisor's tmpfs (mounted on /dev for the while)."""
    if holder < 0:
        raise SyscallError(f"no node was made for {nodes[0].source}", errno.EINVAL)
    point = _resolved(root, _HOLDER, "dir")
    try:
        idmount.move_into(holder, point, "cannot mount the host devices' nodes")
    finally:
        os.close(point)
    held = _resolved(root, _HOLDER)  # the tmpfs, now mounted there
    try:
        for i, node in enumerate(nodes):
            bind(f"{inroot.fd_path(held)}/{i}", root, f"/dev/{node.name}", recursive=False)
        sc.umount2(inroot.fd_path(held), sc.MNT_DETACH)
    finally:
        os.close(held)
    dev = _resolved(root, "/dev")
    try:
        os.rmdir(_HOLDER.rsplit("/", 1)[1], dir_fd=dev)
    finally:
        os.close(dev)


def mknod_on(root: int, dev: int, node: Any) -> None:
    """A node on the fresh /dev (in a directory of its own, such as net/tun)."""
    parent, _, name = node.name.rpartition("/")
    where = _resolved(root, f"/dev/{parent}", "dir") if parent else dev
    kind = stat.S_IFCHR if node.type == "c" else stat.S_IFBLK
    try:
        os.mknod(name, node.mode | kind, os.makedev(node.major, node.minor), dir_fd=where)
    except OSError as e:
        raise SyscallError(f"Unable to create device /dev/{node.name}", e.errno) from None
    finally:
        if where != dev:
            os.close(where)


def mount_cgroups(root: int, dest: str, cgroup_dirs: Mapping[str, str]) -> None:
    """/sys/fs/cgroup: the container's own cgroup, read-only (v2: its leaf; v1: a tmpfs
    holding its directory of every hierarchy)."""
    if "unified" in cgroup_dirs:
        bind(cgroup_dirs["unified"], root, dest, readonly=True, recursive=False)
        return
    _mount_on(root, dest, "", "tmpfs", "tmpfs", NOSUID_NODEV_NOEXEC, "mode=755")
    for ctrl, host_dir in sorted(cgroup_dirs.items()):
        bind(host_dir, root, f"{dest}/{ctrl}", readonly=True, recursive=False)
    remount_readonly(root, dest)


def apply_mount(op: Any, root: int, plan: Any, consoles: Sequence[str],
                cgroup_dirs: Mapping[str, str], userns: bool,
                detached: list[int] | None = None) -> None:  # fmt: skip
    """One MountOp of the plan, its destination resolved inside `root`; with
    detached_mounts a bind takes the next of `detached` (made in the plan's order)."""
    dest = op.dest
    if op.kind == "proc":
        _mount_on(root, dest, "dir", "proc", "proc", NOSUID_NODEV_NOEXEC)
    elif op.kind == "sysfs":
        try:
            _mount_on(root, dest, "dir", "sysfs", "sysfs", NOSUID_NODEV_NOEXEC | sc.MS_RDONLY)
        except SyscallError as e:
            if e.errno == errno.EBUSY:  # the host's sysfs is already there (shared root)
                remount_readonly(root, dest)
            elif e.errno == errno.EPERM:  # needs a netns owned by the container's userns
                bind("/sys", root, dest, readonly=True)
            else:
                raise
    elif op.kind == "cgroups":
        fd = _exists(root, dest)
        if fd is not None:
            directory = inroot.is_dir(fd)
            os.close(fd)
            if directory:
                mount_cgroups(root, dest, cgroup_dirs)
    elif op.kind == "tmpfs":
        flags = sc.MS_NOSUID if dest == "/dev" else sc.MS_NOSUID | sc.MS_NODEV
        flags |= sc.MS_RDONLY if op.readonly else 0
        _mount_on(root, dest, "dir", "tmpfs", "tmpfs", flags, op.options)
        if dest == "/dev":
            populate_dev(plan, root, consoles, userns, detached)
    elif op.kind == "devpts":
        _mount_on(root, dest, "dir", "devpts", "devpts", sc.MS_NOSUID | sc.MS_NOEXEC, op.options)
    elif op.kind == "mqueue":
        _mount_on(root, dest, "dir", "mqueue", "mqueue", NOSUID_NODEV_NOEXEC)
    elif op.kind == "bind":
        fd = detached.pop(0) if plan.detached_mounts and detached is not None else -1
        bind(op.source or "", root, dest, readonly=op.readonly, detached=fd)
    elif op.kind == "block":  # the supervisor mounted it (runtime/fsmount.py), read-only too
        if not detached:
            raise SyscallError(f"failed to mount {op.source} on {dest}: no mount was made",
                               errno.EINVAL)  # fmt: skip
        fd = _resolved(root, dest, "dir")
        try:
            idmount.move_into(detached.pop(0), fd, f"failed to mount {op.source} on {dest}")
        finally:
            os.close(fd)
    elif op.kind == "mask":
        _mask(root, dest)
    elif op.kind == "readonly":
        fd = _exists(root, dest)
        if fd is not None:
            try:
                sc.mount(inroot.fd_path(fd), inroot.fd_path(fd), None, sc.MS_BIND | sc.MS_REC,
                         what=f"failed to bind {dest} on itself")  # fmt: skip
            finally:
                os.close(fd)
            remount_readonly(root, dest)
    else:
        raise ValueError(f"unknown mount kind {op.kind!r}")


def _mask(root: int, dest: str) -> None:
    """Hide `dest`: an empty read-only tmpfs on a directory, /dev/null on a file."""
    fd = _exists(root, dest)
    if fd is None:
        return
    try:
        target = inroot.fd_path(fd)
        if inroot.is_dir(fd):
            sc.mount("tmpfs", target, "tmpfs", sc.MS_RDONLY | NOSUID_NODEV_NOEXEC, "size=0",
                     what=f"failed to mask {dest}")  # fmt: skip
            return
        null = _resolved(root, "/dev/null")
        try:
            sc.mount(inroot.fd_path(null), target, None, sc.MS_BIND,
                     what=f"failed to mask {dest}")  # fmt: skip
        finally:
            os.close(null)
    finally:
        os.close(fd)


def build_tree(plan: Any, mountpoint: str, consoles: Sequence[str],
               cgroup_dirs: Mapping[str, str], detached: Sequence[int] = (),
               procfs: Sequence[tuple[int, str]] = ()) -> str:  # fmt: skip
    """Everything before pivot_root; returns the new root. `detached`: the
    supervisor's mounts (supervisor/startup.py's mount_fds): the root's first (a
    block or image root; with detached_mounts a copy, unless it is the host's), then
    one per bind with detached_mounts and one per block filesystem, in plan order.
    `procfs`: (fd, path) of the /proc server's files, put over the kernel's."""
    userns = "user" in plan.namespaces
    fds = list(detached)
    detached_root = plan.root_mount is not None or (plan.detached_mounts and plan.root != "/")
    root_fd = fds.pop(0) if detached_root else -1
    newroot = prepare_root(plan, mountpoint, root_fd)
    root = inroot.open_root(newroot)
    try:
        for op in plan.mounts:
            apply_mount(op, root, plan, consoles, cgroup_dirs, userns, fds)
        for fd, dest in procfs:
            cover(root, dest, fd)
        if plan.root_readonly:
            remount_readonly(root, "/")
    finally:
        os.close(root)
    return newroot


def cover(root: int, dest: str, fd: int) -> None:
    """Put the detached single-file mount `fd` over the file `dest` (if there is one)."""
    target = _exists(root, dest)
    if target is None:
        return
    try:
        idmount.move_into(fd, target, f"failed to mount the /proc server's file on {dest}")
    finally:
        os.close(target)


def pivot_into(root: str) -> None:
    """Make `root` the process's / and detach the old root entirely."""
    os.chdir(root)
    sc.pivot_root(".", ".")  # the old root ends up stacked under the new one
    sc.umount2(".", sc.MNT_DETACH)
    os.chdir("/")
