"""Domain states and reasons, numbered as libvirt's (virDomainState, virDomain*Reason).

The words themselves are in state/words.py, without enum (the one-shot path uses them).
"""

from __future__ import annotations

from enum import IntEnum

from nsvirt.driver.state import words


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
        return words.LABELS[self]


# virsh's words for each state's reasons, by libvirt's reason number.
REASONS: dict[DomainState, tuple[str, ...]] = {DomainState(n): w for n, w in words.REASONS.items()}


def reason_label(state: DomainState, reason: int) -> str:
    return words.reason_label(state, reason)
