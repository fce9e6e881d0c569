"""The supervisor's console relay and event loop with a real pty, without root."""

from __future__ import annotations

import os
import time

import pytest

from nsvirt.driver.supervisor.console import Console, DomainLog
from nsvirt.driver.supervisor.loop import EventLoop


class GoneViewer:
    """A client whose socket turns out closed on the first send: it detaches itself."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.sent = b""

    def send(self, data: bytes) -> None:
        self.sent += data
        self.console.detach(self)

    def backlog(self) -> int:
        return 1 << 30

    def detach_console(self) -> None:
        pass


def test_a_viewer_gone_during_output_leaves_the_relay_running(tmp_path) -> None:
    loop = EventLoop()
    console = Console.open(loop, DomainLog(str(tmp_path / "d.log")), None)
    viewer = GoneViewer(console)
    console.attach(viewer)
    slave = os.open(console.tty, os.O_RDWR | os.O_NOCTTY)
    try:
        os.write(slave, b"first\n")
        _run_once(loop)
        assert b"first" in viewer.sent and console.viewer is None
        os.write(slave, b"second\n")  # nobody attached: kept for the next viewer
        _run_once(loop)
        assert b"second" in console.replay
    finally:
        os.close(slave)
        console.close()


def test_a_failing_callback_costs_its_fd_not_the_loop(capfd) -> None:
    loop = EventLoop()
    bad_r, bad_w = os.pipe()
    good_r, good_w = os.pipe()
    seen: list[bytes] = []

    def broken() -> None:
        raise RuntimeError("a bug")

    loop.on_read(bad_r, broken)
    loop.on_read(good_r, lambda: seen.append(os.read(good_r, 10)))
    os.write(bad_w, b"x")
    os.write(good_w, b"y")
    try:
        _run_once(loop)
        _run_once(loop)
        assert seen == [b"y"]
        assert "internal error; fd" in capfd.readouterr().err
        assert bad_r not in loop._callbacks
    finally:
        for fd in (bad_r, bad_w, good_r, good_w):
            os.close(fd)


def _run_once(loop: EventLoop) -> None:
    """One pass of the loop: events ready now, then stop."""
    loop.stopped = False
    loop.deadline = time.monotonic() + 0.2
    loop.on_deadline = loop.stop
    loop.run()


def test_replies_are_read_on_fds_above_select_limit() -> None:
    """A program using the API may have more than 1024 files open: the client's waits
    use poll(2) (select(2) refuses such fds with ValueError)."""
    import resource

    from nsvirt.driver.runtime import sockets
    from nsvirt.driver.supervisor import protocol

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 2048:
        pytest.skip(f"RLIMIT_NOFILE's hard limit is {hard}: no fd above 1024 to try")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    a, b = sockets.socketpair()
    high = os.dup2(a.fileno(), 1500)
    try:
        sock = sockets.Socket(fileno=high)
        b.sendall(b"running {}\n")
        assert protocol.read_line(sock, 2.0) == b"running {}\n"
        with pytest.raises(TimeoutError):
            protocol.read_line(sock, 0.05)
        sock.close()
    finally:
        a.close()
        b.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_loop_calls_read_and_write_callbacks_and_reports_a_hang_up() -> None:
    loop = EventLoop()
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    seen: list[str] = []

    def readable() -> None:
        data = os.read(r, 64)
        seen.append(f"read {data!r}")
        if not data:  # the writer closed: EOF, reported as readable
            loop.forget(r)
            loop.stop()

    def writable() -> None:
        os.write(w, b"x")
        loop.on_write(w, None)  # once
        loop.forget(w)
        os.close(w)

    loop.on_read(r, readable)
    loop.on_write(w, writable)
    loop.deadline, loop.on_deadline = time.monotonic() + 5, loop.stop  # a bound, not a wait
    loop.run()
    os.close(r)
    assert seen == ["read b'x'", "read b''"]
    loop.forget(r)  # forgetting a closed, forgotten fd is harmless


def test_call_at_runs_once_from_the_loop_at_its_time() -> None:
    import time

    from nsvirt.driver.supervisor.loop import EventLoop

    loop = EventLoop()
    hits: list[float] = []
    start = time.monotonic()
    loop.call_at(start + 0.05, lambda: (hits.append(time.monotonic() - start), loop.stop()))
    loop.run()
    assert len(hits) == 1 and hits[0] >= 0.05 and loop.later == []
