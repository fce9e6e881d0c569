"""Open paths inside a container's tree without following its symlinks out of it.

Whatever the host side opens, creates or mounts on inside a container's tree is
resolved with openat2(2) and RESOLVE_IN_ROOT: an absolute symlink or `..` stops
at the container's root, as it would for a process inside (a container that
made `/dev/initctl -> /etc/shadow` gets its own /etc/shadow, never the host's).
Mounts then go onto the resolved object through /proc/self/fd/N, so nothing is
looked up by path again between the check and the use.
"""

from __future__ import annotations

import ctypes
import os
import stat

from nsvirt.driver.runtime import syscalls as sc
from nsvirt.driver.runtime.syscalls import SyscallError

SYS_OPENAT2 = 437  # one number on every architecture (added after the tables were unified)
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
AT_FDCWD = -100
# /proc/PID/fd/N and friends are "magic links" that jump anywhere: never follow them
IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    """openat2(2); raises OSError with errno (and the path as filename)."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    fd = sc.libc.syscall(
        ctypes.c_long(SYS_OPENAT2),
        ctypes.c_int(dirfd),
        os.fsencode(path),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return fd


def open_root(path: str) -> int:
    """An O_PATH fd on a directory that serves as a root for the functions below."""
    return os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def open_in(root: int, path: str, flags: int = os.O_PATH) -> int:
    """Open `path` (absolute or relative, as seen from inside) scoped to `root`."""
    return openat2(root, path.lstrip("/") or ".", flags, resolve=IN_ROOT)


def make_dirs(root: int, path: str, mode: int = 0o755) -> int:
    """Create the directory `path` inside `root` and any missing parents, each one made
    with mkdirat(2) in its resolved parent; return an O_PATH fd of it."""
    try:
        return open_in(root, path, os.O_PATH | os.O_DIRECTORY)
    except FileNotFoundError:
        pass
    parent, name = os.path.split(path.rstrip("/"))
    parent_fd = make_dirs(root, parent or "/", mode)
    try:
        os.mkdir(name, mode, dir_fd=parent_fd)  # a dangling symlink here: EEXIST, not followed
    except FileExistsError:
        pass
    finally:
        os.close(parent_fd)
    return open_in(root, path, os.O_PATH | os.O_DIRECTORY)


def make_file(root: int, path: str, mode: int = 0o644) -> int:
    """Open `path` inside `root`, creating an empty file (and parents) if nothing is
    there; return an O_PATH fd of it."""
    try:
        return open_in(root, path)
    except FileNotFoundError:
        pass
    parent, name = os.path.split(path.rstrip("/"))
    parent_fd = make_dirs(root, parent or "/")
    try:
        # O_EXCL: a dangling symlink is refused (EEXIST), never followed to create its target
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode,
                     dir_fd=parent_fd)  # fmt: skip
        os.close(fd)
    except FileExistsError:
        pass
    finally:
        os.close(parent_fd)
    return open_in(root, path)


def fd_path(fd: int) -> str:
    """The path through which the kernel reaches exactly the object `fd` refers to."""
    return f"/proc/self/fd/{fd}"


def is_dir(fd: int) -> bool:
    return stat.S_ISDIR(os.fstat(fd).st_mode)


def reopen_fifo_for_writing(root: int, path: str) -> int:
    """Open the FIFO at `path` inside `root` for a non-blocking write; refuse anything
    that is not a FIFO (a regular file there would be overwritten)."""
    fd = open_in(root, path)
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            raise SyscallError(f"{path} is not a FIFO", 19)  # ENODEV
        # reopening an O_PATH fd through /proc/self/fd opens that very inode
        return os.open(fd_path(fd), os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    finally:
        os.close(fd)
