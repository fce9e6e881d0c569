"""Unix sockets on the standard library's C module alone.

`import socket` costs ~8 ms here (it brings in enum, selectors, collections and
array), and every start pays it twice: in the one-shot nsvirsh and in the
supervisor it forks. This is the part of socket.py nsvirt uses: a socket that is
a context manager and accepts sockets like itself, a socketpair of them, and
passing fds (SCM_RIGHTS); and waiting for fds to be readable, with poll(2).
"""

from __future__ import annotations

import _socket
import select
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

AF_INET = _socket.AF_INET
AF_INET6 = _socket.AF_INET6
AF_UNIX = _socket.AF_UNIX
SOCK_STREAM = _socket.SOCK_STREAM
SOCK_DGRAM = _socket.SOCK_DGRAM
SOCK_CLOEXEC = _socket.SOCK_CLOEXEC
MSG_PEEK = _socket.MSG_PEEK
SOL_SOCKET = _socket.SOL_SOCKET
SO_PEERCRED = _socket.SO_PEERCRED
SCM_RIGHTS = _socket.SCM_RIGHTS

close = _socket.close  # an fd, as socket.close
sethostname = _socket.sethostname

_FD = struct.Struct("i")


class Socket(_socket.socket):
    """socket.socket's conveniences nsvirt relies on: `with`, and accept()."""

    __slots__ = ()

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def accept(self) -> tuple[Socket, object]:
        fd, address = self._accept()  # accept4(SOCK_CLOEXEC): a blocking socket
        return Socket(fileno=fd), address


def socketpair() -> tuple[Socket, Socket]:
    """A connected pair of unix stream sockets, both close-on-exec."""
    a, b = _socket.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC)
    return Socket(fileno=a.detach()), Socket(fileno=b.detach())


def send_fds(sock: _socket.socket, buffers: list[bytes], fds: list[int]) -> int:
    """socket.send_fds: the buffers and the fds in one message."""
    data = struct.pack(f"{len(fds)}i", *fds)
    return sock.sendmsg(buffers, [(SOL_SOCKET, SCM_RIGHTS, data)])


def recv_fds(sock: _socket.socket, bufsize: int, maxfds: int,
             flags: int = 0) -> tuple[bytes, list[int], int, object]:  # fmt: skip
    """socket.recv_fds: (data, fds, message flags, address)."""
    data, ancillary, msg_flags, address = sock.recvmsg(
        bufsize, _socket.CMSG_LEN(maxfds * _FD.size), flags
    )
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == SOL_SOCKET and kind == SCM_RIGHTS:
            whole = len(payload) - len(payload) % _FD.size
            fds += struct.unpack(f"{whole // _FD.size}i", payload[:whole])
    return data, fds, msg_flags, address


def wait_readable(files: Sequence[Any], timeout: float | None) -> list[Any]:
    """Those of `files` (fds, or objects with fileno()) that are readable or at EOF,
    waiting at most `timeout` seconds (None: as long as it takes). poll(2), not
    select(2): select refuses fds from 1024 on, which a caller with many files open
    (a program using the API) has."""
    poller = select.poll()
    for f in files:
        poller.register(f, select.POLLIN)
    ready = {fd for fd, _ in poller.poll(None if timeout is None else timeout * 1000)}
    return [f for f in files if (f if isinstance(f, int) else f.fileno()) in ready]
