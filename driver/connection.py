"""The public API: Connection and Domain, named after libvirt-python's.

connect(uri)            virConnectOpen / libvirt.open
Connection.define_xml   defineXML          Connection.create_xml   createXML
lookup_by_name / _uuid  lookupByName / lookupByUUIDString
list_all                listAllDomains
Domain.create           create             Domain.destroy          destroy
Domain.shutdown         shutdownFlags      Domain.reboot           reboot
Domain.suspend/resume   suspend/resume     Domain.undefine         undefine
Domain.xml_desc         XMLDesc            Domain.info / state     info / state
Domain.id / uuid / name ID / UUIDString / name
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import select
import uuid as uuidlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from nsvirt.driver import runstate, store
from nsvirt.driver.errors import (
    DriverError,
    InternalError,
    InvalidURI,
    NoDomainError,
    OperationFailed,
    OperationInvalid,
)
from nsvirt.driver.state import DomainState

if TYPE_CHECKING:  # the model costs ~20 ms to import: one-shot `list` does without it
    from nsvirt.driver import model as m

DEFAULT_URI = "lxc:///system"
SHUTDOWN_TIMEOUT = 30.0  # seconds an init gets to stop before it is destroyed

# Guest arches an exe container can run on each host arch (libvirt's capabilities).
_COMPAT_ARCHES = {
    "x86_64": ("x86_64", "i686"),
    "aarch64": ("aarch64", "armv7l"),
    "ppc64le": ("ppc64le",),
    "s390x": ("s390x",),
    "riscv64": ("riscv64",),
}


def default_uri() -> str:
    """NSVIRT_DEFAULT_URI if set, else lxc:///system (the `-c` option overrides both)."""
    return os.environ.get("NSVIRT_DEFAULT_URI") or DEFAULT_URI


def parse_uri(uri: str) -> tuple[str, Path]:
    """Return the canonical URI and the root directory it keeps its state under."""
    parts = urlsplit(uri)
    if parts.scheme != "lxc" or parts.netloc not in ("", "localhost"):
        raise InvalidURI(uri, "no connection driver available for")
    query = parse_qs(parts.query, keep_blank_values=True)
    if parts.path in ("", "/", "/system") and not query:
        return "lxc:///system", Path("/")
    if parts.path == "/embed":
        roots = query.get("root", [])
        if set(query) != {"root"} or len(roots) != 1 or not roots[0].startswith("/"):
            raise InvalidURI(uri, "embed URI needs one absolute root= directory")
        root = Path(os.path.normpath(roots[0]))
        return f"lxc:///embed?root={root}", root
    raise InvalidURI(uri, "no connection driver available for")


def connect(uri: str | None = None) -> Connection:
    """Open a connection (libvirt's virConnectOpen); nothing is created until a write."""
    canonical, root = parse_uri(uri or default_uri())
    return Connection(canonical, store.Paths(root))


def host_arch() -> str:
    from nsvirt.driver.hostfacts import host_arch as detect

    return detect()


class Connection:
    def __init__(self, uri: str, paths: store.Paths) -> None:
        self.uri = uri
        self.paths = paths

    def __repr__(self) -> str:
        return f"<Connection {self.uri}>"

    @property
    def tag(self) -> str:
        """8 hex digits naming this root on the host (cgroup partitions, veth names)."""
        if self.paths.root == Path("/"):
            return ""
        return hashlib.sha256(str(self.paths.root).encode()).hexdigest()[:8]

    def default_partition(self) -> str:
        return f"/nsvirt-{self.tag}" if self.tag else "/nsvirt"

    def partition_for(self, dom: m.DomainDef) -> str:
        """The cgroup partition: <resource><partition>, kept inside this root's own tree."""
        if dom.partition is None:
            return self.default_partition()
        return (self.default_partition() + dom.partition) if self.tag else dom.partition

    # ------------------------------------------------------------ definitions

    def define_xml(self, xml: str | bytes, source: str = "") -> Domain:
        """Validate and store a persistent definition; redefining the same uuid updates it."""
        from nsvirt.driver import xmlio  # xmlschema costs ~250 ms: load it where XML is parsed

        data = xml.encode() if isinstance(xml, str) else xml
        dom = self._with_host_defaults(xmlio.parse(data, source=source))
        self.paths.ensure()
        with store.locked(self.paths.run_dir / ".define.lock"):
            self._check_unique(dom)
            with store.locked(self.paths.lock(dom.name)):
                store.write_atomic(self.paths.config(dom.name), xmlio.format(dom).encode())
        return Domain(self, dom.name, dom.uuid)

    def create_xml(self, xml: str | bytes, source: str = "") -> Domain:
        """Start a transient domain: it has a run entry and no persistent definition."""
        from nsvirt.driver import xmlio

        data = xml.encode() if isinstance(xml, str) else xml
        dom = self._with_host_defaults(xmlio.parse(data, source=source))
        self.paths.ensure()
        with store.locked(self.paths.run_dir / ".define.lock"):
            for other in self.list_all():
                if other.name == dom.name or other.uuid == dom.uuid:
                    raise OperationFailed(
                        f"domain '{other.name}' already exists with uuid {other.uuid}"
                    )
            domain = Domain(self, dom.name, dom.uuid)
            with store.locked(self.paths.lock(dom.name)):
                domain._start(dom, persistent=False)
        return domain

    def _with_host_defaults(self, dom: m.DomainDef) -> m.DomainDef:
        arch = host_arch()
        allowed = _COMPAT_ARCHES.get(arch, (arch,))
        if dom.os.arch is None:
            return replace(dom, os=replace(dom.os, arch=arch))
        if dom.os.arch not in allowed:
            raise OperationFailed(
                f"no container support for arch={dom.os.arch} on a "
                f"{arch} host (supported: {', '.join(allowed)})"
            )
        return dom

    def _check_unique(self, dom: m.DomainDef) -> None:
        """libvirt's rules: a name keeps its uuid, a uuid keeps its name."""
        for other in self.list_all():
            if other.name == dom.name and other.uuid != dom.uuid:
                raise OperationFailed(
                    f"domain '{other.name}' already exists with uuid {other.uuid}"
                )
            if other.uuid == dom.uuid and other.name != dom.name:
                raise OperationFailed(
                    f"domain '{other.name}' is already defined with uuid {other.uuid}"
                )

    # ------------------------------------------------------------ look-ups

    def list_all(self) -> list[Domain]:
        """Every domain this connection knows: defined ones and running transient ones."""
        names = set(self.paths.persistent_names()) | set(self.paths.running_names())
        found = []
        for name in sorted(names):
            with contextlib.suppress(NoDomainError):
                found.append(self.lookup_by_name(name))
        return found

    def lookup_by_name(self, name: str) -> Domain:
        if not name or "/" in name or name.startswith("."):
            raise NoDomainError(name)
        config = self.paths.config(name)
        if config.is_file():
            return Domain(self, name, _read_uuid(config))
        state = runstate.read(self.paths, name)
        if runstate.is_live(state) and state.get("uuid"):
            return Domain(self, name, state["uuid"])
        raise NoDomainError(name)

    def lookup_by_uuid(self, uuid: str) -> Domain:
        try:
            wanted = str(uuidlib.UUID(uuid))
        except ValueError:
            raise NoDomainError(
                uuid, f"Domain not found: no domain with matching uuid '{uuid}'"
            ) from None
        for dom in self.list_all():
            if dom.uuid == wanted:
                return dom
        raise NoDomainError(uuid, f"Domain not found: no domain with matching uuid '{uuid}'")

    def lookup_by_id(self, id_: int) -> Domain:
        for dom in self.list_all():
            if dom.id == id_ and id_ > 0:
                return dom
        raise NoDomainError(str(id_), f"Domain not found: no domain with matching id {id_}")

    def autostart_all(self) -> list[tuple[str, DriverError | None]]:
        """Start every domain marked autostart that is not running (for boot)."""
        results: list[tuple[str, DriverError | None]] = []
        try:
            links = sorted(p.name[:-4] for p in self.paths.autostart_dir.glob("*.xml"))
        except OSError:
            links = []
        for name in links:
            try:
                dom = self.lookup_by_name(name)
                if not dom.is_active():
                    dom.create()
                results.append((name, None))
            except DriverError as e:
                results.append((name, e))
        return results


def _read_uuid(path: Path) -> str:
    """The uuid of a stored definition, without parsing the whole document."""
    with open(path, "rb") as f:
        head = f.read(512)
    start = head.find(b"<uuid>") + len(b"<uuid>")
    return head[start : head.find(b"</uuid>", start)].decode()


@dataclass(frozen=True, slots=True)
class DomainInfo:
    state: DomainState
    max_memory: int  # KiB
    memory: int  # KiB in use (the current balloon for an inactive domain)
    vcpus: int
    cpu_time: int  # ns


class Domain:
    """A handle on one domain; state is read from disk on each call."""

    def __init__(self, conn: Connection, name: str, uuid: str) -> None:
        self.conn = conn
        self.name = name
        self.uuid = uuid

    def __repr__(self) -> str:
        return f"<Domain {self.name} {self.uuid}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Domain) and (self.conn.uri, self.uuid) == (
            other.conn.uri,
            other.uuid,
        )

    def __hash__(self) -> int:
        return hash((self.conn.uri, self.uuid))

    # ------------------------------------------------------------ runtime state

    def _runtime(self) -> dict | None:
        """The live runtime state, after cleaning up if its supervisor died."""
        paths = self.conn.paths
        state = runstate.read(paths, self.name)
        if not runstate.is_live(state) or runstate.supervisor_alive(state):
            return state
        with store.locked(paths.lock(self.name)):
            return self._runtime_unlocked()  # re-reads: another client may have cleaned

    def _live(self) -> dict:
        state = self._runtime()
        if not runstate.is_live(state):
            raise OperationInvalid("domain is not running")
        assert state is not None
        return state

    def is_persistent(self) -> bool:
        return self.conn.paths.config(self.name).is_file()

    def is_active(self) -> bool:
        return runstate.is_live(self._runtime())

    @property
    def id(self) -> int:
        """libvirt's ID(): the supervisor's pid while running, -1 otherwise."""
        state = self._runtime()
        return state["supervisor_pid"] if runstate.is_live(state) else -1

    def status(self) -> tuple[DomainState, int, int]:
        """(state, reason, id) from one read of the runtime state (what `list` needs)."""
        state = self._runtime()
        st, reason = runstate.state_of(state)
        return st, reason, state["supervisor_pid"] if runstate.is_live(state) else -1

    def state(self) -> tuple[DomainState, int]:
        """(state, reason) as libvirt's virDomainGetState."""
        return runstate.state_of(self._runtime())

    def init_pid(self) -> int:
        """The host pid of the container's init (pid 1 inside)."""
        return self._live()["init_pid"]

    def info(self) -> DomainInfo:
        """libvirt's virDomainGetInfo: state, memory (KiB), vCPUs, CPU time (ns)."""
        dom = self.definition()
        state = self._runtime()
        st, _ = runstate.state_of(state)
        if not runstate.is_live(state):
            return DomainInfo(st, dom.memory, dom.current_memory, dom.vcpus, 0)
        from nsvirt.driver.runtime.cgroups import CgroupError, backend_from_state

        try:
            cg = backend_from_state(state)
            used, cpu = cg.memory_usage() // 1024, cg.cpu_time_ns()
        except (CgroupError, OSError, ValueError):
            used, cpu = 0, 0
        return DomainInfo(st, dom.memory, used, dom.vcpus, cpu)

    def cgroup_dirs(self) -> dict[str, str]:
        """The container's cgroup directories, by controller."""
        return dict(self._live()["cgroup"])

    def console_ttys(self) -> list[str]:
        return list(self._live()["consoles"])

    # ------------------------------------------------------------ definition

    def xml_desc(self, inactive: bool = False) -> str:
        """The domain's XML as dumpxml prints it (the live one while running)."""
        paths = self.conn.paths
        sources = [paths.config(self.name)]
        if not inactive and self.is_active():
            sources.insert(0, paths.live_xml(self.name))
        for path in sources:
            with contextlib.suppress(FileNotFoundError):
                return path.read_text()
        raise NoDomainError(self.name)

    def definition(self, inactive: bool = False) -> m.DomainDef:
        """The definition as a model (parsed without the schema: nsvirt wrote it)."""
        from nsvirt.driver import xmlio

        return xmlio.parse_trusted(self.xml_desc(inactive).encode(), source=self.name)

    def undefine(self) -> None:
        """Remove the persistent definition; a running domain goes on, as transient."""
        paths = self.conn.paths
        paths.ensure()
        with store.locked(paths.run_dir / ".define.lock"), store.locked(paths.lock(self.name)):
            store.remove(paths.autostart_link(self.name))
            if not store.remove(paths.config(self.name)):
                raise NoDomainError(self.name)
            state = runstate.read(paths, self.name)
            if not runstate.is_live(state):
                store.remove(paths.state(self.name), durable=False)

    def set_metadata(self, kind: str, value: str | None, *, live: bool, config: bool,
                     uri: str | None = None) -> None:  # fmt: skip
        """Set (or, with None, remove) the title, the description, or the <metadata>
        element of namespace `uri` (given as serialised XML), live and/or persistently."""
        from nsvirt.driver import xmlformat, xmlio

        if live and not self.is_active():
            raise OperationInvalid("domain is not running")
        if config and not self.is_persistent():
            raise OperationInvalid("transient domains do not have any persistent config")

        def change(dom: m.DomainDef) -> m.DomainDef:
            if kind == "title":
                return replace(dom, title=value or None)
            if kind == "description":
                return replace(dom, description=value or None)
            kept = tuple(x for x in dom.metadata if f'="{uri}"' not in x.split(">", 1)[0])
            return replace(dom, metadata=kept + ((value,) if value else ()))

        paths = self.conn.paths
        with store.locked(paths.lock(self.name)):
            if config:
                dom = change(self.definition(inactive=True))
                text = xmlformat.format_domain(dom).encode()
                xmlio.parse(text, source=self.name)  # what is stored must validate
                store.write_atomic(paths.config(self.name), text)
            if live:
                state = self._live()
                dom = change(xmlio.parse_trusted(paths.live_xml(self.name).read_bytes()))
                self._write_live_xml(dom, state["supervisor_pid"], state["consoles"])

    def autostart(self) -> bool:
        return self.conn.paths.autostart_link(self.name).is_symlink()

    def set_autostart(self, enabled: bool) -> None:
        paths = self.conn.paths
        if not self.is_persistent():
            raise OperationInvalid("cannot set autostart for transient domain")
        link = paths.autostart_link(self.name)
        if enabled and not link.is_symlink():
            link.symlink_to(Path("..") / f"{self.name}.xml")
        elif not enabled:
            store.remove(link)

    # ------------------------------------------------------------ lifecycle

    def create(self) -> None:
        """Start the defined domain (libvirt's virDomainCreate)."""
        paths = self.conn.paths
        paths.ensure()
        with store.locked(paths.lock(self.name)):
            if runstate.is_live(self._runtime_unlocked()):
                raise OperationInvalid("domain is already running")
            dom = self.definition(inactive=True)
            self._start(dom, persistent=True)

    def _runtime_unlocked(self) -> dict | None:
        """_runtime for a caller that holds the domain lock."""
        paths = self.conn.paths
        state = runstate.read(paths, self.name)
        if runstate.is_live(state) and not runstate.supervisor_alive(state):
            runstate.clean_after_dead_supervisor(paths, self.name, state)
            state = runstate.read(paths, self.name)
        return state

    def _start(self, dom: m.DomainDef, *, persistent: bool) -> None:
        """Plan, launch, and write the live XML. The caller holds the domain lock."""
        from nsvirt.driver import hostfacts, launcher, plan

        facts = hostfacts.detect()
        join = self._namespaces_to_join(dom)
        launch_plan = plan.build(dom, facts, partition=self.conn.partition_for(dom), join=join)
        try:
            info = launcher.launch(self.conn.paths, launch_plan, persistent=persistent)
        except launcher.StartFailed as e:
            raise InternalError(str(e)) from None
        self._write_live_xml(dom, info["pid"], info["consoles"])

    def _write_live_xml(self, dom: m.DomainDef, pid: int, ttys: list[str]) -> None:
        """The running domain's XML: its id and its consoles' ptys, as dumpxml shows them."""
        from nsvirt.driver import xmlformat

        consoles = tuple(
            replace(c, tty=tty, alias=f"console{i}")
            for i, (c, tty) in enumerate(zip(_consoles_or_default(dom), ttys, strict=False))
        )
        live = replace(dom, id=pid, devices=replace(dom.devices, consoles=consoles))
        text = xmlformat.format_domain(live).encode()
        store.write_atomic(self.conn.paths.live_xml(self.name), text, durable=False)

    def _namespaces_to_join(self, dom: m.DomainDef) -> tuple[tuple[str, str], ...]:
        """Resolve <lxc:namespace> sharing to namespace files, checking they exist."""
        from nsvirt.driver.errors import Unsupported

        out = []
        for share in dom.shared_namespaces:
            if share.type == "netns":
                path = f"/run/netns/{share.value}"
            elif share.type == "pid":
                path = f"/proc/{share.value}/ns/{share.kind}"
            else:  # another container of this connection, by name
                other = self.conn.lookup_by_name(share.value)
                path = f"/proc/{other.init_pid()}/ns/{share.kind}"
            if not os.path.exists(path):
                raise Unsupported(f"cannot share the {share.kind} namespace: {path} does not exist")
            out.append((share.kind, path))
        return tuple(out)

    def _call(self, request: dict, timeout: float = 60.0) -> dict:
        from nsvirt.driver.supervisor import protocol

        try:
            return protocol.call(self.conn.paths.socket(self.name), request, timeout)
        except protocol.ProtocolError as e:
            raise OperationFailed(str(e)) from None
        except (ConnectionError, FileNotFoundError, TimeoutError) as e:
            raise InternalError(f"cannot reach the supervisor of '{self.name}': {e}") from None

    def destroy(self) -> None:
        """Kill every process of the container at once and tear it down."""
        self._live()
        try:
            self._call({"op": "destroy"})
        except InternalError:
            if self.is_active():  # not a supervisor that just finished stopping
                raise

    def shutdown(
        self, mode: str | None = None, timeout: float = SHUTDOWN_TIMEOUT, wait: bool = False
    ) -> None:
        """Ask init to stop (`signal`: SIGTERM, or SIGRTMIN+4 for systemd; `initctl`);
        destroy it if it has not stopped after `timeout` seconds."""
        self._live()
        self._call(
            {"op": "shutdown", "mode": mode, "timeout": timeout, "wait": wait},
            timeout=timeout + 60 if wait else 60,
        )

    def reboot(
        self, mode: str | None = None, timeout: float = SHUTDOWN_TIMEOUT, wait: bool = False
    ) -> None:
        """Stop init as shutdown does, then start the container again (new init)."""
        self._live()
        self._call(
            {"op": "reboot", "mode": mode, "timeout": timeout, "wait": wait},
            timeout=timeout + 60 if wait else 60,
        )

    def suspend(self) -> None:
        """Freeze every process of the container."""
        if self.state()[0] == DomainState.PAUSED:
            raise OperationInvalid("domain is already paused")
        self._live()
        self._call({"op": "suspend"})

    def resume(self) -> None:
        if self.state()[0] != DomainState.PAUSED:
            raise OperationInvalid("domain is not paused")
        self._call({"op": "resume"})

    def hold_autodestroy(self) -> object:
        """Tie the domain's life to the returned socket: when it is closed (or this
        process dies), the supervisor destroys the domain (libvirt's autodestroy)."""
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
        state = runstate.read(self.conn.paths, self.name)
        if not runstate.is_live(state) or not runstate.supervisor_alive(state):
            return True
        try:
            fd = os.pidfd_open(state["supervisor_pid"])
        except ProcessLookupError:
            return True
        try:
            return bool(select.select([fd], [], [], timeout)[0])
        finally:
            os.close(fd)

    def open_console(self, force: bool = False, port: int = 0) -> ConsoleStream:
        """Attach to a console: read its output, write input, forward the window size."""
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


def _consoles_or_default(dom: m.DomainDef) -> tuple[m.CharDevice, ...]:
    from nsvirt.driver.model import CharDevice

    return dom.devices.consoles or (CharDevice(port=0),)


class ConsoleStream:
    """A console session: `read()` output, `write()` input, `resize()`, `close()`."""

    def __init__(self, sock: object) -> None:
        import socket

        assert isinstance(sock, socket.socket)
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self, size: int = 65536) -> bytes:
        """Output bytes; b"" when the console session ended."""
        try:
            return self.sock.recv(size)
        except ConnectionResetError:
            return b""

    def write(self, data: bytes) -> None:
        from nsvirt.driver.supervisor import protocol

        self.sock.sendall(protocol.frame(protocol.FRAME_DATA, data))

    def resize(self, rows: int, cols: int) -> None:
        import json

        from nsvirt.driver.supervisor import protocol

        payload = json.dumps({"rows": rows, "cols": cols}).encode()
        self.sock.sendall(protocol.frame(protocol.FRAME_WINSIZE, payload))

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> ConsoleStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
