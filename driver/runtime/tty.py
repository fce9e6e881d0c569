"""Terminals: the console ptys the supervisor opens, init's controlling tty."""

from __future__ import annotations

import fcntl
import os
import struct
import sys
import termios


def open_console_pty(owner: tuple[int, int] | None) -> tuple[int, int, str]:
    """A pty for a container console: (master, slave, slave's path). The master is
    non-blocking (the supervisor never waits on the container); `owner` (host uid,
    gid) lets the root of a user namespace open the slave."""
    master, slave = os.openpty()
    os.set_blocking(master, False)
    if owner is not None:
        os.fchown(slave, *owner)
    return master, slave, os.ttyname(slave)


def set_window_size(fd: int, rows: int, cols: int) -> None:
    """TIOCSWINSZ on a pty: the container's programs see the client's terminal size."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def become_controlling_tty(path: str) -> None:
    """Start a session with `path` as its controlling terminal, on fds 0, 1 and 2."""
    os.setsid()
    fd = os.open(path, os.O_RDWR)
    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(fd, target)
    if fd > 2:
        os.close(fd)
    sys.stdin = sys.stdout = sys.stderr = None  # type: ignore[assignment]
