"""A console session on the client side: output to read, input and window sizes
to send, framed as supervisor/protocol.py says."""

from __future__ import annotations

from nsvirt.driver.runtime import sockets
from nsvirt.driver.supervisor import protocol


class ConsoleStream:
    """A console session: `read()` output, `write()` input, `resize()`, `close()`."""

    def __init__(self, sock: sockets.Socket) -> None:
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self, size: int = 65536) -> bytes:
        """Output bytes; b"" when the console session ended."""
        try:
            return self.sock.recv(size)
        except ConnectionResetError:
            return b""

    def write(self, data: bytes) -> None:
        self.sock.sendall(protocol.frame(protocol.FRAME_DATA, data))

    def resize(self, rows: int, cols: int) -> None:
        payload = protocol.encode_winsize(rows, cols)
        self.sock.sendall(protocol.frame(protocol.FRAME_WINSIZE, payload))

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> ConsoleStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
