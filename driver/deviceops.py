"""attach-device and detach-device: interfaces (driver/netops.py), and host devices
and block disks, whose node is made in (or taken out of) the running container's
/dev and whose rule the supervisor adds to (or takes from) its cgroup's. A mixin
of driver/domain.py's Domain, as libvirt's lxcDomainAttachDeviceFlags is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nsvirt.driver.errors import OperationFailed, Unsupported
from nsvirt.driver.records import replace

if TYPE_CHECKING:
    import contextlib

    from nsvirt.driver.connection import Connection
    from nsvirt.driver.domxml import model as m
    from nsvirt.driver.state.runstate import RunState


class DeviceOps:
    """Domain's attach_device / detach_device (virDomainAttachDeviceFlags…)."""

    conn: Connection
    name: str

    if TYPE_CHECKING:  # provided by Domain and its other mixins

        def _lock(self) -> contextlib.AbstractContextManager[None]: ...
        def _live(self) -> RunState: ...
        def _live_locked(self) -> RunState: ...
        def _call(self, request: dict[str, Any], timeout: float | None = ...) -> dict: ...
        def _write_live(self, dom: m.DomainDef, run: RunState) -> None: ...
        def _store(self, dom: m.DomainDef) -> None: ...
        def definition(self, inactive: bool = False) -> m.DomainDef: ...
        def attach_interface(self, xml: str, *, live: bool, config: bool) -> None: ...
        def detach_interface_xml(self, xml: str, *, live: bool, config: bool) -> None: ...

    def attach_device(self, xml: str, *, live: bool, config: bool) -> None:
        """Add a device to the running container and/or to the persistent definition."""
        tag = _tag(xml)
        if tag == "interface":
            return self.attach_interface(xml, live=live, config=config)
        self.conn.require_writable("virDomainAttachDeviceFlags")
        _attachable(tag, "attached")
        with self._lock():
            if live:
                run = self._live_locked()
                dom = self.definition()
                device = _device_of(dom, xml)
                _attachable_live(device)
                nodes, rules = _nodes_of(dom, device)
                from nsvirt.driver.runtime import devnodes

                self._device_change(rules, nodes, allow=True)
                try:
                    devnodes.add_in(run.init_pid, nodes)
                except OSError as e:
                    self._device_change(rules, nodes, allow=False)
                    raise OperationFailed(str(e)) from None
                self._write_live(_plus(dom, device), run)
            if config:
                dom = self.definition(inactive=True)
                self._store(_plus(dom, _device_of(dom, xml)))

    def detach_device(self, xml: str, *, live: bool, config: bool) -> None:
        """Remove the device `xml` names from the running container and/or the
        persistent definition (a hostdev by its source, a disk by its target)."""
        tag = _tag(xml)
        if tag == "interface":
            return self.detach_interface_xml(xml, live=live, config=config)
        self.conn.require_writable("virDomainDetachDeviceFlags")
        _attachable(tag, "detached")
        with self._lock():
            if live:
                run = self._live_locked()
                dom = self.definition()
                gone = _find(dom, _device_of(dom, xml))
                _attachable_live(gone)
                nodes, rules = _nodes_of(dom, gone)
                from nsvirt.driver.runtime import devnodes

                # the rule first: the container may hold the node elsewhere (a bind of
                # its own) or keep its place busy; without the rule it opens nothing
                self._device_change(rules, nodes, allow=False)
                self._write_live(_minus(dom, gone), run)
                try:
                    devnodes.remove_in(run.init_pid, [n.name for n in nodes])
                except OSError as e:
                    left = "the device is detached (its rule is gone), but its node stays"
                    raise OperationFailed(f"{left} in the container: {e}") from None
            if config:
                dom = self.definition(inactive=True)
                self._store(_minus(dom, _find(dom, _device_of(dom, xml))))

    def _device_change(self, rules: list[Any], nodes: list[Any], *, allow: bool) -> None:
        """The supervisor allows (or denies) the rules, and makes the nodes again in the
        /dev of a restart (or no more)."""
        self._call({"op": "device", "allow": allow,
                    "rules": [{k: getattr(r, k) for k in _RULE} for r in rules],
                    "nodes": [{k: getattr(n, k) for k in _NODE} for n in nodes]})  # fmt: skip


_RULE = ("type", "major", "minor", "access")
_NODE = ("name", "type", "major", "minor", "mode", "source")


def _tag(xml: str) -> str:
    """The device's element name (past an XML declaration and comments)."""
    text = xml.lstrip()
    while text.startswith(("<?", "<!--")):
        end = text.find("?>" if text.startswith("<?") else "-->")
        if end < 0:
            break
        text = text[end + (2 if text.startswith("<?") else 3) :].lstrip()
    if not text.startswith("<") or text.startswith(("<?", "<!")):
        raise Unsupported("the device XML does not start with an element")
    return text[1:].split(None, 1)[0].split(">", 1)[0].split("/", 1)[0]


def _attachable(tag: str, done: str) -> None:
    if tag not in ("hostdev", "disk"):
        raise Unsupported(f"device type '{tag}' cannot be {done}")


def _attachable_live(device: Any) -> None:
    """What libvirt's LXC driver can attach to (and detach from) a running container."""
    from nsvirt.driver.domxml import model as m

    if isinstance(device, m.Disk):
        if device.type != "block":
            raise Unsupported(f"Disk source {device.source} must be a block device")
    elif device.mode == "capabilities" and device.type == "net":
        raise Unsupported("Unsupported host device type net")


def _device_of(dom: m.DomainDef, xml: str) -> Any:
    """The hostdev or disk of `xml`, parsed (and checked by the schema and the model)
    as the only one of a copy of `dom`."""
    from nsvirt.driver.domxml import formatter, parser

    bare = replace(dom, devices=replace(dom.devices, hostdevs=(), disks=()))
    skeleton = formatter.format_domain(bare)
    whole = skeleton.replace("<devices>", f"<devices>\n{xml.strip()}", 1)
    devices = parser.read(whole.encode(), "device").build().devices
    return (devices.hostdevs + devices.disks)[0]


def _plus(dom: m.DomainDef, device: Any) -> m.DomainDef:
    from nsvirt.driver.domxml import model as m

    dev = dom.devices
    if isinstance(device, m.Disk):
        return replace(dom, devices=replace(dev, disks=(*dev.disks, device)))
    return replace(dom, devices=replace(dev, hostdevs=(*dev.hostdevs, device)))


def _minus(dom: m.DomainDef, device: Any) -> m.DomainDef:
    dev = dom.devices
    return replace(dom, devices=replace(
        dev, disks=tuple(d for d in dev.disks if d is not device),
        hostdevs=tuple(h for h in dev.hostdevs if h is not device)))  # fmt: skip


def _find(dom: m.DomainDef, want: Any) -> Any:
    """The device of `dom` that `want` names, or libvirt's error."""
    from nsvirt.driver.domxml import model as m

    if isinstance(want, m.Disk):
        found = [d for d in dom.devices.disks if d.target_dev == want.target_dev]
        if not found:
            raise OperationFailed(f"disk {want.target_dev} not found")
        return found[0]
    hits = [h for h in dom.devices.hostdevs if _same_hostdev(h, want)]
    if not hits:
        raise OperationFailed("usb device not found" if want.type == "usb"
                              else f"hostdev {want.source} not found")  # fmt: skip
    return hits[0]


def _same_hostdev(a: m.Hostdev, b: m.Hostdev) -> bool:
    if (a.mode, a.type) != (b.mode, b.type):
        return False
    if a.type == "usb":
        return (a.usb_vendor, a.usb_product, a.usb_bus, a.usb_device) == (
            b.usb_vendor, b.usb_product, b.usb_bus, b.usb_device)  # fmt: skip
    return a.source == b.source


def _nodes_of(dom: m.DomainDef, device: Any) -> tuple[list[Any], list[Any]]:
    """The nodes and rules of `device` alone, looked up on the host now."""
    from nsvirt.driver.domxml import model as m
    from nsvirt.driver.launch import devices, hostdevices

    hostdevs = (device,) if isinstance(device, m.Hostdev) else ()
    disks = (device,) if isinstance(device, m.Disk) else ()
    only = replace(dom, devices=replace(dom.devices, hostdevs=hostdevs, disks=disks,
                                        filesystems=()),
                   containment=replace(dom.containment, device_presets=()))  # fmt: skip
    nodes, rules, _ = devices.passed(only, hostdevices.look_up(only))
    return nodes, rules
