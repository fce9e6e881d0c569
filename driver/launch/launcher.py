"""Start a supervisor for a launch plan and wait for its word: running, or why not.

Never sleeps-and-polls: the supervisor answers on a socketpair, and one that dies
answers with EOF. Each attempt (a fork from a running supervisor of the same
code, else a fresh interpreter) has its own socketpair; the new supervisor says
`hello` with its pid and waits for `go` before it creates anything, so an
attempt given up on (a donor that did not answer in time) starts nothing, ever.
A failed start leaves nothing behind, and touches nothing it did not make.
"""

from __future__ import annotations

import os
import sys
import time

from nsvirt.driver.errors import InternalError
from nsvirt.driver.runtime import procstat, sockets
from nsvirt.driver.runtime.cgroups import backend_for
from nsvirt.driver.state import files, jsonlite, runstate
from nsvirt.driver.supervisor import protocol
from nsvirt.driver.supervisor.config import SupervisorConfig

TYPE_CHECKING = False
if TYPE_CHECKING:  # the one-shot start uses this module: no typing, no model
    from collections.abc import Sequence
    from typing import Any

    from nsvirt.driver.launch.plan import NetIface
    from nsvirt.driver.launch.spare import Spare
    from nsvirt.driver.state.names import Layout

BOOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    "supervisor", "boot.py")  # fmt: skip
# bounds on waiting, not delays
FRESH_HELLO_TIMEOUT = 30.0  # a new interpreter's start (slow machines, cold caches)
DONOR_TIMEOUT = 2.0  # a running supervisor's reply to spawn, and its fork's hello


class StartFailed(Exception):
    """The supervisor reported why the container could not start."""


class _Attempt:
    """One try at starting a supervisor: our end of its handshake, and its hello."""

    def __init__(self, sock: sockets.Socket, hello: dict[str, Any], go_sent: bool = False) -> None:
        self.sock = sock
        self.pid = int(hello["pid"])
        self.start = int(hello["start"])
        self.go_sent = go_sent


def start_timeout(config: SupervisorConfig) -> float:
    """How long a started supervisor may take to say `running`: each of its own
    handshake reads is bounded by handshake_timeout, and there are three."""
    return float(os.environ.get("NSVIRT_START_TIMEOUT") or 3 * config.handshake_timeout + 5)


def launch(paths: Layout, plan_json: str, *, persistent: bool, interfaces: Sequence[NetIface] = (),
           fork_here: bool = False, spare: Spare | None = None) -> dict[str, Any]:  # fmt: skip
    """Start the supervisor of a launch plan (LaunchPlan.to_json()); return its
    handshake ({"pid", "init_pid", "consoles", ...}). `interfaces`: the plan's, to
    make from here when init asks. With no running supervisor to fork it, it is
    `spare` (launch/spare.py, forked by a one-shot command at its start; used up or
    discarded here), or with `fork_here` this process forks it (the one-shot
    nsvirsh: small, one thread), else a new interpreter starts it."""
    paths.ensure()
    plan = jsonlite.loads(plan_json)
    name = plan["name"]  # type: ignore[index]
    cgroup = backend_for(plan["facts"], plan["cgroup_partition"], plan["cgroup_name"])  # type: ignore[index]
    if cgroup.has_processes():  # another container of this name: leave it alone
        raise StartFailed(f"cgroup {cgroup.describe()} already has processes: another "
                          "container of this name runs under this partition")  # fmt: skip
    config = SupervisorConfig.for_launch(plan_json, paths.root, persistent=persistent)
    files.remove(paths.state(name), durable=False)  # the last run's reason is history now
    log_fd = os.open(paths.log(name), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        attempt = _from_running(paths, config, log_fd)
        if attempt is None and spare is not None:
            attempt = _from_spare(spare, config, log_fd, name)
        if attempt is None:
            attempt = (_fork_here if fork_here else _fresh)(config, log_fd, name)
    finally:
        os.close(log_fd)
        if spare is not None:
            spare.discard()  # a donor forked it after all: the spare exits
    made: list[dict[str, Any]] = []  # the interfaces this start made
    try:
        if not attempt.go_sent:
            attempt.sock.sendall(b"go\n")
        while True:
            line = protocol.read_line(attempt.sock, start_timeout(config))
            line = line.decode(errors="replace").strip()
            if not line.startswith("net "):
                break
            # init waits in its network namespace: make the interfaces there, from here,
            # where pyroute2 is at hand (the supervisor never loads it)
            made = _make_interfaces(paths, interfaces, jsonlite.loads(line.removeprefix("net ")))
            attempt.sock.sendall(b"net-ok " + jsonlite.dumps(made).encode() + b"\n")
    except _NetFailed as e:
        attempt.sock.sendall(f"net-error: {e}\n".encode())
        line = protocol.read_line(attempt.sock, start_timeout(config)).decode(errors="replace")
        line = line.strip()
    except (OSError, TimeoutError, protocol.ProtocolError):
        line = ""
    finally:
        attempt.sock.close()
    if line.startswith("running "):
        return jsonlite.loads(line.removeprefix("running "))
    if line.startswith("error: "):  # it cleaned up after itself
        raise StartFailed(line.removeprefix("error: "))
    _clean_after(paths, plan, attempt, persistent, made, config.idranges)  # type: ignore[arg-type]
    raise InternalError(f"the supervisor of '{name}' died or stopped answering during start "
                        f"(see {paths.log(name)})")  # fmt: skip


class _NetFailed(Exception):
    """The interfaces could not be made; str() is why."""


def _make_interfaces(paths: Layout, interfaces: Sequence[NetIface],
                     request: dict[str, Any]) -> list[dict]:  # fmt: skip
    from nsvirt.driver.network.attach import attach

    try:
        return attach(interfaces, int(request["init_pid"]), paths.tag())
    except OSError as e:
        raise _NetFailed(str(e)) from None


def _read_hello(sock: sockets.Socket, timeout: float) -> dict[str, Any] | None:
    """The new supervisor's hello; None if it did not come in time."""
    try:
        line = protocol.read_line(sock, timeout).decode(errors="replace").strip()
    except (OSError, TimeoutError, protocol.ProtocolError):
        return None
    if line.startswith("error: "):
        raise StartFailed(line.removeprefix("error: "))
    if not line.startswith("hello "):
        return None
    hello = jsonlite.loads(line.removeprefix("hello "))
    return hello if isinstance(hello, dict) else None


def _from_running(paths: Layout, config: SupervisorConfig, log_fd: int) -> _Attempt | None:
    """Ask a running supervisor of the same code to fork the new one (fast, and its
    memory is shared); None when none answers in time, so a fresh interpreter starts it."""
    from nsvirt.driver.supervisor.signature import code_signature

    if os.environ.get("NSVIRT_NO_FORK_SERVER"):
        return None
    code = ""  # computed only if some supervisor runs (a walk of the driver's files)
    for other in paths.running_names():
        try:
            state = runstate.read(paths, other)
        except runstate.RunStateError:
            continue
        if state is None or not state.live or not state.code:
            continue
        if state.protocol != protocol.VERSION or not runstate.supervisor_alive(state):
            continue
        stat = procstat.read(state.supervisor_pid)
        if stat is None or stat.state in ("T", "t"):  # stopped: it would not answer
            continue
        if not _shares_namespaces(state.supervisor_pid):  # its fork would live there
            continue
        ours, theirs = sockets.socketpair()
        try:
            with protocol.connect(paths.socket(other), timeout=DONOR_TIMEOUT) as sock:
                request = {"op": "spawn", "config": config.to_dict(),
                           "deadline": time.monotonic() + DONOR_TIMEOUT / 2}  # fmt: skip
                sockets.send_fds(sock, [protocol.encode(request)], [theirs.fileno(), log_fd])
                # while it forks: is its code ours? (if not, its fork never gets `go`)
                code = code or code_signature()
                reply = protocol.decode(protocol.read_line(sock, DONOR_TIMEOUT) or b"{}")
        except (OSError, protocol.ProtocolError, TimeoutError):
            reply = {}
        finally:
            theirs.close()
        same_code = state.code == code
        hello = _read_hello(ours, DONOR_TIMEOUT) if reply.get("ok") and same_code else None
        if hello is not None:
            return _Attempt(ours, hello)
        ours.close()  # given up: a late fork of this attempt finds no one to say go
    return None


def _shares_namespaces(pid: int) -> bool:
    """Is `pid` in this thread's network and mount namespaces? A supervisor forked from
    a donor lives in the donor's: its container's interfaces must be ours."""
    try:
        return all(
            os.stat(f"/proc/{pid}/ns/{ns}").st_ino == os.stat(f"/proc/thread-self/ns/{ns}").st_ino
            for ns in ("net", "mnt")
        )
    except OSError:
        return False


def _fresh(config: SupervisorConfig, log_fd: int, name: str) -> _Attempt:
    """Start the supervisor in a new interpreter (isolated, without site: boot.py)."""
    import contextlib
    import subprocess

    ours, theirs = sockets.socketpair()
    try:
        starter = subprocess.Popen(
            [sys.executable, "-I", "-S", BOOT, "--detach", "--handshake-fd", str(theirs.fileno())],
            stdin=subprocess.PIPE, stdout=log_fd, stderr=log_fd, pass_fds=(theirs.fileno(),),
            start_new_session=True, cwd="/",
        )  # fmt: skip
    finally:
        theirs.close()
    assert starter.stdin is not None
    with contextlib.suppress(BrokenPipeError):
        starter.stdin.write(config.to_json())
        starter.stdin.close()
    starter.wait()  # exits as soon as it has forked the real supervisor
    hello = _read_hello(ours, FRESH_HELLO_TIMEOUT)
    if hello is None:
        ours.close()
        raise InternalError(f"the supervisor of '{name}' did not start")
    return _Attempt(ours, hello)


def _from_spare(spare: Spare, config: SupervisorConfig, log_fd: int, name: str) -> _Attempt:
    ours = spare.hand(config.to_json(), log_fd)
    _go_with_signature(ours)  # our own child, as _fork_here's
    hello = _read_hello(ours, FRESH_HELLO_TIMEOUT)
    if hello is None:
        ours.close()
        raise InternalError(f"the supervisor of '{name}' did not start")
    return _Attempt(ours, hello, go_sent=True)


def _go_with_signature(sock: sockets.Socket) -> None:
    """`go` for a fork of this process, at once: no late fork of a given-up attempt to
    guard against. With the code's signature, computed here while it loads (it would
    compute the same, after: ~2 ms of its critical path)."""
    from nsvirt.driver.supervisor.signature import code_signature

    sock.sendall(b"go " + code_signature().encode() + b"\n")


def _fork_here(config: SupervisorConfig, log_fd: int, name: str) -> _Attempt:
    """Fork this process into the supervisor (detached, as boot.py --detach does):
    no second interpreter to start. Only what the supervisor needs stays open."""
    from nsvirt.driver.launch.spare import fork_detached

    ours, theirs = sockets.socketpair()
    data = config.to_dict()
    if fork_detached(theirs.fileno(), log_fd):  # the supervisor, in the grandchild
        try:
            from nsvirt.driver.supervisor.__main__ import serve

            os._exit(serve(data, theirs.fileno()))
        except BaseException:
            os._exit(1)
    theirs.close()
    _go_with_signature(ours)
    hello = _read_hello(ours, FRESH_HELLO_TIMEOUT)
    if hello is None:
        ours.close()
        raise InternalError(f"the supervisor of '{name}' did not start")
    return _Attempt(ours, hello, go_sent=True)


def _clean_after(paths: Layout, plan: dict[str, Any], attempt: _Attempt, persistent: bool,
                 made: list[dict[str, Any]], table: str) -> None:  # fmt: skip
    """A supervisor died, or stopped answering, during start: make sure it is gone,
    then remove what it left. Its cgroup is this start's (launch checked that no
    other container ran there, and the domain's lock keeps others out)."""
    procstat.kill_and_wait(attempt.pid, attempt.start)
    runstate.remove_temp_files(paths, plan["name"], attempt.pid, table)
    if made:  # host ends of interfaces made for it (its init may not have died yet)
        from nsvirt.driver.network.attach import remove_host_ends

        remove_host_ends(i["host"] for i in made)
    cgroup = backend_for(plan["facts"], plan["cgroup_partition"], plan["cgroup_name"])
    runstate.teardown(paths, plan["name"], cgroup, final_reason=None, persistent=persistent)
    files.remove(paths.state(plan["name"]), durable=False)
