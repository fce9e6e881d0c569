"""A spare supervisor for a one-shot nsvirsh that is about to start a domain.

Forked at the command's start, before the command loads the XML stack, it is
small (it shares only the little the command had loaded) and loads the
supervisor's code while the command parses, checks and plans. The launcher then
hands it the supervisor's config and the domain's log, and it becomes that
domain's supervisor (launcher.py). A command that starts nothing closes its end:
the spare, which has created nothing, exits.

Only for one-shot commands (one thread, about to exit): the Python API starts
supervisors in a fresh interpreter or forks them from a running one.
"""

from __future__ import annotations

import os

from nsvirt.driver.runtime import sockets

CONFIG_TIMEOUT = 30.0  # the command's parse and plan, once it has said "config"


class Spare:
    """Our end of a spare supervisor's socket, until the launcher hands it a config."""

    def __init__(self, sock: sockets.Socket) -> None:
        self.sock: sockets.Socket | None = sock

    def hand(self, config_json: bytes, log_fd: int) -> sockets.Socket:
        """Give it the config and the log; it is the supervisor from here, waiting for
        its `go` (launcher.py sends it)."""
        sock, self.sock = self.sock, None
        assert sock is not None, "a spare is handed one config"
        sockets.send_fds(sock, [b"config\n"], [log_fd])
        sock.sendall(config_json + b"\n")
        return sock

    def discard(self) -> None:
        if self.sock is not None:
            self.sock.close()  # EOF: it exits
            self.sock = None


def fork_detached(keep: int, output: int | None) -> bool:
    """Fork a detached grandchild (a session of its own, not our child: as boot.py
    --detach); True in it, False here once the middle child is reaped. The grandchild
    keeps only `keep`, stdin /dev/null, stdout and stderr on `output` (None: /dev/null,
    for the command's stdio is its caller's: `$(nsvirsh create …)`), cwd /; none of the
    command's other files (the domain's lock above all). Its caller must end it with
    os._exit, never return into the command's code."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            if os.fork() != 0:
                os._exit(0)  # reaped at once; the grandchild goes on
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0)
            os.dup2(null if output is None else output, 1)
            os.dup2(null if output is None else output, 2)
            os.closerange(3, keep)
            os.closerange(keep + 1, 1 << 16)
            os.chdir("/")
        except BaseException:
            os._exit(1)
        return True
    os.waitpid(pid, 0)
    return False


def fork(procfs: str) -> Spare:
    """Fork the spare, detached; it sees that the root's /proc server (at `procfs`)
    serves or is getting ready, as the start will most likely need it."""
    ours, theirs = sockets.socketpair()
    if fork_detached(theirs.fileno(), None):
        try:
            _wait(theirs, procfs)
        except BaseException:
            pass
        os._exit(1)
    theirs.close()
    return Spare(ours)


def _wait(sock: sockets.Socket, procfs: str) -> None:
    keep = sock.fileno()
    from nsvirt.driver.state import jsonlite
    from nsvirt.driver.supervisor import controller, protocol  # noqa: F401 (loaded now)
    from nsvirt.driver.supervisor.__main__ import serve

    try:  # while the command parses and plans; forked after those imports, a new
        from nsvirt.driver.procfs import service  # server has little left to load

        service.warm(procfs)
    except OSError:
        pass  # the supervisor tries again, and says why

    data, fds, _, _ = sockets.recv_fds(sock, 64, 1)
    if data != b"config\n" or len(fds) != 1:
        os._exit(0)  # EOF: the command started nothing
    os.dup2(fds[0], 1)
    os.dup2(fds[0], 2)
    os.close(fds[0])
    config = jsonlite.loads(protocol.read_line(sock, CONFIG_TIMEOUT))
    os._exit(serve(config, keep))  # type: ignore[arg-type]
