"""Scaled integers (`unit='MiB'`) and cpusets (`0-3,^2`), as libvirt reads them."""

from __future__ import annotations

# libvirt stores memory in KiB and refuses more than INT64_MAX bytes
# (VIR_DOMAIN_MEMORY_PARAM_UNLIMITED = INT64_MAX >> 10).
MAX_KIB = (2**63 - 1) >> 10
# libvirt's cpumask limit (VIR_DOMAIN_CPUMASK_LEN)
MAX_CPU_ID = 8191

_POWERS = {"k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}


class UnitError(ValueError):
    """A value or unit that cannot be scaled; str() is the reason."""


def unit_scale(unit: str | None, default: int = 1024) -> int:
    """Return the bytes in one `unit`; no unit means `default` bytes."""
    if unit is None or unit == "":
        return default
    low = unit.lower()
    if low in ("b", "byte", "bytes"):
        return 1
    power = _POWERS.get(low[0])
    if power is None or low[1:] not in ("", "b", "ib"):
        raise UnitError(f"unknown unit '{unit}'")
    base = 1000 if low[1:] == "b" else 1024
    return base**power


def to_kib(value: int, unit: str | None, *, default: int = 1024, limit: int = MAX_KIB) -> int:
    """Scale `value` of `unit` to KiB, rounding up as libvirt does."""
    scaled = value * unit_scale(unit, default)
    kib = -(-scaled // 1024)
    if kib > limit:
        raise UnitError(f"size {kib} KiB is larger than the limit of {limit} KiB")
    return kib


def parse_cpuset(text: str) -> frozenset[int]:
    """Parse `0-3,8,^2` into the set of ids; ranges must go upwards."""
    include: set[int] = set()
    exclude: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise UnitError(f"empty item in cpuset '{text}'")
        target = exclude if part.startswith("^") else include
        part = part.removeprefix("^")
        lo_text, dash, hi_text = part.partition("-")
        if not lo_text.isdigit() or (dash and not hi_text.isdigit()):
            raise UnitError(f"malformed cpuset '{text}'")
        lo = int(lo_text)
        hi = int(hi_text) if hi_text else lo
        if hi < lo:
            raise UnitError(f"malformed cpuset '{text}': range {lo}-{hi} goes backwards")
        if hi > MAX_CPU_ID:
            raise UnitError(f"cpuset '{text}' names id {hi}, above the limit of {MAX_CPU_ID}")
        target.update(range(lo, hi + 1))
    result = frozenset(include - exclude)
    if not result:
        raise UnitError(f"cpuset '{text}' selects no CPU")
    return result


def format_cpuset(ids: frozenset[int] | set[int]) -> str:
    """Format ids as libvirt does: ascending, runs of 2+ as `a-b`."""
    out: list[str] = []
    run: list[int] = []
    for i in sorted(ids):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(_run(run))
        run = [i]
    if run:
        out.append(_run(run))
    return ",".join(out)


def _run(run: list[int]) -> str:
    return str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}"
