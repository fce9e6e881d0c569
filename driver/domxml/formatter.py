"""Domain XML out: a DomainDef written the way libvirt's dumpxml writes it.

Element order, two-space indentation, single-quoted attributes, sizes in KiB:
libvirt's own expected outputs (tests/lxcxml2xmldata) come out byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterable

from nsvirt.driver.domxml import model as m

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "'": "&apos;", '"': "&quot;"})


def escape(value: object) -> str:
    """Escape text or an attribute value as libvirt's virBufferEscapeString does."""
    return str(value).translate(_ESCAPES)


class _Writer:
    """Collects indented lines; attributes whose value is None are left out."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    @staticmethod
    def _attrs(attrs: Iterable[tuple[str, object]]) -> str:
        return "".join(f" {k}='{escape(v)}'" for k, v in attrs if v is not None)

    def empty(self, tag: str, *attrs: tuple[str, object]) -> None:
        self.lines.append(f"{'  ' * self.depth}<{tag}{self._attrs(attrs)}/>")

    def text(self, tag: str, value: object, *attrs: tuple[str, object]) -> None:
        if value is None:
            return
        self.lines.append(f"{'  ' * self.depth}<{tag}{self._attrs(attrs)}>{escape(value)}</{tag}>")

    def open(self, tag: str, *attrs: tuple[str, object]) -> None:
        self.lines.append(f"{'  ' * self.depth}<{tag}{self._attrs(attrs)}>")
        self.depth += 1

    def close(self, tag: str) -> None:
        self.depth -= 1
        self.lines.append(f"{'  ' * self.depth}</{tag}>")

    def raw(self, xml: str) -> None:
        """Foreign XML, already indented from column 0: shift it to this depth."""
        pad = "  " * self.depth
        self.lines.extend(pad + line for line in xml.splitlines())


def format_domain(dom: m.DomainDef) -> str:
    """Return the canonical XML text of `dom`, ending with a newline."""
    w = _Writer()
    w.open(
        "domain",
        ("type", "lxc"),
        ("id", dom.id),
        ("xmlns:lxc", m.LXC_NS if dom.shared_namespaces else None),
    )
    w.text("name", dom.name)
    w.text("uuid", dom.uuid)
    w.text("title", dom.title)
    w.text("description", dom.description)
    _metadata(w, dom)
    w.text(
        "maxMemory",
        dom.max_memory,
        ("slots", dom.max_memory_slots),
        ("unit", "KiB" if dom.max_memory is not None else None),
    )
    w.text("memory", dom.memory, ("unit", "KiB"))
    w.text("currentMemory", dom.current_memory, ("unit", "KiB"))
    _blkiotune(w, dom)
    _memtune(w, dom.memtune)
    w.text(
        "vcpu",
        dom.vcpus,
        ("placement", dom.vcpu_placement),
        ("cpuset", dom.vcpu_cpuset),
        ("current", dom.vcpu_current if dom.vcpu_current != dom.vcpus else None),
    )
    _cputune(w, dom.cputune)
    _numatune(w, dom.numatune)
    if dom.partition is not None:
        w.open("resource")
        w.text("partition", dom.partition)
        w.close("resource")
    _os(w, dom.os)
    _idmap(w, dom)
    _features(w, dom)
    if dom.cpu_xml is not None:
        w.raw(dom.cpu_xml)
    c = dom.clock
    w.empty(
        "clock",
        ("offset", c.offset),
        ("adjustment", c.adjustment),
        ("timezone", c.timezone),
        ("basis", c.basis),
        ("start", c.start),
    )
    w.text("on_poweroff", dom.on_poweroff)
    w.text("on_reboot", dom.on_reboot)
    w.text("on_crash", dom.on_crash)
    _devices(w, dom.devices)
    for s in dom.seclabels:
        _seclabel(w, s)
    _namespaces(w, dom.shared_namespaces)
    w.close("domain")
    return "\n".join(w.lines) + "\n"


def _nsvirt_config(dom: m.DomainDef) -> list[str]:
    """The children of <nsvirt:config>, in the schema's order."""
    c, live = dom.containment, dom.live_idmap
    lines = [f'<nsvirt:pids max="{dom.pids_max}"/>'] if dom.pids_max is not None else []
    if dom.proc_view != "container":
        lines.append(f'<nsvirt:proc view="{dom.proc_view}"/>')
    lines += [f"<nsvirt:{tag}/>" for tag, on in (
        ("privileged", c.privileged), ("idmapped-mounts", c.idmapped_mounts),
        ("no-new-privs", c.no_new_privs)) if on]  # fmt: skip
    if c.seccomp_allow:
        lines.append(f'<nsvirt:seccomp allow="{" ".join(c.seccomp_allow)}"/>')
    lines += [f'<nsvirt:device preset="{p}"/>' for p in c.device_presets]
    if live is not None:
        lines.append(f'<nsvirt:userns uid="{live.uid}" gid="{live.gid}" count="{live.count}"/>')
    return lines


def _metadata(w: _Writer, dom: m.DomainDef) -> None:
    config = _nsvirt_config(dom)
    if not dom.metadata and not config:
        return
    w.open("metadata")
    if config:
        body = "".join(f"  {line}\n" for line in config)
        w.raw(f'<nsvirt:config xmlns:nsvirt="{m.NSVIRT_NS}">\n{body}</nsvirt:config>')
    for _, xml in dom.metadata:
        w.raw(xml)
    w.close("metadata")


def _blkiotune(w: _Writer, dom: m.DomainDef) -> None:
    if dom.blkio_weight is None and not dom.blkio_devices:
        return
    w.open("blkiotune")
    w.text("weight", dom.blkio_weight)
    for d in dom.blkio_devices:
        w.open("device")
        w.text("path", d.path)
        w.text("weight", d.weight)
        w.text("read_iops_sec", d.read_iops_sec)
        w.text("write_iops_sec", d.write_iops_sec)
        w.text("read_bytes_sec", d.read_bytes_sec)
        w.text("write_bytes_sec", d.write_bytes_sec)
        w.close("device")
    w.close("blkiotune")


def _memtune(w: _Writer, mt: m.MemTune | None) -> None:
    if mt is None or mt == m.MemTune():
        return
    w.open("memtune")
    for name in ("hard_limit", "soft_limit", "min_guarantee", "swap_hard_limit"):
        w.text(name, getattr(mt, name), ("unit", "KiB"))
    w.close("memtune")


def _cputune(w: _Writer, ct: m.CpuTune | None) -> None:
    if ct is None or ct == m.CpuTune():
        return
    w.open("cputune")
    w.text("shares", ct.shares)
    w.text("period", ct.period)
    w.text("quota", ct.quota)
    w.close("cputune")


def _numatune(w: _Writer, nt: m.NumaTune | None) -> None:
    if nt is None:
        return
    w.open("numatune")
    # libvirt writes placement only when it is not the default (static)
    w.empty(
        "memory",
        ("mode", nt.mode),
        ("nodeset", nt.nodeset),
        ("placement", nt.placement if nt.placement != "static" else None),
    )
    w.close("numatune")


def _os(w: _Writer, os_: m.Os) -> None:
    w.open("os")
    w.text("type", "exe", ("arch", os_.arch))
    w.text("init", os_.init)
    for arg in os_.initargs:
        w.text("initarg", arg)
    for name, value in os_.initenv:
        w.text("initenv", value, ("name", name))
    w.text("initdir", os_.initdir)
    w.text("inituser", os_.inituser)
    w.text("initgroup", os_.initgroup)
    w.close("os")


def _idmap(w: _Writer, dom: m.DomainDef) -> None:
    if not dom.uid_map and not dom.gid_map:
        return
    w.open("idmap")
    for tag, maps in (("uid", dom.uid_map), ("gid", dom.gid_map)):
        for im in maps:
            w.empty(tag, ("start", im.start), ("target", im.target), ("count", im.count))
    w.close("idmap")


def _features(w: _Writer, dom: m.DomainDef) -> None:
    # libvirt drops <capabilities policy='default'/> when it lists no capability
    caps = dom.cap_policy is not None and (dom.cap_policy != "default" or dom.cap_states)
    if not dom.privnet and not caps:
        return
    w.open("features")
    if dom.privnet:
        w.empty("privnet")
    if caps and dom.cap_states:
        w.open("capabilities", ("policy", dom.cap_policy))
        for name, on in dom.cap_states:
            w.empty(name, ("state", "on" if on else "off"))
        w.close("capabilities")
    elif caps:
        w.empty("capabilities", ("policy", dom.cap_policy))
    w.close("features")


def _seclabel(w: _Writer, s: m.Seclabel) -> None:
    attrs = (("type", s.type), ("model", s.model), ("relabel", s.relabel))
    children = (("label", s.label), ("imagelabel", s.imagelabel), ("baselabel", s.baselabel))
    if all(v is None for _, v in children):
        w.empty("seclabel", *attrs)
        return
    w.open("seclabel", *attrs)
    for tag, value in children:
        w.text(tag, value)
    w.close("seclabel")


def _namespaces(w: _Writer, shared: tuple[m.SharedNamespace, ...]) -> None:
    if not shared:
        return
    w.open("lxc:namespace")
    for s in shared:
        w.empty(f"lxc:share{s.kind}", ("type", s.type), ("value", s.value))
    w.close("lxc:namespace")


# ---------------------------------------------------------------- devices


def _devices(w: _Writer, dev: m.Devices) -> None:
    if dev == m.Devices():
        return
    w.open("devices")
    w.text("emulator", dev.emulator)
    for d in dev.disks:
        _disk(w, d)
    for fs in dev.filesystems:
        _filesystem(w, fs)
    for iface in dev.interfaces:
        _interface(w, iface)
    for s in dev.serials:
        _chardev(w, "serial", s)
    for c in dev.consoles:
        _chardev(w, "console", c)
    for h in dev.hostdevs:
        _hostdev(w, h)
    w.close("devices")


def _disk(w: _Writer, d: m.Disk) -> None:
    w.open("disk", ("type", d.type), ("device", d.device))
    if d.driver_name or d.driver_type:
        w.empty("driver", ("name", d.driver_name), ("type", d.driver_type))
    if d.source is not None:
        w.empty("source", ("file" if d.type == "file" else "dev", d.source))
    w.empty("target", ("dev", d.target_dev), ("bus", d.target_bus))
    if d.readonly:
        w.empty("readonly")
    if d.shareable:
        w.empty("shareable")
    w.close("disk")


def _filesystem(w: _Writer, fs: m.Filesystem) -> None:
    w.open("filesystem", ("type", fs.type), ("accessmode", fs.accessmode))
    if fs.driver_type or fs.driver_format or fs.driver_wrpolicy:
        w.empty(
            "driver",
            ("type", fs.driver_type),
            ("format", fs.driver_format),
            ("wrpolicy", fs.driver_wrpolicy),
        )
    if fs.type == "ram":
        w.empty("source", ("usage", fs.usage_kib), ("units", "KiB"))
    else:
        w.empty("source", (m.FS_SOURCE_ATTR[fs.type], fs.source))
    w.empty("target", ("dir", fs.target))
    if fs.readonly:
        w.empty("readonly")
    w.close("filesystem")


def _ips(w: _Writer, ips: tuple[m.IpAddress, ...], routes: tuple[m.Route, ...]) -> None:
    for ip in ips:
        w.empty(
            "ip",
            ("address", ip.address),
            ("family", ip.family),
            ("prefix", ip.prefix),
            ("peer", ip.peer),
        )
    for r in routes:
        w.empty(
            "route",
            ("family", r.family),
            ("address", r.address),
            ("netmask", r.netmask),
            ("prefix", r.prefix),
            ("gateway", r.gateway),
            ("metric", r.metric),
        )


def _interface(w: _Writer, i: m.Interface) -> None:
    w.open("interface", ("type", i.type))
    if i.mac is not None:
        w.empty("mac", ("address", i.mac))
    if i.type == "bridge":
        w.empty("source", ("bridge", i.source))
    elif i.type == "network":
        w.empty("source", ("network", i.source), ("portgroup", i.portgroup))
    elif i.type == "direct":
        w.empty("source", ("dev", i.source), ("mode", i.source_mode))
    elif i.host_ips or i.host_routes:
        w.open("source")
        _ips(w, i.host_ips, i.host_routes)
        w.close("source")
    _ips(w, i.ips, i.routes)
    if i.target_dev:
        w.empty("target", ("dev", i.target_dev))
    if i.guest_dev:
        w.empty("guest", ("dev", i.guest_dev))
    if i.model:
        w.empty("model", ("type", i.model))
    if i.link_state:
        w.empty("link", ("state", i.link_state))
    if i.mtu is not None:
        w.empty("mtu", ("size", i.mtu))
    w.close("interface")


def _chardev(w: _Writer, tag: str, c: m.CharDevice) -> None:
    w.open(tag, ("type", "pty"), ("tty", c.tty))
    if c.tty:
        w.empty("source", ("path", c.tty))
    w.empty("target", ("type", c.target_type), ("port", c.port))
    if c.alias:
        w.empty("alias", ("name", c.alias))
    w.close(tag)


def _hostdev(w: _Writer, h: m.Hostdev) -> None:
    if h.mode == "subsystem":
        w.open(
            "hostdev", ("mode", h.mode), ("type", h.type), ("managed", "yes" if h.managed else "no")
        )
        w.open("source", ("startupPolicy", h.startup_policy))
        if h.usb_vendor:
            w.empty("vendor", ("id", h.usb_vendor))
            w.empty("product", ("id", h.usb_product))
        if h.usb_bus is not None:
            w.empty("address", ("bus", h.usb_bus), ("device", h.usb_device))
        w.close("source")
        if h.readonly:
            w.empty("readonly")
        if h.shareable:
            w.empty("shareable")
        w.close("hostdev")
        return
    w.open("hostdev", ("mode", h.mode), ("type", h.type))
    w.open("source")
    w.text(m.HOSTDEV_SOURCE_TAG[h.type], h.source)
    w.close("source")
    _ips(w, h.ips, h.routes)
    w.close("hostdev")
