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
    PAYLOAD,
    CgroupError,
    check_writable,
    kill_frozen,
    make_leaf,
    make_levels,
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
        lim = limits
        if lim.memory_limit is not None:
            write("memory", "memory.limit_in_bytes", lim.memory_limit)
        if lim.memory_soft_limit is not None:
            write("memory", "memory.soft_limit_in_bytes", lim.memory_soft_limit)
        if lim.memory_swap_limit is not None:
            if not os.path.exists(os.path.join(self.dir("memory"), sub,
                                               "memory.memsw.limit_in_bytes")):  # fmt: skip
                raise CgroupError(
                    "<memtune><swap_hard_limit> needs swap accounting, which this "
                    "host's kernel has off (swapaccount=1)"
                )
            write("memory", "memory.memsw.limit_in_bytes", lim.memory_swap_limit)
        if lim.cpu_shares is not None:
            write("cpu", "cpu.shares", lim.cpu_shares)
        if lim.cpu_period is not None:
            write("cpu", "cpu.cfs_period_us", lim.cpu_period)
        if lim.cpu_quota is not None:
            write("cpu", "cpu.cfs_quota_us", lim.cpu_quota)
        if lim.cpuset_cpus is not None:
            write("cpuset", "cpuset.cpus", lim.cpuset_cpus)
        if lim.cpuset_mems is not None:
            write("cpuset", "cpuset.mems", lim.cpuset_mems)
        if lim.blkio_weight is not None:
            weight = next(
                (
                    f
                    for f in ("blkio.weight", "blkio.bfq.weight")
                    if os.path.exists(os.path.join(self.dir("blkio"), sub, f))
                ),
                None,
            )
            if weight is None:
                raise CgroupError(
                    "<blkiotune><weight> needs a proportional I/O scheduler "
                    "(BFQ); this host has no blkio weight file"
                )
            write("blkio", weight, lim.blkio_weight)
        if lim.pids_max is not None:
            write("pids", "pids.max", lim.pids_max)

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
