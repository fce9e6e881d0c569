"""The supervisor's console relay and event loop with a real pty, without root."""

from __future__ import annotations

import os
import time

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
