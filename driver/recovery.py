"""The truth about a domain's run when its state file cannot be trusted, and destroy
without a supervisor that answers.

The state file is the supervisor's record; when it is missing while a control
socket exists, unreadable (truncated, corrupt, another version's), or names a
supervisor that is gone, the supervisor itself (asked over its socket), then the
kernel (who holds the socket, what runs in the cgroup) say what is true. Every
function here runs with the domain's lock held.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from nsvirt.driver.errors import XMLError
from nsvirt.driver.runtime import procstat
from nsvirt.driver.state import runstate
from nsvirt.driver.state.runstate import RUNNING, RunState, RunStateError

if TYPE_CHECKING:
    from nsvirt.driver.connection import Connection
    from nsvirt.driver.domxml import model as m

ASK_TIMEOUT = 2.0  # a bound on a supervisor's answer, then it counts as silent


def true_state(conn: Connection, name: str) -> RunState | None:
    """The domain's runtime state, recovered or cleaned up where the file is wrong."""
    paths = conn.paths
    try:
        state = runstate.read(paths, name)
        broken = False
    except RunStateError:
        state, broken = None, True
    if state is not None and state.live:
        if runstate.supervisor_alive(state):
            return state
        runstate.clean_after_dead_supervisor(paths, state)
        return _read(conn, name)
    if not broken and not paths.socket(name).exists():
        return state  # shut off, and no supervisor claims the name
    found = ask_supervisor(conn, name)
    if found is not None:
        try:
            runstate.write(paths, found)
        except OSError:
            pass  # a full disk: the truth is still what we return
        return found
    # nobody answers on the socket: whatever ran is gone (init dies with its
    # supervisor); remove what is left, and record that we cannot say how it ended
    cgroup = _cgroup_from_definition(conn, name)
    runstate.teardown(paths, name, cgroup, final_reason="unknown",
                      persistent=paths.config(name).exists())  # fmt: skip
    return _read(conn, name)


def _read(conn: Connection, name: str) -> RunState | None:
    try:
        return runstate.read(conn.paths, name)
    except RunStateError:
        return None


def ask_supervisor(conn: Connection, name: str) -> RunState | None:
    """The run state from the supervisor that holds the domain's control socket; if
    it holds the socket but does not answer (stopped, wedged), what the kernel tells
    of it; None if no process holds the socket."""
    from nsvirt.driver.supervisor import protocol

    path = conn.paths.socket(name)
    try:
        sock = protocol.connect(path, timeout=ASK_TIMEOUT)
    except OSError:
        return None
    with sock:
        pid = protocol.peer_pid(sock)
        try:
            request = {"op": "state", "deadline": time.monotonic() + ASK_TIMEOUT}
            sock.sendall(protocol.encode(request))
            line = protocol.read_line(sock, ASK_TIMEOUT)
            reply = protocol.decode(line) if line else {}
            if reply.get("ok"):
                return RunState.from_dict(reply.get("state"), path)
        except (OSError, TimeoutError, protocol.ProtocolError, RunStateError):
            pass
    return _silent_supervisor_state(conn, name, pid)


def _silent_supervisor_state(conn: Connection, name: str, pid: int) -> RunState | None:
    """A supervisor that holds the socket but does not answer: its pid from the
    socket, its container's cgroup from the definition (nothing else is known)."""
    stat = procstat.read(pid)
    if stat is None or stat.state == "Z":
        return None
    from nsvirt.driver.launch import hostfacts
    from nsvirt.driver.launch.plan import cgroup_name

    dom = _definition(conn, name)
    facts = hostfacts.detect().to_dict()
    partition = conn.partition_for(dom) if dom is not None else conn.default_partition()
    state = RunState(
        name=name, uuid=(dom.uuid if dom is not None else None) or "", state=RUNNING,
        reason="unknown", supervisor_pid=pid, supervisor_start=stat.start_time,
        cgroup_partition=partition, cgroup_name=cgroup_name(name), facts=facts,
        persistent=conn.paths.config(name).exists(),
    )  # fmt: skip
    cgroup = runstate.backend_of(state)
    state.cgroup = cgroup.describe()
    inside = set(cgroup.pids())
    state.init_pid = next((c for c in procstat.children(pid) if c in inside), 0)
    return state


def _definition(conn: Connection, name: str) -> m.DomainDef | None:
    """The live definition, else the persistent one; None if neither can be read."""
    from nsvirt.driver import domxml

    for path in (conn.paths.live_xml(name), conn.paths.config(name)):
        try:
            return domxml.load_trusted(path.read_bytes(), source=str(path))
        except (OSError, XMLError):
            continue
    return None


def _cgroup_from_definition(conn: Connection, name: str) -> object | None:
    from nsvirt.driver.launch import hostfacts
    from nsvirt.driver.launch.plan import cgroup_name
    from nsvirt.driver.runtime.cgroups import CgroupError, backend_for

    dom = _definition(conn, name)
    partition = conn.partition_for(dom) if dom is not None else conn.default_partition()
    try:
        return backend_for(hostfacts.detect().to_dict(), partition, cgroup_name(name))
    except (CgroupError, KeyError):
        return None


def destroy_without_supervisor(conn: Connection, state: RunState) -> None:
    """Destroy a running domain whose supervisor does not answer: SIGKILL the
    supervisor (its init follows, PDEATHSIG), kill what is left in the cgroup,
    and tear down as the supervisor would have."""
    procstat.kill_and_wait(state.supervisor_pid, state.supervisor_start)
    runstate.remove_temp_files(conn.paths, state.name, state.supervisor_pid,
                               (state.containment or {}).get("table"))  # fmt: skip
    try:
        cgroup = runstate.backend_of(state)
    except (KeyError, ValueError):
        cgroup = None
    runstate.teardown(conn.paths, state.name, cgroup, final_reason="destroyed",
                      persistent=state.persistent)  # fmt: skip
    runstate.remove_host_interfaces(state)
    runstate.release_ids(state)
