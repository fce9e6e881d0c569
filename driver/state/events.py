"""The domain event log: lifecycle events appended by whoever causes them, no daemon.

    <root>/run/nsvirt/lxc/events.log     one JSON object per line, in the order written
    <root>/run/nsvirt/lxc/events.log.1   the one before, after a rotation
    <root>/run/nsvirt/lxc/.events.lock   writers share it; a rotation takes it alone

Supervisors write what happens to their container (started, suspended, resumed,
stopped and why, rebooted), clients what they do to definitions (defined,
undefined) and what they do without a supervisor (a destroy, a supervisor found
gone). Each event is one write(2) of one line to an O_APPEND file, so writers in
many processes never interleave or reorder within the file: its order is the
order of events. Readers (driver/events.py) follow the file with inotify.

Light on purpose (os, fcntl, time, jsonlite): the supervisor and the one-shot
path write events.
"""

from __future__ import annotations

import fcntl
import os
import time

from nsvirt.driver.state import jsonlite

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsvirt.driver.state.names import Layout

ROTATE_AT = 1 << 20  # bytes; the previous file is kept, so readers have 1-2 MiB behind them

# libvirt's virDomainEventType and the details nsvirt's domains have
DEFINED, UNDEFINED, STARTED, SUSPENDED, RESUMED, STOPPED = 0, 1, 2, 3, 4, 5
ADDED, UPDATED = 0, 1  # DEFINED
REMOVED = 0  # UNDEFINED
BOOTED = 0  # STARTED
PAUSED = 0  # SUSPENDED
UNPAUSED = 0  # RESUMED
# STOPPED, by the reason a run ended with (state/runstate.py's final reasons)
STOP_DETAILS = {"shutdown": 0, "destroyed": 1, "crashed": 2, "failed": 5, "unknown": 5}


def log_path(names: Layout) -> str:
    return names.under("run/nsvirt/lxc/events.log")


def emit(names: Layout, name: str, uuid: str, event: int, detail: int,
         kind: str = "lifecycle", **extra: object) -> None:  # fmt: skip
    """Append one event. Never raises: an event that cannot be written (a full disk)
    must not fail what it reports on."""
    record: dict[str, object] = {"time": time.time(), "kind": kind, "domain": name,
                                 "uuid": uuid, "event": event, "detail": detail}  # fmt: skip
    record.update(extra)
    line = (jsonlite.dumps(record) + "\n").encode()
    path = log_path(names)
    try:
        lock = os.open(path.replace("events.log", ".events.lock"),
                       os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)  # fmt: skip
    except OSError:
        return
    try:
        _lock(lock, fcntl.LOCK_SH)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if os.write(fd, line) < len(line):  # a full disk: end the torn line, so
                os.write(fd, b"\n")  # the next writer's event is not lost with it
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        fcntl.flock(lock, fcntl.LOCK_UN)
        if size > ROTATE_AT:
            _rotate(lock, path, force=size > 4 * ROTATE_AT)
    except OSError:
        pass
    finally:
        os.close(lock)


LOCK_WAIT = 0.05  # seconds: a writer never waits longer on the log's lock


def _lock(fd: int, how: int) -> bool:
    """Take the lock within LOCK_WAIT, else go on without it: a process stopped while
    it holds the lock (a rotation) must never stop a supervisor or a define."""
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            fcntl.flock(fd, how | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)


def _rotate(lock: int, path: str, force: bool) -> None:
    """events.log becomes events.log.1, once no writer is in the middle of a line;
    whoever gets the lock first does it, the others see a small file again. Past
    four times the size (a writer that stopped holding the lock), without it."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        if not force:
            return
    try:
        if os.stat(path).st_size > ROTATE_AT:
            os.replace(path, path + ".1")
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
