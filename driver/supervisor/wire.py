"""One request to a supervisor and its reply, with the standard library's C modules
only (the one-shot path's `suspend`, `resume`, `shutdown`, `destroy`); protocol.py
has the whole protocol, and decodes with the same reply check.

A request is one JSON line, `{"v": 1, "deadline": T, "op": OP, ...}`; the reply is
one line, `{"v": 1, "ok": true, ...}` or `{"v": 1, "ok": false, "error": "..."}`.
"""

from __future__ import annotations

import os
import time

from nsvirt.driver.state import jsonlite

VERSION = 1
MAX_LINE = 65536
CALL_TIMEOUT = 60.0  # a bound on a supervisor's reply (destroy: until init has stopped)
ANSWER_TIMEOUT = 5.0  # a bound on destroy's reply, then destroy goes on without it


def answer_timeout() -> float:
    """$NSVIRT_ANSWER_TIMEOUT (tests make it short), else ANSWER_TIMEOUT."""
    return float(os.environ.get("NSVIRT_ANSWER_TIMEOUT") or ANSWER_TIMEOUT)


class WireError(Exception):
    """A reply that is not one: malformed, or of another protocol version."""


def _value(v: object) -> str:
    if v is None:
        return "null"
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str) and v.isascii() and v.isprintable() and '"' not in v and "\\" not in v:
        return f'"{v}"'
    raise ValueError(f"cannot send {v!r} on the light path")


def request_line(op: str, bound: float | None, **fields: object) -> bytes:
    """The request as protocol.encode writes it (flat: names, numbers, booleans),
    with a deadline `bound` seconds from now (protocol.py: a late one is dropped)."""
    msg: dict[str, object] = {"v": VERSION}
    if bound is not None:
        msg["deadline"] = time.monotonic() + bound
    msg["op"] = op
    msg.update(fields)
    return ("{" + ", ".join(f'"{k}": {_value(v)}' for k, v in msg.items()) + "}\n").encode()


def decode(line: bytes) -> dict[str, object]:
    """A reply line as a dict; WireError if it is malformed or of another version."""
    try:
        msg = jsonlite.loads(line)
    except ValueError:
        raise WireError(f"malformed message {line[:80]!r}") from None
    if not isinstance(msg, dict) or msg.get("v") != VERSION:
        version = msg.get("v") if isinstance(msg, dict) else "?"
        raise WireError(f"protocol version {version} is not {VERSION}")
    return msg


def call(socket_path: str, line: bytes, timeout: float) -> bytes:
    """Send one request line and return the reply line (b"" if the supervisor closed
    the connection first). ConnectionError/FileNotFoundError if it cannot be
    reached (nothing was sent); TimeoutError if it does not answer in time."""
    import _socket

    dirfd = os.open(os.path.dirname(socket_path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(timeout)
        # through /proc/self/fd: a long root would pass the 108-byte limit
        sock.connect(f"/proc/self/fd/{dirfd}/{os.path.basename(socket_path)}")
        os.close(dirfd)
        dirfd = -1
        sock.sendall(line)
        buf = b""
        while not buf.endswith(b"\n") and len(buf) <= MAX_LINE:
            chunk = sock.recv(4096)
            if not chunk:
                break
            buf += chunk
        return buf
    except TimeoutError:
        raise TimeoutError("no reply from the supervisor") from None
    finally:
        sock.close()
        if dirfd >= 0:
            os.close(dirfd)
