"""Start a supervisor for a launch plan and wait for its word: running, or why not.

Never sleeps-and-polls: the supervisor answers on a socketpair, and a
supervisor that dies answers with EOF. A failed start leaves nothing behind:
what the supervisor could not clean (because it was killed) is cleaned here.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys

from nsvirt.driver import runstate, store
from nsvirt.driver.errors import InternalError
from nsvirt.driver.plan import LaunchPlan
from nsvirt.driver.supervisor import protocol

START_TIMEOUT = 60.0
BOOT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "supervisor", "boot.py"
)  # a bound on waiting for the handshake, not a delay


class StartFailed(Exception):
    """The supervisor reported why the container could not start."""


def launch(paths: store.Paths, plan: LaunchPlan, *, persistent: bool) -> dict:
    """Start the supervisor; return its handshake ({"pid", "init_pid", "consoles"})."""
    paths.ensure()
    name = plan.name
    config = {
        "plan": plan.to_json(),
        "persistent": persistent,
        "paths": {
            "state": str(paths.state(name)),
            "socket": str(paths.socket(name)),
            "live_xml": str(paths.live_xml(name)),
            "mountpoint": str(runstate.mountpoint(paths, name)),
        },
    }
    store.remove(paths.state(name), durable=False)  # the last run's reason is history now
    config["fault"] = os.environ.get("NSVIRT_FAULT")  # test hook (supervisor/faults.py)
    ours, theirs = socket.socketpair()
    log_fd = os.open(paths.log(name), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    starter = None
    try:
        if not _spawn_from_running(paths, config, theirs.fileno(), log_fd):
            starter = subprocess.Popen(
                [
                    sys.executable,
                    "-I",  # isolated and without site: see supervisor/boot.py
                    "-S",
                    BOOT,
                    "--detach",
                    "--handshake-fd",
                    str(theirs.fileno()),
                ],
                stdin=subprocess.PIPE,
                stdout=log_fd,
                stderr=log_fd,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
                cwd="/",
            )
    finally:
        os.close(log_fd)
        theirs.close()
    try:
        if starter is not None:
            assert starter.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                starter.stdin.write(json.dumps(config).encode())
                starter.stdin.close()
            starter.wait()  # exits as soon as it has forked the real supervisor
        try:
            line = protocol.read_line(ours, START_TIMEOUT).decode(errors="replace").strip()
        except TimeoutError:
            line = ""
    finally:
        ours.close()
    if line.startswith("running "):
        return json.loads(line.removeprefix("running "))
    _clean_failed_start(paths, plan)
    if line.startswith("error: "):
        raise StartFailed(line.removeprefix("error: "))
    raise InternalError(f"the supervisor of '{name}' died during start (see {paths.log(name)})")


def _spawn_from_running(paths: store.Paths, config: dict, handshake: int, log_fd: int) -> bool:
    """Ask a running supervisor of the same code to fork the new one (fast, and its
    memory is shared); False when there is none, so a fresh interpreter starts it."""
    from nsvirt.driver.supervisor.signature import code_signature

    if os.environ.get("NSVIRT_NO_FORK_SERVER"):
        return False
    code = code_signature()
    for other in paths.running_names():
        state = runstate.read(paths, other)
        if not (state and runstate.is_live(state) and state.get("code") == code
                and state.get("protocol") == protocol.VERSION
                and runstate.supervisor_alive(state)):  # fmt: skip
            continue
        try:
            with protocol.connect(paths.socket(other), timeout=10.0) as sock:
                socket.send_fds(sock, [protocol.encode({"op": "spawn", "config": config})],
                                [handshake, log_fd])  # fmt: skip
                reply = protocol.decode(protocol.read_line(sock, 10.0) or b"{}")
        except (OSError, protocol.ProtocolError, TimeoutError):
            continue
        if reply.get("ok"):
            return True
    return False


def _clean_failed_start(paths: store.Paths, plan: LaunchPlan) -> None:
    """Remove what a supervisor that failed, or was killed, during start left behind."""
    state = runstate.read(paths, plan.name)
    if state and runstate.is_live(state) and runstate.supervisor_alive(state):
        # it wrote its state but never answered: stop it before cleaning after it
        with contextlib.suppress(ProcessLookupError):
            os.kill(state["supervisor_pid"], 9)
    runstate.remove_leftovers(paths, plan.name, plan.facts, plan.cgroup_partition,
                              plan.cgroup_name)  # fmt: skip
    store.remove(paths.state(plan.name), durable=False)
