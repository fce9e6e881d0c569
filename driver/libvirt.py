"""libvirt-python's names over nsvirt's driver, for scripts written against
`import libvirt` and `lxc:///`: change the import to
`from nsvirt.driver import libvirt` and they run (docs/migrating-from-libvirt-lxc.md).

The calls LXC scripts use, with libvirt's return conventions (0 for success, lists
where libvirt returns lists, 1/0 for booleans) and `libvirtError` carrying libvirt's
error numbers. What nsvirt has no driver part for raises libvirtError with
VIR_ERR_NO_SUPPORT, as libvirt-lxc does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nsvirt.driver import errors

if TYPE_CHECKING:
    from collections.abc import Callable

    from nsvirt.driver.connection import Connection
    from nsvirt.driver.domain import Domain

# virDomainState
VIR_DOMAIN_NOSTATE, VIR_DOMAIN_RUNNING, VIR_DOMAIN_BLOCKED, VIR_DOMAIN_PAUSED = 0, 1, 2, 3
VIR_DOMAIN_SHUTDOWN, VIR_DOMAIN_SHUTOFF, VIR_DOMAIN_CRASHED, VIR_DOMAIN_PMSUSPENDED = 4, 5, 6, 7
# virConnectListAllDomainsFlags
VIR_CONNECT_LIST_DOMAINS_ACTIVE, VIR_CONNECT_LIST_DOMAINS_INACTIVE = 1, 2
VIR_CONNECT_LIST_DOMAINS_PERSISTENT, VIR_CONNECT_LIST_DOMAINS_TRANSIENT = 4, 8
VIR_CONNECT_LIST_DOMAINS_RUNNING, VIR_CONNECT_LIST_DOMAINS_PAUSED = 16, 32
VIR_CONNECT_LIST_DOMAINS_SHUTOFF, VIR_CONNECT_LIST_DOMAINS_OTHER = 64, 128
VIR_CONNECT_LIST_DOMAINS_AUTOSTART, VIR_CONNECT_LIST_DOMAINS_NO_AUTOSTART = 256, 512
# virDomainXMLFlags, virDomainModificationImpact, virDomainMemoryModFlags
VIR_DOMAIN_XML_SECURE, VIR_DOMAIN_XML_INACTIVE = 1, 2
VIR_DOMAIN_AFFECT_CURRENT, VIR_DOMAIN_AFFECT_LIVE, VIR_DOMAIN_AFFECT_CONFIG = 0, 1, 2
VIR_DOMAIN_MEM_CURRENT, VIR_DOMAIN_MEM_LIVE, VIR_DOMAIN_MEM_CONFIG = 0, 1, 2
VIR_DOMAIN_MEM_MAXIMUM = 4
# virDomainMetadataType
VIR_DOMAIN_METADATA_DESCRIPTION, VIR_DOMAIN_METADATA_TITLE, VIR_DOMAIN_METADATA_ELEMENT = 0, 1, 2
# events: virDomainEventID, virDomainEventType
VIR_DOMAIN_EVENT_ID_LIFECYCLE = 0
VIR_DOMAIN_EVENT_DEFINED, VIR_DOMAIN_EVENT_UNDEFINED, VIR_DOMAIN_EVENT_STARTED = 0, 1, 2
VIR_DOMAIN_EVENT_SUSPENDED, VIR_DOMAIN_EVENT_RESUMED, VIR_DOMAIN_EVENT_STOPPED = 3, 4, 5
VIR_DOMAIN_MEMORY_PARAM_UNLIMITED = 9007199254740991  # libvirt's VIR_DOMAIN_MEMORY_PARAM_UNLIMITED
# virErrorDomain, virErrorNumber (include/libvirt/virterror.h)
VIR_FROM_NONE, VIR_FROM_DOM, VIR_FROM_LXC = 0, 6, 17
VIR_ERR_OK, VIR_ERR_INTERNAL_ERROR, VIR_ERR_NO_SUPPORT, VIR_ERR_NO_CONNECT = 0, 1, 3, 5
VIR_ERR_INVALID_ARG, VIR_ERR_OPERATION_FAILED, VIR_ERR_XML_ERROR = 8, 9, 27
VIR_ERR_OPERATION_DENIED, VIR_ERR_SYSTEM_ERROR, VIR_ERR_NO_DOMAIN = 29, 38, 42
VIR_ERR_OPERATION_INVALID, VIR_ERR_CONFIG_UNSUPPORTED, VIR_ERR_OPERATION_TIMEOUT = 55, 67, 68
VIR_ERR_ARGUMENT_UNSUPPORTED, VIR_ERR_NO_DOMAIN_METADATA = 74, 80
VIR_ERR_OPERATION_UNSUPPORTED, VIR_ERR_NO_HOSTNAME = 84, 108

_CODES: tuple[tuple[type[errors.DriverError], int], ...] = (
    (errors.NoDomainError, VIR_ERR_NO_DOMAIN), (errors.XMLError, VIR_ERR_XML_ERROR),
    (errors.InvalidURI, VIR_ERR_NO_CONNECT), (errors.OperationFailed, VIR_ERR_OPERATION_FAILED),
    (errors.OperationInvalid, VIR_ERR_OPERATION_INVALID),
    (errors.InternalError, VIR_ERR_INTERNAL_ERROR),
    (errors.Unsupported, VIR_ERR_CONFIG_UNSUPPORTED),
    (errors.OperationTimeout, VIR_ERR_OPERATION_TIMEOUT),
    (errors.OperationForbidden, VIR_ERR_OPERATION_DENIED),
    (errors.HostError, VIR_ERR_SYSTEM_ERROR), (errors.FileError, VIR_ERR_SYSTEM_ERROR),
    (errors.InvalidArgument, VIR_ERR_INVALID_ARG),
    (errors.ArgumentUnsupported, VIR_ERR_ARGUMENT_UNSUPPORTED),
    (errors.NoSupport, VIR_ERR_NO_SUPPORT),
    (errors.OperationUnsupported, VIR_ERR_OPERATION_UNSUPPORTED),
    (errors.NoHostname, VIR_ERR_NO_HOSTNAME),
)  # fmt: skip


class libvirtError(Exception):
    """libvirt-python's error: the message, and libvirt's error number and domain."""

    def __init__(self, msg: str, code: int = VIR_ERR_INTERNAL_ERROR,
                 domain: int = VIR_FROM_LXC) -> None:  # fmt: skip
        super().__init__(msg)
        self.err = (code, domain, msg, 2, None, None, None, 0, 0)

    def get_error_code(self) -> int:
        return self.err[0]

    def get_error_domain(self) -> int:
        return self.err[1]

    def get_error_message(self) -> str:
        return self.err[2]

    def get_error_level(self) -> int:
        return self.err[3]


def _error(e: errors.DriverError) -> libvirtError:
    code = next((c for kind, c in _CODES if isinstance(e, kind)), VIR_ERR_INTERNAL_ERROR)
    return libvirtError(str(e), code, VIR_FROM_DOM if code == VIR_ERR_NO_DOMAIN else VIR_FROM_LXC)


def _call(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    try:
        return fn(*args, **kw)
    except errors.DriverError as e:
        raise _error(e) from e


def open(name: str | None = None) -> virConnect:
    """virConnectOpen: `lxc:///` (or None: $LIBVIRT_DEFAULT_URI / nsvirt's default)."""
    from nsvirt.driver import connect

    return virConnect(_call(connect, name or None))


def openReadOnly(name: str | None = None) -> virConnect:
    from nsvirt.driver import connect

    return virConnect(_call(connect, name or None, readonly=True))


class virConnect:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def close(self) -> int:
        return 0

    def getURI(self) -> str:
        return self._conn.uri

    def getType(self) -> str:
        return "LXC"

    def isAlive(self) -> int:
        return 1

    def getHostname(self) -> str:
        import socket

        return socket.gethostname()

    def getCapabilities(self) -> str:
        return _call(self._conn.get_capabilities)

    def lookupByName(self, name: str) -> virDomain:
        return virDomain(self, _call(self._conn.lookup_by_name, name))

    def lookupByUUIDString(self, uuid: str) -> virDomain:
        return virDomain(self, _call(self._conn.lookup_by_uuid, uuid))

    def lookupByID(self, id: int) -> virDomain:
        return virDomain(self, _call(self._conn.lookup_by_id, id))

    def listAllDomains(self, flags: int = 0) -> list[virDomain]:
        return [virDomain(self, d) for d in _call(self._conn.list_all) if _wanted(d, flags)]

    def listDomainsID(self) -> list[int]:
        return sorted(d.id for d in _call(self._conn.list_all) if d.is_active())

    def listDefinedDomains(self) -> list[str]:
        return sorted(d.name for d in _call(self._conn.list_all)
                      if not d.is_active() and d.is_persistent())  # fmt: skip

    def numOfDomains(self) -> int:
        return len(self.listDomainsID())

    def numOfDefinedDomains(self) -> int:
        return len(self.listDefinedDomains())

    def defineXML(self, xml: str) -> virDomain:
        return virDomain(self, _call(self._conn.define_xml, xml))

    def createXML(self, xml: str, flags: int = 0) -> virDomain:
        return virDomain(self, _call(self._conn.create_xml, xml))

    def domainXMLFromNative(self, native_format: str, config: str, flags: int = 0) -> str:
        return _call(self._conn.domain_xml_from_native, native_format, config)

    def domainEventRegisterAny(self, dom: virDomain | None, event_id: int,
                               cb: Callable[..., Any], opaque: Any = None) -> int:  # fmt: skip
        """libvirt-python's call: `cb(conn, dom, event, detail, opaque)` with this
        connection and a virDomain, from a thread of its own (no event loop to run)."""

        def relay(_conn: Any, d: Domain, event: int, detail: int, opaque: Any) -> None:
            cb(self, virDomain(self, d), event, detail, opaque)

        target = dom._dom if dom is not None else None
        return _call(self._conn.domain_event_register_any, target, event_id, relay, opaque)

    def domainEventDeregisterAny(self, callback_id: int) -> int:
        _call(self._conn.domain_event_deregister_any, callback_id)
        return 0


def _wanted(d: Domain, flags: int) -> bool:
    """listAllDomains' filter flags, as libvirt applies them (each group: any of)."""
    active = d.is_active()
    state = d.state()[0]
    groups = (
        ((VIR_CONNECT_LIST_DOMAINS_ACTIVE, active),
         (VIR_CONNECT_LIST_DOMAINS_INACTIVE, not active)),
        ((VIR_CONNECT_LIST_DOMAINS_PERSISTENT, d.is_persistent()),
         (VIR_CONNECT_LIST_DOMAINS_TRANSIENT, not d.is_persistent())),
        ((VIR_CONNECT_LIST_DOMAINS_RUNNING, state == VIR_DOMAIN_RUNNING),
         (VIR_CONNECT_LIST_DOMAINS_PAUSED, state == VIR_DOMAIN_PAUSED),
         (VIR_CONNECT_LIST_DOMAINS_SHUTOFF, state == VIR_DOMAIN_SHUTOFF),
         (VIR_CONNECT_LIST_DOMAINS_OTHER, state not in (1, 3, 5))),
        ((VIR_CONNECT_LIST_DOMAINS_AUTOSTART, d.autostart()),
         (VIR_CONNECT_LIST_DOMAINS_NO_AUTOSTART, not d.autostart())),
    )  # fmt: skip
    for group in groups:
        asked = [ok for flag, ok in group if flags & flag]
        if asked and not any(asked):
            return False
    return True


class virDomain:
    def __init__(self, conn: virConnect, dom: Domain) -> None:
        self._conn, self._dom = conn, dom

    def connect(self) -> virConnect:
        return self._conn

    def name(self) -> str:
        return self._dom.name

    def UUIDString(self) -> str:
        return self._dom.uuid

    def UUID(self) -> bytes:
        return bytes.fromhex(self._dom.uuid.replace("-", ""))

    def ID(self) -> int:
        return self._dom.id if self._dom.id > 0 else -1

    def isActive(self) -> int:
        return int(_call(self._dom.is_active))

    def isPersistent(self) -> int:
        return int(_call(self._dom.is_persistent))

    def state(self, flags: int = 0) -> list[int]:
        state, reason = _call(self._dom.state)
        return [int(state), int(reason)]

    def info(self) -> list[int]:
        """[state, maxMem KiB, memory KiB, nrVirtCpu, cpuTime ns], as libvirt returns."""
        i = _call(self._dom.info)
        return [int(i.state), i.max_memory, i.memory, i.vcpus, i.cpu_time]

    def XMLDesc(self, flags: int = 0) -> str:
        return _call(self._dom.xml_desc, inactive=bool(flags & VIR_DOMAIN_XML_INACTIVE))

    def create(self) -> int:
        _call(self._dom.create)
        return 0

    def createWithFlags(self, flags: int = 0) -> int:
        return self.create()

    def destroy(self) -> int:
        _call(self._dom.destroy)
        return 0

    def shutdown(self) -> int:
        _call(self._dom.shutdown)
        return 0

    def reboot(self, flags: int = 0) -> int:
        _call(self._dom.reboot)
        return 0

    def suspend(self) -> int:
        _call(self._dom.suspend)
        return 0

    def resume(self) -> int:
        _call(self._dom.resume)
        return 0

    def undefine(self) -> int:
        _call(self._dom.undefine)
        return 0

    def undefineFlags(self, flags: int = 0) -> int:
        return self.undefine()

    def autostart(self) -> int:
        return int(_call(self._dom.autostart))

    def setAutostart(self, autostart: int) -> int:
        _call(self._dom.set_autostart, bool(autostart))
        return 0

    def _impact(self, flags: int) -> tuple[bool, bool]:
        """(live, config) from VIR_DOMAIN_AFFECT_*: CURRENT means live if running."""
        live, config = bool(flags & VIR_DOMAIN_AFFECT_LIVE), bool(flags & VIR_DOMAIN_AFFECT_CONFIG)
        if not live and not config:
            live = self._dom.is_active()
            config = not live
        return live, config

    def setMemory(self, memory: int) -> int:
        """virDomainSetMemory: the live balloon, as libvirt's (KiB)."""
        _call(self._dom.set_memory, memory, live=True, config=False)
        return 0

    def setMemoryFlags(self, memory: int, flags: int = 0) -> int:
        live, config = self._impact(flags)
        _call(self._dom.set_memory, memory, live=live, config=config,
              maximum=bool(flags & VIR_DOMAIN_MEM_MAXIMUM))  # fmt: skip
        return 0

    def setMaxMemory(self, memory: int) -> int:
        _call(self._dom.set_memory, memory, live=False, config=True, maximum=True)
        return 0

    def maxMemory(self) -> int:
        return self.info()[1]

    def memoryParameters(self, flags: int = 0) -> dict[str, int]:
        live, _ = self._impact(flags)
        return _call(self._dom.memory_parameters, live=live)

    def setMemoryParameters(self, params: dict[str, int], flags: int = 0) -> int:
        live, config = self._impact(flags)
        _call(self._dom.set_memory_parameters, params, live=live, config=config)
        return 0

    def schedulerType(self) -> list[Any]:
        return ["posix", 3]

    def schedulerParameters(self, flags: int = 0) -> dict[str, int]:
        live, _ = self._impact(flags)
        return _call(self._dom.scheduler_parameters, live=live)

    def schedulerParametersFlags(self, flags: int = 0) -> dict[str, int]:
        return self.schedulerParameters(flags)

    def memoryStats(self) -> dict[str, int]:
        return _call(self._dom.memory_stats)

    def getCPUStats(self, total: bool, start: int = 0, ncpus: int = -1,
                    flags: int = 0) -> list[dict[str, int]]:  # fmt: skip
        if total:
            return _call(self._dom.cpu_stats, -1, 1)
        return _call(self._dom.cpu_stats, start, ncpus)

    def metadata(self, type: int, uri: str | None = None, flags: int = 0) -> str:
        """virDomainGetMetadata: the title, the description, or the <metadata> element
        of namespace `uri`; VIR_ERR_NO_DOMAIN_METADATA where there is none."""
        live, _ = self._impact(flags)
        d = _call(self._dom.definition, inactive=not live)
        if type == VIR_DOMAIN_METADATA_TITLE:
            found = d.title
        elif type == VIR_DOMAIN_METADATA_DESCRIPTION:
            found = d.description
        else:
            found = next((xml for ns, xml in d.metadata if ns == uri), None)
        if found is None:
            raise libvirtError("metadata not found: Requested metadata element is not present",
                               VIR_ERR_NO_DOMAIN_METADATA)  # fmt: skip
        return found

    def setMetadata(self, type: int, metadata: str | None, key: str | None,
                    uri: str | None, flags: int = 0) -> int:  # fmt: skip
        live, config = self._impact(flags)
        kind = {VIR_DOMAIN_METADATA_TITLE: "title",
                VIR_DOMAIN_METADATA_DESCRIPTION: "description"}.get(type, "element")  # fmt: skip
        if kind == "element" and metadata and key and uri:
            metadata = _in_namespace(metadata, key, uri)
        _call(self._dom.set_metadata, kind, metadata, live=live, config=config, uri=uri)
        return 0


def _in_namespace(xml: str, key: str, uri: str) -> str:
    """libvirt's setMetadata: the element put in namespace `uri` with prefix `key`."""
    from lxml import etree

    def rebuild(e: Any, parent: Any = None) -> Any:
        tag = f"{{{uri}}}{etree.QName(e).localname}"
        new = (
            etree.Element(tag, nsmap={key: uri})
            if parent is None
            else etree.SubElement(parent, tag)
        )
        new.attrib.update(e.attrib)
        new.text, new.tail = e.text, e.tail
        for c in e:
            if isinstance(c.tag, str):
                rebuild(c, new)
        return new

    try:
        return etree.tostring(rebuild(etree.fromstring(xml)), encoding="unicode")
    except etree.XMLSyntaxError as e:
        raise libvirtError(f"XML error: {e}", VIR_ERR_XML_ERROR) from None
