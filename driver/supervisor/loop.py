"""The supervisor's event loop: epoll(7) over non-blocking fds with a read and a
write callback each, signals through the wakeup pipe, and one deadline.

Nothing here blocks but the wait itself: every fd a container or a client
controls is non-blocking, so neither can stall the supervisor. epoll directly,
not the selectors module: that brings collections (~2.5 ms of every cold start).
"""

from __future__ import annotations

import _signal as signal  # signal.py without its enums (enum: ~3 ms a start)
import os
import select
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    Callback = Callable[[], None]


READ, WRITE = select.EPOLLIN, select.EPOLLOUT


class EventLoop:
    def __init__(self) -> None:
        self._epoll = select.epoll()  # close-on-exec
        self._events: dict[int, int] = {}  # fd → the events it is registered for
        self._callbacks: dict[int, list[Callback | None]] = {}  # fd → [on_read, on_write]
        self.deadline: float | None = None  # time.monotonic() at which on_deadline runs
        self.on_deadline: Callback | None = None
        self.later: list[tuple[float, Callback]] = []  # (time.monotonic(), callback)
        self.stopped = False  # stop() may come before run(): init died at once

    def _update(self, fd: int) -> None:
        on_read, on_write = self._callbacks[fd]
        events = (READ if on_read else 0) | (WRITE if on_write else 0)
        registered = self._events.get(fd, 0)
        if events == registered:
            return
        if events and registered:
            self._epoll.modify(fd, events)
        elif events:
            self._epoll.register(fd, events)
        else:
            try:
                self._epoll.unregister(fd)
            except OSError:
                pass  # closed already: the kernel forgot it with its last reference
        if events:
            self._events[fd] = events
        else:
            del self._events[fd]

    def on_read(self, fd: int, callback: Callback | None) -> None:
        """Call `callback` whenever `fd` is readable (None: stop)."""
        self._callbacks.setdefault(fd, [None, None])[0] = callback
        self._update(fd)

    def on_write(self, fd: int, callback: Callback | None) -> None:
        """Call `callback` whenever `fd` is writable (None: stop)."""
        self._callbacks.setdefault(fd, [None, None])[1] = callback
        self._update(fd)

    def forget(self, fd: int) -> None:
        """Stop watching `fd` (before it is closed)."""
        if fd in self._callbacks:
            self._callbacks[fd] = [None, None]
            self._update(fd)
            del self._callbacks[fd]

    def on_signals(self, signums: Iterable[int], callback: Callable[[set[int]], None]) -> None:
        """Deliver these signals to `callback` from the loop, never from a handler."""
        rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wfd)
        for sig in signums:
            signal.signal(sig, lambda *_: None)

        def drain() -> None:
            seen: set[int] = set()
            try:
                while chunk := os.read(rfd, 512):
                    seen.update(chunk)
            except BlockingIOError:
                pass
            callback(seen)

        self.on_read(rfd, drain)

    def call_at(self, when: float, callback: Callback) -> None:
        """Call `callback` once, from the loop, at `when` (time.monotonic()) or soon after."""
        self.later.append((when, callback))

    def stop(self) -> None:
        self.stopped = True

    def run(self) -> None:
        """Dispatch until stop() is called (at once if it was called already)."""
        while not self.stopped:
            timeout = None
            times = [w for w, _ in self.later] + ([self.deadline] if self.deadline else [])
            if times:
                timeout = max(0.0, min(times) - time.monotonic())
            events = self._epoll.poll(-1 if timeout is None else timeout)
            if self.deadline is not None and time.monotonic() >= self.deadline:
                self.deadline = None
                if self.on_deadline is not None:
                    self.on_deadline()
            if self.later:
                now = time.monotonic()
                due = [c for w, c in self.later if w <= now]
                self.later = [(w, c) for w, c in self.later if w > now]
                for callback in due:
                    self._call(-1, callback)
            for fd, mask in events:
                # an error or a hang-up is news for both callbacks (as selectors has it)
                callbacks = self._callbacks.get(fd)  # an earlier callback may drop it
                if callbacks and mask & ~WRITE and callbacks[0]:
                    self._call(fd, callbacks[0])
                callbacks = self._callbacks.get(fd)
                if callbacks and mask & ~READ and callbacks[1]:
                    self._call(fd, callbacks[1])
                if self.stopped:
                    return

    def _call(self, fd: int, callback: Callback) -> None:
        """A bug in one fd's callback costs that fd, not the container: it is logged
        and the fd no longer watched, and the supervisor goes on."""
        try:
            callback()
        except Exception:
            import traceback  # only on a bug

            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            text = f"{stamp} supervisor[{os.getpid()}]: internal error; fd {fd} is no longer "
            text += f"watched:\n{traceback.format_exc()}"
            try:
                os.write(2, text.encode(errors="replace"))
            except OSError:
                pass
            self.forget(fd)
