"""Idmapped mounts: a host directory shown inside a user namespace with its files'
owners as they are on the host (mount_setattr(MOUNT_ATTR_IDMAP), Linux 5.12+).

Only a process with CAP_SYS_ADMIN over the filesystem (host root) may idmap a
mount, and only a detached one: the supervisor makes each as a detached copy
(open_tree(OPEN_TREE_CLONE)) idmapped to the container's user namespace, and
passes the fds to init, which moves them into place (move_mount) in its own
mount namespace. A file root inside creates is owned by host uid 0 on disk.
Copies made so without an idmapping serve a user namespace too: init need not
reach the host paths (a rootfs under a private directory) itself.
"""

from __future__ import annotations

import ctypes
import errno
import os

from nsvirt.driver.runtime import syscalls as sc

# the same numbers on every architecture (the unified table from 424 on)
_SYS_OPEN_TREE, _SYS_MOVE_MOUNT, _SYS_MOUNT_SETATTR = 428, 429, 442
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40
MOUNT_ATTR_IDMAP = 0x00100000


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def detached_copy(source: str, what: str, userns_fd: int = -1, recursive: bool = True) -> int:
    """A detached copy of the mount tree at `source`, idmapped to the user namespace
    `userns_fd` if one is given; the caller owns the returned fd. `what` names the
    mount in errors."""
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (AT_RECURSIVE if recursive else 0)
    fd = sc.libc.syscall(
        ctypes.c_long(_SYS_OPEN_TREE),
        ctypes.c_int(AT_FDCWD),
        os.fsencode(source),
        ctypes.c_uint(flags),
    )
    if fd < 0:
        raise sc.SyscallError(what, ctypes.get_errno())
    if userns_fd < 0:
        return fd
    try:
        set_idmap(fd, userns_fd, source, recursive)
    except BaseException:
        os.close(fd)
        raise
    return fd


def set_idmap(fd: int, userns_fd: int, source: str, recursive: bool = True) -> None:
    """Idmap the detached mount `fd` to the user namespace `userns_fd` (raises
    IdmapUnsupported, naming `source`)."""
    attr = _MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
    at = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    ret = sc.libc.syscall(
        ctypes.c_long(_SYS_MOUNT_SETATTR),
        ctypes.c_int(fd),
        b"",
        ctypes.c_uint(at),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    if ret < 0:
        raise IdmapUnsupported(source, ctypes.get_errno())


def move_into(fd: int, target_fd: int, what: str) -> None:
    """Attach the detached mount `fd` on the O_PATH fd `target_fd`."""
    flags = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH
    ret = sc.libc.syscall(
        ctypes.c_long(_SYS_MOVE_MOUNT),
        ctypes.c_int(fd),
        b"",
        ctypes.c_int(target_fd),
        b"",
        ctypes.c_uint(flags),
    )
    if ret < 0:
        raise sc.SyscallError(what, ctypes.get_errno())


class IdmapUnsupported(sc.SyscallError):
    """The filesystem (or one mounted below the source) cannot be idmapped."""

    def __init__(self, source: str, err: int) -> None:
        super().__init__(f"cannot show {source} through an idmapped mount", err)
        self.source = source
        self.fstypes = filesystems_under(source)

    def __str__(self) -> str:
        kinds = ", ".join(self.fstypes) or "its filesystem"
        reason = self.strerror
        if self.errno in (errno.EINVAL, errno.EOPNOTSUPP):
            reason = f"{kinds} on this kernel ({os.uname().release}) cannot be idmapped"
        return (
            f"{self.what}: {reason}. Put it on a filesystem that can (ext4, xfs, btrfs; "
            "tmpfs from Linux 6.3), give the domain an <idmap> whose range owns its files, "
            "or opt out with <nsvirt:privileged/> in <metadata><nsvirt:config>"
        )


def filesystems_under(path: str) -> list[str]:
    """The filesystem types of the mount holding `path` and of those below it."""
    real = os.path.realpath(path).rstrip("/") or "/"
    holder, kinds = ("", ""), set()
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    for line in lines:
        left, _, right = line.partition(" - ")
        point = left.split()[4].replace("\\040", " ")
        fstype = right.split()[0]
        if point == real or real.startswith(point.rstrip("/") + "/") or point == "/":
            if len(point) >= len(holder[0]):
                holder = (point, fstype)
        elif point.startswith(real + "/"):
            kinds.add(fstype)
    return sorted({holder[1], *kinds} - {""})


def probe(source: str) -> str | None:
    """Can `source` be shown through an idmapped mount here? None if so, else why not.
    Needs root: a throw-away user namespace (one id mapped) to idmap a copy to."""
    ready_r, ready_w = os.pipe()
    hold_r, hold_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # holds a new user namespace until `hold` closes
        try:
            os.close(ready_r)
            os.close(hold_w)
            sc.unshare(sc.CLONE_NEWUSER)
            os.write(ready_w, b"u")
            os.read(hold_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(hold_r)
    try:
        if os.read(ready_r, 1) != b"u":
            return "cannot make a user namespace to try an idmapped mount"
        for kind in ("uid_map", "gid_map"):  # an idmapping needs both
            with open(f"/proc/{pid}/{kind}", "w") as f:
                f.write("0 1879048192 1\n")
        userns = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.close(detached_copy(source, f"cannot idmap {source}", userns))
        finally:
            os.close(userns)
        return None
    except OSError as e:
        return str(e)
    finally:
        os.close(ready_r)
        os.close(hold_w)
        os.waitpid(pid, 0)


def reachable_by_others(path: str) -> bool:
    """Can a host user who is neither owner nor group pass down to `path` (o+x on it and
    on every directory above)?"""
    real = os.path.realpath(path)
    parts = real.strip("/").split("/") if real != "/" else []
    for n in range(len(parts) + 1):
        step = "/" + "/".join(parts[:n])
        try:
            if not os.stat(step).st_mode & 0o001:
                return False
        except OSError:
            return False
    return True
