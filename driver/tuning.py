"""Live and persistent tuning: setmem, setmaxmem, memtune, schedinfo, blkiotune and
numatune, as libvirt's LXC driver has them. A mixin of driver/domain.py's Domain.

One path for all of them: a change to the definition (a function DomainDef →
DomainDef), checked; for the running container, the limits it implies
(launch/plan.limits) written into its cgroup (runtime/cgroups: both levels, in an
order the kernel accepts) and then its live XML; for the persistent definition,
stored atomically as `define` stores. Reading asks the cgroup while the domain
runs and the definition otherwise, as libvirt does.

Values are KiB for memory (libvirt's MAX_KIB, 9007199254740991, is "unlimited")
and libvirt's typed-parameter names.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nsvirt.driver.domxml.units import MAX_KIB
from nsvirt.driver.errors import (
    ArgumentUnsupported,
    DriverError,
    InvalidArgument,
    OperationFailed,
    OperationInvalid,
)
from nsvirt.driver.records import replace
from nsvirt.driver.runtime.cgroups.params import live_memory, live_scheduler

if TYPE_CHECKING:
    from nsvirt.driver.connection import Connection
    from nsvirt.driver.domxml import model as m
    from nsvirt.driver.runtime.cgroups import CgroupBackend
    from nsvirt.driver.state.runstate import RunState

UNLIMITED = MAX_KIB  # VIR_DOMAIN_MEMORY_PARAM_UNLIMITED (params.UNLIMITED)
MEMORY_PARAMETERS = ("hard_limit", "soft_limit", "swap_hard_limit")
SCHEDULER_PARAMETERS = ("cpu_shares", "vcpu_period", "vcpu_quota")
BLKIO_PARAMETERS = ("weight", "device_weight", "device_read_iops_sec",
                    "device_write_iops_sec", "device_read_bytes_sec",
                    "device_write_bytes_sec")  # fmt: skip
# blkiotune's device lists → the model's BlkioDevice fields
_DEVICE_FIELDS = {"device_weight": "weight", "device_read_iops_sec": "read_iops_sec",
                  "device_write_iops_sec": "write_iops_sec",
                  "device_read_bytes_sec": "read_bytes_sec",
                  "device_write_bytes_sec": "write_bytes_sec"}  # fmt: skip
NUMA_MODES = ("strict", "preferred", "interleave", "restrictive")
QUOTA_MAX = 17592186044415  # the kernel's CFS quota bound, in µs


class Tuning:
    """Domain's setMemoryFlags, (set)memoryParameters, (set)schedulerParameters,
    (set)blkioParameters, (set)numaParameters."""

    conn: Connection
    name: str

    if TYPE_CHECKING:  # provided by Domain and its other mixins

        def _lock(self) -> contextlib.AbstractContextManager[None]: ...
        def _live(self) -> RunState: ...
        def _live_locked(self) -> RunState: ...
        def _run_state_locked(self) -> RunState | None: ...
        def _write_live(self, dom: m.DomainDef, run: RunState) -> None: ...
        def _store(self, dom: m.DomainDef) -> None: ...
        def definition(self, inactive: bool = False) -> m.DomainDef: ...
        def is_active(self) -> bool: ...
        def is_persistent(self) -> bool: ...

    # ------------------------------------------------------------ memory

    def set_memory(self, kib: int, *, live: bool, config: bool, maximum: bool = False) -> None:
        """setmem (the current memory: the container's limit) or, with `maximum`,
        setmaxmem (<memory>), as libvirt's lxcDomainSetMemoryFlags."""
        api = "virDomainSetMaxMemory" if maximum else "virDomainSetMemoryFlags"
        if kib <= 0:  # libvirt's virCheckNonZeroArg: no prefix
            raise DriverError("memory in virDomainSetMemoryFlags must not be zero")
        if kib > MAX_KIB:
            raise InvalidArgument(f"Memory '{kib}' must be less than {MAX_KIB}")
        if maximum and live:
            raise OperationInvalid("Cannot resize the max memory on an active domain")

        def change(dom: m.DomainDef) -> m.DomainDef:
            if maximum:  # the current memory never above the maximum
                return replace(dom, memory=kib, current_memory=min(dom.current_memory, kib))
            if kib > dom.memory:
                raise InvalidArgument("Cannot set memory higher than max memory")
            return replace(dom, current_memory=kib)

        def change_live(dom: m.DomainDef) -> m.DomainDef:
            """libvirt writes setmem's size as the cgroup's limit even where a hard_limit
            set it: the running domain's hard_limit is then that size too."""
            new = change(dom)
            if not maximum and dom.memtune and dom.memtune.hard_limit:
                new = replace(new, memtune=replace(dom.memtune, hard_limit=kib))
            return new

        self._tune(change, live=live, config=config, api=api, live_change=change_live)

    def memory_parameters(self, *, live: bool) -> dict[str, int]:
        """hard_limit, soft_limit and swap_hard_limit in KiB (UNLIMITED for none):
        the cgroup's while running (`live`), else the definition's."""
        if live:
            return live_memory(self._settings(self._live()))
        mt = self.definition(inactive=True).memtune
        return {p: (getattr(mt, p, None) or UNLIMITED) for p in MEMORY_PARAMETERS}

    def set_memory_parameters(self, params: dict[str, int], *, live: bool,
                              config: bool) -> None:  # fmt: skip
        """memtune: each value in KiB, UNLIMITED (or any value above it) for none."""
        _known(params, (*MEMORY_PARAMETERS, "min_guarantee"))
        if "min_guarantee" in params:  # libvirt's LXC driver has no such cgroup knob
            raise ArgumentUnsupported("parameter 'min_guarantee' not supported")
        for key, value in params.items():
            if value <= 0:  # 0 KiB is no limit anyone means: say which is meant
                raise InvalidArgument(f"{key} must be at least 1 KiB, or -1 for unlimited")

        def change(dom: m.DomainDef) -> m.DomainDef:
            from nsvirt.driver.domxml import model as m

            values = {k: min(v, UNLIMITED) for k, v in params.items()}
            return replace(dom, memtune=replace(dom.memtune or m.MemTune(), **values))

        self._tune(change, live=live, config=config, api="virDomainSetMemoryParameters")

    # ------------------------------------------------------------ scheduler

    def scheduler_type(self) -> tuple[str, int]:
        """libvirt's virDomainGetSchedulerType for LXC: ("posix", parameters)."""
        return "posix", len(SCHEDULER_PARAMETERS)

    def scheduler_parameters(self, *, live: bool) -> dict[str, int]:
        """cpu_shares, vcpu_period (µs) and vcpu_quota (µs, -1: none)."""
        if live:
            return live_scheduler(self._settings(self._live()))
        ct = self.definition(inactive=True).cputune
        return {"cpu_shares": getattr(ct, "shares", None) or 0,
                "vcpu_period": getattr(ct, "period", None) or 0,
                "vcpu_quota": getattr(ct, "quota", None) or 0}  # fmt: skip

    def set_scheduler_parameters(self, params: dict[str, int], *, live: bool,
                                 config: bool) -> None:  # fmt: skip
        """schedinfo --set: 0 for a period or quota leaves it as it is (virsh's rule)."""
        _known(params, SCHEDULER_PARAMETERS)
        shares = params.get("cpu_shares")
        period, quota = params.get("vcpu_period"), params.get("vcpu_quota")
        if live:  # libvirt's cgroup layer checks what it writes; the definition takes any
            low, high = (2, 262144) if self._live().facts.get("cgroup_mode") == "v1" else (1, 10000)
            if shares is not None and not low <= shares <= high:
                raise InvalidArgument(f"shares '{shares}' must be in range [{low}, {high}]")
            if period and not 1000 <= period <= 1000000:
                raise InvalidArgument(f"cfs_period '{period}' must be in range (1000, 1000000)")
            if quota and quota > 0 and not 1000 <= quota <= QUOTA_MAX:
                raise InvalidArgument(f"cfs_quota '{quota}' must be in range (1000, {QUOTA_MAX})")

        def change(dom: m.DomainDef) -> m.DomainDef:
            from nsvirt.driver.domxml import model as m

            ct = dom.cputune or m.CpuTune()
            if shares is not None:
                ct = replace(ct, shares=shares)
            if period:
                ct = replace(ct, period=period)
            if quota:
                ct = replace(ct, quota=-1 if quota < 0 else quota)
            return replace(dom, cputune=ct)

        self._tune(change, live=live, config=config, api="virDomainSetSchedulerParameters")

    # ------------------------------------------------------------ block I/O

    def blkio_parameters(self, *, live: bool) -> dict[str, Any]:
        """weight, and each device list as libvirt's `path,value,...` string."""
        dom = self.definition(inactive=not live)
        weight = dom.blkio_weight or 0
        if live:
            weight = int(self._settings(self._live()).get("blkio_weight", weight))
        out: dict[str, Any] = {"weight": weight}
        for param, field in _DEVICE_FIELDS.items():
            out[param] = ",".join(f"{d.path},{getattr(d, field)}" for d in dom.blkio_devices
                                  if getattr(d, field))  # fmt: skip
        return out

    def set_blkio_parameters(self, params: dict[str, Any], *, live: bool,
                             config: bool) -> None:  # fmt: skip
        """blkiotune: `weight`, and device lists (`path,value,...`; a value
        of 0 takes the device's setting away); other devices are left as they are."""
        _known(params, BLKIO_PARAMETERS)
        weight = params.get("weight")
        lists = {p: _device_list(p, params[p]) for p in _DEVICE_FIELDS if p in params}

        def change(dom: m.DomainDef) -> m.DomainDef:
            from nsvirt.driver.domxml import model as m

            devices = {d.path: d for d in dom.blkio_devices}
            for param, pairs in lists.items():
                for path, value in pairs:
                    device = devices.get(path) or m.BlkioDevice(path)
                    devices[path] = replace(device, **{_DEVICE_FIELDS[param]: value or None})
            kept = tuple(d for d in devices.values()
                         if any(getattr(d, f) for f in _DEVICE_FIELDS.values()))  # fmt: skip
            return replace(dom, blkio_weight=dom.blkio_weight if weight is None else weight,
                           blkio_devices=kept)  # fmt: skip

        self._tune(change, live=live, config=config, api="virDomainSetBlkioParameters")

    # ------------------------------------------------------------ NUMA

    def numa_parameters(self, *, live: bool) -> dict[str, str]:
        """numa_mode and numa_nodeset (the memory nodes: cpuset.mems while running)."""
        nt = self.definition(inactive=not live).numatune
        nodeset = nt.nodeset if nt and nt.nodeset else ""
        if live:
            nodeset = str(self._settings(self._live()).get("cpuset_mems", nodeset))
        return {"numa_mode": nt.mode if nt else "strict", "numa_nodeset": nodeset}

    def set_numa_parameters(self, params: dict[str, str], *, live: bool,
                            config: bool) -> None:  # fmt: skip
        """numatune: the mode (not of a running domain, as libvirt) and the nodeset."""
        from nsvirt.driver.domxml.units import UnitError, format_cpuset, parse_cpuset

        _known(params, ("numa_mode", "numa_nodeset"))
        mode, nodeset = params.get("numa_mode"), params.get("numa_nodeset")
        if mode is not None and mode not in NUMA_MODES:
            raise InvalidArgument(f"unsupported numatune mode: '{mode}'")
        if nodeset is not None:
            try:
                nodeset = format_cpuset(parse_cpuset(nodeset))
            except UnitError as e:
                raise InvalidArgument(f"Failed to parse bitmap '{nodeset}': {e}") from None

        def change(dom: m.DomainDef) -> m.DomainDef:
            from nsvirt.driver.domxml import model as m

            nt = dom.numatune or m.NumaTune()
            if live and mode is not None and mode != nt.mode:
                raise OperationInvalid("can't change numatune mode for running domain")
            if live and nodeset is not None and nt.mode != "strict":
                raise OperationInvalid("change of nodeset for running domain requires "
                                       "strict numa mode")  # fmt: skip
            return replace(dom, numatune=replace(nt, mode=mode or nt.mode,
                                                 nodeset=nodeset or nt.nodeset))  # fmt: skip

        self._tune(change, live=live, config=config, api="virDomainSetNumaParameters")

    # ------------------------------------------------------------ the one path

    def _tune(self, change: Callable[[m.DomainDef], m.DomainDef], *, live: bool,
              config: bool, api: str,
              live_change: Callable[[m.DomainDef], m.DomainDef] | None = None) -> None:  # fmt: skip
        """Apply `change` (`live_change` for the running domain, if given) to the running
        container (cgroup, then live XML) and/or the persistent definition. Every new
        definition is checked in full (the schema too) before anything is written."""
        from nsvirt.driver import domxml

        self.conn.require_writable(api)
        with self._lock():
            if config and not self.is_persistent():
                raise OperationInvalid("transient domains do not have any persistent config")
            stored = change(self.definition(inactive=True)) if config else None
            run = self._live_locked() if live else None  # recovered first, if need be
            dom = self.definition() if live else None
            new = (live_change or change)(dom) if dom is not None else None
            for checked in (stored, new):
                if checked is not None:
                    _check_memory(checked)
                    domxml.load(domxml.format(checked).encode(), source=self.name)
            if run is not None and dom is not None and new is not None:
                undo = self._limit(run, dom, new)
                try:
                    self._write_live(new, run)
                except BaseException:
                    undo()
                    raise
            if stored is not None:
                self._store(stored)

    def _limit(self, run: RunState, dom: m.DomainDef, new: m.DomainDef) -> Callable[[], None]:
        """Write what `new` limits otherwise than `dom` into the running cgroup; a
        function that puts back what was there."""
        from nsvirt.driver.launch.plan import limits
        from nsvirt.driver.runtime.cgroups import TUNABLE, CgroupError, plain_limits

        before, after = limits(dom), limits(new)
        moved = {f: getattr(after, f) for f in TUNABLE if getattr(after, f) != getattr(before, f)}
        if not moved:
            return lambda: None
        cg = self._cgroup(run)
        try:
            now = plain_limits(before, **cg.settings())
        except (CgroupError, OSError, ValueError) as e:
            raise self._why(e, "read") from None
        target = plain_limits(now, **moved)

        def undo() -> None:  # best effort: the kernel took these values a moment ago
            with contextlib.suppress(CgroupError, OSError):
                cg.tune(target, now)

        try:
            cg.tune(now, target)
        except (CgroupError, OSError) as e:
            undo()  # some levels may have the new values already
            raise self._why(e, "change") from None
        return undo

    def _why(self, e: Exception, verb: str) -> Exception:
        """A cgroup read or write that failed: the domain stopped meanwhile, or why."""
        state = self._run_state_locked()  # the caller holds the lock
        if state is None or not state.live:
            return OperationInvalid("domain is not running")
        text = f"cannot {verb} the limits of '{self.name}': {e}"
        if verb == "change" and _has_own_cgroups(self._cgroup(state).payload_dirs()):
            text += (
                " (the container's own cgroups below its payload hold wider limits; "
                "they bound what can be narrowed while it runs)"
            )
        return OperationFailed(text)

    def _cgroup(self, run: RunState) -> CgroupBackend:
        from nsvirt.driver.runtime.cgroups import backend_for

        return backend_for(run.facts, run.cgroup_partition, run.cgroup_name)

    def _settings(self, run: RunState) -> dict[str, object]:
        from nsvirt.driver.runtime.cgroups import CgroupError

        try:
            return self._cgroup(run).settings()
        except (CgroupError, OSError, ValueError) as e:
            raise OperationFailed(f"cannot read the cgroup of '{self.name}': {e}") from None


def _check_memory(dom: m.DomainDef) -> None:
    """The limit (hard_limit, else currentMemory) never above memory + swap's."""
    mt = dom.memtune
    swap = mt.swap_hard_limit if mt and mt.swap_hard_limit else UNLIMITED
    limit = (mt.hard_limit if mt and mt.hard_limit else None) or dom.current_memory
    if swap < UNLIMITED and limit > swap:
        raise InvalidArgument("memory hard_limit tunable value must be lower than or equal "
                              "to swap_hard_limit")  # fmt: skip


def _has_own_cgroups(payloads: dict[str, str]) -> bool:
    import os

    for level in set(payloads.values()):
        try:
            if any(e.is_dir(follow_symlinks=False) for e in os.scandir(level)):
                return True
        except OSError:
            continue
    return False


def _known(params: dict[str, Any], names: tuple[str, ...]) -> None:
    for key in params:
        if key not in names:
            raise ArgumentUnsupported(f"parameter '{key}' not supported")


def _device_list(param: str, text: str) -> list[tuple[str, int]]:
    """`/dev/sda,500,/dev/sdb,0` → [(path, value)], as libvirt parses blkiotune's."""
    words = text.split(",") if text else []
    if len(words) % 2:
        raise InvalidArgument(f"unable to parse blkio device '{param}' '{text}'")
    out = []
    for path, value in zip(words[::2], words[1::2], strict=True):
        if not value.isdigit():
            raise InvalidArgument(f"invalid value '{value}' for parameter '{param}' "
                                  f"of device '{path}'")  # fmt: skip
        out.append((path, int(value)))
    return out
