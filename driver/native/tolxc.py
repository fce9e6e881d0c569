"""A domain definition → an LXC container config (LXC ≥ 3.0 keys, cgroup v2 limits):
`domxml-to-native lxc-tools` (libvirt has none), so users can go back. Every part of
the definition LXC has no key for is named in a comment at the top, never dropped
silently. Pure: a DomainDef in, text out."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nsvirt.driver.domxml.model import DomainDef, IpAddress, Route


def config(dom: DomainDef) -> str:
    """The config text; its first lines say what it cannot carry."""
    out = [f"lxc.uts.name = {dom.name}"]
    lost: list[str] = []
    root = next((f for f in dom.devices.filesystems if f.target == "/"), None)
    out.append(f"lxc.rootfs.path = {root.source if root and root.source else '/'}")
    if root is not None and root.readonly:
        out.append("lxc.rootfs.options = ro")
    if dom.os.arch:
        out.append(f"lxc.arch = {dom.os.arch}")
    init = shlex.join([dom.os.init or "/sbin/init", *dom.os.initargs])
    out.append(f"lxc.init.cmd = {init}")
    if dom.os.initdir:
        out.append(f"lxc.init.cwd = {dom.os.initdir}")
    if dom.os.inituser or dom.os.initgroup:
        lost.append("<os><inituser>/<initgroup> (LXC takes numeric lxc.init.uid/gid)")
    out += [f"lxc.environment = {k}={v}" for k, v in dom.os.initenv]
    out += _mounts(dom, lost)
    out += _limits(dom, lost)
    for kind, maps in (("u", dom.uid_map), ("g", dom.gid_map)):
        out += [f"lxc.idmap = {kind} {m.start} {m.target} {m.count}" for m in maps]
    out += _network(dom, lost)
    consoles = max(1, len(dom.devices.consoles))
    out.append(f"lxc.tty.max = {consoles}")
    dropped = [name for name, on in dom.cap_states if not on]
    if dropped:
        out.append(f"lxc.cap.drop = {' '.join(dropped)}")
    if any(on for _, on in dom.cap_states) or dom.cap_policy == "deny":
        lost.append("<features><capabilities> kept on (or policy='deny'): LXC drops, it does "
                    "not keep only")  # fmt: skip
    for what, present in (
        ("<devices><hostdev> (storage/misc/usb): add lxc.mount.entry and lxc.cgroup2."
         "devices.allow lines by hand", any(h.type != "net" for h in dom.devices.hostdevs)),
        ("<devices><disk>", bool(dom.devices.disks)),
        ("<seclabel>", bool(dom.seclabels)),
        ("<lxc:namespace> sharing", bool(dom.shared_namespaces)),
        ("<on_poweroff>/<on_reboot>/<on_crash> other than LXC's", (dom.on_poweroff,
         dom.on_reboot, dom.on_crash) != ("destroy", "restart", "destroy")),
        ("<clock> other than utc", dom.clock.offset != "utc"),
        ("<metadata>", bool(dom.metadata)),
        ("<title>/<description>", bool(dom.title or dom.description)),
    ):  # fmt: skip
        if present:
            lost.append(what)
    header = [f"# LXC config of domain {dom.name!r}, made by nsvirsh domxml-to-native"]
    header += [f"# not carried: {what}" for what in lost]
    return "\n".join(header + out) + "\n"


def _mounts(dom: DomainDef, lost: list[str]) -> list[str]:
    out = []
    for fs in dom.devices.filesystems:
        if fs.target == "/":
            continue
        target = fs.target.lstrip("/")
        ro = ",ro" if fs.readonly else ""
        if fs.type == "ram":
            out.append(f"lxc.mount.entry = tmpfs {target} tmpfs size={fs.usage_kib}k{ro}"
                       f",create=dir 0 0")  # fmt: skip
        elif fs.type in ("mount", "bind"):
            out.append(f"lxc.mount.entry = {fs.source} {target} none bind{ro} 0 0")
        else:
            lost.append(f"<filesystem type='{fs.type}'> on {fs.target}")
    return out


def _limits(dom: DomainDef, lost: list[str]) -> list[str]:
    out = []
    mt = dom.memtune
    hard = (mt.hard_limit if mt else None) or dom.current_memory or dom.memory
    out.append(f"lxc.cgroup2.memory.max = {hard * 1024}")
    if mt and mt.soft_limit:
        out.append(f"lxc.cgroup2.memory.high = {mt.soft_limit * 1024}")
    if mt and mt.swap_hard_limit:
        out.append(f"lxc.cgroup2.memory.swap.max = {max(0, mt.swap_hard_limit - hard) * 1024}")
    if mt and mt.min_guarantee:
        lost.append("<memtune><min_guarantee>")
    ct = dom.cputune
    if ct and ct.shares:  # v1's shares 2..262144 → v2's weight 1..10000, the kernel's map
        out.append(f"lxc.cgroup2.cpu.weight = {1 + (ct.shares - 2) * 9999 // 262142}")
    if ct and ct.quota and ct.quota > 0:
        out.append(f"lxc.cgroup2.cpu.max = {ct.quota} {ct.period or 100000}")
    if dom.vcpu_cpuset:
        out.append(f"lxc.cgroup2.cpuset.cpus = {dom.vcpu_cpuset}")
    if dom.numatune and dom.numatune.nodeset:
        out.append(f"lxc.cgroup2.cpuset.mems = {dom.numatune.nodeset}")
    if dom.blkio_weight:
        out.append(f"lxc.cgroup2.io.weight = {dom.blkio_weight}")
    if dom.blkio_devices:
        lost.append("<blkiotune><device> (lxc.cgroup2.io.max needs the device's numbers)")
    if dom.pids_max:
        out.append(f"lxc.cgroup2.pids.max = {dom.pids_max}")
    return out


def _network(dom: DomainDef, lost: list[str]) -> list[str]:
    out: list[str] = []
    n = 0
    for iface in dom.devices.interfaces:
        key = f"lxc.net.{n}"
        if iface.type == "bridge":
            out += [f"{key}.type = veth", f"{key}.link = {iface.source}"]
        elif iface.type == "ethernet":
            out.append(f"{key}.type = veth")
        elif iface.type == "direct":
            out += [f"{key}.type = macvlan", f"{key}.link = {iface.source}",
                    f"{key}.macvlan.mode = {iface.source_mode or 'vepa'}"]  # fmt: skip
        else:
            lost.append(f"<interface type='{iface.type}'> (a libvirt network: use its bridge)")
            continue
        if iface.mac:
            out.append(f"{key}.hwaddr = {iface.mac}")
        if iface.guest_dev:
            out.append(f"{key}.name = {iface.guest_dev}")
        out.append(f"{key}.flags = {'down' if iface.link_state == 'down' else 'up'}")
        out += _addresses(key, iface.ips, iface.routes)
        n += 1
    for hostdev in dom.devices.hostdevs:
        if hostdev.type != "net":
            continue
        key = f"lxc.net.{n}"
        out += [f"{key}.type = phys", f"{key}.link = {hostdev.source}", f"{key}.flags = up"]
        out += _addresses(key, hostdev.ips, hostdev.routes)
        n += 1
    if n == 0:  # the host's network (LXC's none), or one of its own without interfaces
        out.append(f"lxc.net.0.type = {'empty' if dom.privnet else 'none'}")
    return out


def _addresses(key: str, ips: tuple[IpAddress, ...], routes: tuple[Route, ...]) -> list[str]:
    out = []
    for ip in ips:
        prefix = ip.prefix if ip.prefix is not None else (32 if ip.family == "ipv4" else 128)
        out.append(f"{key}.{ip.family}.address = {ip.address}/{prefix}")
    for route in routes:
        family = route.family or ("ipv6" if ":" in route.gateway else "ipv4")
        if route.address in ("0.0.0.0", "::"):
            out.append(f"{key}.{family}.gateway = {route.gateway}")
    return out
