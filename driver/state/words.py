"""virsh's words for libvirt's domain states and reasons, by number (virDomainState,
virDomain*Reason). Plain tables: states.py's DomainState (an IntEnum) reads them,
and so does the one-shot path, which does without enum (~3 ms to import)."""

from __future__ import annotations

RUNNING, PAUSED, SHUTOFF = 1, 3, 5

LABELS = {
    0: "no state",
    1: "running",
    2: "idle",
    3: "paused",
    4: "in shutdown",
    5: "shut off",
    6: "crashed",
    7: "pmsuspended",
}

REASONS: dict[int, tuple[str, ...]] = {
    1: (
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
    3: (
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
    5: (
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
    6: ("unknown", "panicked"),
    4: ("unknown", "user"),
}


def reason_label(state: int, reason: int) -> str:
    found = REASONS.get(state, ("unknown",))
    return found[reason] if 0 <= reason < len(found) else "unknown"
