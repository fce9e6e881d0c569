"""Domain events as libvirt delivers them, read from the event log (state/events.py):
an iterator that follows it with inotify, from now or from a cursor a reader kept,
and libvirt-python's callback registration on top of it.

A cursor names a place in the log: `INODE:OFFSET` of the file the next event is in.
Every event carries the cursor just after it, so a reader that saves the last one
can go on from there later without losing or repeating one, as long as the log has
not been rotated twice meanwhile (then `EventReader.gap` says so).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from nsvirt.driver.errors import InvalidArgument
from nsvirt.driver.records import Record, factory
from nsvirt.driver.runtime import inotify, sockets
from nsvirt.driver.state import events as log
from nsvirt.driver.state import jsonlite

if TYPE_CHECKING:
    from nsvirt.driver.connection import Connection

EVENT_ID_LIFECYCLE, EVENT_ID_REBOOT = 0, 1  # libvirt's VIR_DOMAIN_EVENT_ID_*
# virsh's words for libvirt's event types and their details
EVENT_WORDS = ("Defined", "Undefined", "Started", "Suspended", "Resumed", "Stopped",
               "Shutdown", "PMSuspended", "Crashed")  # fmt: skip
DETAIL_WORDS = {
    0: ("Added", "Updated", "Renamed", "Snapshot"),
    1: ("Removed", "Renamed"),
    2: ("Booted", "Migrated", "Restored", "Snapshot", "Event wakeup"),
    3: ("Paused", "Migrated", "I/O Error", "Watchdog", "Restored", "Snapshot", "API error",
        "Post-copy", "Post-copy Error"),
    4: ("Unpaused", "Migrated", "Snapshot", "Post-copy", "Post-copy Error"),
    5: ("Shutdown", "Destroyed", "Crashed", "Migrated", "Saved", "Failed", "Snapshot"),
}  # fmt: skip


class DomainEvent(Record):
    cursor: str  # where the next event is: give it as `since` to go on from here
    time: float  # when it was written (seconds since the epoch)
    kind: str  # "lifecycle" or "reboot"
    domain: str
    uuid: str
    event: int  # libvirt's virDomainEventType (lifecycle)
    detail: int  # libvirt's detail of that type
    extra: dict[str, Any] = factory(dict)  # nsvirt's own facts: reason, oom

    @property
    def words(self) -> tuple[str, str]:
        """virsh's words for the event and its detail: ("Stopped", "Destroyed")."""
        details = DETAIL_WORDS.get(self.event, ())
        event = EVENT_WORDS[self.event] if 0 <= self.event < len(EVENT_WORDS) else "unknown"
        return event, details[self.detail] if 0 <= self.detail < len(details) else "unknown"


class EventReader:
    """Follows a root's event log: from its end (only what happens from now on), or
    from `since`, a cursor an earlier event gave."""

    def __init__(self, names: Any, since: str | None = None) -> None:
        self.path = log.log_path(names)
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.watch = inotify.watch(directory)  # first: nothing written after is missed
        self.gap = False  # events were lost between `since` and what the log still has
        self.fd = -1
        self.inode = 0
        self.offset = 0
        self.buffer = b""
        try:
            self._open(since)
        except BaseException:
            self.close()
            raise

    def _open(self, since: str | None) -> None:
        current = _inode(self.path)
        if since is None:  # at the end of the newest file there is (its fd's own size)
            self._switch(self.path if current else self.path + ".1", None)
            return
        head, _, tail = since.partition(":")
        if not (head.isascii() and head.isdigit() and tail.isascii() and tail.isdigit()):
            raise InvalidArgument(f"malformed event cursor '{since}'")
        inode, offset = int(head), int(tail)
        if inode == current:
            self._switch(self.path, offset)
        elif inode == _inode(self.path + ".1"):
            self._switch(self.path + ".1", offset)
        else:  # rotated away twice: from the oldest there is
            self.gap = True
            self._switch(self.path + ".1" if _inode(self.path + ".1") else self.path, 0)

    def _switch(self, path: str, offset: int | None) -> None:
        """Read `path` from `offset` (None: its end), or from its start when the offset
        is past its end (a cursor of another file that had its inode number)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self.inode = 0
            return
        st = os.fstat(self.fd)
        self.inode = st.st_ino
        if offset is None:
            offset = st.st_size
        elif offset > st.st_size or (offset and os.pread(self.fd, 1, offset - 1) != b"\n"):
            self.gap = True  # not a line's end in this file: it is not the cursor's file
            offset = 0
        os.lseek(self.fd, offset, os.SEEK_SET)
        self.offset = offset  # of the first byte not yet consumed as a line
        self.buffer = b""

    def close(self) -> None:
        for fd in (self.fd, self.watch):
            if fd >= 0:
                os.close(fd)
        self.fd = self.watch = -1

    def __enter__(self) -> EventReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def pending(self) -> list[DomainEvent]:
        """Every complete event written since the last call (without waiting)."""
        found: list[DomainEvent] = []
        while True:
            found += self._read_lines()
            now = _inode(self.path)
            if now == self.inode or not now:  # the same file, or renamed with no new one
                return found  # yet (the next writer makes it): stay with the one read
            # rotated (or made): every write to the file we read ended before the
            # rename (state/events.py), so reading it to its end now gets the rest.
            # The next generation is .1 if that is not ours (rotated twice), else the
            # new log.
            found += self._read_lines()
            older = _inode(self.path + ".1")
            self._switch(self.path + ".1" if older and older != self.inode else self.path, 0)
            if not self.inode:
                return found

    def _read_lines(self) -> list[DomainEvent]:
        if self.fd < 0:
            return []
        while chunk := os.read(self.fd, 65536):
            self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")  # the last: a line being written
        out = []
        for line in lines:
            self.offset += len(line) + 1
            event = _decode(line, f"{self.inode}:{self.offset}")
            if event is not None:
                out.append(event)
        return out

    def next(self, timeout: float | None = None) -> list[DomainEvent]:
        """The next events, waiting at most `timeout` seconds (None: as long as it
        takes) for at least one; [] if none came."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found = self.pending()
            if found:
                return found
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return []
            if sockets.wait_readable([self.watch], left):
                inotify.drain(self.watch)

    def cursor(self) -> str:
        """Where the next event will be read from."""
        return f"{self.inode}:{self.offset}" if self.fd >= 0 else f"{_inode(self.path)}:0"


def _inode(path: str) -> int:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return 0


def _decode(line: bytes, cursor: str) -> DomainEvent | None:
    try:
        raw = jsonlite.loads(line)
    except ValueError:
        return None  # not one of ours: skipped, never fatal
    if not isinstance(raw, dict):
        return None
    known = ("time", "kind", "domain", "uuid", "event", "detail")
    try:
        return DomainEvent(cursor, float(raw["time"]), str(raw["kind"]), str(raw["domain"]),
                           str(raw["uuid"]), int(raw["event"]), int(raw["detail"]),
                           {k: v for k, v in raw.items() if k not in known})  # fmt: skip
    except (KeyError, TypeError, ValueError):
        return None


def follow(conn: Connection, *, domain: str | None = None, since: str | None = None,
           timeout: float | None = None) -> Iterator[DomainEvent]:  # fmt: skip
    """Events as they happen (of one domain: its uuid), until `timeout` seconds pass
    without one of those (None: for ever)."""
    with EventReader(conn.paths.names, since) as reader:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            for event in reader.next(left):
                if domain is None or event.uuid == domain:
                    deadline = None if timeout is None else time.monotonic() + timeout
                    yield event


class Callbacks:
    """libvirt-python's domainEventRegisterAny/DeregisterAny for one connection: each
    registration's callback is called from a thread that follows the log."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.next_id = 1
        self.stops: dict[int, threading.Event] = {}
        self.lock = threading.Lock()

    def register(self, dom: Any, event_id: int, callback: Callable[..., None],
                 opaque: Any) -> int:  # fmt: skip
        if event_id not in (EVENT_ID_LIFECYCLE, EVENT_ID_REBOOT):
            raise InvalidArgument(f"unsupported event ID {event_id}")
        kind = "lifecycle" if event_id == EVENT_ID_LIFECYCLE else "reboot"
        uuid = dom.uuid if dom is not None else None
        stop = threading.Event()
        reader = EventReader(self.conn.paths.names)  # from now: opened before we return

        def run() -> None:
            with reader:
                while not stop.is_set():
                    for event in reader.next(0.2):
                        if stop.is_set():
                            return  # none after deregister, as libvirt-python
                        if event.kind != kind or (uuid is not None and event.uuid != uuid):
                            continue
                        target = _domain_of(self.conn, event)
                        args = (event.event, event.detail) if kind == "lifecycle" else ()
                        try:
                            callback(self.conn, target, *args, opaque)
                        except Exception:  # the callback's bug: said, and the next comes
                            import traceback

                            traceback.print_exc()

        with self.lock:
            ident = self.next_id
            self.next_id += 1
            self.stops[ident] = stop
        threading.Thread(target=run, name=f"nsvirt-events-{ident}", daemon=True).start()
        return ident

    def deregister(self, ident: int) -> None:
        with self.lock:
            stop = self.stops.pop(ident, None)
        if stop is None:
            raise InvalidArgument(f"no event callback with ID {ident}")
        stop.set()


def _domain_of(conn: Connection, event: DomainEvent) -> Any:
    """The event's domain as a Domain (one that is gone keeps its name and uuid)."""
    from nsvirt.driver.domain import Domain

    return Domain(conn, event.domain, event.uuid)
