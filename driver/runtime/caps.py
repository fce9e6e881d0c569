"""Drop capabilities from every set, bounding set included, before exec'ing init."""

from __future__ import annotations

from nsvirt.driver.domxml.capabilities import CAP_NUMBERS
from nsvirt.driver.runtime import syscalls

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return max(CAP_NUMBERS.values())


def drop_capabilities(keep: Sequence[str]) -> None:
    """Keep only `keep`: bounding set first (needs CAP_SETPCAP), then the other sets."""
    kept = {CAP_NUMBERS[name] for name in keep}
    for cap in range(last_cap() + 1):
        if cap not in kept:
            syscalls.prctl(syscalls.PR_CAPBSET_DROP, cap, what=f"dropping capability {cap}")
    syscalls.prctl(
        syscalls.PR_CAP_AMBIENT,
        syscalls.PR_CAP_AMBIENT_CLEAR_ALL,
        what="clearing ambient capabilities",
    )
    # the host may already lack some (a sandbox without CAP_SYS_RESOURCE, say)
    mask = sum(1 << c for c in kept) & _permitted()
    syscalls.capset(mask, mask, 0)


def _permitted() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapPrm:"):
                return int(line.split()[1], 16)
    return (1 << (last_cap() + 1)) - 1
