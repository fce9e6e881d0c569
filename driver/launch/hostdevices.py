"""Look up, at start, the host devices a domain passes in: what each host path is
(stat) and where each USB device sits (sysfs), as launch/devices.py's HostDevices.

Host paths are the administrator's (the domain's definition names them), so they
are looked up as given. Nothing is created here.
"""

from __future__ import annotations

import errno
import os
import stat

from nsvirt.driver.errors import InternalError, OperationFailed, Unsupported
from nsvirt.driver.launch.devices import HostDevices, HostNode, wanted
from nsvirt.driver.launch.plan import disk_driver, fs_driver

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsvirt.driver.domxml import model as m


def look_up(dom: m.DomainDef, sysfs: str = "/sys", dev: str = "/dev") -> HostDevices:
    """The host's answers for `dom`'s hostdevs, block disks and device presets."""
    nodes: dict[str, HostNode] = {}
    listings: dict[str, tuple[str, ...]] = {}
    for path in wanted(dom):
        if path.endswith("/"):
            listed = _char_nodes(path)
            listings[path] = listed
            nodes.update((p, node_of(p)) for p in listed)
        else:
            nodes[path] = node_of(path)
    for fs in dom.devices.filesystems:
        if fs.type == "file" and fs_driver(fs) == "nbd" and fs.driver_format:
            _need_nbd(fs.source or "")
    for d in dom.devices.disks:
        if d.type == "file" and disk_driver(d) == "nbd" and d.driver_type:
            _need_nbd(d.source or "")
    usb: list[str | None] = []
    for h in dom.devices.hostdevs:
        if h.mode == "subsystem" and h.type == "usb":
            found = find_usb(h, sysfs)
            path = None if found is None else f"{dev}/bus/usb/{found[0]:03d}/{found[1]:03d}"
            if path is not None:
                nodes[path] = node_of(path)
            usb.append(path)
    return HostDevices(nodes=nodes, listings=listings, usb=tuple(usb))


def _need_nbd(image: str) -> None:
    from nsvirt.driver.runtime import nbd

    why = nbd.unavailable()
    if why is not None:
        raise Unsupported(
            f"fs driver nbd is needed for {image}, and {why}; or convert the image to raw "
            f"(qemu-img convert -O raw {image} IMAGE.raw) for a loop device"
        )


def node_of(path: str) -> HostNode:
    try:
        st = os.stat(path)
    except OSError as e:
        return HostNode("", errno=e.errno or errno.ENOENT)
    mode = st.st_mode
    kind = ("c" if stat.S_ISCHR(mode) else "b" if stat.S_ISBLK(mode) else
            "f" if stat.S_ISREG(mode) else "d" if stat.S_ISDIR(mode) else "-")  # fmt: skip
    return HostNode(kind, os.major(st.st_rdev), os.minor(st.st_rdev), stat.S_IMODE(st.st_mode))


def _char_nodes(directory: str) -> tuple[str, ...]:
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return ()
    return tuple(p for p in (os.path.join(directory, n) for n in names) if node_of(p).kind == "c")


def find_usb(h: m.Hostdev, sysfs: str = "/sys") -> tuple[int, int] | None:
    """(bus, device) of the USB device `h` names, as libvirt finds it: the entries of
    /sys/bus/usb/devices (not interfaces, whose names hold ':'), vendor and product in
    hex, devnum in decimal, the bus from the entry's name. None if it is missing and
    its startupPolicy lets the domain start without it."""
    vendor = int(h.usb_vendor, 16) if h.usb_vendor else None
    product = int(h.usb_product, 16) if h.usb_product else None
    bus = int(h.usb_bus) if h.usb_bus is not None else None
    device = int(h.usb_device) if h.usb_device is not None else None
    matches = []
    for entry in _usb_devices(sysfs):
        e_bus, e_vendor, e_product, e_dev = entry
        if vendor is not None and (e_vendor, e_product) != (vendor, product):
            continue
        if bus is not None and (e_bus, e_dev) != (bus, device):
            continue
        matches.append((e_bus, e_dev))
    if len(matches) > 1 and bus is None:
        raise OperationFailed(f"Multiple USB devices for {vendor:x}:{product:x}, "
                              "use <address> to specify one")  # fmt: skip
    if matches:
        return matches[0]
    if h.startup_policy in ("optional", "requisite"):  # requisite: as libvirt's LXC start
        return None
    if vendor is not None and bus is not None:
        what = f"{vendor:04x}:{product:04x} bus:{bus} device:{device}"
    elif vendor is not None:
        what = f"{vendor:04x}:{product:04x}"
    else:
        what = f"bus:{bus} device:{device}"
    raise InternalError(f"Did not find USB device {what}")


def _usb_devices(sysfs: str) -> list[tuple[int, int, int, int]]:
    """(bus, vendor, product, devnum) of each USB device sysfs lists."""
    top = os.path.join(sysfs, "bus", "usb", "devices")
    try:
        names = sorted(os.listdir(top))
    except FileNotFoundError:
        return []  # no USB bus at all
    out = []
    for name in names:
        if ":" in name:
            continue
        digits = name.removeprefix("usb")
        head = digits[: len(digits) - len(digits.lstrip("0123456789"))]
        if not head:
            raise InternalError(f"Failed to parse dir name '{name}'")
        out.append((int(head), _read(top, name, "idVendor", 16), _read(top, name, "idProduct", 16),
                    _read(top, name, "devnum", 10)))  # fmt: skip
    return out


def _read(top: str, name: str, field: str, base: int) -> int:
    path = os.path.join(top, name, field)
    try:
        with open(path) as f:
            return int(f.read().strip(), base)
    except (OSError, ValueError):
        raise InternalError(f"Could not parse usb file {path}") from None
