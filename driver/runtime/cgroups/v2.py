"""The cgroup v2 backend: one unified hierarchy, processes only in leaves.

    <cgroup2 mount>/<partition>/<name>.nsvirt-lxc          limits, device program
    <cgroup2 mount>/<partition>/<name>.nsvirt-lxc/payload  the container's processes

The container's cgroup namespace is rooted at `payload`: what it sees and could
change there (the same limits, written again so that it reads its own) is bounded
by the level above, which it cannot see (runtime/cgroups/__init__.py).

The translations are those libvirt's own v2 backend writes (DESIGN.md §6):
memory.max, memory.high, memory.swap.max, cpu.weight, cpu.max, cpuset.*,
io.weight, pids.max; the device whitelist is an eBPF program.
"""

from __future__ import annotations

import os
import time

from nsvirt.driver.runtime import cgusage
from nsvirt.driver.runtime.cgroups import (
    PAYLOAD,
    CgroupError,
    bpf_devices,
    check_writable,
    holds_caller,
    kill_frozen,
    make_leaf,
    make_levels,
    remove_empty_levels,
    remove_tree,
    subtree_pids,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsvirt.driver.runtime.cgroups import DeviceRule, Limits

CONTROLLERS = ("cpu", "cpuset", "io", "memory", "pids")
WAIT_TIMEOUT = 10.0  # upper bound on waiting for the kernel, not a delay


class V2Cgroup:
    def __init__(self, mount: str, partition: str, name: str) -> None:
        self.mount = mount
        self.partition = "/" + partition.strip("/")
        self.name = name
        self.leaf = os.path.join(os.path.normpath(mount + self.partition), name)
        self.payload = os.path.join(self.leaf, PAYLOAD)
        self.prog_fd = -1
        self.owned = False

    def describe(self) -> dict[str, str]:
        return {"unified": self.leaf}

    def payload_dirs(self) -> dict[str, str]:
        return {"unified": self.payload}

    def _path(self, file: str) -> str:
        return os.path.join(self.leaf, file)

    def _write(self, file: str, value: object, level: str | None = None) -> None:
        path = os.path.join(level or self.leaf, file)
        check_writable(path, self.mount, self.leaf, "")
        try:
            with open(path, "w") as f:
                f.write(str(value))
        except OSError as e:
            raise CgroupError(f"cannot write '{value}' to {path}: {e.strerror}") from None

    def _read(self, file: str) -> str:
        return cgusage.read_value(self._path(file))

    def _keyed(self, file: str) -> dict[str, str]:
        return cgusage.keyed(self._path(file))

    # ------------------------------------------------------------ lifecycle

    def create(self, limits: Limits, rules: tuple[DeviceRule, ...]) -> None:
        make_levels(self._make_levels)
        self.owned = True
        try:
            self._apply(limits, self.leaf)
            self.prog_fd = bpf_devices.load(bpf_devices.program(rules))
            bpf_devices.attach(self.leaf, self.prog_fd)
            self._enable_controllers(self.leaf)
            os.mkdir(self.payload)
            self._apply(limits, self.payload)
        except BaseException:
            self.destroy()
            self.owned = False
            raise

    def change_device(self, rule: DeviceRule, allow: bool,
                      rules: tuple[DeviceRule, ...]) -> None:  # fmt: skip
        """The device program for `rules` (the whole list, with `rule` in or out of it),
        attached in the old one's place: an attach without flags replaces the one
        program the cgroup has, atomically. Only the program's holder (the
        supervisor) may: it closes the old one."""
        new = bpf_devices.load(bpf_devices.program(rules))
        try:
            bpf_devices.attach(self.leaf, new)
        except BaseException:
            os.close(new)
            raise
        if self.prog_fd >= 0:
            os.close(self.prog_fd)
        self.prog_fd = new

    def has_processes(self) -> bool:
        return bool(self.pids())

    def _make_levels(self) -> None:
        mount = os.path.normpath(self.mount)
        parts = os.path.relpath(self.leaf, mount).split("/")[:-1]
        levels = [os.path.join(mount, *parts[:n]) for n in range(1, len(parts) + 1)]
        for level in levels:  # the partition, top-down
            self._enable_controllers(os.path.dirname(level))
            try:
                os.mkdir(level)
            except FileExistsError:
                pass
        if levels:
            self._enable_controllers(levels[-1])
        make_leaf(self.leaf)

    def _enable_controllers(self, level: str) -> None:
        """Enable in `level` the controllers its children need, only those not enabled yet.

        The one write nsvirt makes outside its own directories (DESIGN.md §6); it is
        never made in the caller's own cgroup (no-internal-process rule: EBUSY)."""
        available = set(cgusage.read_value(os.path.join(level, "cgroup.controllers")).split())
        enabled = set(cgusage.read_value(os.path.join(level, "cgroup.subtree_control")).split())
        missing = [c for c in CONTROLLERS if c in available and c not in enabled]
        if not missing:
            return
        if holds_caller(level, self.mount, "", ancestors=False):
            raise CgroupError(f"refusing to enable controllers in {level}: it is the caller's "
                              "own cgroup")  # fmt: skip
        try:
            with open(os.path.join(level, "cgroup.subtree_control"), "w") as f:
                f.write(" ".join(f"+{c}" for c in missing))
        except OSError as e:
            raise CgroupError(f"cannot enable {', '.join(missing)} in {level}: "
                              f"{e.strerror}") from None  # fmt: skip

    def _apply(self, lim: Limits, level: str) -> None:
        def write(file: str, value: object) -> None:
            self._write(file, value, level)

        if lim.memory_limit is not None:
            write("memory.max", lim.memory_limit)
        if lim.memory_soft_limit is not None:
            write("memory.high", lim.memory_soft_limit)
        if lim.memory_swap_limit is not None:
            # v1's memsw counts memory + swap; v2's swap.max counts swap alone
            if not os.path.exists(os.path.join(level, "memory.swap.max")):
                raise CgroupError(
                    "<memtune><swap_hard_limit> needs swap accounting "
                    "(memory.swap.max), which this host does not offer"
                )
            mem = lim.memory_limit or 0
            write("memory.swap.max", max(0, lim.memory_swap_limit - mem))
        if lim.cpu_shares is not None:
            if not 1 <= lim.cpu_shares <= 10000:
                raise CgroupError(f"<cputune><shares>{lim.cpu_shares}</shares> is outside "
                                  "cgroup v2's cpu.weight range 1-10000")  # fmt: skip
            write("cpu.weight", lim.cpu_shares)
        if lim.cpu_quota is not None or lim.cpu_period is not None:
            quota = lim.cpu_quota if lim.cpu_quota not in (None, -1) else "max"
            write("cpu.max", f"{quota} {lim.cpu_period or 100000}")
        if lim.cpuset_cpus is not None:
            write("cpuset.cpus", lim.cpuset_cpus)
        if lim.cpuset_mems is not None:
            write("cpuset.mems", lim.cpuset_mems)
        if lim.blkio_weight is not None:
            if not os.path.exists(os.path.join(level, "io.weight")):
                raise CgroupError(
                    "<blkiotune><weight> needs io.weight (the BFQ scheduler "
                    "and the io controller), which this host does not offer"
                )
            write("io.weight", f"default {lim.blkio_weight}")
        if lim.pids_max is not None:
            write("pids.max", lim.pids_max)

    def attach(self, pid: int) -> None:
        self._write("cgroup.procs", pid, self.payload)

    def fork_into_payload(self) -> int | None:
        """Fork with the child born in the payload cgroup (runtime/clone3.py): its pid,
        or 0 in the child; None if the kernel cannot (then fork, and attach)."""
        from nsvirt.driver.runtime import clone3

        fd = os.open(self.payload, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return clone3.fork_into(fd)
        finally:
            os.close(fd)

    def attach_self(self) -> None:
        """Move the calling process (v2 has no per-thread move outside threaded cgroups)."""
        self.attach(os.getpid())

    def pids(self) -> list[int]:
        """Every process of the container, in its leaf or in cgroups it made below."""
        return sorted(subtree_pids(self.leaf))

    def _wait_events(self, key: str, value: str) -> None:
        deadline = time.monotonic() + WAIT_TIMEOUT
        while self._keyed("cgroup.events").get(key) != value:
            if time.monotonic() > deadline:
                raise CgroupError(f"{self.leaf}: {key} did not become {value}")
            time.sleep(0.001)

    def freeze(self) -> None:
        self._write("cgroup.freeze", 1)
        self._wait_events("frozen", "1")

    def thaw(self) -> None:
        self._write("cgroup.freeze", 0)

    def kill_all(self) -> None:
        """Kill every task of the subtree at once: cgroup.kill, or freeze → SIGKILL
        each → thaw."""
        if not os.path.exists(self.leaf):
            return
        if os.path.exists(self._path("cgroup.kill")):
            self._write("cgroup.kill", 1)
        else:  # before Linux 5.14
            kill_frozen(self)

    def destroy(self) -> None:
        """Remove the leaf (its device program goes with it), then empty partitions."""
        if self.prog_fd >= 0:
            try:
                bpf_devices.detach(self.leaf, self.prog_fd)
            except OSError:
                pass
            os.close(self.prog_fd)
            self.prog_fd = -1
        remove_tree(self.leaf)
        remove_empty_levels(os.path.dirname(self.leaf), self.mount)

    # ------------------------------------------------------------ statistics

    def memory_usage(self) -> int:
        return cgusage.memory_usage(self.describe())

    def cpu_time_ns(self) -> int:
        return cgusage.cpu_time_ns(self.describe())

    def oom_kills(self) -> int:
        return int(self._keyed("memory.events").get("oom_kill", 0))
