"""The per-container supervisor: `python -I -S boot.py [--detach] --handshake-fd N`.

Reads its config (supervisor/config.py) as JSON on stdin, says `hello` on the
handshake fd and waits for the launcher's `go` (a launcher that gave up has
closed its end: nothing is started), then runs the container
(supervisor/controller.py) and answers `running {...}` or `error: reason`. Its
pid is the domain's id.
"""

from __future__ import annotations

import os
import sys

from nsvirt.driver.runtime import procstat, sockets
from nsvirt.driver.state import jsonlite
from nsvirt.driver.supervisor import protocol
from nsvirt.driver.supervisor.config import SupervisorConfig

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def serve(config: dict[str, Any], handshake_fd: int) -> int:
    """Run the supervisor of one container on an open handshake socket."""
    handshake = sockets.Socket(fileno=handshake_fd)
    try:
        cfg = SupervisorConfig.from_dict(config)
    except (KeyError, TypeError, ValueError) as e:
        handshake.sendall(f"error: cannot read the supervisor's config: {e}\n".encode())
        return 1
    hello = {"pid": os.getpid(), "start": procstat.start_time(os.getpid())}
    try:
        handshake.sendall(f"hello {jsonlite.dumps(hello)}\n".encode())
        word = protocol.read_line(handshake, cfg.handshake_timeout)
    except (OSError, TimeoutError, protocol.ProtocolError):
        return 1
    if word.startswith(b"go ") and word.endswith(b"\n"):  # with the code's signature
        from nsvirt.driver.supervisor import signature

        signature.adopt(word[3:-1].decode(errors="replace"))
    elif word != b"go\n":
        return 0  # the launcher gave up on this start (and maybe made another)
    from nsvirt.driver.supervisor import early

    begun = early.begin(cfg.plan)  # the cgroup, joined by the first child while we load
    from nsvirt.driver.supervisor.signature import running_signature

    running_signature()  # the code this process (and its forks) runs: taken once, now
    from nsvirt.driver.supervisor.controller import Controller

    return Controller(cfg, handshake, begun).run()


def main(argv: list[str]) -> int:
    # argv: [--detach] --handshake-fd N (no argparse: the supervisor stays small)
    if "--detach" in argv:
        if os.fork() != 0:
            os._exit(0)  # the starter is reaped at once; the supervisor is the grandchild
        os.setsid()  # a session of its own, as a supervisor forked from a running one has
    handshake_fd = int(argv[argv.index("--handshake-fd") + 1])
    config = jsonlite.loads(sys.stdin.buffer.read())
    sys.stdin.close()
    return serve(config, handshake_fd)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
