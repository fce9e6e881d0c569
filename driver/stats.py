"""What a running container uses, from its cgroup: memory, CPU (total and per host
CPU), block I/O, pressure and memory events, and all of it at once (domstats). A
mixin of driver/domain.py's Domain; the readers are runtime/cgusage.py's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nsvirt.driver.errors import (
    DriverError,
    InvalidArgument,
    OperationFailed,
    OperationUnsupported,
)

if TYPE_CHECKING:
    from nsvirt.driver.domxml import model as m
    from nsvirt.driver.state.runstate import RunState

_READ_ERRORS = (OSError, ValueError, KeyError, IndexError)


class Statistics:
    """Domain's memoryStats, getCPUStats, blockStats and stats (domstats)."""

    name: str

    if TYPE_CHECKING:  # provided by Domain

        def _live(self) -> RunState: ...
        def _summary(self, live: bool) -> dict[str, object]: ...
        def run_state(self) -> RunState | None: ...
        def definition(self, inactive: bool = False) -> m.DomainDef: ...

    def memory_stats(self) -> dict[str, int]:
        """libvirt's virDomainMemoryStats for LXC, as libvirt-python's memoryStats()
        has it: actual (the current memory), swap_in (in swap) and rss (in use), KiB."""
        from nsvirt.driver.runtime import cgusage

        state = self._live()
        summary = self._summary(True)
        try:
            rss = cgusage.memory_usage(state.cgroup) // 1024
            swap = cgusage.swap_usage(state.cgroup) // 1024
        except _READ_ERRORS as e:
            raise OperationFailed(f"cannot read the memory statistics: {e}") from None
        return {"actual": int(summary["current_memory"]), "swap_in": swap, "rss": rss}  # type: ignore[call-overload]

    def cpu_stats(self, start: int = -1, count: int = 1) -> list[dict[str, int]]:
        """libvirt's virDomainGetCPUStats: with start -1, the totals in one dict
        (cpu_time, user_time, system_time; ns); else `count` dicts of cpu_time, one
        per host CPU from `start` (v1's cpuacct: v2 keeps no per-CPU account)."""
        from nsvirt.driver.runtime import cgusage

        dirs = self._live().cgroup
        try:
            if start < 0:
                user, system = cgusage.cpu_split_ns(dirs)
                return [{"cpu_time": cgusage.cpu_time_ns(dirs), "user_time": user,
                         "system_time": system}]  # fmt: skip
            per_cpu = cgusage.cpu_time_per_cpu(dirs)
        except _READ_ERRORS as e:
            raise OperationFailed(f"cannot read the CPU statistics: {e}") from None
        if per_cpu is None:
            raise OperationUnsupported("cgroup v2 keeps no per-CPU time of a cgroup")
        if start >= len(per_cpu):
            raise InvalidArgument(f"start_cpu {start} larger than maximum of {len(per_cpu) - 1}")
        return [{"cpu_time": t} for t in per_cpu[start : start + max(count, 0)]]

    def block_stats(self, disk: str | None = None) -> dict[str, int]:
        """libvirt's virDomainBlockStats for LXC: requests and bytes read and written,
        the whole container's; or, beyond libvirt, one block <disk>'s (by target or
        source), read from the same counters by its device number."""
        from nsvirt.driver.runtime import cgusage

        dirs = self._live().cgroup
        key = self._disk_device(disk) if disk else None
        try:
            return cgusage.block_stats(dirs, key)
        except _READ_ERRORS as e:
            raise OperationFailed(f"cannot read the block I/O statistics: {e}") from None

    def _disk_device(self, disk: str) -> str:
        """`MAJOR:MINOR` of the block disk `disk` names (its target or its source)."""
        import os
        import stat

        disks = self.definition().devices.disks
        found = [d for d in disks if d.type == "block" and disk in (d.target_dev, d.source)]
        if not found or not found[0].source:
            raise InvalidArgument(f"invalid path: {disk}")
        try:
            st = os.stat(found[0].source)  # type: ignore[arg-type]
        except OSError as e:
            raise OperationFailed(f"cannot find {found[0].source}: {e.strerror}") from None
        if not stat.S_ISBLK(st.st_mode):
            raise InvalidArgument(f"invalid path: {disk}")
        return f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"

    def stats(self) -> dict[str, Any]:
        """Everything at once, as libvirt's virConnectGetAllDomainStats names it
        (state.*, cpu.*, balloon.*), and what libvirt has no names for under "nsvirt":
        the whole container's block I/O, its memory events, and its pressure (PSI:
        cgroup v2 only; None on v1)."""
        from nsvirt.driver.runtime import cgusage
        from nsvirt.driver.state import runstate

        run = self.run_state()
        state, reason = runstate.numbers_of(run)
        out: dict[str, Any] = {"state.state": state, "state.reason": reason}
        if run is None or not run.live:
            return out
        dirs = run.cgroup
        try:  # each group alone: one the kernel cannot give leaves the others
            summary = self._summary(True)
            out["balloon.current"] = int(summary["current_memory"])  # type: ignore[call-overload]
            out["balloon.maximum"] = int(summary["memory"])  # type: ignore[call-overload]
        except (DriverError, *_READ_ERRORS):
            pass
        readers = {
            "cpu": lambda: {"cpu.time": cgusage.cpu_time_ns(dirs), **dict(zip(
                ("cpu.user", "cpu.system"), cgusage.cpu_split_ns(dirs), strict=True))},
            "balloon": lambda: {"balloon.rss": cgusage.memory_usage(dirs) // 1024,
                                "balloon.swap_in": cgusage.swap_usage(dirs) // 1024},
            "block": lambda: cgusage.block_stats(dirs),
            "memory_events": lambda: cgusage.memory_events(dirs),
            "pressure": lambda: cgusage.pressure(dirs),
        }  # fmt: skip
        own: dict[str, Any] = {}
        for group, read in readers.items():
            try:
                values = read()
            except _READ_ERRORS:  # it stopped meanwhile, or this kernel has none
                values = None
            if group in ("cpu", "balloon"):
                out |= values or {}
            else:
                own[group] = values
        out["nsvirt"] = own
        groups = ("state.", "cpu.", "balloon.", "nsvirt")  # libvirt's order of the groups
        return dict(sorted(out.items(), key=lambda kv: groups.index(
            next(g for g in groups if kv[0].startswith(g)))))  # fmt: skip
