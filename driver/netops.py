"""A running domain's interfaces: their addresses, counters and link state, and hot
plug (libvirt's virDomainInterfaceAddresses, InterfaceStats, UpdateDeviceFlags for
<link>, AttachDeviceFlags / DetachDeviceFlags of an <interface>). A mixin of Domain.

The container's side is read and changed through a netlink socket made in its
network namespace (network/rtnl.py); the host side through one made here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nsvirt.driver.errors import InvalidArgument, OperationFailed, OperationInvalid, Unsupported
from nsvirt.driver.records import replace
from nsvirt.driver.runtime import sockets
from nsvirt.driver.state import files

if TYPE_CHECKING:
    import contextlib

    from nsvirt.driver.connection import Connection
    from nsvirt.driver.domxml import model as m
    from nsvirt.driver.state.runstate import RunState

STAT_KEYS = (
    "rx_bytes",
    "rx_packets",
    "rx_errs",
    "rx_drop",
    "tx_bytes",
    "tx_packets",
    "tx_errs",
    "tx_drop",
)


class Interfaces:
    conn: Connection
    name: str

    if TYPE_CHECKING:  # provided by Domain

        def _lock(self) -> contextlib.AbstractContextManager[None]: ...
        def _live(self) -> RunState: ...
        def _live_locked(self) -> RunState: ...
        def _call(self, request: dict[str, Any], timeout: float | None = ...) -> dict: ...
        def is_active(self) -> bool: ...
        def is_persistent(self) -> bool: ...
        def definition(self, inactive: bool = False) -> m.DomainDef: ...
        def _write_live_xml(
            self, dom: m.DomainDef, pid: int, ttys: list[str], interfaces: list[dict[str, Any]]
        ) -> None: ...

    # ------------------------------------------------------------ finding one

    def _find(self, key: str, inactive: bool = False) -> m.Interface:
        """The interface `key` names: its MAC, host-side (target) or guest name."""
        dom = self.definition(inactive=inactive)
        from nsvirt.driver.domxml.validate import guest_names

        wanted = key.lower()
        for iface, guest in zip(dom.devices.interfaces, guest_names(dom), strict=True):
            if wanted in (iface.mac, iface.target_dev, guest):
                return iface
        raise InvalidArgument(f"'{key}' is not a known interface")

    # ------------------------------------------------------------ addresses, counters

    def interface_addresses(self, source: str = "netns") -> list[dict[str, Any]]:
        """Each interface's name, MAC and addresses [(family, address, prefix)]: from the
        container's namespace (`netns`), or from nsvirt's DHCP leases (`lease`)."""
        state = self._live()
        if source == "lease":
            return self._lease_addresses()
        if source != "netns":
            raise Unsupported(f"interface addresses from the source '{source}'")
        from nsvirt.driver.network.rtnl import Rtnl, netns_of

        with Rtnl(netns_of(state.init_pid)) as inside:
            links = {int(link["index"]): link for link in inside.links()}
            addrs = inside.addresses()
        out = []
        for index, link in sorted(links.items()):
            name = str(link.get_attr("IFLA_IFNAME"))
            if name == "lo":
                continue
            found = [
                (
                    "ipv6" if a["family"] == sockets.AF_INET6 else "ipv4",
                    str(a.get_attr("IFA_LOCAL") or a.get_attr("IFA_ADDRESS")),
                    int(a["prefixlen"]),
                )
                for a in addrs
                if int(a["index"]) == index
            ]
            out.append({"name": name, "mac": str(link.get_attr("IFLA_ADDRESS")), "addrs": found})
        return out

    def _lease_addresses(self) -> list[dict[str, Any]]:
        from nsvirt.driver.network import networks

        dom = self.definition()
        out = []
        for iface in dom.devices.interfaces:
            if iface.type != "network" or not iface.source:
                continue
            net = networks.Network(self.conn, iface.source)
            prefixes = {}
            try:
                prefixes = {ip.network: ip.prefix for ip in net.definition().ips}
            except Exception:
                pass
            import ipaddress

            addrs = []
            for lease in net.leases():
                if lease["mac"] == iface.mac:
                    ip = ipaddress.ip_address(lease["ip"])
                    prefix = next((p for n, p in prefixes.items() if ip in n), 32)
                    addrs.append((f"ipv{ip.version}", lease["ip"], prefix))
            out.append({"name": iface.target_dev or "-", "mac": iface.mac, "addrs": addrs})
        return out

    def interface_stats(self, key: str) -> dict[str, int]:
        """Traffic counters of one interface, as the container sees them."""
        state = self._live()
        iface = self._find(key)
        from nsvirt.driver.network.rtnl import Rtnl, netns_of

        veth = iface.type != "direct" and iface.target_dev
        with Rtnl(None if veth else netns_of(state.init_pid)) as ip:
            name = iface.target_dev if veth else self._guest_name(iface)
            link = ip.link(str(name))
        stats = link.get_attr("IFLA_STATS64") or link.get_attr("IFLA_STATS")
        values = {
            k: int(stats[k])
            for k in (
                "rx_bytes",
                "rx_packets",
                "rx_errors",
                "rx_dropped",
                "tx_bytes",
                "tx_packets",
                "tx_errors",
                "tx_dropped",
            )
        }
        ours = dict(zip(STAT_KEYS, values.values(), strict=True))
        if veth:  # the host end's receive is the container's send (libvirt swaps them too)
            ours = {k: ours[("tx" if k.startswith("rx") else "rx") + k[2:]] for k in STAT_KEYS}
        return ours

    def _guest_name(self, iface: m.Interface) -> str:
        from nsvirt.driver.domxml.validate import guest_names

        dom = self.definition()
        return guest_names(dom)[dom.devices.interfaces.index(iface)]

    # ------------------------------------------------------------ link state

    def interface_link(self, key: str, config: bool = False) -> str:
        """`up` or `down`, as <link state> says (live: the device's state)."""
        iface = self._find(key, inactive=config)
        return iface.link_state or "up"

    def set_interface_link(self, key: str, state: str, *, live: bool, config: bool) -> None:
        """Set <link state>: live by taking the host end (or a macvlan) up or down, so
        the container sees the carrier come and go (libvirt refuses it live for LXC)."""
        self.conn.require_writable("virDomainUpdateDeviceFlags")
        if state not in ("up", "down"):
            raise InvalidArgument(f"invalid link state '{state}'")
        with self._lock():
            if live:
                run = self._live_locked()
                iface = self._find(key)
                from nsvirt.driver.network.rtnl import Rtnl, netns_of

                veth = iface.type != "direct"
                with Rtnl(None if veth else netns_of(run.init_pid)) as ip:
                    name = iface.target_dev if veth else self._guest_name(iface)
                    ip.set_link(ip.index(str(name)), f"cannot set {name} {state}", up=state == "up")
                dom = self.definition()
                self._write_live(_with_link(dom, iface.mac, state), run)
            if config:
                dom = self.definition(inactive=True)
                iface = self._find(key, inactive=True)
                self._store(_with_link(dom, iface.mac, state))

    # ------------------------------------------------------------ hot plug

    def attach_interface(self, xml: str, *, live: bool, config: bool) -> None:
        """Add an <interface> to the running container (made at once) and/or to the
        persistent definition."""
        self.conn.require_writable("virDomainAttachDeviceFlags")
        from nsvirt.driver.domxml import parser

        with self._lock():
            if live:
                run = self._live_locked()
                dom = self.definition()
                new = _parse_interface(xml, dom, parser)
                made = self._plug(run, dom, new)
                interfaces = [*run.interfaces, *made]
                self._call({"op": "interfaces", "interfaces": interfaces})
                host = made[0]["host"]
                plugged = replace(new, target_dev=host or new.target_dev)
                self._write_live(
                    _with_devices(dom, (*dom.devices.interfaces, plugged)), run, interfaces
                )
            if config:
                dom = self.definition(inactive=True)
                new = _parse_interface(xml, dom, parser)
                self._store(_with_devices(dom, (*dom.devices.interfaces, new)))

    def _plug(self, run: RunState, dom: m.DomainDef, new: m.Interface) -> list[dict[str, Any]]:
        from nsvirt.driver.domxml.validate import guest_names
        from nsvirt.driver.launch import plan
        from nsvirt.driver.lifecycle import _network_bridges
        from nsvirt.driver.network.attach import attach

        with_new = _with_devices(dom, (*dom.devices.interfaces, new))
        if new.guest_dev is None:  # the first ethN free inside
            taken = set(guest_names(dom))
            n = 0
            while f"eth{n}" in taken:
                n += 1
            with_new = _with_devices(
                dom, (*dom.devices.interfaces, replace(new, guest_dev=f"eth{n}"))
            )
        nic = plan.interfaces(with_new, _network_bridges(self.conn, with_new))[-1]
        try:
            return attach([nic], run.init_pid, self.conn.paths.tag())
        except OSError as e:
            raise OperationFailed(f"cannot attach the interface: {e}") from None

    def detach_interface(
        self, *, mac: str | None, type_: str | None, live: bool, config: bool
    ) -> None:
        """Remove the interface of that MAC (or the only one of that type)."""
        self.conn.require_writable("virDomainDetachDeviceFlags")
        with self._lock():
            if live:
                run = self._live_locked()
                dom = self.definition()
                gone = _choose(dom, mac, type_)
                self._unplug(run, dom, gone)
                interfaces = [i for i in run.interfaces if i.get("mac") != gone.mac]
                self._call({"op": "interfaces", "interfaces": interfaces})
                kept = tuple(i for i in dom.devices.interfaces if i.mac != gone.mac)
                self._write_live(_with_devices(dom, kept), run, interfaces)
            if config:
                dom = self.definition(inactive=True)
                gone = _choose(dom, mac, type_)
                kept = tuple(i for i in dom.devices.interfaces if i.mac != gone.mac)
                self._store(_with_devices(dom, kept))

    def detach_interface_xml(self, xml: str, *, live: bool, config: bool) -> None:
        """detach-device of an <interface>: the one its MAC (or, alone, its type) names."""
        from nsvirt.driver.domxml import parser

        _, raw = _fragment(xml, self.definition(inactive=not live), parser)
        self.detach_interface(mac=raw.mac, type_=raw.type, live=live, config=config)

    def _unplug(self, run: RunState, dom: m.DomainDef, gone: m.Interface) -> None:
        from nsvirt.driver.network.rtnl import NetlinkError, Rtnl, netns_of

        name = self._guest_name(gone)
        try:  # a veth pair goes with either end; a macvlan lives inside
            with Rtnl(netns_of(run.init_pid)) as inside:
                inside.delete_link(inside.index(name), f"cannot remove {name}")
        except NetlinkError as e:
            raise OperationFailed(f"cannot detach the interface: {e}") from None

    # ------------------------------------------------------------ writing definitions

    def _write_live(
        self, dom: m.DomainDef, run: RunState, interfaces: list[dict[str, Any]] | None = None
    ) -> None:
        self._write_live_xml(
            dom,
            run.supervisor_pid,
            run.consoles,
            run.interfaces if interfaces is None else interfaces,
        )

    def _store(self, dom: m.DomainDef) -> None:
        from nsvirt.driver import domxml

        if not self.is_persistent():
            raise OperationInvalid("transient domains do not have any persistent config")
        text = domxml.format(dom).encode()
        domxml.load(text, source=self.name)  # what is stored must validate
        files.write_atomic(self.conn.paths.config(self.name), text)


def _with_devices(dom: m.DomainDef, interfaces: tuple[m.Interface, ...]) -> m.DomainDef:
    return replace(dom, devices=replace(dom.devices, interfaces=interfaces))


def _with_link(dom: m.DomainDef, mac: str | None, state: str) -> m.DomainDef:
    nics = tuple(
        replace(i, link_state=None if state == "up" else "down") if i.mac == mac else i
        for i in dom.devices.interfaces
    )
    return _with_devices(dom, nics)


def _fragment(xml: str, dom: m.DomainDef, parser: Any) -> tuple[Any, m.Interface]:
    """An <interface> document (the schema's and the model's view of it, as part of
    the domain it joins): its parsed document and the interface as written."""
    from nsvirt.driver.domxml import formatter

    fragment = xml.strip()
    if not fragment.startswith("<interface"):
        raise Unsupported("an interface's XML must be an <interface> element")
    skeleton = formatter.format_domain(replace(dom, devices=replace(dom.devices, interfaces=())))
    whole = skeleton.replace("<devices>", f"<devices>\n{fragment}", 1)
    doc = parser.read(whole.encode(), "interface")
    return doc, doc.build().devices.interfaces[0]


def _parse_interface(xml: str, dom: m.DomainDef, parser: Any) -> m.Interface:
    """An <interface> to attach: define's defaults added (a MAC), checked with the rest."""
    from nsvirt.driver.domxml import defaults, validate

    doc, raw = _fragment(xml, dom, parser)
    new = defaults.at_define(_with_devices(dom, (raw,)), dom.os.arch or "x86_64")
    nic = new.devices.interfaces[0]
    doc.located(validate.check, _with_devices(dom, (*dom.devices.interfaces, nic)))
    return nic


def _choose(dom: m.DomainDef, mac: str | None, type_: str | None) -> m.Interface:
    nics = [i for i in dom.devices.interfaces if type_ is None or i.type == type_]
    if mac is not None:
        found = [i for i in nics if i.mac == mac.lower()]
        if not found:
            raise OperationFailed(f"No interface with MAC address {mac} was found")
        return found[0]
    if not nics:
        raise OperationFailed(f"No interface found whose type is {type_}")
    if len(nics) > 1:
        raise OperationFailed(
            f"Domain has {len(nics)} interfaces. Please specify which one to detach using --mac"
        )
    return nics[0]
