"""The host devices a domain passes in, as nodes in its /dev and device-cgroup rules.

Pure: what each host path is (a block or character device, its numbers) and where
each USB device sits were looked up at start by launch/hostdevices.py; here they
become the plan's DevNodes and DeviceRules, with libvirt's checks and messages:

    <hostdev mode='capabilities' type='storage'|'misc'>   the node, rule rwm
    <hostdev mode='subsystem' type='usb'>                 /dev/bus/usb/BBB/DDD, rwm
    <disk type='block'>                                   /dev/<target dev>, r(w)m
    <nsvirt:device preset='tun'|'fuse'|'kvm'|'dri'/>      the nodes, rwm, and the
                                                          capability the device needs

A node's place inside is libvirt's: its host path less the first component
(/dev/net/tun → /dev/net/tun, /srv/disk0 → /dev/disk0), always on the container's
own /dev. It keeps the host node's permission bits (a user namespace sees the
host's node itself, bound: the same bits).
"""

from __future__ import annotations

import errno

from nsvirt.driver.errors import HostError, Unsupported
from nsvirt.driver.records import Record, factory

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsvirt.driver.domxml import model as m


class DevNode(Record):
    name: str  # under /dev, may hold directories (net/tun)
    type: str  # c | b
    major: int
    minor: int
    mode: int = 0o666
    source: str | None = None  # the host's node, bound in a user namespace (None: /dev/<name>)


class DeviceRule(Record):
    type: str  # c | b | a
    major: int | None  # None: any
    minor: int | None
    access: str  # any of r, w, m


class Preset(Record):
    paths: tuple[str, ...]  # host nodes; a path ending in / is every node in that directory
    caps: tuple[str, ...] = ()  # what using the device needs, kept even if dropped
    doc: str = ""


PRESETS = {
    "tun": Preset(("/dev/net/tun",), ("net_admin",), "TUN/TAP devices (VPNs, tunctl)"),
    "fuse": Preset(("/dev/fuse",), ("sys_admin",), "FUSE filesystems (sshfs, rclone)"),
    "kvm": Preset(("/dev/kvm",), (), "hardware virtualisation (a VM inside)"),
    "dri": Preset(("/dev/dri/",), (), "the GPU's DRM nodes (card*, renderD*)"),
}


class HostNode(Record):
    """What a host path is: kind c | b | f (a file) | d (a directory) | - (another
    kind) | "" (cannot be reached)."""

    kind: str
    major: int = 0
    minor: int = 0
    mode: int = 0o600
    errno: int = 0  # kind "": why


class HostDevices(Record):
    """The host's answers for a domain's devices (launch/hostdevices.py)."""

    nodes: dict[str, HostNode] = factory(dict)  # host path → what it is
    listings: dict[str, tuple[str, ...]] = factory(dict)  # a preset's directory → its nodes
    usb: tuple[str | None, ...] = ()  # per USB hostdev: its node (None: missing, optional)


# what the container's /dev holds already (launch/plan.py's nodes and links)
_TAKEN = {"null", "zero", "full", "random", "urandom", "tty", "ptmx", "fd", "stdin", "stdout",
          "stderr", "console", "pts", "shm", "mqueue"}  # fmt: skip


def wanted(dom: m.DomainDef) -> list[str]:
    """The host paths look_up must answer for (USB nodes are found in sysfs)."""
    paths = [
        h.source
        for h in dom.devices.hostdevs
        if h.mode == "capabilities" and h.type in ("storage", "misc") and h.source
    ]
    paths += [d.source for d in dom.devices.disks if d.type == "block" and d.source]
    paths += [f.source for f in dom.devices.filesystems if f.type in ("block", "file") and f.source]
    paths += [d.source for d in dom.devices.disks if d.type == "file" and d.source]
    for name in dom.containment.device_presets:
        paths += PRESETS[name].paths
    return list(dict.fromkeys(paths))


def check_filesystems(dom: m.DomainDef, host: HostDevices) -> None:
    """A block filesystem's source is a block device, an image's (a filesystem's or a
    disk's) a file, all of them there."""
    for fs in dom.devices.filesystems:
        if fs.type not in ("block", "file") or not fs.source:
            continue
        found = host.nodes.get(fs.source, HostNode(""))
        if not found.kind:
            raise HostError(f"Unable to access {fs.source}", found.errno or errno.ENOENT)
        if fs.type == "block" and found.kind != "b":
            raise HostError(f"Filesystem source {fs.source} must be a block device", errno.EINVAL)
        if fs.type == "file" and found.kind != "f":
            raise HostError(f"Filesystem source {fs.source} must be an image file", errno.EINVAL)
    for d in dom.devices.disks:
        found = host.nodes.get(d.source or "", HostNode(""))
        if d.type == "file" and d.source and found.kind != "f":
            if not found.kind:
                raise HostError(f"Unable to access {d.source}", found.errno or errno.ENOENT)
            raise HostError(f"Disk source {d.source} must be an image file", errno.EINVAL)


def inside_name(path: str) -> str:
    """Where libvirt puts a host node: its path less the first component, under /dev."""
    return path.strip("/").partition("/")[2] or path.strip("/")


def _node(path: str, node: HostNode, want: str, message: str) -> DevNode:
    if not node.kind:
        raise HostError(f"Unable to access {path}", node.errno or errno.ENOENT)
    if node.kind != want:
        raise HostError(message.format(path), errno.EINVAL)
    return DevNode(inside_name(path), node.kind, node.major, node.minor, node.mode & 0o777, path)


def passed(dom: m.DomainDef, host: HostDevices,
           consoles: int = 1) -> tuple[list[DevNode], list[DeviceRule], list[str]]:  # fmt: skip
    """The nodes, rules and needed capabilities of the devices `dom` passes in."""
    nodes: list[tuple[DevNode, str]] = []  # with the rule's access
    caps: list[str] = []
    usb = iter(host.usb)
    for h in dom.devices.hostdevs:
        if h.mode == "subsystem" and h.type == "usb":
            path = next(usb, None)
            if path is not None:
                found = host.nodes.get(path, HostNode(""))
                nodes.append((_node(path, found, "c", "USB source {} was not a character device"),
                              "rwm"))  # fmt: skip
        elif h.mode == "capabilities" and h.type in ("storage", "misc"):
            want = "b" if h.type == "storage" else "c"
            kind = "block" if want == "b" else "character"
            if not h.source:
                raise Unsupported(f"Missing {h.type} host {kind} path")
            found = host.nodes.get(h.source, HostNode(""))
            # libvirt's words, its "Storage source" for misc ones included
            message = f"Storage source {{}} must be a {kind} device"
            nodes.append((_node(h.source, found, want, message), "rwm"))
    for d in dom.devices.disks:
        if d.type == "block":
            if not d.source:
                raise Unsupported("Can't setup disk without media")
            found = host.nodes.get(d.source, HostNode(""))
            node = _node(d.source, found, "b", "Disk source {} must be a block device")
            nodes.append((_with_name(node, d.target_dev), "rm" if d.readonly else "rwm"))
    for name in dom.containment.device_presets:
        preset = PRESETS[name]
        caps += preset.caps
        for path in preset.paths:
            listed = host.listings.get(path, ()) if path.endswith("/") else (path,)
            if not listed or not host.nodes.get(listed[0], HostNode("")).kind:
                raise Unsupported(f"the device preset '{name}' needs {path.rstrip('/')}, "
                                  "which this host does not have")  # fmt: skip
            for one in listed:
                nodes.append((_node(one, host.nodes[one], "c",
                                    f"the device preset '{name}' wants {{}}, which is not a "
                                    "character device"), "rwm"))  # fmt: skip
    return _unique(nodes, consoles), _rules(nodes), list(dict.fromkeys(caps))


def _with_name(node: DevNode, name: str) -> DevNode:
    return DevNode(name, node.type, node.major, node.minor, node.mode, node.source)


def _unique(nodes: list[tuple[DevNode, str]], consoles: int) -> list[DevNode]:
    """Each place once; a place the container's /dev has already is refused."""
    taken = _TAKEN | {f"tty{i + 1}" for i in range(consoles)}
    out: dict[str, DevNode] = {}
    for node, _ in nodes:
        first = out.get(node.name)
        if first is not None and (first.type, first.major, first.minor) == (
                node.type, node.major, node.minor):  # fmt: skip
            continue
        if first is not None or node.name.split("/")[0] in taken or ".." in node.name.split("/"):
            raise Unsupported(f"the host device {node.source} would be /dev/{node.name} "
                              "inside, which the container has already")  # fmt: skip
        out[node.name] = node
    return list(out.values())


def _rules(nodes: list[tuple[DevNode, str]]) -> list[DeviceRule]:
    rules: dict[tuple[str, int, int], str] = {}
    for node, access in nodes:
        key = (node.type, node.major, node.minor)
        given = rules.get(key, "")
        rules[key] = "".join(c for c in "rwm" if c in given + access)
    return [DeviceRule(t, ma, mi, a) for (t, ma, mi), a in rules.items()]
