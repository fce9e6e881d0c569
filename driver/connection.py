"""The public API: Connection and Domain, named after libvirt-python's.

connect(uri)            virConnectOpen / libvirt.open
Connection.define_xml   defineXML
lookup_by_name / _uuid  lookupByName / lookupByUUIDString
list_all                listAllDomains
Domain.xml_desc         XMLDesc
Domain.undefine         undefine
"""

from __future__ import annotations

import hashlib
import os
import platform
import uuid as uuidlib
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from nsvirt.driver import model as m
from nsvirt.driver import store
from nsvirt.driver.errors import InvalidURI, NoDomainError, OperationFailed
from nsvirt.driver.state import DomainState

DEFAULT_URI = "lxc:///system"

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
    machine = platform.machine()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


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
        """Every domain this connection knows, by name (libvirt's listAllDomains)."""
        return [
            Domain(self, name, _read_uuid(self.paths.config(name)))
            for name in self.paths.persistent_names()
        ]

    def lookup_by_name(self, name: str) -> Domain:
        path = self.paths.config(name)
        if "/" in name or not name or not path.is_file():
            raise NoDomainError(name)
        return Domain(self, name, _read_uuid(path))

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

    def is_persistent(self) -> bool:
        return self.conn.paths.config(self.name).is_file()

    def is_active(self) -> bool:
        return False  # running domains arrive with the driver core

    @property
    def id(self) -> int:
        """libvirt's ID(): the supervisor's pid while running, -1 otherwise."""
        return -1

    def state(self) -> tuple[DomainState, int]:
        """(state, reason) as libvirt's virDomainGetState."""
        return DomainState.SHUTOFF, 0

    def info(self) -> DomainInfo:
        """libvirt's virDomainGetInfo: state, memory (KiB), vCPUs, CPU time (ns)."""
        dom = self.definition()
        state, _ = self.state()
        return DomainInfo(state, dom.memory, dom.current_memory, dom.vcpus, 0)

    def autostart(self) -> bool:
        return self.conn.paths.autostart_link(self.name).is_symlink()

    def xml_desc(self, inactive: bool = False) -> str:
        """The domain's XML as dumpxml prints it."""
        try:
            return self.conn.paths.config(self.name).read_text()
        except FileNotFoundError:
            raise NoDomainError(self.name) from None

    def definition(self) -> m.DomainDef:
        """The stored definition as a model (parsed without the schema: nsvirt wrote it)."""
        from nsvirt.driver import xmlio

        return xmlio.parse_trusted(
            self.xml_desc().encode(), source=str(self.conn.paths.config(self.name))
        )

    def undefine(self) -> None:
        """Remove the persistent definition and its autostart link."""
        paths = self.conn.paths
        paths.ensure()
        with store.locked(paths.run_dir / ".define.lock"), store.locked(paths.lock(self.name)):
            store.remove(paths.autostart_link(self.name))
            if not store.remove(paths.config(self.name)):
                raise NoDomainError(self.name)
