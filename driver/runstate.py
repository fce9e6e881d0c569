"""A domain's runtime state file, and what to do when its supervisor is gone.

The supervisor writes `<run>/NAME.json`; clients read it (it is small: `list`
never parses XML) and check that the supervisor it names is still the same
live process. If it is not — killed, crashed, machine half-way through a
reboot — the next client to look cleans up after it: no cgroup, run file or
process is left, and the domain reads as shut off (crashed).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from nsvirt.driver import store
from nsvirt.driver.state import REASONS, DomainState

_STATES = {
    "running": DomainState.RUNNING,
    "paused": DomainState.PAUSED,
    "shutoff": DomainState.SHUTOFF,
}


def read(paths: store.Paths, name: str) -> dict | None:
    """The state file's content, or None if there is none (or it is unreadable)."""
    try:
        with open(paths.state(name), "rb") as f:
            data = json.loads(f.read())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_live(state: dict | None) -> bool:
    return bool(state) and state.get("state") in ("running", "paused")


def supervisor_alive(state: dict) -> bool:
    """Is the supervisor the state names still that same process (not a reused pid)?"""
    pid = state.get("supervisor_pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return False
    return fields[0] != "Z" and int(fields[19]) == state.get("supervisor_start")


def state_of(state: dict | None) -> tuple[DomainState, int]:
    """(state, reason number) from a state file's content."""
    if not state:
        return DomainState.SHUTOFF, 0
    st = _STATES.get(state.get("state", ""), DomainState.NOSTATE)
    words = REASONS.get(st, ("unknown",))
    reason = state.get("reason", "unknown")
    return st, words.index(reason) if reason in words else 0


def remove_leftovers(paths: store.Paths, name: str, facts: dict, partition: str,
                     cgroup_name: str) -> None:  # fmt: skip
    """Kill what runs in a container's cgroup, remove the cgroup, the control socket,
    the live XML and the mount point: whatever a supervisor did not clean. Idempotent."""
    from nsvirt.driver.runtime.cgroups import CgroupError, backend_for

    with contextlib.suppress(CgroupError, OSError, KeyError, ValueError):
        cg = backend_for(facts, partition, cgroup_name)
        cg.kill_all()
        cg.destroy()
    for path in (paths.socket(name), paths.live_xml(name)):
        store.remove(path, durable=False)
    with contextlib.suppress(OSError):
        os.rmdir(mountpoint(paths, name))


def clean_after_dead_supervisor(paths: store.Paths, name: str, state: dict) -> None:
    """Kill and remove what a dead supervisor left; mark the domain crashed. Idempotent."""
    remove_leftovers(paths, name, state.get("facts", {}), state.get("cgroup_partition", ""),
                     state.get("cgroup_name", ""))  # fmt: skip
    if state.get("persistent", True) and paths.config(name).exists():
        final = {
            "format": store.STATE_FORMAT,
            "name": name,
            "state": "shutoff",
            "reason": "crashed",
        }
        store.write_atomic(paths.state(name), json.dumps(final).encode(), durable=False)
    else:
        store.remove(paths.state(name), durable=False)


def mountpoint(paths: store.Paths, name: str) -> Path:
    """Where an app container (sharing the host root) gets its root bound."""
    return paths.run_dir / f"{name}.root"
