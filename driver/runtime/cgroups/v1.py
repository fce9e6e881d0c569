"""The cgroup v1 backend: one directory per controller hierarchy.

/sys/fs/cgroup/<controller>/<partition>/<name>.nsvirt-lxc
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from nsvirt.driver.runtime.cgroups import (
    CgroupError,
    DeviceRule,
    Limits,
    check_writable,
    kill_frozen,
    make_leaf,
    make_levels,
    remove_empty_levels,
    remove_tree,
    rule_text,
    subtree_pids,
)

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

    def _partition_dir(self, ctrl: str) -> Path:
        return Path(self.mounts[ctrl] + self.partition)

    def dir(self, ctrl: str) -> Path:
        return self._partition_dir(ctrl) / self.name

    def _dirs(self) -> dict[str, Path]:
        """One directory per distinct hierarchy (co-mounted controllers share one)."""
        seen: dict[str, Path] = {}
        for ctrl in self.mounts:
            d = self.dir(ctrl)
            if d not in seen.values():
                seen[ctrl] = d
        return seen

    def describe(self) -> dict[str, str]:
        return {ctrl: str(self.dir(ctrl)) for ctrl in self.mounts}

    def _write(self, ctrl: str, file: str, value: object) -> None:
        path = self.dir(ctrl) / file
        check_writable(path, self.mounts[ctrl], self.dir(ctrl), ctrl)
        try:
            with open(path, "w") as f:
                f.write(str(value))
        except OSError as e:
            raise CgroupError(f"cannot write '{value}' to {path}: {e.strerror}") from None

    def _read(self, ctrl: str, file: str) -> str:
        with open(self.dir(ctrl) / file) as f:
            return f.read().strip()

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
        except BaseException:
            if self.owned:  # only what this start made: never another container's
                for leaf in made:
                    remove_tree(leaf)
                self.owned = False
            raise

    def has_processes(self) -> bool:
        return bool(self.pids())

    def _make_levels(self, ctrl: str, leaf: Path) -> None:
        mount = Path(self.mounts[ctrl])
        partition_levels = [p for p in leaf.relative_to(mount).parents if p != Path(".")]
        for rel in reversed(partition_levels):  # top-down
            level = mount / rel
            try:
                os.mkdir(level)
            except FileExistsError:
                pass
            if ctrl == "cpuset":
                self._copy_cpuset(level)
        make_leaf(leaf)
        if ctrl == "cpuset":
            self._copy_cpuset(leaf)

    def _copy_cpuset(self, level: Path) -> None:
        # A new v1 cpuset level starts empty, and no task can join it until
        # cpuset.cpus and cpuset.mems are filled in from its parent.
        for file in ("cpuset.cpus", "cpuset.mems"):
            current = (level / file).read_text().strip()
            if not current:
                value = (level.parent / file).read_text().strip()
                check_writable(level / file, self.mounts["cpuset"], level, "cpuset")
                (level / file).write_text(value)

    def _apply(self, limits: Limits, rules: tuple[DeviceRule, ...]) -> None:
        if "devices" in self.mounts:
            for rule in rules:
                self._write(
                    "devices",
                    "devices.deny" if rule.type == "a" else "devices.allow",
                    rule_text(rule),
                )
        lim = limits
        if lim.memory_limit is not None:
            self._write("memory", "memory.limit_in_bytes", lim.memory_limit)
        if lim.memory_soft_limit is not None:
            self._write("memory", "memory.soft_limit_in_bytes", lim.memory_soft_limit)
        if lim.memory_swap_limit is not None:
            if not (self.dir("memory") / "memory.memsw.limit_in_bytes").exists():
                raise CgroupError(
                    "<memtune><swap_hard_limit> needs swap accounting, which this "
                    "host's kernel has off (swapaccount=1)"
                )
            self._write("memory", "memory.memsw.limit_in_bytes", lim.memory_swap_limit)
        if lim.cpu_shares is not None:
            self._write("cpu", "cpu.shares", lim.cpu_shares)
        if lim.cpu_period is not None:
            self._write("cpu", "cpu.cfs_period_us", lim.cpu_period)
        if lim.cpu_quota is not None:
            self._write("cpu", "cpu.cfs_quota_us", lim.cpu_quota)
        if lim.cpuset_cpus is not None:
            self._write("cpuset", "cpuset.cpus", lim.cpuset_cpus)
        if lim.cpuset_mems is not None:
            self._write("cpuset", "cpuset.mems", lim.cpuset_mems)
        if lim.blkio_weight is not None:
            weight = next(
                (
                    f
                    for f in ("blkio.weight", "blkio.bfq.weight")
                    if (self.dir("blkio") / f).exists()
                ),
                None,
            )
            if weight is None:
                raise CgroupError(
                    "<blkiotune><weight> needs a proportional I/O scheduler "
                    "(BFQ); this host has no blkio weight file"
                )
            self._write("blkio", weight, lim.blkio_weight)
        if lim.pids_max is not None:
            self._write("pids", "pids.max", lim.pids_max)

    def attach(self, pid: int) -> None:
        for ctrl in self._dirs():
            self._write(ctrl, "cgroup.procs", pid)

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
        if self.dir("freezer").exists():
            kill_frozen(self)

    def destroy(self) -> None:
        """Remove the leaf and what the container made below it, in every hierarchy,
        then partition levels left empty. Idempotent."""
        for leaf in self._dirs().values():
            remove_tree(leaf)
        for ctrl in self._dirs():
            remove_empty_levels(self._partition_dir(ctrl), Path(self.mounts[ctrl]))

    # ------------------------------------------------------------ statistics

    def memory_usage(self) -> int:
        return int(self._read("memory", "memory.usage_in_bytes"))

    def cpu_time_ns(self) -> int:
        return int(self._read("cpuacct", "cpuacct.usage"))

    def oom_kills(self) -> int:
        for line in self._read("memory", "memory.oom_control").splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0
