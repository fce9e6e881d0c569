"""Light operations on stored definitions, shared by the driver (connection.py,
domain.py) and the one-shot path (shell/quick.py): the uuid at the head of a file
nsvirt wrote, and removing a definition."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsvirt.driver.state.names import Layout

_HEX = frozenset("0123456789abcdef")


def canonical_uuid(text: str) -> bool:
    """Is it a uuid as nsvirt writes it (lower case, 8-4-4-4-12)?"""
    parts = text.split("-")
    return [len(p) for p in parts] == [8, 4, 4, 4, 12] and set("".join(parts)) <= _HEX


def head_uuid(path: str) -> str | None:
    """The uuid of a definition nsvirt stored, from its first lines (nsvirt writes
    it there, canonical); None when the head is not of that form (the caller then
    parses the file in full, so an error names its line). OSError if unreadable."""
    with open(path, "rb") as f:
        head = f.read(512)
    start = head.find(b"<uuid>")
    end = head.find(b"</uuid>", start)
    if not head.startswith(b"<domain") or not 0 <= start < end:
        return None
    try:
        text = head[start + 6 : end].decode("ascii")
    except UnicodeDecodeError:
        return None
    return text if canonical_uuid(text) else None


def forget(names: Layout, name: str, live: bool) -> bool:
    """Undefine: remove the definition, its autostart link and compiled form, and
    (unless it runs on, as transient) its state and lock files. The caller holds
    the definitions' and the domain's locks. False if there was no definition."""
    from nsvirt.driver.state import compiled, events, files

    try:
        uuid = head_uuid(names.config(name)) or ""
    except OSError:  # no definition (any more): nothing to forget, nothing to announce
        return False
    files.remove(names.autostart_link(name))
    if not files.remove(names.config(name)):
        return False
    events.emit(names, name, uuid, events.UNDEFINED, events.REMOVED)
    compiled.remove(names.compiled(name, live=False))
    if not live:
        files.remove(names.state(name), durable=False)
        files.remove_lock(names.lock(name))  # no domain: no lock file
    return True


def write_live(names: Layout, name: str, text: bytes, fields: dict[str, object],
               supervisor: int | None = None) -> None:  # fmt: skip
    """Write a running domain's live XML (OSError if it cannot be: the caller must
    not let a domain nobody can see run on), then its compiled form (best effort).

    `supervisor`: the pid of the run this XML is for, just started. Its init may
    have exited already, and the supervisor's teardown (which records the end before
    it removes the run's files) have come before this write: then what was written
    is removed again, so no live XML outlives its run."""
    from nsvirt.driver.state import compiled, files, runstate

    files.write_atomic(names.live_xml(name), text, durable=False)
    compiled.write(names.live_xml(name), names.compiled(name, live=True), text, fields)
    if supervisor is None:
        return
    try:
        state = runstate.read(names, name)
    except runstate.RunStateError:
        return
    if state is None or not state.live or state.supervisor_pid != supervisor:
        files.remove(names.compiled(name, live=True), durable=False)
        files.remove(names.live_xml(name), durable=False)


def is_persistent(names: Layout, name: str) -> bool:
    return os.path.isfile(names.config(name))
