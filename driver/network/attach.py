"""A container's interfaces, made and configured before its init runs (and for hot
plug while it runs), from the launch plan's NetIface entries.

    bridge, network, ethernet   a veth pair: the host end here (enslaved to the bridge,
                                or with the ethernet host-side addresses), its peer made
                                directly inside the container's network namespace
    direct                      a macvlan on the host device, moved inside
    hostdev                     the host's device itself, moved inside (and back by the
                                supervisor when the container stops)

Host ends are named <target dev>, or nv<tag>-N (the connection root's tag: found
again after a crash, never a name a libvirt on the same host uses). They live as
long as the container's namespace: the kernel deletes a veth pair, and a macvlan,
with it. `remove_host_ends` cleans after a start that failed or a supervisor killed
before that happened.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Sequence
from typing import Any

from nsvirt.driver.network.rtnl import NetlinkError, Rtnl, netns_of

MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthrough": 8}
NAME_ATTEMPTS = 64


def host_prefix(tag: str) -> str:
    """The prefix of automatic host-side names: nv<tag>- (nvsystem- for lxc:///system)."""
    return f"nv{tag or 'system'}-"


def attach(ifaces: Sequence[Any], init_pid: int, tag: str) -> list[dict[str, Any]]:
    """Make and configure `ifaces` for the container whose init is `init_pid`; return
    what was made (host, guest, mac, type of each). On failure, remove what it made."""
    made: list[str] = []
    nsfd = os.open(netns_of(init_pid), os.O_RDONLY | os.O_CLOEXEC)
    try:
        with Rtnl() as host, Rtnl(netns_of(init_pid)) as inside:
            taken = {str(link.get_attr("IFLA_IFNAME")) for link in host.links()}
            names = []
            for iface in ifaces:
                name = _create(host, iface, nsfd, tag, taken)
                if iface.type not in ("direct", "hostdev"):
                    made.append(name)
                names.append(name)
                _configure_host_end(host, iface, name)
            for iface in ifaces:
                _configure_inside(inside, iface)
            # a host device goes back by its index: the container may rename it, and
            # give its name to a device of its own
            indexes = [inside.index(i.guest) if i.type == "hostdev" else None for i in ifaces]
    except BaseException:
        remove_host_ends(made)
        raise
    finally:
        os.close(nsfd)
    return [
        {
            "host": None if i.type in ("direct", "hostdev") else n,
            "guest": i.guest,
            "mac": i.mac,
            "type": i.type,
            "source": i.network or i.bridge or i.source_dev,
            **({"index": x} if x is not None else {}),
        }
        for i, n, x in zip(ifaces, names, indexes, strict=True)
    ]


def _create(host: Rtnl, iface: Any, nsfd: int, tag: str, taken: set[str]) -> str:
    """Create the device pair or macvlan; return the host-side (or temporary) name."""
    if iface.type == "hostdev":
        _move_in(host, iface.source_dev, nsfd)
        return iface.source_dev
    for attempt in range(NAME_ATTEMPTS):
        name = iface.host or _free_name(tag, taken)
        taken.add(name)
        try:
            if iface.type == "direct":
                _create_macvlan(host, iface, name, nsfd)
            else:
                peer = {
                    "attrs": [
                        ("IFLA_IFNAME", iface.guest),
                        ("IFLA_ADDRESS", iface.mac),
                        ("IFLA_NET_NS_FD", nsfd),
                    ]
                }
                if iface.mtu:
                    peer["attrs"].append(("IFLA_MTU", iface.mtu))
                host.add_link(
                    name,
                    "veth",
                    f"cannot create the veth pair {name}",
                    data=[("VETH_INFO_PEER", peer)],
                )
            return name
        except NetlinkError as e:
            if e.errno != errno.EEXIST or iface.host or attempt == NAME_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _move_in(host: Rtnl, name: str, nsfd: int) -> None:
    try:
        index = host.index(name)
    except NetlinkError as e:
        what = f"cannot find the host device {name} of a network hostdev"
        raise NetlinkError(e.errno or errno.ENODEV, what) from None
    host.set_link(index, f"cannot move {name} into the container",
                  attrs=[("IFLA_NET_NS_FD", nsfd)])  # fmt: skip


def _free_name(tag: str, taken: set[str]) -> str:
    prefix = host_prefix(tag)
    n = 0
    while f"{prefix}{n}" in taken:
        n += 1
    return f"{prefix}{n}"


def _create_macvlan(host: Rtnl, iface: Any, name: str, nsfd: int) -> None:
    try:
        lower = host.index(iface.source_dev)
    except NetlinkError as e:
        raise NetlinkError(
            e.errno or errno.ENODEV,
            f"cannot find the host device {iface.source_dev} of a direct interface",
        ) from None
    mode = MACVLAN_MODES[iface.mode or "vepa"]
    host.add_link(
        name,
        "macvlan",
        f"cannot create a macvlan on {iface.source_dev}",
        data=[("IFLA_MACVLAN_MODE", mode)],
        attrs=[("IFLA_LINK", lower)],
    )
    index = host.index(name)
    try:  # into the container, renamed there in the same step
        host.set_link(
            index,
            f"cannot move {name} into the container",
            attrs=[("IFLA_NET_NS_FD", nsfd), ("IFLA_IFNAME", iface.guest)],
        )
    except BaseException:
        host.delete_link(index, f"cannot remove {name}")
        raise


def _configure_host_end(host: Rtnl, iface: Any, name: str) -> None:
    if iface.type in ("direct", "hostdev"):
        return
    index = host.index(name)
    attrs: list = [("IFLA_MTU", iface.mtu)] if iface.mtu else []
    if iface.bridge:
        try:
            bridge = host.index(iface.bridge)
        except NetlinkError:
            raise NetlinkError(
                errno.ENODEV,
                f"cannot attach {name} to the bridge {iface.bridge}: it does not exist",
            ) from None
        attrs.append(("IFLA_MASTER", bridge))
    # <link state='down'/>: the host end down, so the container sees no carrier
    host.set_link(index, f"cannot set up {name}", up=iface.up, attrs=attrs)
    for addr in iface.host_ips:
        host.add_address(
            index, addr.address, addr.prefix, f"cannot add {addr.address} to {name}", peer=addr.peer
        )
    for route in iface.host_routes:
        host.add_route(
            route.dest,
            route.prefix,
            route.gateway,
            index,
            f"cannot add the route to {route.dest} via {name}",
            route.metric,
        )


def _configure_inside(inside: Rtnl, iface: Any) -> None:
    index = inside.index(iface.guest)
    attrs: list = [("IFLA_ADDRESS", iface.mac)] if iface.mac else []  # a hostdev keeps its own
    if iface.mtu:
        attrs.append(("IFLA_MTU", iface.mtu))
    up = iface.up if iface.type in ("direct", "hostdev") else True  # a veth's: its host end's
    inside.set_link(index, f"cannot set up {iface.guest} in the container", up=up, attrs=attrs)
    for addr in iface.ips:
        inside.add_address(
            index,
            addr.address,
            addr.prefix,
            f"cannot add {addr.address} to {iface.guest}",
            peer=addr.peer,
        )
    for route in iface.routes:
        inside.add_route(
            route.dest,
            route.prefix,
            route.gateway,
            index,
            f"cannot add the route to {route.dest}/{route.prefix} via {route.gateway}",
            route.metric,
        )


def remove_host_ends(names: Iterable[str | None]) -> list[str]:
    """Delete host-side devices by name (those that are gone already are skipped);
    return the names removed."""
    removed = []
    with Rtnl() as host:
        for name in names:
            if not name:
                continue
            try:
                host.delete_link(host.index(name), f"cannot remove {name}")
                removed.append(name)
            except NetlinkError as e:
                if e.errno not in (errno.ENODEV, errno.ENOENT):
                    raise
    return removed


def leftover_host_ends(tag: str) -> list[str]:
    """Host-side devices with this root's automatic prefix (after a crash)."""
    prefix = host_prefix(tag)
    with Rtnl() as host:
        names = [str(link.get_attr("IFLA_IFNAME")) for link in host.links()]
    return [n for n in names if n.startswith(prefix)]
