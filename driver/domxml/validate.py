"""Semantic checks on a parsed DomainDef: pure, one concern each.

Each check raises ConfigError with the XPath of what it objects to; domxml.load
runs them after the model is built and turns the XPath into a source line.
Checks against the host (does that CPU, that bridge, that rootfs exist?) belong
to start, not here.
"""

from __future__ import annotations

import posixpath
import unicodedata
from collections.abc import Callable, Sequence

from nsvirt.driver.domxml.model import DomainDef, IdMap, IpAddress, Route
from nsvirt.driver.domxml.netaddr import address_prefix
from nsvirt.driver.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ipaddress

MAX_NAME_BYTES = 64  # the name becomes the container's hostname


def check_name(d: DomainDef) -> None:
    name = d.name
    if not name or len(name.encode()) > MAX_NAME_BYTES:
        raise ConfigError(f"name must be 1 to {MAX_NAME_BYTES} bytes long", path="/domain/name")
    if "/" in name:
        raise ConfigError(f"name '{name}' must not contain '/'", path="/domain/name")
    if name.startswith("."):
        raise ConfigError(f"name '{name}' must not start with '.'", path="/domain/name")
    for ch in name:
        if ch.isspace() or unicodedata.category(ch).startswith("C"):
            raise ConfigError(
                f"name {name!r} must not contain whitespace or control characters",
                path="/domain/name",
            )


def check_current_memory(d: DomainDef) -> None:
    if d.current_memory > d.memory:
        raise ConfigError(
            f"currentMemory ({d.current_memory} KiB) must not exceed memory ({d.memory} KiB)",
            path="/domain/currentMemory",
        )
    if d.max_memory is not None and d.memory > d.max_memory:
        raise ConfigError(
            f"memory ({d.memory} KiB) must not exceed maxMemory ({d.max_memory} KiB)",
            path="/domain/memory",
        )


def check_vcpu_current(d: DomainDef) -> None:
    if d.vcpu_current is not None and d.vcpu_current > d.vcpus:
        raise ConfigError(
            f"current vcpus ({d.vcpu_current}) must not exceed vcpus ({d.vcpus})",
            path="/domain/vcpu/@current",
        )


def check_filesystem_targets(d: DomainDef) -> None:
    seen: set[str] = set()
    for i, fs in enumerate(d.devices.filesystems, 1):
        path = f"/domain/devices/filesystem[{i}]/target"
        t = fs.target
        if not t.startswith("/"):
            raise ConfigError(f"filesystem target '{t}' must be an absolute path", path=path)
        if "//" in t or (t != "/" and posixpath.normpath(t) != t):
            raise ConfigError(
                f"filesystem target '{t}' must be a normalised path (no '..', "
                "'.', '//' or trailing '/')",
                path=path,
            )
        if "\0" in t or "\n" in t:
            raise ConfigError("filesystem target must not contain NUL or newline", path=path)
        if t in seen:
            raise ConfigError(f"filesystem target '{t}' is used more than once", path=path)
        seen.add(t)


def _check_idmap(maps: Sequence[IdMap], kind: str) -> None:
    for i, a in enumerate(maps, 1):
        path = f"/domain/idmap/{kind}[{i}]"
        if a.count == 0:
            raise ConfigError(f"{kind} map count must be at least 1", path=path)
        if a.start + a.count > 2**32 or a.target + a.count > 2**32:
            raise ConfigError(f"{kind} map range goes past id 4294967295", path=path)
        for j, b in enumerate(maps[: i - 1], 1):
            if a.start < b.start + b.count and b.start < a.start + a.count:
                raise ConfigError(
                    f"{kind} map {i} overlaps {kind} map {j} inside the container", path=path
                )
            if a.target < b.target + b.count and b.target < a.target + a.count:
                raise ConfigError(f"{kind} map {i} overlaps {kind} map {j} on the host", path=path)
    if maps and not any(m.start == 0 for m in maps):
        raise ConfigError(
            f"the {kind} map must map id 0 (root) of the container", path=f"/domain/idmap/{kind}"
        )


def check_idmaps(d: DomainDef) -> None:
    _check_idmap(d.uid_map, "uid")
    _check_idmap(d.gid_map, "gid")
    if bool(d.uid_map) != bool(d.gid_map):
        raise ConfigError("<idmap> needs both <uid> and <gid> maps", path="/domain/idmap")


def check_containment(d: DomainDef) -> None:
    """<nsvirt:privileged/> means no user namespace: it cannot go with one."""
    c = d.containment
    config = "/domain/metadata/nsvirt:config"
    if c.privileged and d.uid_map:
        raise ConfigError(
            "<nsvirt:privileged/> runs the container without a user namespace, "
            "and <idmap> asks for one: give one or the other",
            path=f"{config}/nsvirt:privileged",
        )
    if c.privileged and c.idmapped_mounts:
        raise ConfigError(
            "<nsvirt:idmapped-mounts/> needs a user namespace, which "
            "<nsvirt:privileged/> opts out of",
            path=f"{config}/nsvirt:idmapped-mounts",
        )


def check_network_namespace(d: DomainDef) -> None:
    """An interface implies a private netns, so it cannot share one."""
    if d.shared("net") is None:
        return
    if d.devices.interfaces:
        raise ConfigError(
            "an <interface> needs a private network namespace, but <lxc:sharenet> shares one",
            path="/domain/devices/interface",
        )
    for i, h in enumerate(d.devices.hostdevs, 1):
        if h.type == "net":
            raise ConfigError(
                "a network <hostdev> needs a private network namespace, but "
                "<lxc:sharenet> shares one",
                path=f"/domain/devices/hostdev[{i}]",
            )
    if d.privnet:
        raise ConfigError(
            "<privnet/> asks for a private network namespace, but <lxc:sharenet> shares one",
            path="/domain/features/privnet",
        )


def check_shared_namespace_values(d: DomainDef) -> None:
    for s in d.shared_namespaces:
        path = f"/domain/lxc:namespace/lxc:share{s.kind}"
        if s.type == "pid" and not (s.value.isdigit() and int(s.value) > 0):
            raise ConfigError(
                f"share{s.kind} type 'pid' needs a process id, not '{s.value}'", path=path
            )
        if not s.value or ("/" in s.value and s.type != "netns"):
            raise ConfigError(f"share{s.kind} value '{s.value}' is not a valid name", path=path)


def check_console_ports(d: DomainDef) -> None:
    for tag, devs in (("console", d.devices.consoles), ("serial", d.devices.serials)):
        ports = [c.port for c in devs]
        for i, port in enumerate(ports, 1):
            if port in ports[: i - 1]:
                raise ConfigError(
                    f"{tag} port {port} is used more than once",
                    path=f"/domain/devices/{tag}[{i}]/target",
                )


def check_initenv_unique(d: DomainDef) -> None:
    names = [n for n, _ in d.os.initenv]
    for i, n in enumerate(names, 1):
        if n in names[: i - 1]:
            raise ConfigError(
                f"initenv '{n}' is given more than once", path=f"/domain/os/initenv[{i}]"
            )


MAX_IFNAME_BYTES = 15  # IFNAMSIZ - 1


def guest_names(d: DomainDef) -> list[str]:
    """Each interface's name inside the container: <guest dev>, else ethN by position."""
    return [i.guest_dev or f"eth{n}" for n, i in enumerate(d.devices.interfaces)]


def check_interface_macs(d: DomainDef) -> None:
    seen: dict[str, int] = {}
    for n, iface in enumerate(d.devices.interfaces, 1):
        path = f"/domain/devices/interface[{n}]/mac"
        if iface.mac is None:
            continue
        if int(iface.mac.split(":")[0], 16) & 1:
            raise ConfigError(f"MAC address {iface.mac} is a multicast address: an interface "
                              "needs a unicast one (first byte even)", path=path)  # fmt: skip
        if iface.mac in seen:
            raise ConfigError(f"MAC address {iface.mac} is used by interface {seen[iface.mac]} "
                              "too", path=path)  # fmt: skip
        seen[iface.mac] = n


def check_interface_names(d: DomainDef) -> None:
    names = guest_names(d)
    for n, iface in enumerate(d.devices.interfaces, 1):
        for kind, name in (("guest", names[n - 1]), ("target", iface.target_dev)):
            path = f"/domain/devices/interface[{n}]/{kind}"
            if name is None:
                continue
            if len(name.encode()) > MAX_IFNAME_BYTES or "/" in name or name in (".", ".."):
                raise ConfigError(f"{kind} device name '{name}' is not a valid interface "
                                  f"name (at most {MAX_IFNAME_BYTES} bytes, no '/')",
                                  path=path)  # fmt: skip
        if names[n - 1] in names[: n - 1]:
            first = names.index(names[n - 1]) + 1
            raise ConfigError(f"guest device name '{names[n - 1]}' is also interface {first}'s "
                              "(the default is ethN, N its position)",
                              path=f"/domain/devices/interface[{n}]/guest")  # fmt: skip


def _networks(ips: Sequence[IpAddress]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    import ipaddress  # only for domains with addresses (~1 ms)

    return [ipaddress.ip_interface(f"{ip.address}/{address_prefix(ip.address, ip.prefix)}").network
            for ip in ips]  # fmt: skip


def _check_ips(ips: Sequence[IpAddress], path: str) -> None:
    import ipaddress

    for k, ip in enumerate(ips, 1):
        version = ipaddress.ip_address(ip.address).version
        if ip.family != f"ipv{version}":
            raise ConfigError(f"address {ip.address} is not of family {ip.family}",
                              path=f"{path}/ip[{k}]")  # fmt: skip
        if ip.prefix is not None and ip.prefix > (32 if version == 4 else 128):
            raise ConfigError(f"prefix {ip.prefix} does not fit the IPv{version} address "
                              f"{ip.address}", path=f"{path}/ip[{k}]")  # fmt: skip


def _check_gateways(ips: Sequence[IpAddress], routes: Sequence[Route], path: str) -> None:
    import ipaddress

    subnets = _networks(ips)
    peers = {ip.peer for ip in ips if ip.peer}
    for k, route in enumerate(routes, 1):
        gateway = ipaddress.ip_address(route.gateway)
        if route.gateway in peers or any(gateway in net for net in subnets):
            continue
        raise ConfigError(f"route gateway {route.gateway} is outside every subnet of the "
                          "interface", path=f"{path}/route[{k}]")  # fmt: skip


def check_interface_addresses(d: DomainDef) -> None:
    for n, iface in enumerate(d.devices.interfaces, 1):
        path = f"/domain/devices/interface[{n}]"
        _check_ips(iface.ips, path)
        _check_ips(iface.host_ips, f"{path}/source")
        _check_gateways(iface.ips, iface.routes, path)
        _check_gateways(iface.host_ips, iface.host_routes, f"{path}/source")


CHECKS: tuple[Callable[[DomainDef], None], ...] = (
    check_name,
    check_current_memory,
    check_vcpu_current,
    check_filesystem_targets,
    check_idmaps,
    check_network_namespace,
    check_shared_namespace_values,
    check_console_ports,
    check_initenv_unique,
    check_interface_macs,
    check_interface_names,
    check_interface_addresses,
    check_containment,
)


def check(d: DomainDef) -> None:
    """Run every check; the first failure raises ConfigError."""
    for c in CHECKS:
        c(d)
