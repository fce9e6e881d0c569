"""The event log without containers: writers in many processes, rotation, cursors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from nsvirt.driver.events import EventReader
from nsvirt.driver.state import events
from nsvirt.driver.state.names import Layout

WRITER = """
import sys
from nsvirt.driver.state import events
from nsvirt.driver.state.names import Layout
events.ROTATE_AT = int(sys.argv[3])
names = Layout(sys.argv[1])
for i in range(int(sys.argv[2])):
    events.emit(names, "w" + sys.argv[4], "u", events.STARTED, 0, seq=i)
"""


def _names(tmp_path: Path) -> Layout:
    (tmp_path / "run/nsvirt/lxc").mkdir(parents=True)
    return Layout(str(tmp_path))


def test_a_reader_sees_what_comes_after_it_and_goes_on_from_a_cursor(tmp_path: Path) -> None:
    names = _names(tmp_path)
    events.emit(names, "before", "u0", events.DEFINED, events.ADDED)
    with EventReader(names) as reader:  # from now on
        events.emit(names, "a", "u1", events.STARTED, events.BOOTED)
        events.emit(names, "a", "u1", events.STOPPED, 1, reason="destroyed")
        first, second = reader.next(5)
    assert (first.domain, first.words, second.words) == ("a", ("Started", "Booted"),
                                                         ("Stopped", "Destroyed"))  # fmt: skip
    assert second.extra == {"reason": "destroyed"}
    events.emit(names, "b", "u2", events.SUSPENDED, events.PAUSED)
    with EventReader(names, since=first.cursor) as later:  # exactly after `first`
        assert [e.domain for e in later.pending()] == ["a", "b"]
    with EventReader(names) as idle:
        assert idle.next(0.2) == []  # nothing new: the wait ends at its bound


def test_writers_in_many_processes_lose_and_reorder_nothing(tmp_path: Path) -> None:
    names = _names(tmp_path)
    per_writer, writers = 300, 4
    with EventReader(names) as reader:
        procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(per_writer),
                                   str(64 << 10), str(n)]) for n in range(writers)]  # fmt: skip
        seen: list = []
        while len(seen) < per_writer * writers:
            got = reader.next(10)
            assert got, f"only {len(seen)} events arrived"
            seen += got
        for proc in procs:
            assert proc.wait(30) == 0
    assert Path(events.log_path(names) + ".1").exists()  # it did rotate meanwhile
    for n in range(writers):
        assert [e.extra["seq"] for e in seen if e.domain == f"w{n}"] == list(range(per_writer))


def test_a_cursor_in_the_rotated_file_goes_on_into_the_new_one(tmp_path: Path) -> None:
    names = _names(tmp_path)
    events.emit(names, "one", "u", events.STARTED, 0)
    with EventReader(names, since=f"{Path(events.log_path(names)).stat().st_ino}:0") as r:
        (one,) = r.pending()
    old = events.ROTATE_AT
    events.ROTATE_AT = 1
    try:
        events.emit(names, "two", "u", events.STARTED, 0)  # rotates after this line
    finally:
        events.ROTATE_AT = old
    events.emit(names, "three", "u", events.STARTED, 0)  # the new file's first
    with EventReader(names, since=one.cursor) as r:
        assert [e.domain for e in r.pending()] == ["two", "three"]
        assert not r.gap


def test_a_line_that_is_not_an_event_is_skipped(tmp_path: Path) -> None:
    names = _names(tmp_path)
    events.emit(names, "x", "u", events.STARTED, 0)
    path = Path(events.log_path(names))
    with EventReader(names, since=f"{path.stat().st_ino}:0") as r:
        with path.open("ab") as f:
            f.write(b'not json\n[1]\n{"kind": 1}\n')
        events.emit(names, "y", "u", events.STARTED, 0)
        assert [e.domain for e in r.pending()] == ["x", "y"]


def test_a_reader_started_between_a_rotation_and_the_next_event_replays_nothing(
    tmp_path: Path,
) -> None:
    names = _names(tmp_path)
    events.emit(names, "old", "u", events.STARTED, 0)
    path = Path(events.log_path(names))
    path.rename(str(path) + ".1")  # rotated: no events.log until the next event
    with EventReader(names) as reader:
        events.emit(names, "new", "u", events.STARTED, 0)
        assert [e.domain for e in reader.pending()] == ["new"]


def test_a_cursor_that_is_no_line_end_of_its_file_is_a_gap(tmp_path: Path) -> None:
    names = _names(tmp_path)
    events.emit(names, "a", "u", events.STARTED, 0)
    ino = Path(events.log_path(names)).stat().st_ino
    with EventReader(names, since=f"{ino}:3") as reader:  # mid-line: another file's cursor
        assert reader.gap and [e.domain for e in reader.pending()] == ["a"]
    for bad in ("x", "1:-1", f"{ino}: 5", "²:1"):
        try:
            EventReader(names, since=bad)
        except Exception as e:
            assert "malformed event cursor" in str(e)
        else:
            raise AssertionError(f"{bad!r} was taken")
