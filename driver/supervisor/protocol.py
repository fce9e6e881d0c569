"""The supervisor's control protocol: versioned JSON lines over a unix socket.

Request:  {"v": 1, "op": OP, "deadline": MONOTONIC?, ...} with OP one of
          state | destroy | shutdown | reboot | suspend | resume | console |
          spawn | autodestroy | interfaces (supervisor/requests.py: the handler table)
Reply:    {"v": 1, "ok": true, ...}  or  {"v": 1, "ok": false, "error": "..."}

A request that carries a deadline (time.monotonic(), which is system-wide) and
arrives after it is dropped with an error reply: a supervisor that was stopped
never acts on a request its client has given up on.

After a successful "console" reply the connection carries the console:
supervisor → client raw output bytes; client → supervisor frames of a type
byte, a 4-byte big-endian length and a payload (b"d": input bytes,
b"w": window size as {"rows": R, "cols": C}). Unknown ops get an error reply,
so a newer client learns what an older supervisor cannot do.

The start handshake (launcher ↔ new supervisor) is lines on a socketpair:
`hello {"pid": P, "start": T}`, `go`, then `running {...}` or `error: reason`.
"""

from __future__ import annotations

import os
import struct

from nsvirt.driver.runtime import sockets
from nsvirt.driver.state import jsonlite
from nsvirt.driver.supervisor import wire
from nsvirt.driver.supervisor.wire import MAX_LINE, VERSION  # one home: the light side

TYPE_CHECKING = False
if TYPE_CHECKING:
    from os import PathLike

FRAME_DATA = b"d"
FRAME_WINSIZE = b"w"
_HEADER = struct.Struct(">cI")


class ProtocolError(Exception):
    pass


class SupervisorGone(ProtocolError):
    """The supervisor closed the connection without a reply (it is stopping)."""


def encode(msg: dict) -> bytes:
    return jsonlite.dumps({"v": VERSION, **msg}).encode() + b"\n"


def decode(line: bytes) -> dict:
    """A message line as a dict (wire.decode's check); ProtocolError if it is not one."""
    try:
        return wire.decode(line)
    except wire.WireError as e:
        raise ProtocolError(str(e)) from None


def read_line(sock: sockets.Socket, timeout: float | None) -> bytes:
    """Read one newline-terminated line (b"" on EOF), waiting at most `timeout`.

    Peeks first, then takes exactly the line: what follows it on the socket (console
    output after a reply) stays there for the next reader."""
    buf = bytearray()
    while not buf.endswith(b"\n"):
        if timeout is not None and not sockets.wait_readable([sock], timeout):
            raise TimeoutError("no reply from the supervisor")
        peeked = sock.recv(4096, sockets.MSG_PEEK)
        if not peeked:
            return bytes(buf)
        end = peeked.find(b"\n")
        buf += sock.recv(end + 1 if end >= 0 else len(peeked))
        if len(buf) > MAX_LINE:
            raise ProtocolError("line too long")
    return bytes(buf)


def frame(kind: bytes, payload: bytes) -> bytes:
    return _HEADER.pack(kind, len(payload)) + payload


def split_frames(buf: bytearray) -> list[tuple[bytes, bytes]]:
    """Take the complete frames off the front of `buf`."""
    out = []
    while len(buf) >= _HEADER.size:
        kind, length = _HEADER.unpack_from(buf)
        if length > MAX_LINE:
            raise ProtocolError("frame too long")
        if len(buf) < _HEADER.size + length:
            break
        out.append((kind, bytes(buf[_HEADER.size : _HEADER.size + length])))
        del buf[: _HEADER.size + length]
    return out


def encode_winsize(rows: int, cols: int) -> bytes:
    return jsonlite.dumps({"rows": rows, "cols": cols}).encode()


def decode_winsize(payload: bytes) -> tuple[int, int]:
    """(rows, cols) of a window-size frame; ValueError if it is not one."""
    size = jsonlite.loads(payload)
    if not isinstance(size, dict):
        raise ValueError(f"bad window size {payload[:80]!r}")
    rows, cols = size.get("rows"), size.get("cols")
    if not all(isinstance(n, int) and 0 <= n < 65536 for n in (rows, cols)):
        raise ValueError(f"bad window size {payload[:80]!r}")
    return rows, cols


def connect(path: str | PathLike[str], timeout: float = 30.0) -> sockets.Socket:
    """Connect to a control socket through /proc/self/fd, so long paths work (108-byte limit)."""
    directory, name = os.path.split(os.fspath(path))
    dirfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sock = sockets.Socket(sockets.AF_UNIX, sockets.SOCK_STREAM | sockets.SOCK_CLOEXEC)
        sock.settimeout(timeout)
        try:
            sock.connect(f"/proc/self/fd/{dirfd}/{name}")
        except OSError:
            sock.close()
            raise
        return sock
    finally:
        os.close(dirfd)


def bind(path: str | PathLike[str]) -> sockets.Socket:
    directory, name = os.path.split(os.fspath(path))
    dirfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sock = sockets.Socket(sockets.AF_UNIX, sockets.SOCK_STREAM | sockets.SOCK_CLOEXEC)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        sock.bind(f"/proc/self/fd/{dirfd}/{name}")
        os.chmod(path, 0o600)
        sock.listen(16)
        return sock
    finally:
        os.close(dirfd)


def peer_pid(sock: sockets.Socket) -> int:
    """The pid of the process that made the listening socket (SO_PEERCRED): who the
    supervisor is, even when it cannot answer."""
    creds = sock.getsockopt(sockets.SOL_SOCKET, sockets.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[0]


def call(path: str | PathLike[str], request: dict, timeout: float | None = 30.0) -> dict:
    """Send one request and return the reply; raise ProtocolError on an error reply.
    With a timeout the request carries a deadline: a supervisor that sees it later
    drops it (a client that gave up must not have it done behind its back)."""
    import time

    if timeout is not None:
        request = {"deadline": time.monotonic() + timeout, **request}
    with connect(path, timeout if timeout is not None else 30.0) as sock:
        sock.sendall(encode(request))
        line = read_line(sock, timeout)
    if not line:
        raise SupervisorGone("the supervisor closed the connection")
    reply = decode(line)
    if not reply.get("ok"):
        raise ProtocolError(reply.get("error", "request failed"))
    return reply
