"""A domain's runtime state file (`<run>/NAME.json`): its one schema, reader, writer
and the one teardown of what a running domain holds.

The supervisor writes the file; clients read it (it is small: `list` never parses
XML) and check that the supervisor it names is still that same live process. If
it is not — killed, crashed, machine half-way through a reboot — the next client
to look cleans up after it with `teardown`, as the supervisor itself does when
its container stops: no cgroup, run file or process is left, and the domain reads
as shut off (crashed). Light (no dataclasses): the supervisor imports it.
"""

from __future__ import annotations

import os

from nsvirt.driver.errors import InternalError
from nsvirt.driver.runtime import procstat
from nsvirt.driver.state import jsonlite, words

TYPE_CHECKING = False
if TYPE_CHECKING:  # light: the one-shot path reads states without typing, pathlib, enum, json
    from typing import Any

    from nsvirt.driver.state.layout import Paths
    from nsvirt.driver.state.names import Layout
    from nsvirt.driver.state.states import DomainState

STATE_FORMAT = 1  # of NAME.json; a reader refuses any other

RUNNING, PAUSED, SHUTOFF = "running", "paused", "shutoff"
_STATES = {RUNNING: words.RUNNING, PAUSED: words.PAUSED, SHUTOFF: words.SHUTOFF}

# field → (type, default); a live state must have every field, a shut-off one the first four
_FIELDS: dict[str, tuple[type | tuple[type, ...], Any]] = {
    "format": (int, STATE_FORMAT),
    "name": (str, ""),
    "state": (str, SHUTOFF),
    "reason": (str, "unknown"),
    "uuid": (str, ""),
    "supervisor_pid": (int, 0),
    "supervisor_start": (int, 0),  # its start time in clock ticks: pid reuse is not it
    "init_pid": (int, 0),
    "consoles": (list, []),  # host ptys, by console port
    "cgroup": (dict, {}),  # controller → the container's cgroup directory
    "cgroup_partition": (str, ""),
    "cgroup_name": (str, ""),
    "facts": (dict, {}),  # HostFacts.to_dict() of the start: which cgroup backend
    "persistent": (bool, True),
    "started_at": ((int, float), 0.0),
    "protocol": (int, 0),  # of the control socket
    "code": (str, ""),  # supervisor/signature.py: who may fork a new supervisor
    "interfaces": (list, []),  # network/attach.py: host, guest, mac, type, source of each
    # launch/containment.py's mode, and for a user namespace the host ids of root
    # inside: {"mode", "uid", "gid", "count", "table"} (uid, gid: None when privileged)
    "containment": (dict, {}),
    # the container's /proc files: "on" (procfs/ serves them), "off" (the domain keeps
    # the kernel's), or "failed: why" (the kernel's, as the server cannot serve)
    "procfs": (str, "off"),
}
_OPTIONAL = ("interfaces", "containment", "procfs")  # added later: a file written before has none
_SHUTOFF_FIELDS = ("format", "name", "state", "reason")


class RunStateError(InternalError):
    """A state file that cannot be read: corrupt, truncated, or of an unknown format."""

    def __init__(self, path: str | os.PathLike[str], why: str) -> None:
        super().__init__(f"runtime state {os.fspath(path)}: {why}")


class RunState:
    """The content of NAME.json, typed. Build with keyword arguments of _FIELDS."""

    __slots__ = tuple(_FIELDS)

    def __init__(self, **values: Any) -> None:
        unknown = set(values) - set(_FIELDS)
        if unknown:
            raise TypeError(f"unknown run-state fields: {sorted(unknown)}")
        for name, (_, default) in _FIELDS.items():
            value = values.get(name, default)
            setattr(self, name, value.copy() if isinstance(value, list | dict) else value)

    def __repr__(self) -> str:
        return f"RunState({self.name!r}, {self.state!r}, {self.reason!r})"

    @property
    def live(self) -> bool:
        return self.state in (RUNNING, PAUSED)

    def to_dict(self) -> dict[str, Any]:
        keys = tuple(_FIELDS) if self.live else _SHUTOFF_FIELDS
        return {k: getattr(self, k) for k in keys}

    def to_json(self) -> bytes:
        return jsonlite.dumps(self.to_dict(), indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes, source: str | os.PathLike[str]) -> RunState:
        """Parse and check a state file's bytes; raise RunStateError on anything off."""
        try:
            raw = jsonlite.loads(data)
        except ValueError:  # UnicodeDecodeError is one
            raise RunStateError(source, "not valid JSON (truncated or corrupt)") from None
        return cls.from_dict(raw, source)

    @classmethod
    def from_dict(cls, raw: object, source: str | os.PathLike[str]) -> RunState:
        """Check a decoded state (a file's, or a supervisor's reply)."""
        if not isinstance(raw, dict):
            raise RunStateError(source, "not a JSON object")
        if raw.get("format") != STATE_FORMAT:
            raise RunStateError(source, f"format {raw.get('format')!r} is not {STATE_FORMAT}: "
                                        "written by another version of nsvirt")  # fmt: skip
        if raw.get("state") not in _STATES:
            raise RunStateError(source, f"unknown state {raw.get('state')!r}")
        required = _FIELDS if raw["state"] != SHUTOFF else _SHUTOFF_FIELDS
        for name in required:
            kind = _FIELDS[name][0]
            if name not in raw:
                if name in _OPTIONAL:
                    continue
                raise RunStateError(source, f"field '{name}' is missing")
            value = raw[name]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise RunStateError(source, f"field '{name}' has the wrong type")
        return cls(**{k: v for k, v in raw.items() if k in _FIELDS})


def shutoff(name: str, reason: str) -> RunState:
    return RunState(name=name, state=SHUTOFF, reason=reason)


def read(paths: Paths | Layout, name: str) -> RunState | None:
    """The domain's runtime state; None if there is none. Raises RunStateError."""
    path = paths.state(name)
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 20)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise RunStateError(path, e.strerror or str(e)) from None
    return RunState.from_json(data, path)


def write(paths: Paths | Layout, state: RunState) -> None:
    """Replace the state file at once (no fsync: /run is emptied by a reboot anyway)."""
    from nsvirt.driver.state import files

    files.write_atomic(paths.state(state.name), state.to_json(), durable=False)


def is_live(state: RunState | None) -> bool:
    return state is not None and state.live


def supervisor_alive(state: RunState) -> bool:
    """Is the supervisor the state names still that same process (not a reused pid)?"""
    if state.supervisor_pid <= 0:
        return False
    stat = procstat.read(state.supervisor_pid)
    return stat is not None and stat.state != "Z" and stat.start_time == state.supervisor_start


def state_of(state: RunState | None) -> tuple[DomainState, int]:
    """(state, reason number) as libvirt numbers them."""
    from nsvirt.driver.state.states import DomainState

    st, reason = numbers_of(state)
    return DomainState(st), reason


def numbers_of(state: RunState | None) -> tuple[int, int]:
    """(state, reason) as libvirt's numbers (state/words.py), without the enum."""
    if state is None:
        return words.SHUTOFF, 0
    st = _STATES[state.state]
    found = words.REASONS.get(st, ("unknown",))
    return st, found.index(state.reason) if state.reason in found else 0


class NeedsRecovery(Exception):
    """The state file cannot be trusted as it is (recovery.py finds the truth)."""


def read_trusted(paths: Paths | Layout, name: str) -> RunState | None:
    """The runtime state as the file says, when that can be trusted without the
    domain's lock: a live state whose supervisor is that same live process, or a
    shut-off one (or none) while no control socket exists. NeedsRecovery otherwise:
    missing while a socket exists, unreadable, or naming a supervisor that is gone."""
    try:
        state = read(paths, name)
    except RunStateError:
        raise NeedsRecovery(name) from None
    if state is not None and state.live:
        if supervisor_alive(state):
            return state
        raise NeedsRecovery(name)
    if os.path.exists(paths.socket(name)):
        raise NeedsRecovery(name)
    return state


def teardown(paths: Paths | Layout, name: str, cgroup: Any | None, *, final_reason: str | None,
             persistent: bool, run_files: bool = True, oom: bool = False) -> None:  # fmt: skip
    """Remove every trace of a domain's run: kill and remove its cgroup (`cgroup`: a
    backend, or None when it holds none), the control socket, the live XML and the
    mount point (unless run_files is False: a start that failed before it made them
    leaves another run's alone); then record how it ended (final_reason, for a
    persistent domain) or drop the state file. Idempotent; used by the supervisor
    and by clients."""
    import contextlib

    from nsvirt.driver.runtime.cgroups import CgroupError
    from nsvirt.driver.state import files

    if cgroup is not None:
        with contextlib.suppress(CgroupError, OSError):
            cgroup.kill_all()
        with contextlib.suppress(CgroupError, OSError):
            cgroup.destroy()
    ended = _was_live(paths, name) if final_reason is not None else None
    if final_reason is not None:  # the end is recorded before the run's files go: a
        _record_end(paths, name, final_reason, persistent)  # start's late live XML sees it
    if run_files:
        for path in (paths.socket(name), paths.live_xml(name), paths.compiled(name, live=True)):
            files.remove(path, durable=False)
        with contextlib.suppress(OSError):
            os.rmdir(paths.mountpoint(name))
        with contextlib.suppress(OSError):  # its registration with the /proc server
            os.unlink(f"{getattr(paths, 'names', paths).procfs()}/domains/{name}")
    if final_reason is not None and not os.path.exists(paths.config(name)):
        files.remove_unheld_lock(paths.lock(name))  # a transient domain is gone: its lock too
    if ended is not None and final_reason is not None:  # once it is all gone, as libvirt
        _announce_end(paths, name, ended, final_reason, oom)


def _was_live(paths: Paths | Layout, name: str) -> str | None:
    """The uuid of the run the state file still says is live, else None (a second
    teardown of the same run announces nothing)."""
    try:
        with open(paths.state(name), "rb") as f:
            raw = jsonlite.loads(f.read())
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or raw.get("state") not in (RUNNING, PAUSED):
        return None
    return str(raw.get("uuid", ""))


def _announce_end(paths: Paths | Layout, name: str, uuid: str, final_reason: str,
                  oom: bool) -> None:  # fmt: skip
    """The STOPPED event, with nsvirt's reason (and whether init was OOM-killed)."""
    from nsvirt.driver.state import events

    names = getattr(paths, "names", paths)  # a Layout, or the Paths made of one
    extra = {"reason": final_reason, **({"oom": True} if oom else {})}
    events.emit(names, name, uuid, events.STOPPED, events.STOP_DETAILS.get(final_reason, 5),
                **extra)  # fmt: skip


def _record_end(paths: Paths | Layout, name: str, final_reason: str, persistent: bool) -> None:
    """A persistent domain's state says why it stopped; a transient one's goes."""
    from nsvirt.driver.state import files

    if persistent and os.path.exists(paths.config(name)):
        try:
            write(paths, shutoff(name, final_reason))
            return
        except OSError:
            pass  # a full disk: no record of why, but never a stale "running" one
    files.remove(paths.state(name), durable=False)


def backend_of(state: RunState) -> Any:
    """The cgroup backend of a running domain, rebuilt from its state."""
    from nsvirt.driver.runtime.cgroups import backend_for

    return backend_for(state.facts, state.cgroup_partition, state.cgroup_name)


def remove_host_interfaces(state: RunState) -> None:
    """Delete the host-side devices the run's interfaces left (a client cleans after a
    dead supervisor; normally they go with the container's network namespace)."""
    hosts = [i.get("host") for i in state.interfaces if isinstance(i, dict) and i.get("host")]
    if hosts:
        import contextlib

        from nsvirt.driver.network.attach import remove_host_ends  # pyroute2: only here

        with contextlib.suppress(OSError):
            remove_host_ends(hosts)


def clean_after_dead_supervisor(paths: Paths | Layout, state: RunState) -> None:
    """Kill and remove what a dead supervisor left; mark the domain crashed."""
    try:
        cgroup = backend_of(state)
    except (KeyError, ValueError, OSError):
        cgroup = None
    teardown(paths, state.name, cgroup, final_reason="crashed", persistent=state.persistent)
    remove_host_interfaces(state)
    release_ids(state)


def remove_temp_files(paths: Paths | Layout, name: str, pid: int, table: str | None) -> None:
    """The temp files a supervisor that was SIGKILLed may have left mid-write: its run
    state's and (`table`: the host id table it used, if any) the id table's."""
    from nsvirt.driver.state import files

    files.remove_temp_of(paths.state(name), pid)
    if table:
        files.remove_temp_of(table, pid)


def release_ids(state: RunState) -> None:
    """Give back the host ids of a run whose supervisor is gone (it would have)."""
    table = (state.containment or {}).get("table")
    if table:
        import contextlib

        from nsvirt.driver.state import idranges

        with contextlib.suppress(OSError, InternalError):
            idranges.release_gone(table)
