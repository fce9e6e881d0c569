"""Domain XML in: hardened parse → schema validation → model (domxml.load runs the
checks next, as a stage of their own).

Every refusal is an XMLError naming the source, the line, the XPath and the
reason. Nothing here touches the host, and nothing is random: the same bytes
give the same DomainDef. What define adds (uuid, MACs, arch) is domxml/defaults.py.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from lxml import etree

from nsvirt.driver import uuids
from nsvirt.driver.domxml import MAX_BYTES, units
from nsvirt.driver.domxml import model as m
from nsvirt.driver.errors import ConfigError, XMLSyntaxError, XMLValidationError

if TYPE_CHECKING:
    import xmlschema

XINCLUDE_NS = "http://www.w3.org/2001/XInclude"
# bounds on a document's shape, far above any real domain's (schemas/README.md)
MAX_ELEMENTS = 4096
MAX_ATTRIBUTES = 32
MAX_TEXT = 65536
NAMESPACES = {"lxc": m.LXC_NS, "nsvirt": m.NSVIRT_NS}
_PREFIXES = {uri: prefix for prefix, uri in NAMESPACES.items()}


def _schema_dir() -> str:
    """Find the XSD files: package data when installed, the source tree otherwise."""
    from nsvirt import schemas  # a plain package directory (importlib.resources: ~3 ms)

    return os.path.dirname(os.path.abspath(schemas.__file__))


@functools.cache
def schema(name: str = "domain.xsd") -> xmlschema.XMLSchema11:
    """The schema, once per process (xmlschema costs ~150 ms to import), built or
    loaded from the cache of built schemas (domxml/schemacache.py)."""
    import xmlschema

    from nsvirt.driver.domxml import schemacache

    directory = str(_schema_dir())
    return schemacache.load(
        directory, name, lambda: xmlschema.XMLSchema11(os.path.join(directory, name))
    )


class Document:
    """A parsed domain document: its tree, and where it came from (for error lines)."""

    def __init__(self, root: etree._Element, source: str) -> None:
        self.root = root
        self.source = source

    def build(self) -> m.DomainDef:
        """The model, with libvirt's host-independent defaults."""
        return self.located(_build, self.root)

    def located(self, step: Callable, *args: object) -> m.DomainDef:
        """Run a step; a ConfigError it raises (with an XPath) gets this document's
        source and line."""
        try:
            return step(*args)
        except ConfigError as e:
            line = _line_of(self.root, e.path)
            raise ConfigError(e.reason, source=self.source, line=line, path=e.path) from None


def read(data: bytes, source: str = "", *, with_schema: bool = True) -> Document:
    """Parse untrusted bytes with the hardened parser, then check them against the
    schema (with_schema=False only for files nsvirt wrote itself)."""
    root = _parse_hardened(data, source)
    if with_schema:
        _validate_schema(root, source)
    return Document(root, source)


def read_tree(data: bytes, source: str, root_tag: str, schema_file: str) -> etree._Element:
    """Another kind of document (a network): the same hardened parse, bounds and schema
    errors, with its own root element and schema."""
    root = _parse_hardened(data, source, root_tag)
    _validate_schema(root, source, schema_file)
    return root


# ---------------------------------------------------------------- parsing


def _parse_hardened(data: bytes, source: str, root_tag: str = "domain") -> etree._Element:
    if len(data) > MAX_BYTES:
        raise XMLSyntaxError(
            f"document is larger than the limit of {MAX_BYTES} bytes", source=source
        )
    if not data.strip():
        raise XMLSyntaxError("document is empty", source=source, line=1)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise XMLSyntaxError(
            f"invalid UTF-8 byte 0x{data[e.start]:02x}: documents must be UTF-8",
            source=source,
            line=line,
        ) from None
    doctype = re.search(r"<!DOCTYPE", text)
    if doctype:
        # No DTDs at all: they carry entity bombs and external entities.
        line = text.count("\n", 0, doctype.start()) + 1
        raise XMLSyntaxError(
            f"DOCTYPE is not allowed in a {root_tag} document", source=source, line=line
        )
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        dtd_validation=False,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as e:
        reason = re.sub(r", line \d+, column \d+$", "", e.msg or "malformed XML")
        reason = re.sub(
            r"Excessive depth in document: (\d+).*", r"elements nest deeper than \1 levels", reason
        )
        raise XMLSyntaxError(reason, source=source, line=e.lineno) from None
    if root.get("type") not in (None, "lxc") and root.tag == "domain":
        raise XMLValidationError(
            f"domain type {_show(root.get('type'))} is not supported: nsvirt runs type='lxc' only",
            source=source,
            line=root.sourceline,
            path="/domain/@type",
        )
    if root.tag != root_tag:
        raise XMLValidationError(
            f"expected root element <{root_tag}>, found <{_qname(root)}>",
            source=source,
            line=root.sourceline,
            path=_xpath(root),
        )
    for el in root.iter(f"{{{XINCLUDE_NS}}}*"):
        raise XMLValidationError(
            f"XInclude is not allowed in a {root_tag} document",
            source=source,
            line=el.sourceline,
            path=_xpath(el),
        )
    _check_bounds(root, source)
    return root


def _check_bounds(root: etree._Element, source: str) -> None:
    """Refuse, before the schema sees it, a document whose shape no domain has: the
    schema's work grows with attributes per element and with elements (1000
    attributes on one element took 2 s, 2000 took 9 s), so both are bounded
    (schemas/README.md states the limits)."""
    for count, el in enumerate(root.iter(), 1):
        if count > MAX_ELEMENTS:
            raise XMLValidationError(f"more than {MAX_ELEMENTS} elements: no domain needs "
                                     "that many", source=source, line=el.sourceline)  # fmt: skip
        if len(el.attrib) > MAX_ATTRIBUTES:
            raise XMLValidationError(
                f"more than {MAX_ATTRIBUTES} attributes on one element",
                source=source, line=el.sourceline, path=_xpath(el),
            )  # fmt: skip
        texts = [el.text or "", el.tail or "", *el.attrib.values()]
        if any(len(t) > MAX_TEXT for t in texts):
            raise XMLValidationError(
                f"a text or attribute value longer than {MAX_TEXT} characters",
                source=source, line=el.sourceline, path=_xpath(el),
            )  # fmt: skip


def _validate_schema(root: etree._Element, source: str, schema_file: str = "domain.xsd") -> None:
    if not _certainly_valid(root, schema_file):
        _schema_errors(root, source, schema_file)
    for config in root.iterfind("metadata/*"):
        if (
            etree.QName(config).namespace == m.NSVIRT_NS
            and etree.QName(config).localname != "config"
        ):
            raise XMLValidationError(
                f"unknown element <{_qname(config)}> (nsvirt's metadata "
                "holds only <nsvirt:config>)",
                source=source,
                line=config.sourceline,
                path=_xpath(config),
            )


def _certainly_valid(root: etree._Element, schema_file: str) -> bool:
    """The fast pre-check (domxml/fastcheck.py): True only where xmlschema would
    find nothing; otherwise xmlschema decides, and words the error."""
    from nsvirt.driver.domxml import fastcheck

    table = _fast_table(schema_file)
    return table is not None and fastcheck.certainly_valid(root, table)


@functools.cache
def _fast_table(schema_file: str) -> dict | None:
    """The pre-check's table, once per process (as the schema): 100 files in one
    validation read the schema files for it once, not 100 times."""
    from nsvirt.driver.domxml import fastcheck

    return fastcheck.table_for(str(_schema_dir()), schema_file, lambda: schema(schema_file))


def _schema_errors(root: etree._Element, source: str, schema_file: str) -> None:
    """Raise the first schema error, as XMLValidationError with its line and XPath."""
    for err in schema(schema_file).iter_errors(root.getroottree()):
        elem = err.elem if err.elem is not None else root
        index = getattr(err, "index", None)
        reason = err.reason or "invalid"
        if index is not None and "Unexpected child" in reason and index < len(elem):
            child = elem[index]
            raise XMLValidationError(
                _unexpected_child_reason(child),
                source=source,
                line=child.sourceline,
                path=_xpath(child),
            )
        if isinstance(elem, etree._Element):
            raise XMLValidationError(
                _tidy_reason(elem, reason), source=source, line=elem.sourceline, path=_xpath(elem)
            )
        raise XMLValidationError(reason, source=source, line=root.sourceline)


_ASSERTIONS = {
    "os": "<inituser> and <initgroup> must be given together",
    "source": "a USB source needs <vendor> and <product>, or <address>",
}


def _unexpected_child_reason(child: etree._Element) -> str:
    parent = child.getparent()
    where = f"<{_qname(parent)}>" if parent is not None else "the document"
    if parent is not None and sum(1 for c in parent if c.tag == child.tag) > 1:
        return f"element <{_qname(child)}> may appear only once in {where}"
    return f"unknown element <{_qname(child)}> in {where}"


def _tidy_reason(elem: etree._Element, reason: str) -> str:
    if reason.startswith("assertion test"):
        return _ASSERTIONS.get(etree.QName(elem).localname, reason)
    # "value doesn't match any pattern of ['...']": the pattern helps no one
    reason = re.sub(r": value doesn't match any pattern of \[.*\]$", ": not a valid value", reason)
    if reason.startswith("value doesn't match any pattern"):  # the element's own text
        return f"{_show((elem.text or '').strip())} is not a valid value"
    reason = re.sub(r"^attribute (\w+)=", r"attribute '\1' = ", reason)
    reason = reason.replace("attribute not allowed for element", "is an unknown attribute")
    return reason.rstrip(".")


def _show(value: str) -> str:
    """Quote a value for a message, escaping control characters (a newline, say)."""
    return repr(value) if any(ord(c) < 32 for c in value) else f"'{value}'"


def _qname(el: etree._Element) -> str:
    q = etree.QName(el)
    prefix = _PREFIXES.get(q.namespace or "") or el.prefix
    return f"{prefix}:{q.localname}" if q.namespace else q.localname


def _xpath(el: etree._Element) -> str:
    """An XPath for `el` with positions only where siblings share its name."""
    parts = []
    node: etree._Element | None = el
    while node is not None:
        parent = node.getparent()
        name = _qname(node)
        if parent is not None:
            same = [c for c in parent if c.tag == node.tag]
            if len(same) > 1:
                name += f"[{same.index(node) + 1}]"
        parts.append(name)
        node = parent
    return "/" + "/".join(reversed(parts))


def _line_of(root: etree._Element, path: str) -> int | None:
    """Resolve a check's XPath to a source line; the root's line if it does not resolve."""
    try:
        found = root.getroottree().xpath(path, namespaces=NAMESPACES) if path else []
    except etree.XPathError:
        found = []
    node = found[0] if found and isinstance(found[0], etree._Element) else None
    if node is None and found:  # an attribute: its element's line
        node = found[0].getparent()
    return (node if node is not None else root).sourceline


# ---------------------------------------------------------------- model building


def _int(el: etree._Element | None, attr: str | None = None) -> int | None:
    if el is None:
        return None
    text = el.get(attr) if attr else el.text
    return None if text is None else int(text.strip())


def _text(el: etree._Element | None) -> str | None:
    return None if el is None else (el.text or "")


def _scaled(el: etree._Element | None, path: str) -> int | None:
    """A scaled integer element in KiB (unit defaults to KiB)."""
    if el is None:
        return None
    try:
        return units.to_kib(int(el.text.strip()), el.get("unit"))
    except units.UnitError as e:
        raise ConfigError(str(e), path=path) from None


def _build(root: etree._Element) -> m.DomainDef:
    find = root.find
    memory = _scaled(find("memory"), "/domain/memory")
    if not memory:
        raise ConfigError(
            "memory size must be given in <memory>, and not be 0",
            path="/domain/memory" if find("memory") is not None else "/domain",
        )
    current = _scaled(find("currentMemory"), "/domain/currentMemory")
    max_mem = find("maxMemory")
    vcpu = find("vcpu")
    cpu = find("cpu")
    return m.DomainDef(
        name=find("name").text or "",
        uuid=_uuid(find("uuid")),
        title=_text(find("title")),
        description=_text(find("description")),
        metadata=tuple(
            (etree.QName(el).namespace or "", _serialise(el))
            for el in root.iterfind("metadata/*")
            if etree.QName(el).namespace != m.NSVIRT_NS
        ),
        pids_max=_int(root.find("metadata/nsvirt:config/nsvirt:pids", NAMESPACES), "max"),
        proc_view=_attr(root.find("metadata/nsvirt:config/nsvirt:proc", NAMESPACES), "view")
        or "container",
        containment=_containment(root.find("metadata/nsvirt:config", NAMESPACES)),
        live_idmap=_live_idmap(root.find("metadata/nsvirt:config/nsvirt:userns", NAMESPACES)),
        max_memory=_scaled(max_mem, "/domain/maxMemory"),
        max_memory_slots=_int(max_mem, "slots"),
        memory=memory,
        current_memory=current if current else memory,
        blkio_weight=_int(find("blkiotune/weight")),
        blkio_devices=tuple(_blkio_device(d) for d in root.iterfind("blkiotune/device")),
        memtune=_memtune(find("memtune")),
        vcpus=_int(vcpu) or 1,
        vcpu_placement=(vcpu.get("placement") if vcpu is not None else None) or "static",
        vcpu_cpuset=_cpuset(
            vcpu.get("cpuset") if vcpu is not None else None, "/domain/vcpu/@cpuset"
        ),
        vcpu_current=_int(vcpu, "current") if vcpu is not None else None,
        cputune=_cputune(find("cputune")),
        numatune=_numatune(find("numatune/memory")),
        partition=_text(find("resource/partition")),
        os=_os(find("os")),
        uid_map=tuple(_idmap(e) for e in root.iterfind("idmap/uid")),
        gid_map=tuple(_idmap(e) for e in root.iterfind("idmap/gid")),
        privnet=find("features/privnet") is not None,
        cap_policy=_attr(find("features/capabilities"), "policy"),
        cap_states=_cap_states(find("features/capabilities")),
        cpu_xml=_serialise_plain(cpu) if cpu is not None else None,
        clock=_clock(find("clock")),
        on_poweroff=_text(find("on_poweroff")) or "destroy",
        on_reboot=_text(find("on_reboot")) or "restart",
        on_crash=_text(find("on_crash")) or "destroy",
        devices=_devices(find("devices")),
        seclabels=tuple(_seclabel(e) for e in root.iterfind("seclabel")),
        shared_namespaces=_shared_namespaces(root.find("lxc:namespace", NAMESPACES)),
    )


def _attr(el: etree._Element | None, name: str) -> str | None:
    return None if el is None else el.get(name)


def _uuid(el: etree._Element | None) -> str | None:
    if el is None:
        return None  # define gives it one (domxml/defaults.py)
    text = (el.text or "").strip()
    value = uuids.canonical(text)
    if value == "00000000-0000-0000-0000-000000000000":
        raise ConfigError("the all-zero uuid is not allowed", path="/domain/uuid")
    return value


def _cpuset(text: str | None, path: str) -> str | None:
    if text is None:
        return None
    try:
        return units.format_cpuset(units.parse_cpuset(text))
    except units.UnitError as e:
        raise ConfigError(str(e), path=path) from None


def _serialise(el: etree._Element) -> str:
    """Serialise foreign XML with canonical two-space indentation, as libvirt re-dumps it."""
    copy = etree.fromstring(etree.tostring(el))
    for node in copy.iter():
        if len(node) and node.text is not None and not node.text.strip():
            node.text = None
        if node.tail is not None and not node.tail.strip():
            node.tail = None
    etree.cleanup_namespaces(copy)  # drop declarations inherited but unused
    etree.indent(copy, space="  ")
    return etree.tostring(copy, encoding="unicode")


def _serialise_plain(el: etree._Element, depth: int = 0) -> str:
    """Serialise an unqualified element libvirt-style: single quotes, two-space indent."""
    from nsvirt.driver.domxml.formatter import escape

    pad = "  " * depth
    attrs = "".join(f" {k}='{escape(v)}'" for k, v in el.attrib.items())
    if len(el):
        inner = "\n".join(_serialise_plain(c, depth + 1) for c in el)
        return f"{pad}<{el.tag}{attrs}>\n{inner}\n{pad}</{el.tag}>"
    if el.text and el.text.strip():
        return f"{pad}<{el.tag}{attrs}>{escape(el.text.strip())}</{el.tag}>"
    return f"{pad}<{el.tag}{attrs}/>"


def _blkio_device(el: etree._Element) -> m.BlkioDevice:
    return m.BlkioDevice(
        path=el.findtext("path") or "",
        weight=_int(el.find("weight")),
        read_iops_sec=_int(el.find("read_iops_sec")),
        write_iops_sec=_int(el.find("write_iops_sec")),
        read_bytes_sec=_int(el.find("read_bytes_sec")),
        write_bytes_sec=_int(el.find("write_bytes_sec")),
    )


def _memtune(el: etree._Element | None) -> m.MemTune | None:
    if el is None:
        return None
    return m.MemTune(
        **{
            name: _scaled(el.find(name), f"/domain/memtune/{name}")
            for name in ("hard_limit", "soft_limit", "min_guarantee", "swap_hard_limit")
        }
    )


def _cputune(el: etree._Element | None) -> m.CpuTune | None:
    if el is None:
        return None
    return m.CpuTune(
        shares=_int(el.find("shares")), period=_int(el.find("period")), quota=_int(el.find("quota"))
    )


def _numatune(el: etree._Element | None) -> m.NumaTune | None:
    if el is None:
        return None
    return m.NumaTune(
        mode=el.get("mode", "strict"),
        placement=el.get("placement"),
        nodeset=_cpuset(el.get("nodeset"), "/domain/numatune/memory/@nodeset"),
    )


def _os(el: etree._Element) -> m.Os:
    return m.Os(
        arch=el.find("type").get("arch"),
        init=_text(el.find("init")),
        initargs=tuple(a.text or "" for a in el.iterfind("initarg")),
        initenv=tuple((e.get("name"), e.text or "") for e in el.iterfind("initenv")),
        initdir=_text(el.find("initdir")),
        inituser=_text(el.find("inituser")),
        initgroup=_text(el.find("initgroup")),
    )


def _containment(config: etree._Element | None) -> m.Containment:
    if config is None:
        return m.Containment()

    def has(tag: str) -> bool:
        return config.find(f"nsvirt:{tag}", NAMESPACES) is not None

    seccomp = config.find("nsvirt:seccomp", NAMESPACES)
    return m.Containment(
        privileged=has("privileged"),
        idmapped_mounts=has("idmapped-mounts"),
        no_new_privs=has("no-new-privs"),
        seccomp_allow=tuple(sorted(set(seccomp.get("allow").split())))
        if seccomp is not None
        else (),
        device_presets=tuple(dict.fromkeys(
            d.get("preset") for d in config.iterfind("nsvirt:device", NAMESPACES))),
    )  # fmt: skip


def _live_idmap(el: etree._Element | None) -> m.LiveIdmap | None:
    if el is None:
        return None
    return m.LiveIdmap(int(el.get("uid")), int(el.get("gid")), int(el.get("count")))


def _idmap(el: etree._Element) -> m.IdMap:
    return m.IdMap(
        start=int(el.get("start")), target=int(el.get("target")), count=int(el.get("count"))
    )


def _cap_states(el: etree._Element | None) -> tuple[tuple[str, bool], ...]:
    if el is None:
        return ()
    given = {child.tag: child.get("state") == "on" for child in el}
    return tuple((name, given[name]) for name in m.CAPABILITIES if name in given)


def _clock(el: etree._Element | None) -> m.Clock:
    if el is None:
        return m.Clock()
    return m.Clock(
        offset=el.get("offset"),
        adjustment=el.get("adjustment"),
        timezone=el.get("timezone"),
        basis=el.get("basis"),
        start=_int(el, "start") if el.get("start") else None,
    )


def _seclabel(el: etree._Element) -> m.Seclabel:
    return m.Seclabel(
        type=el.get("type"),
        model=el.get("model"),
        relabel=el.get("relabel"),
        label=_text(el.find("label")),
        imagelabel=_text(el.find("imagelabel")),
        baselabel=_text(el.find("baselabel")),
    )


def _shared_namespaces(el: etree._Element | None) -> tuple[m.SharedNamespace, ...]:
    if el is None:
        return ()
    found = []
    for kind in ("net", "ipc", "uts"):
        share = el.find(f"lxc:share{kind}", NAMESPACES)
        if share is not None:
            found.append(m.SharedNamespace(kind, share.get("type"), share.get("value")))
    return tuple(found)


# ---------------------------------------------------------------- devices


def _devices(el: etree._Element | None) -> m.Devices:
    if el is None:
        return m.Devices()
    consoles = el.findall("console")
    serials = el.findall("serial")
    return m.Devices(
        emulator=_text(el.find("emulator")),
        filesystems=tuple(_filesystem(f, i) for i, f in enumerate(el.iterfind("filesystem"), 1)),
        disks=tuple(_disk(d) for d in el.iterfind("disk")),
        interfaces=tuple(_interface(i) for i in el.iterfind("interface")),
        consoles=tuple(_chardev(c, i, "lxc") for i, c in enumerate(consoles)),
        serials=tuple(_chardev(s, i, None) for i, s in enumerate(serials)),
        hostdevs=tuple(_hostdev(h) for h in el.iterfind("hostdev")),
    )


def _filesystem(el: etree._Element, index: int) -> m.Filesystem:
    fstype = el.get("type", "mount")
    src = el.find("source")
    drv = el.find("driver")
    usage = None
    if fstype == "ram":
        try:
            # usage is in KiB unless `units` says otherwise (libvirt's default)
            usage = units.to_kib(int(src.get("usage")), src.get("units"))
        except units.UnitError as e:
            raise ConfigError(str(e), path=f"/domain/devices/filesystem[{index}]/source") from None
    return m.Filesystem(
        type=fstype,
        target=el.find("target").get("dir"),
        source=src.get(m.FS_SOURCE_ATTR[fstype]) if fstype != "ram" else None,
        usage_kib=usage,
        readonly=el.find("readonly") is not None,
        accessmode=el.get("accessmode", "passthrough"),
        driver_type=_attr(drv, "type"),
        driver_format=_attr(drv, "format"),
        driver_wrpolicy=_attr(drv, "wrpolicy"),
    )


def _disk(el: etree._Element) -> m.Disk:
    src = el.find("source")
    drv = el.find("driver")
    target = el.find("target")
    return m.Disk(
        type=el.get("type"),
        device=el.get("device", "disk"),
        source=None if src is None else (src.get("file") or src.get("dev")),
        target_dev=target.get("dev"),
        target_bus=target.get("bus"),
        driver_name=_attr(drv, "name"),
        driver_type=_attr(drv, "type"),
        readonly=el.find("readonly") is not None,
        shareable=el.find("shareable") is not None,
    )


def _ip(el: etree._Element) -> m.IpAddress:
    import ipaddress  # only for domains with addresses (~1 ms)

    addr = ipaddress.ip_address(el.get("address"))
    peer = el.get("peer")
    return m.IpAddress(
        address=str(addr),
        family=el.get("family") or f"ipv{addr.version}",
        prefix=_int(el, "prefix") if el.get("prefix") else None,
        peer=str(ipaddress.ip_address(peer)) if peer else None,
    )


def _route(el: etree._Element) -> m.Route:
    import ipaddress

    return m.Route(
        family=el.get("family"),
        address=str(ipaddress.ip_address(el.get("address"))),
        netmask=el.get("netmask"),
        prefix=_int(el, "prefix") if el.get("prefix") else None,
        gateway=str(ipaddress.ip_address(el.get("gateway"))),
        metric=_int(el, "metric") if el.get("metric") else None,
    )


def _addresses(el: etree._Element, build: Callable[[etree._Element], object], tag: str) -> tuple:
    out = []
    for child in el.iterfind(tag):
        try:
            out.append(build(child))
        except ValueError as e:
            raise ConfigError(str(e), path=_xpath(child)) from None
    return tuple(out)


def _interface(el: etree._Element) -> m.Interface:
    iftype = el.get("type")
    src = el.find("source")
    mac = el.find("mac")
    mtu = el.find("mtu")
    source_attr = {"network": "network", "bridge": "bridge", "direct": "dev"}.get(iftype)
    return m.Interface(
        type=iftype,
        mac=mac.get("address").lower() if mac is not None else None,  # define makes one
        source=src.get(source_attr) if src is not None and source_attr else None,
        source_mode=_attr(src, "mode") if iftype == "direct" else None,
        portgroup=_attr(src, "portgroup") if iftype == "network" else None,
        host_ips=_addresses(src, _ip, "ip") if src is not None else (),
        host_routes=_addresses(src, _route, "route") if src is not None else (),
        ips=_addresses(el, _ip, "ip"),
        routes=_addresses(el, _route, "route"),
        target_dev=_attr(el.find("target"), "dev"),
        guest_dev=_attr(el.find("guest"), "dev"),
        model=_attr(el.find("model"), "type"),
        link_state=_attr(el.find("link"), "state"),
        mtu=_int(mtu, "size") if mtu is not None else None,
    )


def _chardev(el: etree._Element, index: int, target_type: str | None) -> m.CharDevice:
    # tty, <source path> and <alias> are live state: a definition drops them.
    target = el.find("target")
    port = _int(target, "port") if target is not None and target.get("port") else index
    return m.CharDevice(port=port, target_type=target_type)


def _usb_id(text: str | None) -> str | None:
    return None if text is None else f"0x{int(text, 16):04x}"


def _usb_addr(text: str | None) -> str | None:
    if text is None:
        return None
    return str(int(text, 16) if text.lower().startswith("0x") else int(text))


def _hostdev(el: etree._Element) -> m.Hostdev:
    mode = el.get("mode", "subsystem")
    hdtype = el.get("type")
    src = el.find("source")
    if mode == "subsystem":
        addr = src.find("address")
        return m.Hostdev(
            mode=mode,
            type=hdtype,
            usb_vendor=_usb_id(_attr(src.find("vendor"), "id")),
            usb_product=_usb_id(_attr(src.find("product"), "id")),
            usb_bus=_usb_addr(_attr(addr, "bus")),
            usb_device=_usb_addr(_attr(addr, "device")),
            managed=el.get("managed") == "yes",
            readonly=el.find("readonly") is not None,
            shareable=el.find("shareable") is not None,
            startup_policy=src.get("startupPolicy"),
        )
    child = m.HOSTDEV_SOURCE_TAG[hdtype]
    return m.Hostdev(
        mode=mode,
        type=hdtype,
        source=(src.findtext(child) or "").strip(),
        ips=_addresses(el, _ip, "ip"),
        routes=_addresses(el, _route, "route"),
    )
