"""libvirt's <network> format: parse (hardened, schema-checked, with file:line errors
as for domains), check, define-time defaults, and format as `virsh net-dumpxml` does."""

from __future__ import annotations

import ipaddress
import uuid as uuidlib
from dataclasses import dataclass, field, replace
from typing import Any

from nsvirt.driver.domxml.defaults import random_mac
from nsvirt.driver.domxml.formatter import escape
from nsvirt.driver.errors import ConfigError

SCHEMA = "network.xsd"


@dataclass(frozen=True, slots=True)
class DhcpHost:
    ip: str
    mac: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class NetIp:
    address: str
    prefix: int
    family: str  # ipv4 | ipv6
    netmask_given: bool = False  # written back as netmask= (else prefix=)
    ranges: tuple[tuple[str, str], ...] = ()  # DHCP (start, end)
    hosts: tuple[DhcpHost, ...] = ()

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_interface(f"{self.address}/{self.prefix}").network


@dataclass(frozen=True, slots=True)
class NetworkDef:
    name: str
    uuid: str | None = None
    title: str | None = None
    description: str | None = None
    forward: str | None = None  # nat | route | open; None: isolated
    forward_dev: str | None = None
    nat_ports: tuple[int, int] | None = None
    bridge: str | None = None
    stp: str | None = None
    delay: int | None = None
    mac: str | None = None
    domain: str | None = None
    domain_local: str | None = None
    ips: tuple[NetIp, ...] = field(default=())

    @property
    def dhcp(self) -> bool:
        return any(ip.ranges or ip.hosts for ip in self.ips)


def load(data: bytes, source: str = "") -> NetworkDef:
    """Untrusted network XML → a checked NetworkDef (errors name file and line)."""
    from nsvirt.driver.domxml import parser

    root = parser.read_tree(data, source, "network", SCHEMA)
    try:
        net = _build(root)
        check(net)
    except ConfigError as e:
        line = parser._line_of(root, e.path)
        raise ConfigError(e.reason, source=source, line=line, path=e.path) from None
    return net


def _build(root: Any) -> NetworkDef:
    fwd, br, nat = root.find("forward"), root.find("bridge"), root.find("forward/nat/port")
    dom = root.find("domain")
    return NetworkDef(
        name=root.findtext("name"),
        uuid=str(uuidlib.UUID(root.findtext("uuid").strip()))
        if root.find("uuid") is not None
        else None,
        title=root.findtext("title"),
        description=root.findtext("description"),
        forward=(fwd.get("mode") or "nat") if fwd is not None else None,
        forward_dev=fwd.get("dev") if fwd is not None else None,
        nat_ports=(int(nat.get("start")), int(nat.get("end"))) if nat is not None else None,
        bridge=br.get("name") if br is not None else None,
        stp=br.get("stp") if br is not None else None,
        delay=int(br.get("delay")) if br is not None and br.get("delay") else None,
        mac=root.find("mac").get("address").lower() if root.find("mac") is not None else None,
        domain=dom.get("name") if dom is not None else None,
        domain_local=dom.get("localOnly") if dom is not None else None,
        ips=tuple(_ip(el, n) for n, el in enumerate(root.iterfind("ip"), 1)),
    )


def _ip(el: Any, n: int) -> NetIp:
    address = el.get("address")
    version = ipaddress.ip_address(address).version
    family = el.get("family") or f"ipv{version}"
    if family != f"ipv{version}":
        raise ConfigError(f"address {address} is not of family {family}", path=f"/network/ip[{n}]")
    if el.get("netmask"):
        prefix = ipaddress.ip_network(f"0.0.0.0/{el.get('netmask')}").prefixlen
    elif el.get("prefix"):
        prefix = int(el.get("prefix"))
    else:
        raise ConfigError(f"ip {address} needs a netmask or a prefix", path=f"/network/ip[{n}]")
    dhcp = el.find("dhcp")
    ranges = (
        tuple((r.get("start"), r.get("end")) for r in dhcp.iterfind("range"))
        if dhcp is not None
        else ()
    )
    hosts = (
        tuple(
            DhcpHost(h.get("ip"), (h.get("mac") or "").lower() or None, h.get("name"))
            for h in dhcp.iterfind("host")
        )
        if dhcp is not None
        else ()
    )
    return NetIp(address, prefix, family, bool(el.get("netmask")), ranges, hosts)


# ---------------------------------------------------------------- checks


def check(net: NetworkDef) -> None:
    """What the schema cannot say: names fit, addresses fit their prefix, DHCP ranges
    lie in their subnet, one IPv4 subnet carries DHCP."""
    if net.bridge is not None and (len(net.bridge.encode()) > 15 or "/" in net.bridge):
        raise ConfigError(
            f"bridge name '{net.bridge}' is not a valid interface name (at most 15 bytes, no '/')",
            path="/network/bridge/@name",
        )
    if net.nat_ports and net.nat_ports[0] > net.nat_ports[1]:
        raise ConfigError(
            "the NAT port range ends before it starts", path="/network/forward/nat/port"
        )
    dhcp_v4 = 0
    for n, ip in enumerate(net.ips, 1):
        path = f"/network/ip[{n}]"
        limit = 32 if ip.family == "ipv4" else 128
        if not 0 < ip.prefix <= limit:
            raise ConfigError(
                f"prefix {ip.prefix} does not fit the address {ip.address}", path=path
            )
        subnet = ip.network
        if (
            ipaddress.ip_address(ip.address) in (subnet.network_address, subnet.broadcast_address)
            and limit == 32
            and ip.prefix < 31
        ):
            raise ConfigError(
                f"{ip.address} is the network's own or broadcast address, not one for the bridge",
                path=path,
            )
        for k, (start, end) in enumerate(ip.ranges, 1):
            where = f"{path}/dhcp/range[{k}]"
            first, last = ipaddress.ip_address(start), ipaddress.ip_address(end)
            if first not in subnet or last not in subnet:
                raise ConfigError(f"DHCP range {start}-{end} is not in {subnet}", path=where)
            if first > last:
                raise ConfigError(f"DHCP range {start}-{end} ends before it starts", path=where)
        for k, host in enumerate(ip.hosts, 1):
            if ipaddress.ip_address(host.ip) not in subnet:
                raise ConfigError(
                    f"DHCP host address {host.ip} is not in {subnet}", path=f"{path}/dhcp/host[{k}]"
                )
        if ip.family == "ipv4" and (ip.ranges or ip.hosts):
            dhcp_v4 += 1
            if dhcp_v4 > 1:
                raise ConfigError("DHCP is offered on one IPv4 subnet only", path=f"{path}/dhcp")


def at_define(net: NetworkDef, taken_bridges: set[str], prefix: str) -> NetworkDef:
    """libvirt's define-time defaults: a uuid, a bridge name (the first free
    `prefix`N), a MAC for the bridge, STP on with no delay."""
    bridge = net.bridge
    if bridge is None:
        n = 0
        while f"{prefix}{n}" in taken_bridges:
            n += 1
        bridge = f"{prefix}{n}"
    return replace(
        net,
        uuid=net.uuid or str(uuidlib.uuid4()),
        bridge=bridge,
        stp=net.stp or "on",
        delay=net.delay if net.delay is not None else 0,
        mac=net.mac or random_mac(),
    )


# ---------------------------------------------------------------- format


def format_network(net: NetworkDef) -> str:
    """The network as `virsh net-dumpxml` writes it."""
    lines = ["<network>", f"  <name>{escape(net.name)}</name>"]
    if net.uuid:
        lines.append(f"  <uuid>{net.uuid}</uuid>")
    for tag in ("title", "description"):
        value = getattr(net, tag)
        if value is not None:
            lines.append(f"  <{tag}>{escape(value)}</{tag}>")
    if net.forward:
        dev = f" dev='{escape(net.forward_dev)}'" if net.forward_dev else ""
        if net.nat_ports:
            start, end = net.nat_ports
            lines += [
                f"  <forward mode='{net.forward}'{dev}>",
                "    <nat>",
                f"      <port start='{start}' end='{end}'/>",
                "    </nat>",
                "  </forward>",
            ]
        else:
            lines.append(f"  <forward mode='{net.forward}'{dev}/>")
    if net.bridge or net.stp or net.delay is not None:
        attrs = "".join(
            f" {k}='{escape(str(v))}'"
            for k, v in (("name", net.bridge), ("stp", net.stp), ("delay", net.delay))
            if v is not None
        )
        lines.append(f"  <bridge{attrs}/>")
    if net.mac:
        lines.append(f"  <mac address='{net.mac}'/>")
    if net.domain:
        local = f" localOnly='{net.domain_local}'" if net.domain_local else ""
        lines.append(f"  <domain name='{escape(net.domain)}'{local}/>")
    for ip in net.ips:
        family = " family='ipv6'" if ip.family == "ipv6" else ""
        size = f" netmask='{ip.network.netmask}'" if ip.netmask_given else f" prefix='{ip.prefix}'"
        head = f"  <ip{family} address='{ip.address}'{size}"
        if not (ip.ranges or ip.hosts):
            lines.append(head + "/>")
            continue
        lines += [head + ">", "    <dhcp>"]
        lines += [f"      <range start='{s}' end='{e}'/>" for s, e in ip.ranges]
        for h in ip.hosts:
            attrs = "".join(
                f" {k}='{escape(v)}'"
                for k, v in (("mac", h.mac), ("name", h.name), ("ip", h.ip))
                if v
            )
            lines.append(f"      <host{attrs}/>")
        lines += ["    </dhcp>", "  </ip>"]
    lines.append("</network>")
    return "\n".join(lines) + "\n"
