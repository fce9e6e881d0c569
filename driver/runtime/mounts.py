"""Build the container's filesystem tree and pivot into it.

Runs in init, inside the new mount namespace, before pivot_root: every
destination is joined onto the new root, and host paths (bind sources, the
console pty, the container's cgroup directories) are still reachable.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from nsvirt.driver.runtime import syscalls as sc
from nsvirt.driver.runtime.syscalls import SyscallError

if TYPE_CHECKING:  # the supervisor reads plans as plain data
    from nsvirt.driver.plan import LaunchPlan, MountOp

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


def _inside(root: str, dest: str) -> str:
    return os.path.join(root, dest.lstrip("/")) if root != "/" else dest


def _mkdirs(path: str) -> None:
    try:
        os.makedirs(path, mode=0o755, exist_ok=True)
    except OSError as e:
        raise SyscallError(f"cannot create mount point {path}", e.errno or errno.EIO) from None


def _touch(path: str) -> None:
    _mkdirs(os.path.dirname(path))
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
    except OSError as e:
        raise SyscallError(f"cannot create mount point {path}", e.errno or errno.EIO) from None


def remount_readonly(target: str) -> None:
    flags = os.statvfs(target).f_flag
    keep = sum(ms for st, ms in _KEEP_FLAGS if flags & st)
    sc.mount(
        None,
        target,
        None,
        sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | keep,
        what=f"failed to make {target} read-only",
    )


def bind(source: str, target: str, readonly: bool = False, recursive: bool = True) -> None:
    """Bind `source` on `target`, creating the target as a directory or file to match."""
    try:
        is_dir = stat.S_ISDIR(os.stat(source).st_mode)
    except OSError as e:
        raise SyscallError(f"failed to mount {source} on {target}", e.errno) from None
    if is_dir:
        _mkdirs(target)
    elif not os.path.exists(target):
        _touch(target)
    sc.mount(
        source,
        target,
        None,
        sc.MS_BIND | (sc.MS_REC if recursive else 0),
        what=f"failed to mount {source} on {target}",
    )
    if readonly:
        remount_readonly(target)


def prepare_root(plan: LaunchPlan, mountpoint: str) -> str:
    """Make every mount private, then bind the root tree; return the new root's path."""
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE, what="failed to make / private")
    newroot = mountpoint if plan.root == "/" else plan.root
    try:
        bind(plan.root, newroot)  # read-only comes last: mount points are made first
    except SyscallError as e:
        if e.errno == errno.ENOENT:
            raise SyscallError(f"failed to mount {plan.root} on /", e.errno) from None
        raise
    return newroot


def populate_dev(plan: LaunchPlan, dev: str, consoles: Sequence[str], userns: bool) -> None:
    """Fill the fresh /dev tmpfs: device nodes, standard links, the console ptys."""
    old_umask = os.umask(0)
    try:
        for node in plan.dev_nodes:
            path = os.path.join(dev, node.name)
            if userns:  # mknod is not allowed in a user namespace: bind the host's node
                bind(f"/dev/{node.name}", path, recursive=False)
            else:
                kind = stat.S_IFCHR if node.type == "c" else stat.S_IFBLK
                os.mknod(path, node.mode | kind, os.makedev(node.major, node.minor))
        for name, target in plan.dev_symlinks:
            os.symlink(target, os.path.join(dev, name))
    finally:
        os.umask(old_umask)
    for i, tty in enumerate(consoles):
        if i == 0:
            bind(tty, os.path.join(dev, "console"), recursive=False)
        bind(tty, os.path.join(dev, f"tty{i + 1}"), recursive=False)


def mount_cgroups(target: str, cgroup_dirs: Mapping[str, str]) -> None:
    """/sys/fs/cgroup: the container's own cgroup, read-only (v2: its leaf; v1: a tmpfs
    holding its directory of every hierarchy)."""
    if "unified" in cgroup_dirs:
        bind(cgroup_dirs["unified"], target, readonly=True, recursive=False)
        return
    sc.mount(
        "tmpfs",
        target,
        "tmpfs",
        sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC,
        "mode=755",
        what=f"failed to mount tmpfs on {target}",
    )
    for ctrl, host_dir in sorted(cgroup_dirs.items()):
        bind(host_dir, os.path.join(target, ctrl), readonly=True, recursive=False)
    remount_readonly(target)


def apply_mount(
    op: MountOp,
    root: str,
    plan: LaunchPlan,
    consoles: Sequence[str],
    cgroup_dirs: Mapping[str, str],
    userns: bool,
) -> None:
    target = _inside(root, op.dest)
    nosuid_nodev_noexec = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
    if op.kind == "proc":
        _mkdirs(target)
        sc.mount("proc", target, "proc", nosuid_nodev_noexec)
    elif op.kind == "sysfs":
        _mkdirs(target)
        try:
            sc.mount("sysfs", target, "sysfs", nosuid_nodev_noexec | sc.MS_RDONLY)
        except SyscallError as e:
            if e.errno == errno.EBUSY:  # the host's sysfs is already there (shared root)
                remount_readonly(target)
            elif e.errno == errno.EPERM:  # needs a netns owned by the container's userns
                bind("/sys", target, readonly=True)
            else:
                raise
    elif op.kind == "cgroups":
        if os.path.isdir(target):
            mount_cgroups(target, cgroup_dirs)
    elif op.kind == "tmpfs":
        _mkdirs(target)
        flags = sc.MS_NOSUID if op.dest == "/dev" else sc.MS_NOSUID | sc.MS_NODEV
        sc.mount("tmpfs", target, "tmpfs", flags | (sc.MS_RDONLY if op.readonly else 0), op.options)
        if op.dest == "/dev":
            populate_dev(plan, target, consoles, userns)
    elif op.kind == "devpts":
        _mkdirs(target)
        sc.mount("devpts", target, "devpts", sc.MS_NOSUID | sc.MS_NOEXEC, op.options)
    elif op.kind == "mqueue":
        _mkdirs(target)
        sc.mount("mqueue", target, "mqueue", nosuid_nodev_noexec)
    elif op.kind == "bind":
        bind(op.source or "", target, readonly=op.readonly)
    elif op.kind == "mask":
        if os.path.isdir(target):
            sc.mount("tmpfs", target, "tmpfs", sc.MS_RDONLY | nosuid_nodev_noexec, "size=0")
        elif os.path.exists(target):
            bind(_inside(root, "/dev/null"), target, recursive=False)
    elif op.kind == "readonly":
        if os.path.exists(target):
            bind(target, target, readonly=True)
    else:
        raise ValueError(f"unknown mount kind {op.kind!r}")


def build_tree(
    plan: LaunchPlan, mountpoint: str, consoles: Sequence[str], cgroup_dirs: Mapping[str, str]
) -> str:
    """Everything before pivot_root; returns the new root."""
    userns = "user" in plan.namespaces
    root = prepare_root(plan, mountpoint)
    for op in plan.mounts:
        apply_mount(op, root, plan, consoles, cgroup_dirs, userns)
    if plan.root_readonly:
        remount_readonly(root)
    return root


def pivot_into(root: str) -> None:
    """Make `root` the process's / and detach the old root entirely."""
    os.chdir(root)
    sc.pivot_root(".", ".")  # the old root ends up stacked under the new one
    sc.umount2(".", sc.MNT_DETACH)
    os.chdir("/")
