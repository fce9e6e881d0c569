"""Domain states and reasons, numbered as libvirt's (virDomainState, virDomain*Reason)."""

from __future__ import annotations

from enum import IntEnum


class DomainState(IntEnum):
    NOSTATE = 0
    RUNNING = 1
    BLOCKED = 2
    PAUSED = 3
    SHUTDOWN = 4
    SHUTOFF = 5
    CRASHED = 6
    PMSUSPENDED = 7

    @property
    def label(self) -> str:
        """virsh's word for the state (`list`, `domstate`, `dominfo`)."""
        return _LABELS[self]


_LABELS = {
    DomainState.NOSTATE: "no state",
    DomainState.RUNNING: "running",
    DomainState.BLOCKED: "idle",
    DomainState.PAUSED: "paused",
    DomainState.SHUTDOWN: "in shutdown",
    DomainState.SHUTOFF: "shut off",
    DomainState.CRASHED: "crashed",
    DomainState.PMSUSPENDED: "pmsuspended",
}

# virsh's words for each state's reasons, by libvirt's reason number.
REASONS: dict[DomainState, tuple[str, ...]] = {
    DomainState.RUNNING: (
        "unknown",
        "booted",
        "migrated",
        "restored",
        "from snapshot",
        "unpaused",
        "migration canceled",
        "save canceled",
        "event wakeup",
        "crashed",
        "post-copy",
    ),
    DomainState.PAUSED: (
        "unknown",
        "user",
        "migrating",
        "saving",
        "dumping",
        "I/O error",
        "watchdog",
        "from snapshot",
        "shutting down",
        "creating snapshot",
        "crashed",
        "starting up",
        "post-copy",
        "post-copy failed",
    ),
    DomainState.SHUTOFF: (
        "unknown",
        "shutdown",
        "destroyed",
        "crashed",
        "migrated",
        "saved",
        "failed",
        "from snapshot",
        "daemon",
    ),
    DomainState.CRASHED: ("unknown", "panicked"),
    DomainState.SHUTDOWN: ("unknown", "user"),
}


def reason_label(state: DomainState, reason: int) -> str:
    words = REASONS.get(state, ("unknown",))
    return words[reason] if 0 <= reason < len(words) else "unknown"
