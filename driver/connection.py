"""The public API's entry: connect(uri) → Connection, named after libvirt-python's.

connect(uri, readonly)  virConnectOpen / virConnectOpenReadOnly
Connection.define_xml   defineXML          Connection.create_xml   createXML
lookup_by_name / _uuid / _id               lookupByName / lookupByUUIDString / lookupByID
list_all                listAllDomains
Domain (driver/domain.py) holds the per-domain calls.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from nsvirt.driver import uuids
from nsvirt.driver.domain import Domain
from nsvirt.driver.errors import (
    DriverError,
    InvalidArgument,
    InvalidURI,
    NoDomainError,
    OperationFailed,
    OperationForbidden,
    XMLError,
)
from nsvirt.driver.state import compiled, events, files, store
from nsvirt.driver.state.layout import Paths
from nsvirt.driver.state.names import root_uri

if TYPE_CHECKING:  # the model costs ~20 ms to import: one-shot `list` does without it
    from collections.abc import Iterator

    from nsvirt.driver.domxml import model as m
    from nsvirt.driver.events import Callbacks, DomainEvent
    from nsvirt.driver.launch.spare import Spare

DEFAULT_URI = "lxc:///system"


def default_uri() -> str:
    """$NSVIRT_DEFAULT_URI, else an lxc: $LIBVIRT_DEFAULT_URI, else lxc:///system (the
    `-c` option overrides them)."""
    from nsvirt.driver.state.names import uri_from_environment

    return uri_from_environment() or DEFAULT_URI


def parse_uri(uri: str) -> tuple[str, Path]:
    """Return the canonical URI and the root directory it keeps its state under."""
    parts = urlsplit(uri)
    if parts.scheme != "lxc" or parts.netloc not in ("", "localhost"):
        raise InvalidURI(uri, "no connection driver available for")
    query = parse_qs(parts.query, keep_blank_values=True)
    if parts.path in ("", "/", "/system") and not query:
        return root_uri("/"), Path("/")
    if parts.path == "/embed":
        roots = query.get("root", [])
        if set(query) != {"root"} or len(roots) != 1 or not roots[0].startswith("/"):
            raise InvalidURI(uri, "embed URI needs one absolute root= directory")
        root = Path(os.path.normpath(roots[0]))
        return root_uri(str(root)), root
    raise InvalidURI(uri, "no connection driver available for")


def connect(uri: str | None = None, readonly: bool = False) -> Connection:
    """Open a connection (libvirt's virConnectOpen, or virConnectOpenReadOnly with
    `readonly`: every call that changes anything is refused). Nothing is created
    until a write."""
    canonical, root = parse_uri(uri or default_uri())
    return Connection(canonical, Paths(root), readonly=readonly)


class Connection:
    def __init__(self, uri: str, paths: Paths, readonly: bool = False) -> None:
        self.uri = uri
        self.paths = paths
        self.readonly = readonly
        # a one-shot command's spare supervisor (launch/spare.py), for its next start
        self.spare: Spare | None = None
        self._callbacks: Callbacks | None = None  # event callbacks, made on first use

    def __repr__(self) -> str:
        return f"<Connection {self.uri}{' (read-only)' if self.readonly else ''}>"

    def require_writable(self, api: str) -> None:
        """Refuse a change on a read-only connection, naming the libvirt API as virsh does."""
        if self.readonly:
            raise OperationForbidden(f"read only access prevents {api}")

    @property
    def tag(self) -> str:
        """8 hex digits naming this root on the host (cgroup partitions, link names)."""
        self.paths.ensure()
        return self.paths.tag()

    def default_partition(self) -> str:
        tag = self.tag
        return f"/nsvirt-{tag}" if tag else "/nsvirt"

    def partition_for(self, dom: m.DomainDef) -> str:
        """The cgroup partition: <resource><partition>, kept inside this root's own tree."""
        if dom.partition is None:
            return self.default_partition()
        return (self.default_partition() + dom.partition) if self.tag else dom.partition

    # ------------------------------------------------------------ definitions

    def define_xml(self, xml: str | bytes, source: str = "") -> Domain:
        """Validate and store a persistent definition; redefining the same uuid updates it."""
        self.require_writable("virDomainDefineXML")
        from nsvirt.driver import domxml  # xmlschema costs ~250 ms: load it where XML is parsed

        self.paths.ensure()
        with files.locked(self.paths.define_lock, "the domain definitions"):
            dom, made_uuid = self._load_for_define(xml, source, update=True)
            self._check_unique(dom, made_uuid)
            with files.locked(self.paths.lock(dom.name), f"domain '{dom.name}'"):
                text = domxml.format(dom).encode()
                config = self.paths.names.config(dom.name)
                existed = os.path.exists(config)
                files.write_atomic(config, text)
                events.emit(self.paths.names, dom.name, dom.uuid or "", events.DEFINED,
                            events.UPDATED if existed else events.ADDED)  # fmt: skip
                self.compile(dom, text)
        return Domain(self, dom.name, dom.uuid)

    def create_xml(self, xml: str | bytes, source: str = "") -> Domain:
        """Start a transient domain: it has a run entry and no persistent definition."""
        self.require_writable("virDomainCreateXML")
        dom, made_uuid = self._load_for_define(xml, source, update=False)
        self.paths.ensure()
        with files.locked(self.paths.define_lock, "the domain definitions"):
            for other in self._sharing_identity(dom.name, dom.uuid, made_uuid):
                if other.name == dom.name or other.uuid == dom.uuid:
                    raise OperationFailed(
                        f"domain '{other.name}' already exists with uuid {other.uuid}"
                    )
            domain = Domain(self, dom.name, dom.uuid)
            with files.locked(self.paths.lock(dom.name), f"domain '{dom.name}'"):
                try:
                    domain.start_definition(dom, persistent=False)
                except BaseException:
                    files.remove_lock(self.paths.lock(dom.name))  # no domain: no lock file
                    raise
        return domain

    def compile(self, dom: m.DomainDef, text: bytes) -> dict[str, object]:
        """Write the compiled form of a persistent definition (state/compiled.py), with
        its prepared launch (launch/prepared.py); return its fields."""
        from nsvirt.driver.launch import prepared

        fields = {**compiled.summary(dom), "launch": prepared.prepare(self, dom)}
        names = self.paths.names
        compiled.write(names.config(dom.name), names.compiled(dom.name, live=False), text, fields)
        return fields

    def _load_for_define(self, xml: str | bytes, source: str, *,
                         update: bool) -> tuple[m.DomainDef, bool]:  # fmt: skip
        """Parse, check, and add what define adds (uuid, MACs, arch), as libvirt's define;
        and whether its uuid was made here. With `update`, a document without <uuid>
        for a defined name keeps that domain's uuid (libvirt would make a new one and
        refuse it): the same file can be defined again from version control."""
        from nsvirt.driver import domxml
        from nsvirt.driver.domxml import defaults
        from nsvirt.driver.launch.hostfacts import host_arch

        data = xml.encode() if isinstance(xml, str) else xml
        dom = domxml.load(data, source=source)
        known = self._stored_uuid(dom.name) if update and dom.uuid is None else None
        made = dom.uuid is None and known is None
        return defaults.at_define(dom, host_arch(), uuid=known), made

    def _stored_uuid(self, name: str) -> str | None:
        try:
            return read_uuid(self.paths.config(name))
        except (OSError, XMLError):
            return None

    def _check_unique(self, dom: m.DomainDef, made_uuid: bool) -> None:
        """libvirt's rules: a name keeps its uuid, a uuid keeps its name. A broken
        definition of the same name may be replaced: defining it anew is the fix."""
        for other in self._sharing_identity(dom.name, dom.uuid, made_uuid):
            if other.name == dom.name and other.uuid not in (dom.uuid, ""):
                raise OperationFailed(
                    f"domain '{other.name}' already exists with uuid {other.uuid}"
                )
            if other.uuid == dom.uuid and other.name != dom.name:
                raise OperationFailed(
                    f"domain '{other.name}' is already defined with uuid {other.uuid}"
                )

    def _sharing_identity(self, name: str, uuid: str | None, made_uuid: bool) -> list[Domain]:
        """The domains that have this name or this uuid: what libvirt's uniqueness
        rules look at. Each other domain costs a definition's head or a state file's
        uuid; only a match (or a file not in nsvirt's own form) is looked up in full,
        so a start among hundreds stays cheap. A uuid made here just now (122 random
        bits: `made_uuid`) is nobody else's: then only the name is looked up."""
        if made_uuid:
            with contextlib.suppress(NoDomainError, XMLError):
                return [self.lookup_by_name(name)]
            return []
        names = self.paths.names
        persistent = self.paths.persistent_names()
        found = []
        for other in persistent:
            try:
                known = store.head_uuid(names.config(other))
            except OSError:
                continue
            if known is not None:
                if other == name or known == uuid:
                    found.append(Domain(self, other, known))
                continue
            with contextlib.suppress(NoDomainError, XMLError):
                found.append(self.lookup_by_name(other))  # parsed in full: says where
        for other in sorted(set(self.paths.running_names()) - set(persistent)):
            if other != name and _state_uuid(names.state(other)) not in (uuid, None):
                continue  # a transient domain of another uuid: no conflict, live or not
            with contextlib.suppress(NoDomainError, XMLError):
                found.append(self.lookup_by_name(other))  # live? recovered if need be
        return [d for d in found if d.name == name or d.uuid == uuid]

    # ------------------------------------------------------------ look-ups

    def list_all(self, on_broken: Callable[[DriverError], None] | None = None) -> list[Domain]:
        """Every domain this connection knows: defined ones and running transient ones.

        A definition that cannot be read is one broken domain, never a broken list:
        it is left out, and `on_broken` (if given) hears why."""
        names = set(self.paths.persistent_names()) | set(self.paths.running_names())
        found = []
        for name in sorted(names):
            try:
                found.append(self.lookup_by_name(name))
            except NoDomainError:
                continue
            except XMLError as e:
                if on_broken is not None:
                    on_broken(e)
        return found

    def events(self, *, domain: Domain | None = None, since: str | None = None,
               timeout: float | None = None) -> Iterator[DomainEvent]:  # fmt: skip
        """Domain events as they happen (driver/events.py): of every domain or of one,
        from now or from the cursor an earlier event gave, until `timeout` seconds
        pass without one (None: for ever)."""
        from nsvirt.driver import events

        return events.follow(self, domain=domain.uuid if domain else None, since=since,
                             timeout=timeout)  # fmt: skip

    def domain_event_register_any(self, dom: Domain | None, event_id: int,
                                  callback: Callable[..., None],
                                  opaque: Any = None) -> int:  # fmt: skip
        """libvirt-python's domainEventRegisterAny: `callback(conn, dom, event, detail,
        opaque)` for each lifecycle event (event_id 0) of `dom` (None: of every
        domain), called from a thread of its own; no event loop to run. The
        callback's id, for domain_event_deregister_any."""
        from nsvirt.driver import events

        if self._callbacks is None:
            self._callbacks = events.Callbacks(self)
        return self._callbacks.register(dom, event_id, callback, opaque)

    def domain_event_deregister_any(self, callback_id: int) -> None:
        if self._callbacks is None:
            raise InvalidArgument(f"no event callback with ID {callback_id}")
        self._callbacks.deregister(callback_id)

    def domain_xml_from_native(self, native_format: str, config: str, uuid: str | None = None,
                               notes: list[str] | None = None) -> str:  # fmt: skip
        """libvirt's virConnectDomainXMLFromNative: an LXC container config
        ("lxc-tools", legacy or LXC 3.0 keys) as domain XML, the way libvirt writes
        it. `uuid`: the document's (default: a new one); `notes`, if given, receives
        a line per key left out or read differently (nsvirsh's --explain)."""
        from nsvirt.driver import uuids
        from nsvirt.driver.native import lxcconf
        from nsvirt.driver.runtime.seccomp import host_arch

        if native_format != "lxc-tools":
            raise InvalidArgument(f"unsupported config type {native_format}")
        xml, said = lxcconf.convert(config, uuid or uuids.new(), host_arch())
        if notes is not None:
            notes += said
        return xml

    def domain_xml_to_native(self, native_format: str, xml: str | bytes) -> str:
        """libvirt's virConnectDomainXMLToNative, which libvirt-lxc lacks: a domain
        document as an LXC container config ("lxc-tools"); what LXC has no key for is
        named in comments at its top."""
        from nsvirt.driver import domxml
        from nsvirt.driver.native import tolxc

        if native_format != "lxc-tools":
            raise InvalidArgument(f"unsupported config type {native_format}")
        data = xml.encode() if isinstance(xml, str) else xml
        return tolxc.config(domxml.load(data, source="(domain_definition)"))

    def get_capabilities(self) -> str:
        """libvirt's virConnectGetCapabilities: the host and its guest type, as XML."""
        from nsvirt.driver import hostcaps
        from nsvirt.driver.launch import hostfacts

        supervisor = os.path.join(os.path.dirname(hostcaps.__file__), "supervisor", "__main__.py")
        return hostcaps.capabilities(hostfacts.detect().to_dict(), supervisor)

    def get_sysinfo(self) -> str:
        """libvirt's virConnectGetSysinfo: the host's SMBIOS, as XML."""
        from nsvirt.driver import hostcaps

        return hostcaps.sysinfo()

    def all_domain_stats(self, active_only: bool = True) -> list[tuple[Domain, dict[str, Any]]]:
        """libvirt's virConnectGetAllDomainStats: each domain with its statistics
        (Domain.stats), the running ones only unless `active_only` is false."""
        out = []
        for dom in self.list_all():
            try:
                stats = dom.stats()
            except NoDomainError:  # a transient domain that stopped meanwhile
                continue
            if not active_only or stats["state.state"] in (1, 3):  # running, paused
                out.append((dom, stats))
        return out

    def lookup_by_name(self, name: str) -> Domain:
        """The domain of that name; XMLError if its stored definition is broken."""
        if not name or "/" in name or name.startswith("."):
            raise NoDomainError(name)
        config = self.paths.config(name)
        broken = None
        if config.is_file():
            try:
                return Domain(self, name, read_uuid(config))
            except XMLError as e:  # still the running domain's, if it runs
                broken = e
            except FileNotFoundError:
                pass  # undefined since is_file(): a transient run, or no domain
        state = Domain(self, name, "").run_state()
        if state is not None and state.live and state.uuid:
            return Domain(self, name, state.uuid)
        if broken is not None:
            raise broken
        raise NoDomainError(name)

    def lookup_by_uuid(self, uuid: str) -> Domain:
        try:
            wanted = uuids.canonical(uuid)
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
            if id_ > 0 and dom.id == id_:
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


# a run state's bytes -> the uuid they name: a process that starts hundreds of
# domains (the API) parses each state once, not once per start (keyed by the
# content itself, so it cannot go stale)
_STATE_UUIDS: dict[bytes, str | None] = {}


def _state_uuid(path: str) -> str | None:
    """The uuid a run-state file names, unchecked (None if it cannot be read)."""
    from nsvirt.driver.state import jsonlite

    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:  # read(1 MiB) would allocate that much each time: 5x the cost
            data = os.read(fd, min(os.fstat(fd).st_size + 1, 1 << 20))
        finally:
            os.close(fd)
        if data in _STATE_UUIDS:
            return _STATE_UUIDS[data]
        raw = jsonlite.loads(data)
    except (OSError, ValueError):
        return None
    found = raw.get("uuid") if isinstance(raw, dict) else None
    uuid = found if isinstance(found, str) and found else None
    if len(_STATE_UUIDS) > 4096:
        _STATE_UUIDS.clear()
    _STATE_UUIDS[data] = uuid
    return uuid


def read_uuid(path: Path) -> str:
    """The uuid of a stored definition without parsing it all (nsvirt wrote it: the
    uuid is in its first lines). Anything else — another writer's file, bytes that
    are not UTF-8 — is parsed in full, so the error names the file and the line."""
    found = store.head_uuid(str(path))
    if found is not None:
        return found
    from nsvirt.driver import domxml

    dom = domxml.load_trusted(path.read_bytes(), source=str(path))
    if dom.uuid is None:
        raise XMLError("the stored definition has no <uuid>", source=str(path))
    return dom.uuid
