"""What changes a domain's run: start, destroy, shutdown, reboot, suspend, resume,
and the console and autodestroy connections to its supervisor. A mixin of
driver/domain.py's Domain (which holds the look-ups and the definition)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nsvirt.driver import recovery
from nsvirt.driver.errors import DriverError, InternalError, OperationFailed, OperationInvalid
from nsvirt.driver.runtime import procstat
from nsvirt.driver.state import compiled, runstate, store
from nsvirt.driver.state.runstate import RunState, RunStateError
from nsvirt.driver.state.states import DomainState
from nsvirt.driver.supervisor.wire import CALL_TIMEOUT, answer_timeout

if TYPE_CHECKING:
    import contextlib

    from nsvirt.driver.connection import Connection
    from nsvirt.driver.consolestream import ConsoleStream
    from nsvirt.driver.domxml import model as m


class Lifecycle:
    """The run-changing calls of Domain (libvirt's virDomainCreate, virDomainDestroy…)."""

    conn: Connection
    name: str

    if TYPE_CHECKING:  # provided by Domain

        def _lock(self) -> contextlib.AbstractContextManager[None]: ...
        def _live(self) -> RunState: ...
        def _run_state_locked(self) -> RunState | None: ...
        def run_state(self) -> RunState | None: ...
        def is_active(self) -> bool: ...
        def state(self) -> tuple[DomainState, int]: ...
        def definition(self, inactive: bool = False) -> m.DomainDef: ...
        def _summary(self, live: bool) -> dict[str, object]: ...

    def create(self) -> None:
        """Start the defined domain (libvirt's virDomainCreate)."""
        self.conn.require_writable("virDomainCreate")
        with self._lock():
            if runstate.is_live(self._run_state_locked()):
                raise OperationInvalid("domain is already running")
            self.start_definition(self.definition(inactive=True), persistent=True)
        # the one-shot start came here without a usable compiled form (an upgrade, an
        # edit behind nsvirt's back): make it again, so the next start needs no driver
        try:
            self._summary(live=False)
        except (DriverError, OSError):
            pass  # best effort: only speed depends on it

    def start_definition(self, dom: m.DomainDef, *, persistent: bool) -> None:
        """Plan, launch, and write the live XML. The caller holds the domain lock."""
        from nsvirt.driver.launch import hostdevices, hostfacts, launcher, plan, sharing

        join = sharing.namespaces_to_join(self.conn, dom)
        bridges = _network_bridges(self.conn, dom)
        facts = hostfacts.detect()
        launch_plan = plan.build(dom, facts, partition=self.conn.partition_for(dom), join=join,
                                 bridges=bridges,
                                 host_devices=hostdevices.look_up(dom))  # fmt: skip
        spare, self.conn.spare = self.conn.spare, None
        try:
            info = launcher.launch(self.conn.paths.names, launch_plan.to_json(),
                                   persistent=persistent, interfaces=launch_plan.interfaces,
                                   spare=spare)  # fmt: skip
        except launcher.StartFailed as e:
            raise InternalError(str(e)) from None
        try:
            self._write_live_xml(dom, info["pid"], info["consoles"], info.get("interfaces", []),
                                 info.get("containment"))  # fmt: skip
        except OSError as e:  # a full disk: a domain nobody could see must not run on
            self._call({"op": "destroy"}, answer_timeout())
            raise InternalError(f"cannot write the live definition: {e.strerror}; "
                                "the domain was destroyed") from None  # fmt: skip

    def _write_live_xml(self, dom: m.DomainDef, pid: int, ttys: list[str],
                        interfaces: list[dict[str, Any]],
                        containment: dict[str, Any] | None = None) -> None:  # fmt: skip
        """The running domain's XML (launch/livexml.py), and its compiled form."""
        from nsvirt.driver import domxml
        from nsvirt.driver.launch.livexml import live_definition

        live = live_definition(dom, pid, ttys, interfaces, containment)
        text = domxml.format(live).encode()
        store.write_live(self.conn.paths.names, self.name, text, compiled.summary(live), pid)

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
                # the kernel removes the host ends with the container's network
                # namespace, but asynchronously: when destroy returns they are gone
                runstate.remove_host_interfaces(state)
                return
            except InternalError:
                if not self.is_active():  # a supervisor that just finished stopping
                    runstate.remove_host_interfaces(state)
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
        return procstat.wait_gone(state.supervisor_pid, timeout)

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


def _network_bridges(conn: Connection, dom: m.DomainDef) -> dict[str, str]:
    """The bridge of each network the domain's interfaces name (active, or an error)."""
    names = {i.source for i in dom.devices.interfaces if i.type == "network" and i.source}
    if not names:
        return {}
    from nsvirt.driver.network import networks

    return {name: networks.active_bridge(conn, name) for name in names}
