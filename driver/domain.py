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
import select
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nsvirt.driver import recovery
from nsvirt.driver.errors import (
    InternalError,
    NoDomainError,
    OperationFailed,
    OperationInvalid,
    XMLSyntaxError,
)
from nsvirt.driver.runtime import procstat
from nsvirt.driver.state import files, runstate
from nsvirt.driver.state.runstate import RunState, RunStateError
from nsvirt.driver.state.states import DomainState

if TYPE_CHECKING:  # the model costs ~20 ms to import: one-shot `list` does without it
    from nsvirt.driver.connection import Connection
    from nsvirt.driver.consolestream import ConsoleStream
    from nsvirt.driver.domxml import model as m

CALL_TIMEOUT = 60.0  # a bound on a supervisor's reply (destroy: until init has stopped)
ANSWER_TIMEOUT = 5.0  # a bound on destroy's reply, then destroy goes on without it


def answer_timeout() -> float:
    """$NSVIRT_ANSWER_TIMEOUT (tests make it short), else ANSWER_TIMEOUT."""
    return float(os.environ.get("NSVIRT_ANSWER_TIMEOUT") or ANSWER_TIMEOUT)


@dataclass(frozen=True, slots=True)
class DomainInfo:
    state: DomainState
    max_memory: int  # KiB
    memory: int  # KiB in use (the current balloon for an inactive domain)
    vcpus: int
    cpu_time: int  # ns


class Domain:
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
        paths = self.conn.paths
        try:
            state = runstate.read(paths, self.name)
        except RunStateError:
            state = None
            suspect = True
        else:
            suspect = (state is None or not state.live) and paths.socket(self.name).exists()
        if not suspect and (state is None or not state.live or runstate.supervisor_alive(state)):
            return state
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
        dom = self.definition()
        state = self.run_state()
        st, _ = runstate.state_of(state)
        if state is None or not state.live:
            return DomainInfo(st, dom.memory, dom.current_memory, dom.vcpus, 0)
        from nsvirt.driver.runtime.cgroups import CgroupError

        try:
            cg = runstate.backend_of(state)
            used, cpu = cg.memory_usage() // 1024, cg.cpu_time_ns()
        except (CgroupError, OSError, ValueError, KeyError):
            used, cpu = 0, 0
        return DomainInfo(st, dom.memory, used, dom.vcpus, cpu)

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

    def undefine(self) -> None:
        """Remove the persistent definition; a running domain goes on, as transient."""
        self.conn.require_writable("virDomainUndefine")
        paths = self.conn.paths
        paths.ensure()
        with files.locked(paths.define_lock, "the domain definitions"), self._lock():
            state = self._run_state_locked()  # the truth first: never forget a running one
            files.remove(paths.autostart_link(self.name))
            if not files.remove(paths.config(self.name)):
                raise NoDomainError(self.name)
            if not runstate.is_live(state):
                files.remove(paths.state(self.name), durable=False)
                files.remove_lock(paths.lock(self.name))  # no domain: no lock file

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
                self._write_live_xml(dom, state.supervisor_pid, state.consoles)

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

    # ------------------------------------------------------------ lifecycle

    def create(self) -> None:
        """Start the defined domain (libvirt's virDomainCreate)."""
        self.conn.require_writable("virDomainCreate")
        with self._lock():
            if runstate.is_live(self._run_state_locked()):
                raise OperationInvalid("domain is already running")
            self.start_definition(self.definition(inactive=True), persistent=True)

    def start_definition(self, dom: m.DomainDef, *, persistent: bool) -> None:
        """Plan, launch, and write the live XML. The caller holds the domain lock."""
        from nsvirt.driver.launch import hostfacts, launcher, plan, sharing

        join = sharing.namespaces_to_join(self.conn, dom)
        facts = hostfacts.detect()
        launch_plan = plan.build(dom, facts, partition=self.conn.partition_for(dom), join=join)
        try:
            info = launcher.launch(self.conn.paths, launch_plan, persistent=persistent)
        except launcher.StartFailed as e:
            raise InternalError(str(e)) from None
        try:
            self._write_live_xml(dom, info["pid"], info["consoles"])
        except OSError as e:  # a full disk: a domain nobody could see must not run on
            self._call({"op": "destroy"}, answer_timeout())
            raise InternalError(f"cannot write the live definition: {e.strerror}; "
                                "the domain was destroyed") from None  # fmt: skip

    def _write_live_xml(self, dom: m.DomainDef, pid: int, ttys: list[str]) -> None:
        """The running domain's XML: its id and its consoles' ptys, as dumpxml shows them."""
        from nsvirt.driver import domxml
        from nsvirt.driver.domxml.model import CharDevice

        declared = dom.devices.consoles or (CharDevice(port=0),)
        pairs = enumerate(zip(declared, ttys, strict=False))
        consoles = tuple(replace(c, tty=tty, alias=f"console{i}") for i, (c, tty) in pairs)
        live = replace(dom, id=pid, devices=replace(dom.devices, consoles=consoles))
        files.write_atomic(self.conn.paths.live_xml(self.name), domxml.format(live).encode(),
                           durable=False)  # fmt: skip

    def _call(self, request: dict[str, Any],
              timeout: float | None = CALL_TIMEOUT) -> dict[str, Any]:  # fmt: skip
        from nsvirt.driver.supervisor import protocol

        try:
            return protocol.call(self.conn.paths.socket(self.name), request, timeout)
        except protocol.SupervisorGone:
            if not self.is_active():  # it stopped meanwhile (another client's destroy)
                raise OperationInvalid("domain is not running") from None
            raise InternalError(f"the supervisor of '{self.name}' closed the connection") from None
        except protocol.ProtocolError as e:
            raise OperationFailed(str(e)) from None
        except (ConnectionError, FileNotFoundError, TimeoutError) as e:
            if not self.is_active():
                raise OperationInvalid("domain is not running") from None
            raise InternalError(f"cannot reach the supervisor of '{self.name}': {e}") from None

    def destroy(self) -> None:
        """Kill every process of the container at once and tear it down. A supervisor
        that does not answer (stopped, wedged) is killed, and the client tears down."""
        self.conn.require_writable("virDomainDestroy")
        state = self._live()
        stat = procstat.read(state.supervisor_pid)
        if stat is not None and stat.state not in ("T", "t"):  # a stopped one cannot answer
            try:
                self._call({"op": "destroy"}, answer_timeout())
                return
            except InternalError:
                if not self.is_active():  # a supervisor that just finished stopping
                    return
        with self._lock():
            now = self._run_state_locked()
            same = now is not None and now.live and (now.supervisor_pid, now.supervisor_start) == (
                state.supervisor_pid, state.supervisor_start)  # fmt: skip
            if same:  # not a run that someone else stopped, or started anew, meanwhile
                recovery.destroy_without_supervisor(self.conn, state)

    def shutdown(self, mode: str | None = None, timeout: float | None = None,
                 wait: bool = False) -> None:  # fmt: skip
        """Ask init to stop (`signal`: SIGTERM, or SIGRTMIN+4 for systemd; `initctl`), and
        return, as libvirt does. With `timeout` (seconds), the container is destroyed if
        init has not stopped by then; with `wait`, return only once it has."""
        self.conn.require_writable("virDomainShutdown")
        self._stop_request("shutdown", mode, timeout, wait)

    def reboot(self, mode: str | None = None, timeout: float | None = None,
               wait: bool = False) -> None:  # fmt: skip
        """Stop init as shutdown does, then start the container again (new init)."""
        self.conn.require_writable("virDomainReboot")
        self._stop_request("reboot", mode, timeout, wait)

    def _stop_request(self, op: str, mode: str | None, timeout: float | None,
                      wait: bool) -> None:  # fmt: skip
        self._live()
        if not wait:
            bound: float | None = CALL_TIMEOUT
        elif timeout is None:
            bound = None  # until init stops, however long: the caller asked to wait
        else:
            bound = timeout + CALL_TIMEOUT
        self._call({"op": op, "mode": mode, "timeout": timeout, "wait": wait}, bound)

    def suspend(self) -> None:
        """Freeze every process of the container."""
        self.conn.require_writable("virDomainSuspend")
        if self.state()[0] == DomainState.PAUSED:
            raise OperationInvalid("domain is already paused")
        self._live()
        self._call({"op": "suspend"})

    def resume(self) -> None:
        self.conn.require_writable("virDomainResume")
        if self.state()[0] != DomainState.PAUSED:
            raise OperationInvalid("domain is not paused")
        self._call({"op": "resume"})

    def hold_autodestroy(self) -> object:
        """Tie the domain's life to the returned socket: when it is closed (or this
        process dies), the supervisor destroys the domain (libvirt's autodestroy)."""
        self.conn.require_writable("virDomainCreateXML")
        from nsvirt.driver.supervisor import protocol

        self._live()
        sock = protocol.connect(self.conn.paths.socket(self.name))
        sock.sendall(protocol.encode({"op": "autodestroy"}))
        reply = protocol.decode(protocol.read_line(sock, 30.0) or b'{"v":1,"ok":false}')
        if not reply.get("ok"):
            sock.close()
            raise OperationFailed(reply.get("error", "autodestroy refused"))
        return sock

    def wait_for_shutoff(self, timeout: float) -> bool:
        """Block until the supervisor has exited (pidfd), at most `timeout` seconds."""
        try:
            state = runstate.read(self.conn.paths, self.name)
        except RunStateError:
            state = self.run_state()
        if state is None or not state.live or not runstate.supervisor_alive(state):
            return True
        try:
            fd = os.pidfd_open(state.supervisor_pid)
        except ProcessLookupError:
            return True
        try:
            return bool(select.select([fd], [], [], timeout)[0])
        finally:
            os.close(fd)

    def open_console(self, force: bool = False, port: int = 0) -> ConsoleStream:
        """Attach to a console: read its output, write input, forward the window size."""
        self.conn.require_writable("virDomainOpenConsole")
        from nsvirt.driver.consolestream import ConsoleStream
        from nsvirt.driver.supervisor import protocol

        self._live()
        try:
            sock = protocol.connect(self.conn.paths.socket(self.name))
        except OSError as e:
            raise InternalError(f"cannot reach the supervisor of '{self.name}': {e}") from None
        sock.sendall(protocol.encode({"op": "console", "force": force, "port": port}))
        reply = protocol.decode(protocol.read_line(sock, 30.0) or b'{"v":1,"ok":false}')
        if not reply.get("ok"):
            sock.close()
            raise OperationFailed(
                reply.get("error", "console unavailable").removeprefix("operation failed: ")
            )
        sock.settimeout(None)
        return ConsoleStream(sock)
