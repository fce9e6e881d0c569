"""Cgroup backends behind one protocol; the host's layout picks one, once.

nsvirt writes only inside the partitions it owns and the container's own
leaf; `check_writable` enforces that on every write, and never lets a write
land in the cgroup of the calling process or one of its ancestors.

A container's leaf holds its limits and device rules; its processes live one
level down, in `payload`, where its cgroup namespace is rooted. A container
that can write its cgroup files (a privileged one, after a remount) only ever
reaches `payload`'s, whose limits the leaf's bound: it cannot raise its memory
limit or widen its device list, on v1 or v2.
"""

from __future__ import annotations

import _signal as signal  # signal.py without its enums (enum: ~3 ms a start)
import errno
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

PAYLOAD = "payload"  # the container's own cgroup, below the one that holds its limits
UNLIMITED = -1  # a memory limit or CPU quota of none (v1 writes -1, v2 "max")
LIMIT_FIELDS = ("memory_limit", "memory_soft_limit", "memory_swap_limit", "cpu_shares",
              "cpu_period", "cpu_quota", "cpuset_cpus", "cpuset_mems", "blkio_weight",
              "blkio_devices", "pids_max")  # fmt: skip
# the fields a running container's limits may change in
TUNABLE = ("memory_limit", "memory_soft_limit", "memory_swap_limit", "cpu_shares",
           "cpu_period", "cpu_quota", "cpuset_cpus", "cpuset_mems", "blkio_weight",
           "blkio_devices")  # fmt: skip


class CgroupError(Exception):
    """A cgroup operation failed; str() is the user-facing reason."""


class CgroupBusy(CgroupError):
    """The container's cgroup exists and has processes: another container runs there."""


if TYPE_CHECKING:  # interfaces for the type checker; nothing to import at run time
    from typing import Protocol

    class Limits(Protocol):
        """A plan's cgroup limits (launch.plan.Limits, or the supervisor's plain view of it)."""

        memory_limit: int | None
        memory_soft_limit: int | None
        memory_swap_limit: int | None
        cpu_shares: int | None
        cpu_period: int | None
        cpu_quota: int | None
        cpuset_cpus: str | None
        cpuset_mems: str | None
        blkio_weight: int | None
        blkio_devices: tuple[tuple[str, int, int, int, int, int], ...]
        pids_max: int | None

    class DeviceRule(Protocol):
        """One device rule (launch.plan.DeviceRule, or its plain view)."""

        type: str
        major: int | None
        minor: int | None
        access: str

    class CgroupBackend(Protocol):
        owned: bool  # this object created the cgroup (or took over an empty leftover of ours)

        def create(self, limits: Limits, rules: tuple[DeviceRule, ...]) -> None: ...
        def change_device(self, rule: DeviceRule, allow: bool,
                          rules: tuple[DeviceRule, ...]) -> None: ...  # fmt: skip
        def has_processes(self) -> bool: ...
        def attach(self, pid: int) -> None: ...
        def attach_self(self) -> None: ...
        def fork_into_payload(self) -> int | None: ...
        def pids(self) -> list[int]: ...
        def freeze(self) -> None: ...
        def thaw(self) -> None: ...
        def kill_all(self) -> None: ...
        def destroy(self) -> None: ...
        def memory_usage(self) -> int: ...
        def cpu_time_ns(self) -> int: ...
        def oom_kills(self) -> int: ...
        def describe(self) -> dict[str, str]: ...
        def payload_dirs(self) -> dict[str, str]: ...
        def tune(self, old: Limits, new: Limits) -> None: ...
        def memory_watch(self) -> list[int]: ...
        def settings(self) -> dict[str, Any]: ...


def own_cgroups() -> dict[str, str]:
    """The calling process's cgroup path in each hierarchy, by controller ("" for v2)."""
    out: dict[str, str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for ctrl in controllers.split(",") if controllers else [""]:
                out[ctrl] = path
    return out


def check_writable(path: str, mount: str, owned_dir: str, controller: str) -> None:
    """Refuse a write outside nsvirt's own directory, or into the caller's cgroup
    (or one of its ancestors) in that controller's hierarchy."""
    resolved = os.path.normpath(path)
    owned = os.path.normpath(owned_dir)
    if not resolved.startswith(owned.rstrip("/") + "/"):
        raise CgroupError(f"refusing to write {path}: outside {owned}")
    if holds_caller(os.path.dirname(resolved), mount, controller):
        raise CgroupError(f"refusing to write {path}: it is the caller's own cgroup")


def holds_caller(directory: str, mount: str, controller: str, ancestors: bool = True) -> bool:
    """Is `directory` the calling process's cgroup in that hierarchy (or, with
    `ancestors`, one of that cgroup's ancestors)?"""
    relative = "/" + os.path.relpath(directory, mount).removeprefix(".").strip("/")
    mine = own_cgroups().get(controller)
    if mine is None:
        return False
    mine = "/" + mine.strip("/")
    return mine == relative or (ancestors and mine.startswith(relative.rstrip("/") + "/"))


EMPTY_TIMEOUT = 10.0  # an upper bound on waiting for killed tasks to leave, not a delay


def kill_frozen(cg: CgroupBackend) -> None:
    """Freeze (no fork escapes; freezing is hierarchical), SIGKILL every task of the
    subtree, thaw so the signals are delivered."""
    cg.freeze()
    for pid in cg.pids():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    cg.thaw()


def subtree(leaf: str) -> list[str]:
    """`leaf` and every cgroup below it, deepest first (the order rmdir needs): a
    container may have made child cgroups of its own."""
    leaf = os.fspath(leaf)
    if not os.path.isdir(leaf):
        return []
    found: list[str] = []  # parents before children; reversed below
    pending = [leaf]
    while pending:  # not os.walk: it recurses, and a container may nest thousands deep
        level = pending.pop()
        try:
            children = [e.path for e in os.scandir(level) if e.is_dir(follow_symlinks=False)]
        except OSError:  # removed meanwhile
            children = []
        found += children
        pending += children
    return [*reversed(found), leaf]


def subtree_pids(leaf: str) -> set[int]:
    """Every process in `leaf` and the cgroups below it."""
    pids: set[int] = set()
    for level in subtree(leaf):
        try:
            with open(os.path.join(level, "cgroup.procs")) as f:
                pids.update(int(p) for p in f.read().split())
        except FileNotFoundError:
            pass
    return pids


def remove_tree(leaf: str) -> None:
    """rmdir a container's cgroup and everything below it, deepest first, waiting
    while killed tasks finish exiting (EBUSY)."""
    deadline = time.monotonic() + EMPTY_TIMEOUT
    for level in subtree(leaf):
        while True:
            try:
                os.rmdir(level)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise CgroupError(f"cannot remove {level}: {e.strerror}") from None
                time.sleep(0.001)


LEVEL_RETRIES = 50


def make_levels(make: Callable[[], None]) -> None:
    """Run `make` (mkdir the partition's levels top-down, then the leaf). Another
    container's teardown removes partition levels it leaves empty, so a level made
    here may vanish before the leaf is in it (ENOENT; ENODEV from a file of a level
    being removed): make them again. Once the leaf exists, its levels stay."""
    for attempt in range(LEVEL_RETRIES):
        try:
            return make()
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENODEV) or attempt == LEVEL_RETRIES - 1:
                raise CgroupError(f"cannot make the cgroup levels: {e}") from None


def make_leaf(leaf: str) -> None:
    """mkdir the container's cgroup. An existing one with processes is another
    container's: refused and left alone. An empty one is a leftover of ours (a crash
    between the last kill and the rmdir): removed and made afresh, so no old limit
    or device program survives."""
    try:
        os.mkdir(leaf)
        return
    except FileExistsError:
        pass
    if subtree_pids(leaf):
        raise CgroupBusy(f"cgroup {leaf} already exists and has processes: another "
                         "container of this name runs under this partition")  # fmt: skip
    remove_tree(leaf)
    os.mkdir(leaf)


def remove_empty_levels(level: str, mount: str) -> None:
    """rmdir partition levels upwards while they are empty (others may still use them)."""
    level, mount = os.path.normpath(level), os.path.normpath(mount)
    while level.startswith(mount + "/"):
        try:
            os.rmdir(level)
        except OSError:
            return
        level = os.path.dirname(level)


def changed(old: Limits, new: Limits) -> set[str]:
    """The tunable fields `new` sets otherwise than `old` (None: leave as it is)."""
    return {f for f in TUNABLE
            if getattr(new, f) is not None and getattr(new, f) != getattr(old, f)}  # fmt: skip


def block_device(path: str) -> str:
    """`MAJOR:MINOR` of the host block device at `path` (a throttle's or weight's key)."""
    import stat

    try:
        st = os.stat(path)
    except OSError as e:
        raise CgroupError(f"cannot find block device {path}: {e.strerror}") from None
    if not stat.S_ISBLK(st.st_mode):
        raise CgroupError(f"{path} is not a block device")
    return f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"


def bandwidth(period: int | None, quota: int | None) -> float:
    """CPU bandwidth as a share of one CPU (inf: no quota), to order writes by."""
    if quota is None or quota < 0:
        return float("inf")
    return quota / (period or 100000)


def plain_limits(lim: Limits, **changes: object) -> Limits:
    """A plain copy of `lim` (a plan's Limits or the supervisor's view) with `changes`."""
    from types import SimpleNamespace

    values = {f: getattr(lim, f, None) for f in LIMIT_FIELDS}
    return SimpleNamespace(**{**values, "blkio_unweighted": (), **changes})  # type: ignore[return-value]


def device_changes(old: Limits, new: Limits) -> dict[str, object]:
    """blkio_devices as tune writes them: a device no longer listed gets zeros (its
    throttles go), and its weight is reset where it had one."""
    if new.blkio_devices is None:
        return {}
    weights = {d[0]: d[1] for d in new.blkio_devices}
    before = {d[0]: d[1] for d in old.blkio_devices or ()}
    gone = tuple((p, 0, 0, 0, 0, 0) for p in before if p not in weights)
    unweighted = tuple(p for p, w in before.items() if w and not weights.get(p))
    return {"blkio_devices": tuple(new.blkio_devices) + gone, "blkio_unweighted": unweighted}


def device_weight(write: Callable[[], None], path: str) -> None:
    """A per-device weight's write: only BFQ honours one, and the kernel says so with
    EOPNOTSUPP; the error then names the device and the scheduler it needs."""
    try:
        write()
    except CgroupError as e:
        if "not supported" in str(e):
            raise CgroupError(f"{e} (the I/O scheduler of {path} is not bfq)") from None
        raise


def rule_text(rule: DeviceRule) -> str:
    """A device rule as the v1 devices files read it: `c 1:3 rwm`, `a`."""
    if rule.type == "a":
        return "a"
    major = "*" if rule.major is None else rule.major
    minor = "*" if rule.minor is None else rule.minor
    return f"{rule.type} {major}:{minor} {rule.access}"


def backend_for(facts: dict[str, Any], partition: str, name: str) -> CgroupBackend:
    """The backend for a host (HostFacts.to_dict() data, as plans and state files carry
    it): v1 controller hierarchies, or the v2 unified hierarchy."""
    if facts["cgroup_mode"] == "v1":
        from nsvirt.driver.runtime.cgroups.v1 import V1Cgroup

        return V1Cgroup(facts["cgroup_mounts"], partition, name)
    if not facts.get("cgroup2_mount"):
        raise CgroupError("no cgroup2 hierarchy is mounted on this host")
    from nsvirt.driver.runtime.cgroups.v2 import V2Cgroup

    return V2Cgroup(facts["cgroup2_mount"], partition, name)
