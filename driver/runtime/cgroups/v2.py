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
    LIMIT_FIELDS,
    PAYLOAD,
    UNLIMITED,
    CgroupError,
    block_device,
    bpf_devices,
    changed,
    check_writable,
    device_changes,
    device_weight,
    holds_caller,
    kill_frozen,
    make_leaf,
    make_levels,
    plain_limits,
    remove_empty_levels,
    remove_tree,
    subtree_pids,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsvirt.driver.runtime.cgroups import DeviceRule, Limits

CONTROLLERS = ("cpu", "cpuset", "io", "memory", "pids")
WAIT_TIMEOUT = 10.0  # upper bound on waiting for the kernel, not a delay
IO_MAX = ("riops", "wiops", "rbps", "wbps")  # io.max's keys, blkiotune's order in the model


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
        fields = {f for f in LIMIT_FIELDS if getattr(lim, f, None) not in (None, ())}
        self._set(lim, fields, level)

    def _set(self, lim: Limits, fields: set[str], level: str) -> None:
        """Write `fields` of `lim` into `level` (the leaf or the payload)."""

        def write(file: str, value: object) -> None:
            self._write(file, value, level)

        if "memory_limit" in fields:
            write("memory.max", _max(lim.memory_limit))
        if "memory_soft_limit" in fields:
            write("memory.high", _max(lim.memory_soft_limit))
        swap = lim.memory_swap_limit
        if "memory_swap_limit" in fields or ("memory_limit" in fields and swap not in
                                             (None, UNLIMITED)):  # fmt: skip
            # v1's memsw counts memory + swap; v2's swap.max counts swap alone
            if not os.path.isfile(self._path("memory.swap.max")):  # the leaf's, not the payload's
                raise CgroupError(
                    "<memtune><swap_hard_limit> needs swap accounting "
                    "(memory.swap.max), which this host does not offer"
                )
            mem = lim.memory_limit if lim.memory_limit not in (None, UNLIMITED) else 0
            write("memory.swap.max", "max" if swap == UNLIMITED else max(0, swap - mem))  # type: ignore[operator]
        if "cpu_shares" in fields:
            if not 1 <= lim.cpu_shares <= 10000:  # type: ignore[operator]
                raise CgroupError(f"<cputune><shares>{lim.cpu_shares}</shares> is outside "
                                  "cgroup v2's cpu.weight range 1-10000")  # fmt: skip
            write("cpu.weight", lim.cpu_shares)
        if fields & {"cpu_period", "cpu_quota"}:
            quota = "max" if lim.cpu_quota in (None, UNLIMITED) else lim.cpu_quota
            write("cpu.max", f"{quota} {lim.cpu_period or 100000}")
        if "cpuset_cpus" in fields:
            write("cpuset.cpus", lim.cpuset_cpus)
        if "cpuset_mems" in fields:
            write("cpuset.mems", lim.cpuset_mems)
        if "blkio_weight" in fields:
            weight = _io_weight(self.leaf)
            if weight is None:
                raise CgroupError(
                    "<blkiotune><weight> needs io.weight (the BFQ scheduler "
                    "and the io controller), which this host does not offer"
                )
            write(weight, f"default {lim.blkio_weight}")
        if "blkio_devices" in fields:
            for path, weight, *throttles in lim.blkio_devices:
                key = block_device(path)
                if weight or path in getattr(lim, "blkio_unweighted", ()):
                    file = _io_weight(self.leaf)
                    if file is None:
                        raise CgroupError("<blkiotune><device><weight> needs io.weight "
                                          "(the BFQ scheduler); this host has none")  # fmt: skip
                    text = f"{key} {weight or 'default'}"
                    device_weight(lambda f=file, t=text: write(f, t), path)
                limits = " ".join(f"{k}={v or 'max'}" for k, v in zip(IO_MAX, throttles,
                                                                        strict=True))  # fmt: skip
                write("io.max", f"{key} {limits}")
        if "pids_max" in fields:
            write("pids.max", lim.pids_max)

    def tune(self, old: Limits, new: Limits) -> None:
        """Change the running container's limits from `old` to `new`: the leaf, then the
        payload (on v2 a child may be set above its parent; the parent still bounds it)."""

        fields = changed(old, new)
        new = plain_limits(new, **device_changes(old, new))
        self._set(new, fields, self.leaf)
        self._set(new, fields, self.payload)

    def settings(self) -> dict[str, object]:
        """The leaf's limits now, as Limits' fields (bytes; UNLIMITED for none)."""
        out: dict[str, object] = {}

        def read(file: str) -> str | None:
            try:
                return self._read(file)
            except FileNotFoundError:
                return None

        for field, file in (("memory_limit", "memory.max"), ("memory_soft_limit", "memory.high"),
                            ("cpu_shares", "cpu.weight")):  # fmt: skip
            text = read(file)
            if text is not None:
                out[field] = UNLIMITED if text == "max" else int(text)
        swap = read("memory.swap.max")
        if swap is not None:
            mem = out.get("memory_limit", UNLIMITED)
            out["memory_swap_limit"] = (UNLIMITED if UNLIMITED in (swap, mem) or swap == "max"
                                        else int(swap) + mem)  # type: ignore[operator]  # fmt: skip
        cpu = read("cpu.max")
        if cpu is not None:
            quota, period = cpu.split()
            out["cpu_quota"] = UNLIMITED if quota == "max" else int(quota)
            out["cpu_period"] = int(period)
        for field, file in (("cpuset_cpus", "cpuset.cpus"), ("cpuset_mems", "cpuset.mems")):
            text = read(file)
            if text:
                out[field] = text
        weight = _io_weight(self.leaf)
        if weight is not None:
            out["blkio_weight"] = int(self._read(weight).splitlines()[0].split()[-1])
        return out

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

    def memory_watch(self) -> list[int]:
        """Fds that turn readable when the container's memory.events counters move
        (the kernel's file-modified notification, through inotify)."""
        from nsvirt.driver.runtime import inotify

        return [inotify.watch(self._path("memory.events"), inotify.IN_MODIFY)]

    # ------------------------------------------------------------ statistics

    def memory_usage(self) -> int:
        return cgusage.memory_usage(self.describe())

    def cpu_time_ns(self) -> int:
        return cgusage.cpu_time_ns(self.describe())

    def oom_kills(self) -> int:
        return int(self._keyed("memory.events").get("oom_kill", 0))


def _max(value: int | None) -> object:
    return "max" if value == UNLIMITED else value


def _io_weight(leaf: str) -> str | None:
    """io.bfq.weight (BFQ) or io.weight (io.cost), whichever the leaf has (the
    payload's names are the container's to make: never probed there)."""
    return next((f for f in ("io.bfq.weight", "io.weight")
                 if os.path.isfile(os.path.join(leaf, f))), None)  # fmt: skip
