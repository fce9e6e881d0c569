"""inotify(7) through libc (the standard library has none): a watch whose fd turns
readable when a file, or something in a directory, changes."""

from __future__ import annotations

import ctypes
import os

IN_MODIFY = 0x002
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

_libc = ctypes.CDLL(None, use_errno=True)


def watch(path: str, mask: int = IN_MODIFY | IN_CREATE | IN_MOVED_FROM | IN_MOVED_TO) -> int:
    """An inotify fd watching `path`, a directory or a file (non-blocking, close-on-exec)."""
    fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"inotify_init1: {os.strerror(err)}")
    if _libc.inotify_add_watch(fd, os.fsencode(path), mask) < 0:
        err = ctypes.get_errno()
        os.close(fd)
        raise OSError(err, f"inotify_add_watch {path}: {os.strerror(err)}")
    return fd


def drain(fd: int) -> None:
    """Read what the kernel queued (the events themselves are not needed: a change
    is the news, and the reader looks at the files)."""
    try:
        while os.read(fd, 65536):
            pass
    except BlockingIOError:
        pass
