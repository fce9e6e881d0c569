"""Fork a supervisor for another container from a running one (DESIGN.md §8): no
interpreter to start, and this process's pages are shared until written.

What a fork inherits must be shed at once: the old container's ptys, sockets and
BPF program fds, its signal handlers and wakeup pipe. The new supervisor then
confirms with the launcher before it creates anything (supervisor/__main__.py):
a launcher that gave up on this spawn has closed its end, so a fork that comes
late (a donor that was stopped for a while) starts nothing.
"""

from __future__ import annotations

import _signal as signal  # signal.py without its enums (enum: ~3 ms a start)
import os

from nsvirt.driver.runtime import syscalls as sc
from nsvirt.driver.supervisor.console import log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def spawn(config: dict[str, Any], handshake: int, log_fd: int) -> int:
    """Fork; the child becomes the new container's supervisor. Returns its pid."""
    pid = os.fork()
    if pid == 0:
        _become_new_supervisor(config, handshake, log_fd)
    return pid


def _become_new_supervisor(config: dict[str, Any], handshake: int, log_fd: int) -> None:
    """In the fork: shed the old container, then run the new one's supervisor.
    Never returns (and never falls back into the donor's loop)."""
    status = 1
    try:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        sc.close_fds_except(handshake)  # the old container's ptys, sockets, BPF program
        os.setsid()
        from nsvirt.driver.supervisor.__main__ import serve

        status = serve(config, handshake)
    except BaseException as e:
        log(f"forked supervisor failed: {e!r}")
    finally:
        os._exit(status)
