"""The cgroup v1 backend: one directory per controller hierarchy.

    /sys/fs/cgroup/<controller>/<partition>/<name>.nsvirt-lxc          limits, devices
    /sys/fs/cgroup/<controller>/<partition>/<name>.nsvirt-lxc/payload  the processes

As for v2, the container's cgroup namespace is rooted at `payload`: v1's memory,
pids, cpu and cpuset limits are hierarchical and a child's device list can never
be wider than its parent's, so what it could change there is bounded by the level
above (runtime/cgroups/__init__.py).
"""

from __future__ import annotations

import os
import time

from nsvirt.driver.runtime import cgusage
from nsvirt.driver.runtime.cgroups import (
    LIMIT_FIELDS,
    PAYLOAD,
    UNLIMITED,
    CgroupError,
    bandwidth,
    block_device,
    changed,
    check_writable,
    device_changes,
    device_weight,
    kill_frozen,
    make_leaf,
    make_levels,
    plain_limits,
    remove_empty_levels,
    remove_tree,
    rule_text,
    subtree,
    subtree_pids,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsvirt.driver.runtime.cgroups import DeviceRule, Limits

# controllers the container's leaf is created in, when the host mounts them
CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids")
# upper bounds on waiting for the kernel, not guesses at a delay
FREEZE_TIMEOUT = 10.0
# a device's read_iops, write_iops, read_bps, write_bps (blkiotune's order in the model)
THROTTLES = ("blkio.throttle.read_iops_device", "blkio.throttle.write_iops_device",
             "blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device")  # fmt: skip
UNLIMITED_FROM = 2**62  # v1 reads "no limit" as PAGE_COUNTER_MAX pages in bytes


class V1Cgroup:
    def __init__(self, mounts: dict[str, str], partition: str, name: str) -> None:
        self.mounts = {c: mounts[c] for c in CONTROLLERS if c in mounts}
        self.partition = "/" + partition.strip("/")
        self.name = name
        self.owned = False

    # ------------------------------------------------------------ paths

    def _partition_dir(self, ctrl: str) -> str:
        return os.path.normpath(self.mounts[ctrl] + self.partition)

    def dir(self, ctrl: str) -> str:
        return os.path.join(self._partition_dir(ctrl), self.name)

    def _dirs(self) -> dict[str, str]:
        """One directory per distinct hierarchy (co-mounted controllers share one)."""
        seen: dict[str, str] = {}
        for ctrl in self.mounts:
            d = self.dir(ctrl)
            if d not in seen.values():
                seen[ctrl] = d
        return seen

    def describe(self) -> dict[str, str]:
        return {ctrl: self.dir(ctrl) for ctrl in self.mounts}

    def payload_dirs(self) -> dict[str, str]:
        return {ctrl: os.path.join(self.dir(ctrl), PAYLOAD) for ctrl in self.mounts}

    def _write(self, ctrl: str, file: str, value: object, sub: str = "") -> None:
        path = os.path.join(self.dir(ctrl), sub, file)
        check_writable(path, self.mounts[ctrl], self.dir(ctrl), ctrl)
        try:
            with open(path, "w") as f:
                f.write(str(value))
        except OSError as e:
            raise CgroupError(f"cannot write '{value}' to {path}: {e.strerror}") from None

    def _read(self, ctrl: str, file: str) -> str:
        return cgusage.read_value(os.path.join(self.dir(ctrl), file))

    # ------------------------------------------------------------ lifecycle

    def create(self, limits: Limits, rules: tuple[DeviceRule, ...]) -> None:
        """Create the leaf in every hierarchy and write limits and device rules,
        before any container process exists."""
        made = []
        try:
            for ctrl, leaf in self._dirs().items():
                make_levels(lambda c=ctrl, d=leaf: self._make_levels(c, d))
                made.append(leaf)
                self.owned = True
            self._apply(limits, rules)
            for ctrl, leaf in self._dirs().items():
                os.mkdir(os.path.join(leaf, PAYLOAD))  # inherits the device list
                if ctrl == "cpuset":
                    self._copy_cpuset(os.path.join(leaf, PAYLOAD))
            self._apply(limits, (), PAYLOAD)
        except BaseException:
            if self.owned:  # only what this start made: never another container's
                for leaf in made:
                    remove_tree(leaf)
                self.owned = False
            raise

    def change_device(self, rule: DeviceRule, allow: bool,
                      rules: tuple[DeviceRule, ...]) -> None:  # fmt: skip
        """Allow (or deny again) one device while the container runs: both levels, the
        payload's list being no wider than its parent's (an allow goes to the parent
        first, a deny to the payload first)."""
        if "devices" not in self.mounts:
            return
        file = "devices.allow" if allow else "devices.deny"
        levels = ("", PAYLOAD) if allow else (PAYLOAD, "")
        for sub in levels:
            self._write("devices", file, rule_text(rule), sub)

    def has_processes(self) -> bool:
        return bool(self.pids())

    def _make_levels(self, ctrl: str, leaf: str) -> None:
        mount = os.path.normpath(self.mounts[ctrl])
        parts = os.path.relpath(leaf, mount).split("/")[:-1]
        for n in range(1, len(parts) + 1):  # the partition's levels, top-down
            level = os.path.join(mount, *parts[:n])
            try:
                os.mkdir(level)
            except FileExistsError:
                pass
            if ctrl == "cpuset":
                self._copy_cpuset(level)
        make_leaf(leaf)
        if ctrl == "cpuset":
            self._copy_cpuset(leaf)

    def _copy_cpuset(self, level: str) -> None:
        # A new v1 cpuset level starts empty, and no task can join it until
        # cpuset.cpus and cpuset.mems are filled in from its parent.
        for file in ("cpuset.cpus", "cpuset.mems"):
            path = os.path.join(level, file)
            if not cgusage.read_value(path):
                value = cgusage.read_value(os.path.join(os.path.dirname(level), file))
                check_writable(path, self.mounts["cpuset"], level, "cpuset")
                with open(path, "w") as f:
                    f.write(value)

    def _apply(self, limits: Limits, rules: tuple[DeviceRule, ...], sub: str = "") -> None:
        """Write the device rules and the limits into the leaf (or its `sub` level)."""

        def write(ctrl: str, file: str, value: object) -> None:
            self._write(ctrl, file, value, sub)

        if "devices" in self.mounts:
            for rule in rules:
                write(
                    "devices",
                    "devices.deny" if rule.type == "a" else "devices.allow",
                    rule_text(rule),
                )
        fields = {f for f in LIMIT_FIELDS if getattr(limits, f, None) not in (None, ())}
        self._set(limits, fields, sub)

    def _set(self, lim: Limits, fields: set[str], sub: str) -> None:
        """Write `fields` of `lim` into the leaf (or its `sub` level)."""

        def write(ctrl: str, file: str, value: object) -> None:
            self._write(ctrl, file, value, sub)

        def exists(ctrl: str, file: str) -> bool:  # asked of the leaf: the payload's names
            return os.path.isfile(os.path.join(self.dir(ctrl), file))  # are the container's

        memory = [f for f in ("memory_limit", "memory_swap_limit") if f in fields]
        if len(memory) == 2 and _above(lim.memory_limit, self._memsw(sub)):
            memory.reverse()  # memory + swap may never be below memory alone
        for field in memory:
            if field == "memory_limit":
                write("memory", "memory.limit_in_bytes", lim.memory_limit)
                continue
            if not exists("memory", "memory.memsw.limit_in_bytes"):
                raise CgroupError(
                    "<memtune><swap_hard_limit> needs swap accounting, which this "
                    "host's kernel has off (swapaccount=1)"
                )
            write("memory", "memory.memsw.limit_in_bytes", lim.memory_swap_limit)
        if "memory_soft_limit" in fields:
            write("memory", "memory.soft_limit_in_bytes", lim.memory_soft_limit)
        if "cpu_shares" in fields:
            write("cpu", "cpu.shares", lim.cpu_shares)
        if {"cpu_period", "cpu_quota"} <= fields:
            # no quota while the period changes: neither order of the two writes keeps
            # every moment's bandwidth between the old and the new (v1 checks each)
            write("cpu", "cpu.cfs_quota_us", UNLIMITED)
        if "cpu_period" in fields:
            write("cpu", "cpu.cfs_period_us", lim.cpu_period)
        if "cpu_quota" in fields:
            write("cpu", "cpu.cfs_quota_us", lim.cpu_quota)
        if "cpuset_cpus" in fields:
            write("cpuset", "cpuset.cpus", lim.cpuset_cpus)
        if "cpuset_mems" in fields:
            write("cpuset", "cpuset.mems", lim.cpuset_mems)
        if "blkio_weight" in fields:
            weight = self._blkio_file("weight")
            if weight is None:
                raise CgroupError(
                    "<blkiotune><weight> needs a proportional I/O scheduler "
                    "(BFQ); this host has no blkio weight file"
                )
            write("blkio", weight, lim.blkio_weight)
        if "blkio_devices" in fields:
            for path, weight, *throttles in lim.blkio_devices:
                key = block_device(path)
                if weight or path in getattr(lim, "blkio_unweighted", ()):
                    file = self._blkio_file("weight_device")
                    if file is None:
                        raise CgroupError("<blkiotune><device><weight> needs a blkio "
                                          "weight_device file; this host has none")  # fmt: skip
                    # BFQ takes a device's weight away with "default", CFQ with 0
                    unset = "default" if ".bfq." in file else 0
                    text = f"{key} {weight or unset}"
                    device_weight(lambda f=file, t=text: write("blkio", f, t), path)
                for file, value in zip(THROTTLES, throttles, strict=True):
                    write("blkio", file, f"{key} {value}")
        if "pids_max" in fields:
            write("pids", "pids.max", lim.pids_max)

    def _blkio_file(self, kind: str) -> str | None:
        """blkio.bfq.KIND (BFQ) or blkio.KIND (CFQ, before 5.0), whichever the leaf has
        (the payload's names are the container's to make: never probed there)."""
        return next((f for f in (f"blkio.bfq.{kind}", f"blkio.{kind}")
                     if os.path.isfile(os.path.join(self.dir("blkio"), f))), None)  # fmt: skip

    def _memsw(self, sub: str) -> int:
        try:
            return _number(self._read_at("memory", "memory.memsw.limit_in_bytes", sub))
        except FileNotFoundError:
            return UNLIMITED

    def _read_at(self, ctrl: str, file: str, sub: str = "") -> str:
        return cgusage.read_value(os.path.join(self.dir(ctrl), sub, file))

    def tune(self, old: Limits, new: Limits) -> None:
        """Change the running container's limits from `old` (what the leaf has) to `new`.
        The payload may never be allowed more than the leaf (cpuset, CFS bandwidth):
        a widening goes to the leaf first, a narrowing to the payload first."""
        fields = changed(old, new)
        new = plain_limits(new, **device_changes(old, new))
        narrow = {f for f in fields if _narrower(f, old, new)}
        for field in ("cpuset_cpus", "cpuset_mems"):
            ids = getattr(new, field), getattr(old, field)
            if field in fields and not _subset(*ids) and not _subset(*ids[::-1]):
                # neither holds the other: by way of both
                self._set(plain_limits(new, **{field: _union(*ids)}), {field}, "")
                narrow.add(field)
        self._set(new, fields - narrow, "")
        self._set(new, fields, PAYLOAD)
        self._set(new, narrow, "")

    def settings(self) -> dict[str, object]:
        """The leaf's limits now, as Limits' fields (bytes; UNLIMITED for none)."""
        out: dict[str, object] = {}
        files = {"memory_limit": ("memory", "memory.limit_in_bytes"),
                 "memory_soft_limit": ("memory", "memory.soft_limit_in_bytes"),
                 "memory_swap_limit": ("memory", "memory.memsw.limit_in_bytes"),
                 "cpu_shares": ("cpu", "cpu.shares"), "cpu_period": ("cpu", "cpu.cfs_period_us"),
                 "cpu_quota": ("cpu", "cpu.cfs_quota_us"),
                 "cpuset_cpus": ("cpuset", "cpuset.cpus"),
                 "cpuset_mems": ("cpuset", "cpuset.mems")}  # fmt: skip
        for field, (ctrl, file) in files.items():
            if ctrl not in self.mounts:
                continue
            try:
                text = self._read(ctrl, file)
            except FileNotFoundError:
                continue
            out[field] = text if ctrl == "cpuset" else _number(text)
        weight = self._blkio_file("weight") if "blkio" in self.mounts else None
        if weight is not None:
            out["blkio_weight"] = int(self._read("blkio", weight).split()[-1])
        return out

    def attach(self, pid: int) -> None:
        for ctrl in self._dirs():
            self._write(ctrl, "cgroup.procs", pid, PAYLOAD)

    def fork_into_payload(self) -> int | None:
        """v1 has no fork into a cgroup: None (the child joins with attach_self)."""
        return None

    def attach_self(self) -> None:
        """Move the calling process, which must have one thread (a fresh fork): "0" in
        `tasks` moves the caller's thread, and the kernel (since 5.19) then skips its
        global threadgroup lock, whose first write waits an RCU grace period (5–16 ms
        measured here; this takes 0.4 ms)."""
        for ctrl in self._dirs():
            self._write(ctrl, "tasks", 0, PAYLOAD)

    def pids(self) -> list[int]:
        """Every process of the container, in its cgroup or below it, any hierarchy."""
        found: set[int] = set()
        for leaf in self._dirs().values():
            found |= subtree_pids(leaf)
        return sorted(found)

    def _freezer_state(self) -> str:
        return self._read("freezer", "freezer.state")

    def freeze(self) -> None:
        self._write("freezer", "freezer.state", "FROZEN")
        deadline = time.monotonic() + FREEZE_TIMEOUT
        while self._freezer_state() != "FROZEN":  # FREEZING until every task stopped
            if time.monotonic() > deadline:
                raise CgroupError(f"{self.dir('freezer')} did not freeze")
            time.sleep(0.001)

    def thaw(self) -> None:
        self._write("freezer", "freezer.state", "THAWED")

    def kill_all(self) -> None:
        """Kill every task at once: freeze (no forks escape), SIGKILL each, thaw."""
        if os.path.exists(self.dir("freezer")):
            kill_frozen(self)

    def destroy(self) -> None:
        """Remove the leaf and what the container made below it, in every hierarchy,
        then partition levels left empty. Idempotent."""
        for leaf in self._dirs().values():
            remove_tree(leaf)
        for ctrl in self._dirs():
            remove_empty_levels(self._partition_dir(ctrl), self.mounts[ctrl])

    def memory_watch(self) -> list[int]:
        """Fds that turn readable when a limit of the container's bites with an OOM:
        an eventfd registered for memory.oom_control at the leaf and the payload
        (v1's cgroup.event_control; v1 has no other memory notification), and the
        control files, which the registration needs open. Closed at teardown."""
        efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        fds = [efd]
        try:
            for sub in ("", PAYLOAD):
                level = os.path.join(self.dir("memory"), sub)
                control = os.open(os.path.join(level, "memory.oom_control"),
                                  os.O_RDONLY | os.O_CLOEXEC)  # fmt: skip
                fds.append(control)
                self._write("memory", "cgroup.event_control", f"{efd} {control}", sub)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return fds

    # ------------------------------------------------------------ statistics

    def memory_usage(self) -> int:
        return cgusage.memory_usage(self.describe())

    def cpu_time_ns(self) -> int:
        return cgusage.cpu_time_ns(self.describe())

    def oom_kills(self) -> int:
        """OOM kills in the whole subtree: v1 counts each where the limit bit (payload,
        which holds the same limit, or the level above), never up the tree."""
        total = 0
        for level in subtree(self.dir("memory")):
            try:
                text = cgusage.read_value(os.path.join(level, "memory.oom_control"))
            except FileNotFoundError:
                continue
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    total += int(value)
        return total


def _number(text: str) -> int:
    value = int(text)
    return UNLIMITED if value >= UNLIMITED_FROM else value


def _above(limit: int | None, memsw: int) -> bool:
    """Would memory `limit` exceed memory + swap's `memsw`?"""
    if memsw == UNLIMITED:
        return False
    return limit == UNLIMITED or (limit or 0) > memsw


def _narrower(field: str, old: Limits, new: Limits) -> bool:
    if field in ("cpu_period", "cpu_quota"):
        return bandwidth(new.cpu_period, new.cpu_quota) < bandwidth(old.cpu_period, old.cpu_quota)
    if field in ("cpuset_cpus", "cpuset_mems"):
        return _subset(getattr(new, field), getattr(old, field))
    return False


def _ids(text: str | None) -> set[int]:
    ids: set[int] = set()
    for part in (text or "").split(","):
        if part:
            lo, _, hi = part.partition("-")
            ids.update(range(int(lo), int(hi or lo) + 1))
    return ids


def _subset(a: str | None, b: str | None) -> bool:
    return _ids(a) <= _ids(b)


def _union(a: str | None, b: str | None) -> str:
    return ",".join(str(i) for i in sorted(_ids(a) | _ids(b)))
