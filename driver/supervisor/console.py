"""The console relay: the pty a container writes to, the client attached to it, and
the domain log that keeps the console's history.

Every buffer is bounded and nothing blocks (the pty is the container's: it may
never read its input, or flood its output):
- output with no client attached is logged, and its tail kept for the next client;
- output for a client that reads slower than the container writes pauses reading
  the pty (the container's console writes wait, as on a real serial line) until
  the client has caught up;
- input the container does not read is dropped beyond INPUT_BUFFER bytes, as a
  tty drops input on overrun.
The log is rotated at LOG_MAX_BYTES, keeping LOG_BACKUPS old files (as virtlogd).
"""

from __future__ import annotations

import os
import time

from nsvirt.driver.runtime import tty
from nsvirt.driver.supervisor.loop import EventLoop

REPLAY_BYTES = 16384  # console output kept for the next client to attach
CLIENT_BUFFER = 256 * 1024  # output waiting for a slow client before the pty is paused
INPUT_BUFFER = 64 * 1024  # input waiting for a container that does not read
LOG_MAX_BYTES = 2 * 1024 * 1024  # the domain log's size before it is rotated
LOG_BACKUPS = 3  # NAME.log.1 … NAME.log.3
_CHUNK = 65536


def log(msg: str) -> None:
    """A line in the domain log (the supervisor's stdout)."""
    line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} supervisor[{os.getpid()}]: {msg}\n"
    try:
        os.write(1, line.encode(errors="replace"))
    except OSError:
        pass  # a full disk: the log is lost, the container is not


class DomainLog:
    """The domain log on fds 1 and 2, rotated by size; console output goes here."""

    def __init__(self, path: str, max_bytes: int = LOG_MAX_BYTES,
                 backups: int = LOG_BACKUPS) -> None:  # fmt: skip
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        try:
            self.size = os.fstat(1).st_size
        except OSError:
            self.size = 0

    def write(self, data: bytes) -> None:
        try:
            os.write(1, data)
        except OSError:
            return  # a full disk loses history, never the console
        self.size += len(data)
        if self.size >= self.max_bytes:
            self.rotate()

    def rotate(self) -> None:
        """NAME.log → NAME.log.1 → … → NAME.log.N (the oldest goes); a fresh NAME.log
        becomes fds 1 and 2. The size is counted, not stat'ed per write."""
        try:
            for i in range(self.backups - 1, 0, -1):
                if os.path.exists(f"{self.path}.{i}"):
                    os.replace(f"{self.path}.{i}", f"{self.path}.{i + 1}")
            os.replace(self.path, f"{self.path}.1")
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            log(f"cannot rotate the log: {e.strerror}")
            self.size = 0  # try again after another max_bytes
            return
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        self.size = 0


TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    class Viewer(Protocol):
        """A client attached to a console: it buffers what it is sent."""

        def send(self, data: bytes) -> None: ...
        def backlog(self) -> int: ...
        def detach_console(self) -> None: ...


class Console:
    """One console pty and its relay."""

    def __init__(self, loop: EventLoop, domain_log: DomainLog, master: int, slave: int,
                 path: str) -> None:  # fmt: skip
        self.loop = loop
        self.domain_log = domain_log
        self.master = master
        self.slave = slave  # kept open: the pty lives while no process holds it
        self.tty = path
        self.viewer: Viewer | None = None
        self.replay = bytearray()  # the tail of output nobody has seen yet
        self.input = bytearray()  # for the container, when it reads
        self.dropped = 0  # input bytes dropped since the last log line about it
        loop.on_read(master, self._readable)

    @classmethod
    def open(cls, loop: EventLoop, domain_log: DomainLog,
             owner: tuple[int, int] | None) -> Console:  # fmt: skip
        return cls(loop, domain_log, *tty.open_console_pty(owner))

    # ------------------------------------------------------------ container → client

    def _readable(self) -> None:
        try:
            data = os.read(self.master, _CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # EIO: no process holds the slave now
            data = b""
        if not data:
            return
        self.domain_log.write(data)
        if self.viewer is None:
            self.replay += data
            del self.replay[:-REPLAY_BYTES]
            return
        viewer = self.viewer
        viewer.send(data)  # may find the client gone and detach it
        if self.viewer is viewer and viewer.backlog() > CLIENT_BUFFER:
            self.loop.on_read(self.master, None)  # until the viewer has caught up

    def caught_up(self) -> None:
        """The viewer's backlog is low again: read the pty again."""
        self.loop.on_read(self.master, self._readable)

    # ------------------------------------------------------------ client → container

    def feed(self, data: bytes) -> None:
        """Input for the container; beyond INPUT_BUFFER it is dropped, never waited for."""
        room = INPUT_BUFFER - len(self.input)
        if len(data) > room:
            if not self.dropped:
                log(f"console {self.tty}: the container does not read its input; dropping")
            self.dropped += len(data) - max(room, 0)
            data = data[: max(room, 0)]
        self.input += data
        if self.input:
            self.loop.on_write(self.master, self._writable)

    def _writable(self) -> None:
        try:
            n = os.write(self.master, self.input)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            n = len(self.input)  # EIO: nobody on the other side; the input is lost
        del self.input[:n]
        if not self.input:
            self.loop.on_write(self.master, None)
            self.dropped = 0

    def resize(self, rows: int, cols: int) -> None:
        tty.set_window_size(self.slave, rows, cols)

    # ------------------------------------------------------------ attach, detach

    def attach(self, viewer: Viewer) -> None:
        """Make `viewer` the console's client, taking it over from any other."""
        old, self.viewer = self.viewer, viewer
        if old is not None and old is not viewer:
            old.detach_console()
        if self.replay:
            viewer.send(bytes(self.replay))
            self.replay.clear()
        self.caught_up()

    def detach(self, viewer: Viewer) -> None:
        if self.viewer is viewer:
            self.viewer = None
            self.caught_up()  # nobody to wait for: log and keep the tail

    def close(self) -> None:
        self.loop.forget(self.master)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
