"""A handle on one domain, named after libvirt-python's virDomain.

Domain.create           create             Domain.destroy          destroy
Domain.shutdown         shutdownFlags      Domain.reboot           reboot
Domain.suspend/resume   suspend/resume     Domain.undefine         undefine
Domain.xml_desc         XMLDesc            Domain.info / state     info / state
Domain.id / uuid / name ID / UUIDString / name

State is read from disk on each call. The runtime state file is the supervisor's;
when it is missing, unreadable or names a dead supervisor, driver/recovery.py
finds the truth (from the supervisor itself, else from the cgroup) before
anything is reported or changed: a running container is never forgotten.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nsvirt.driver import recovery
from nsvirt.driver.deviceops import DeviceOps
from nsvirt.driver.errors import (
    DriverError,
    NoDomainError,
    NoHostname,
    OperationFailed,
    OperationInvalid,
    XMLSyntaxError,
)
from nsvirt.driver.lifecycle import Lifecycle
from nsvirt.driver.netops import Interfaces
from nsvirt.driver.records import Record, replace
from nsvirt.driver.state import files, runstate
from nsvirt.driver.state.runstate import RunState
from nsvirt.driver.state.states import DomainState
from nsvirt.driver.stats import Statistics
from nsvirt.driver.tuning import Tuning

if TYPE_CHECKING:  # the model costs ~20 ms to import: one-shot `list` does without it
    from nsvirt.driver.connection import Connection
    from nsvirt.driver.domxml import model as m


class DomainInfo(Record):
    state: DomainState
    max_memory: int  # KiB
    memory: int  # KiB in use (the current balloon for an inactive domain)
    vcpus: int
    cpu_time: int  # ns


class Domain(Lifecycle, DeviceOps, Interfaces, Tuning, Statistics):
    def __init__(self, conn: Connection, name: str, uuid: str) -> None:
        self.conn = conn
        self.name = name
        self.uuid = uuid  # "" for a definition that cannot be read

    def __repr__(self) -> str:
        return f"<Domain {self.name} {self.uuid}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Domain) and (self.conn.uri, self.name, self.uuid) == (
            other.conn.uri, other.name, other.uuid)  # fmt: skip

    def __hash__(self) -> int:
        return hash((self.conn.uri, self.name, self.uuid))

    def _lock(self) -> contextlib.AbstractContextManager[None]:
        self.conn.paths.ensure()
        return files.locked(self.conn.paths.lock(self.name), f"domain '{self.name}'")

    # ------------------------------------------------------------ runtime state

    def run_state(self) -> RunState | None:
        """The true runtime state: read, or recovered when the file is missing while a
        supervisor answers, unreadable, or names a supervisor that is gone."""
        try:
            return runstate.read_trusted(self.conn.paths, self.name)
        except runstate.NeedsRecovery:
            pass
        with self._lock():
            return self._run_state_locked()

    def _run_state_locked(self) -> RunState | None:
        """run_state for a caller that holds the domain lock."""
        return recovery.true_state(self.conn, self.name)

    def _live(self) -> RunState:
        state = self.run_state()
        if state is None or not state.live:
            raise OperationInvalid("domain is not running")
        return state

    def _live_locked(self) -> RunState:
        """_live for a caller that holds the domain lock (recovery takes it too)."""
        state = self._run_state_locked()
        if state is None or not state.live:
            raise OperationInvalid("domain is not running")
        return state

    def is_persistent(self) -> bool:
        return self.conn.paths.config(self.name).is_file()

    def is_active(self) -> bool:
        return runstate.is_live(self.run_state())

    @property
    def id(self) -> int:
        """libvirt's ID(): the supervisor's pid while running, -1 otherwise."""
        return self.status()[2]

    def status(self) -> tuple[DomainState, int, int]:
        """(state, reason, id) from one read of the runtime state (what `list` needs)."""
        state = self.run_state()
        st, reason = runstate.state_of(state)
        return st, reason, state.supervisor_pid if runstate.is_live(state) else -1  # type: ignore[union-attr]

    def state(self) -> tuple[DomainState, int]:
        """(state, reason) as libvirt's virDomainGetState."""
        return runstate.state_of(self.run_state())

    def init_pid(self) -> int:
        """The host pid of the container's init (pid 1 inside)."""
        return self._live().init_pid

    def info(self) -> DomainInfo:
        """libvirt's virDomainGetInfo: state, memory (KiB), vCPUs, CPU time (ns)."""
        state = self.run_state()
        summary = self._summary(runstate.is_live(state))  # one read of the state for both
        st, _ = runstate.state_of(state)
        memory, vcpus = summary["memory"], summary["vcpus"]
        if state is None or not state.live:
            return DomainInfo(st, memory, summary["current_memory"], vcpus, 0)  # type: ignore[arg-type]
        from nsvirt.driver.runtime import cgusage

        used, cpu = cgusage.usage(state.cgroup)
        return DomainInfo(st, memory, used, vcpus, cpu)  # type: ignore[arg-type]

    def lxc_enter_namespace(self, argv: list[str]) -> int:
        """Run `argv` inside the running container (driver/enter.py); its exit status.
        libvirt-python's libvirt_lxc.lxcEnterNamespace, as one call."""
        from nsvirt.driver.enter import enter_namespace

        return enter_namespace(self, argv)

    def hostname(self, source: str | None = None) -> str:
        """libvirt's virDomainGetHostname. By default the hostname the container has
        now, read in its UTS namespace (libvirt's LXC driver knows only DHCP leases);
        `source="lease"`: the hostname a DHCP lease of one of its networks gives."""
        if source == "agent":  # libvirt's words: a container has no guest agent
            raise DriverError("unsupported flags (0x2) in function lxcDomainGetHostname")
        state = self._live()
        if source == "lease":
            from nsvirt.driver.network import networks

            for iface in self.definition().devices.interfaces:
                if iface.type == "network" and iface.source:
                    for lease in networks.Network(self.conn, iface.source).leases():
                        if lease["mac"] == iface.mac and lease.get("hostname", "*") != "*":
                            return lease["hostname"]
            raise NoHostname(f"no hostname found for domain {self.name}")
        from nsvirt.driver.runtime import procstat, uts

        # the pidfd pins the process: it is init if it is in the container's cgroup now,
        # and the namespace read was its if it is still alive after
        pidfd = procstat.open_pidfd(state.init_pid)
        if pidfd is None:
            raise OperationInvalid("domain is not running")
        try:
            with open(f"/proc/{state.init_pid}/cgroup") as f:
                ours = f"/{state.cgroup_name}/" in f.read()
            name = uts.hostname_of(state.init_pid) if ours else None
            gone = procstat.exited(pidfd)
        except OSError as e:
            if not self.is_active():
                raise OperationInvalid("domain is not running") from None
            raise OperationFailed(f"cannot read the hostname of '{self.name}': {e}") from None
        finally:
            os.close(pidfd)
        if name is None or gone:
            raise OperationInvalid("domain is not running")
        return name

    def send_process_signal(self, pid: int, signum: int) -> None:
        """libvirt's virDomainSendProcessSignal: `signum` in its numbering
        (driver/signals.py: 15 is term), to the process numbered `pid` inside."""
        from nsvirt.driver import signals

        signals.send(self, pid, signum)

    def cgroup_dirs(self) -> dict[str, str]:
        """The container's cgroup directories, by controller."""
        return dict(self._live().cgroup)

    # ------------------------------------------------------------ definition

    def xml_desc(self, inactive: bool = False) -> str:
        """The domain's XML as dumpxml prints it (the live one while running). A stored
        file that nsvirt did not write as such (empty, not UTF-8, not a domain) is
        parsed in full, so the error names its line."""
        paths = self.conn.paths
        sources = [paths.config(self.name)]
        if not inactive and self.is_active():
            sources.insert(0, paths.live_xml(self.name))
        for path in sources:
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            with contextlib.suppress(UnicodeDecodeError):
                text = data.decode()
                if text.startswith("<domain") and text.rstrip().endswith("</domain>"):
                    return text
            from nsvirt.driver import domxml

            domxml.load_trusted(data, source=str(path))  # raises, saying where and why
            raise XMLSyntaxError("not a domain definition written by nsvirt", source=str(path))
        raise NoDomainError(self.name)

    def definition(self, inactive: bool = False) -> m.DomainDef:
        """The definition as a model (parsed without the schema: nsvirt wrote it)."""
        from nsvirt.driver import domxml

        path = self.conn.paths.config(self.name)
        return domxml.load_trusted(self.xml_desc(inactive).encode(), source=str(path))

    def summary(self, inactive: bool = False) -> dict[str, object]:
        """What dominfo and list need of the definition (the live one while running):
        its compiled form (state/compiled.py), built again from the XML when that is
        missing, stale or corrupt."""
        return self._summary(not inactive and self.is_active())

    def _summary(self, live: bool) -> dict[str, object]:
        from nsvirt.driver.state import compiled

        names = self.conn.paths.names
        source = names.live_xml(self.name) if live else names.config(self.name)
        found = compiled.read(source, names.compiled(self.name, live))
        if found is not None:
            return found
        from nsvirt.driver import domxml

        text = self.xml_desc(inactive=not live).encode()
        dom = domxml.load_trusted(text, source=source)
        if not live:
            return self.conn.compile(dom, text)
        fields = compiled.summary(dom)
        compiled.write(source, names.compiled(self.name, live), text, fields)
        return fields

    def containment(self) -> dict[str, Any]:
        """How the domain is contained (running) or would be on this host, and why
        (launch/containment.py's report; the host ids of root inside while it runs)."""
        from nsvirt.driver.launch import containment, hostfacts
        from nsvirt.driver.runtime import idmount

        state = self.run_state()
        live = runstate.is_live(state)
        can_idmap = idmount.probe if os.geteuid() == 0 and not live else None  # needs root
        out = containment.report(self.definition(), hostfacts.detect(), can_idmap,
                                 idmount.reachable_by_others)  # fmt: skip
        ids = (state.containment if live and state is not None else {}) or {}
        out["host_uid"], out["host_gid"] = ids.get("uid"), ids.get("gid")
        if live and out["mode"] == "privileged":
            out["host_uid"] = out["host_gid"] = 0
        return out

    def proc(self) -> dict[str, Any]:
        """The container's /proc files (driver/procfs/): the definition's view
        ("container" or "host"), and while it runs whether the root's /proc server
        serves them (`served`) or, if not, why (`error`: it reads the kernel's)."""
        state = self.run_state()
        live = runstate.is_live(state) and state is not None
        view = self.definition(inactive=not live).proc_view
        status = state.procfs if live and state is not None else ""
        served = None if not live or status == "off" else status == "on"
        error = status.removeprefix("failed: ") if status.startswith("failed") else None
        return {"view": view, "served": served, "error": error}

    def undefine(self) -> None:
        """Remove the persistent definition; a running domain goes on, as transient."""
        self.conn.require_writable("virDomainUndefine")
        from nsvirt.driver.state import store

        paths = self.conn.paths
        paths.ensure()
        with files.locked(paths.define_lock, "the domain definitions"), self._lock():
            state = self._run_state_locked()  # the truth first: never forget a running one
            if not store.forget(paths.names, self.name, runstate.is_live(state)):
                raise NoDomainError(self.name)

    def set_metadata(self, kind: str, value: str | None, *, live: bool, config: bool,
                     uri: str | None = None) -> None:  # fmt: skip
        """Set (or, with None, remove) the title, the description, or the <metadata>
        element of namespace `uri` (given as serialised XML), live and/or persistently."""
        self.conn.require_writable("virDomainSetMetadata")
        from nsvirt.driver import domxml

        if live and not self.is_active():
            raise OperationInvalid("domain is not running")
        if config and not self.is_persistent():
            raise OperationInvalid("transient domains do not have any persistent config")

        def change(dom: m.DomainDef) -> m.DomainDef:
            if kind == "title":
                return replace(dom, title=value or None)
            if kind == "description":
                return replace(dom, description=value or None)
            return dom.with_metadata(uri or "", value)

        paths = self.conn.paths
        with self._lock():
            if config:
                text = domxml.format(change(self.definition(inactive=True))).encode()
                domxml.load(text, source=self.name)  # what is stored must validate
                files.write_atomic(paths.config(self.name), text)
            if live:
                state = self._live()
                dom = change(domxml.load_trusted(paths.live_xml(self.name).read_bytes()))
                self._write_live_xml(dom, state.supervisor_pid, state.consoles, state.interfaces)

    def autostart(self) -> bool:
        return self.conn.paths.autostart_link(self.name).is_symlink()

    def set_autostart(self, enabled: bool) -> None:
        self.conn.require_writable("virDomainSetAutostart")
        paths = self.conn.paths
        if not self.is_persistent():
            raise OperationInvalid("cannot set autostart for transient domain")
        link = paths.autostart_link(self.name)
        if enabled and not link.is_symlink():
            link.symlink_to(Path("..") / f"{self.name}.xml")
        elif not enabled:
            files.remove(link)
