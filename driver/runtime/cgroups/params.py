"""libvirt's typed parameters (memtune's, schedinfo's) of a running container's
cgroup, from its backend's settings(). Light: the one-shot path prints them."""

from __future__ import annotations

UNLIMITED = (2**63 - 1) >> 10  # VIR_DOMAIN_MEMORY_PARAM_UNLIMITED, KiB


def live_memory(now: dict[str, object]) -> dict[str, int]:
    """memtune's parameters from a running cgroup's settings (the backends' settings())."""
    return {"hard_limit": _kib(now.get("memory_limit")),
            "soft_limit": _kib(now.get("memory_soft_limit")),
            "swap_hard_limit": _kib(now.get("memory_swap_limit"))}  # fmt: skip


def live_scheduler(now: dict[str, object]) -> dict[str, int]:
    """schedinfo's parameters from a running cgroup's settings."""
    return {"cpu_shares": int(now.get("cpu_shares", 0)),  # type: ignore[call-overload]
            "vcpu_period": int(now.get("cpu_period", 0)),  # type: ignore[call-overload]
            "vcpu_quota": int(now.get("cpu_quota", -1))}  # type: ignore[call-overload]  # fmt: skip


def _kib(value: object) -> int:
    """Bytes (or -1: none) as libvirt's KiB, UNLIMITED for none."""
    if value is None or value == -1:
        return UNLIMITED
    return min(int(value) // 1024, UNLIMITED)  # type: ignore[call-overload]
