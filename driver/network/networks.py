"""Managed networks without a daemon (libvirt's net-* commands): definitions under
<root>/etc/nsvirt/network, a started network's record under <root>/run/nsvirt/network.

net-start makes the bridge (MAC, STP, addresses), the forwarding (nat.py) and DHCP
(dhcp.py); net-destroy removes exactly what the record says it made. On the system
connection, libvirt's own definitions (/etc/libvirt/qemu/networks) are read too, so
a domain naming libvirt's `default` network finds its bridge while libvirt runs it.
"""

from __future__ import annotations

import contextlib
import errno
import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nsvirt.driver.errors import DriverError, OperationFailed, OperationInvalid, XMLError
from nsvirt.driver.network import netxml
from nsvirt.driver.state import files

if TYPE_CHECKING:
    from nsvirt.driver.connection import Connection

LIBVIRT_NETWORKS = Path("/etc/libvirt/qemu/networks")
STATE_FORMAT = 1
BR_STP_STATE, BR_FORWARD_DELAY = "IFLA_BR_STP_STATE", "IFLA_BR_FORWARD_DELAY"


class NoNetworkError(DriverError):
    """virsh: `failed to get network 'NAME'`."""

    def __init__(self, name: str) -> None:
        self.key = name
        super().__init__(f"Network not found: no network with matching name '{name}'")


def bridge_prefix(conn: Connection) -> str:
    tag = conn.paths.tag() if conn.paths.root != Path("/") else ""
    return f"nvbr{tag}" if tag else "nvbr"


class Network:
    """A handle on one network (libvirt-python's virNetwork)."""

    def __init__(self, conn: Connection, name: str) -> None:
        self.conn = conn
        self.name = name

    def __repr__(self) -> str:
        return f"<Network {self.name}>"

    # ------------------------------------------------------------ definition

    def _libvirt_file(self) -> Path | None:
        if self.conn.paths.root != Path("/"):
            return None
        path = LIBVIRT_NETWORKS / f"{self.name}.xml"
        return path if path.is_file() else None

    def is_libvirts(self) -> bool:
        """Defined by libvirt (read-only here), not by nsvirt."""
        return not self.conn.paths.network_config(self.name).is_file() and bool(
            self._libvirt_file()
        )

    def definition(self) -> netxml.NetworkDef:
        path = self.conn.paths.network_config(self.name)
        if not path.is_file():
            path = self._libvirt_file() or path
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NoNetworkError(self.name) from None
        return netxml.load(data, source=str(path))

    def xml_desc(self) -> str:
        return netxml.format_network(self.definition())

    @property
    def uuid(self) -> str:
        return self.definition().uuid or ""

    def is_persistent(self) -> bool:
        return self.conn.paths.network_config(self.name).is_file() or self.is_libvirts()

    def autostart(self) -> bool:
        return self.conn.paths.network_autostart(self.name).is_symlink()

    def set_autostart(self, enabled: bool) -> None:
        self.conn.require_writable("virNetworkSetAutostart")
        self._require_ours()
        link = self.conn.paths.network_autostart(self.name)
        if enabled and not link.is_symlink():
            link.symlink_to(Path("..") / f"{self.name}.xml")
        elif not enabled:
            files.remove(link)

    def _require_ours(self) -> None:
        if not self.conn.paths.network_config(self.name).is_file():
            if self.is_libvirts():
                raise OperationInvalid(f"network '{self.name}' is libvirt's: change it with virsh")
            raise NoNetworkError(self.name)

    def undefine(self) -> None:
        self.conn.require_writable("virNetworkUndefine")
        self._require_ours()
        with self._lock():
            files.remove(self.conn.paths.network_autostart(self.name))
            files.remove(self.conn.paths.network_config(self.name))

    # ------------------------------------------------------------ state

    def _lock(self) -> contextlib.AbstractContextManager[None]:
        self.conn.paths.ensure_network_dirs()
        return files.locked(self.conn.paths.network_lock(self.name), f"network '{self.name}'")

    def status(self) -> dict[str, Any] | None:
        """The started network's record; None if nsvirt has not started it."""
        try:
            data = json.loads(self.conn.paths.network_state(self.name).read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("format") == STATE_FORMAT else None

    def bridge(self) -> str | None:
        status = self.status()
        if status:
            return str(status["bridge"])
        try:
            return self.definition().bridge
        except (XMLError, NoNetworkError):
            return None

    def is_active(self) -> bool:
        """Started (by nsvirt, or by libvirt for one of its own): its bridge exists."""
        if self.is_libvirts() or self.status() is not None:
            bridge = self.bridge()
            return bridge is not None and _link_exists(bridge)
        return False

    # ------------------------------------------------------------ start, destroy

    def create(self) -> None:
        """net-start: make the bridge, its addresses, forwarding and DHCP."""
        self.conn.require_writable("virNetworkCreate")
        self._require_ours()
        net = self.definition()
        with self._lock():
            if self.status() is not None:
                raise OperationInvalid("network is already active")
            if net.dhcp:
                from nsvirt.driver.network import dhcp

                dhcp.binary(net.name)  # refuse before making anything
            record: dict[str, Any] = {
                "format": STATE_FORMAT,
                "name": net.name,
                "bridge": net.bridge,
                "made_bridge": False,
                "table": None,
                "dnsmasq": None,
            }
            try:
                self._start(net, record)
            except BaseException:
                self._stop(record)
                raise

    def _write(self, record: dict[str, Any]) -> None:
        files.write_atomic(
            self.conn.paths.network_state(self.name), json.dumps(record).encode(), durable=False
        )

    def _start(self, net: netxml.NetworkDef, record: dict[str, Any]) -> None:
        from nsvirt.driver.network import nat
        from nsvirt.driver.network.rtnl import NetlinkError, Rtnl

        assert net.bridge is not None
        with Rtnl() as ip:
            try:
                ip.index(net.bridge)
                raise OperationFailed(
                    f"network '{net.name}': the bridge {net.bridge} exists "
                    "already (another network, or not nsvirt's)"
                )
            except NetlinkError as e:
                if e.errno != errno.ENODEV:
                    raise
            data = [
                (BR_STP_STATE, 1 if net.stp == "on" else 0),
                (BR_FORWARD_DELAY, (net.delay or 0) * 100),
            ]  # centiseconds
            attrs = [("IFLA_ADDRESS", net.mac)] if net.mac else []
            ip.add_link(
                net.bridge,
                "bridge",
                f"cannot create the bridge {net.bridge}",
                data=data,
                attrs=attrs,
            )
            record["made_bridge"] = True
            self._write(record)  # from now on a crash leaves a record to clean after
            index = ip.index(net.bridge)
            for addr in net.ips:
                ip.add_address(
                    index, addr.address, addr.prefix, f"cannot add {addr.address} to {net.bridge}"
                )
            ip.set_link(index, f"cannot bring {net.bridge} up", up=True)
        if net.forward in ("nat", "route"):
            nat.enable_forwarding(any(i.family == "ipv6" for i in net.ips))
            record["table"] = nat.table_name(self.conn.paths.tag(), net.name)
            self._write(record)
            nat.add(
                record["table"],
                net.bridge,
                net.forward,
                [i.network for i in net.ips],
                net.nat_ports,
            )
        if net.dhcp:
            from nsvirt.driver.network import dhcp

            record["dnsmasq"] = dhcp.start(net, net.bridge, self.conn.paths.network_files(net.name))
        self._write(record)

    def destroy(self) -> None:
        """net-destroy: remove what net-start made (the record says what)."""
        self.conn.require_writable("virNetworkDestroy")
        with self._lock():
            record = self.status()
            if record is None:
                if self.is_libvirts():
                    raise OperationInvalid(
                        f"network '{self.name}' is libvirt's: stop it with virsh"
                    )
                if not self.conn.paths.network_config(self.name).is_file():
                    raise NoNetworkError(self.name)
                raise OperationInvalid("network is not active")
            self._stop(record)

    def _stop(self, record: dict[str, Any]) -> None:
        from nsvirt.driver.network import dhcp, nat
        from nsvirt.driver.network.attach import remove_host_ends

        dhcp.stop(record.get("dnsmasq"))
        if record.get("table"):
            nat.remove(record["table"])
        if record.get("made_bridge"):
            remove_host_ends([record["bridge"]])
        net_files = self.conn.paths.network_files(self.name)
        for name in ("pid", "leases", "dnsmasq.conf", "log"):
            with contextlib.suppress(FileNotFoundError):
                (net_files / name).unlink()
        with contextlib.suppress(OSError):
            net_files.rmdir()
        files.remove(self.conn.paths.network_state(self.name), durable=False)

    def leases(self) -> list[dict[str, str]]:
        from nsvirt.driver.network import dhcp

        return dhcp.leases(self.conn.paths.network_files(self.name))


def _link_exists(name: str) -> bool:
    """Asked over netlink: /sys/class/net shows the namespace /sys was mounted in,
    not necessarily this process's."""
    from nsvirt.driver.network.rtnl import NetlinkError, Rtnl

    with Rtnl() as ip:
        try:
            ip.index(name)
            return True
        except NetlinkError:
            return False


def _host_links() -> set[str]:
    from nsvirt.driver.network.rtnl import Rtnl

    with Rtnl() as ip:
        return {str(link.get_attr("IFLA_IFNAME")) for link in ip.links()}


# ---------------------------------------------------------------- the connection's networks


def define(conn: Connection, xml: str | bytes, source: str = "") -> Network:
    """net-define: validate and store a definition (redefining a name updates it)."""
    conn.require_writable("virNetworkDefineXML")
    data = xml.encode() if isinstance(xml, str) else xml
    net = netxml.load(data, source=source)
    conn.paths.ensure_network_dirs()
    with files.locked(conn.paths.network_run_dir / ".define.lock", "the network definitions"):
        previous = lookup(conn, net.name) if net.name in conn.paths.network_names() else None
        if previous is not None:
            old = previous.definition()
            if net.uuid and old.uuid and net.uuid != old.uuid:
                raise OperationFailed(f"network '{net.name}' already exists with uuid {old.uuid}")
            net = replace(
                net,
                uuid=net.uuid or old.uuid,
                bridge=net.bridge or old.bridge,
                mac=net.mac or old.mac,
            )
        taken = {_definition_bridge(conn, n) for n in conn.paths.network_names() if n != net.name}
        taken |= _host_links()
        net = netxml.at_define(net, taken, bridge_prefix(conn))
        for other in conn.paths.network_names():
            if other != net.name and _definition_bridge(conn, other) == net.bridge:
                raise OperationFailed(f"bridge name '{net.bridge}' is used by network '{other}'")
        files.write_atomic(conn.paths.network_config(net.name), netxml.format_network(net).encode())
    return Network(conn, net.name)


def _definition_bridge(conn: Connection, name: str) -> str | None:
    try:
        return Network(conn, name).definition().bridge
    except (XMLError, NoNetworkError):
        return None


def lookup(conn: Connection, name: str) -> Network:
    net = Network(conn, name)
    if not (conn.paths.network_config(name).is_file() or net.is_libvirts()):
        raise NoNetworkError(name)
    return net


def list_all(conn: Connection) -> list[Network]:
    names = set(conn.paths.network_names()) | set(conn.paths.active_network_names())
    if conn.paths.root == Path("/") and LIBVIRT_NETWORKS.is_dir():
        names |= {p.stem for p in LIBVIRT_NETWORKS.glob("*.xml")}
    return [Network(conn, n) for n in sorted(names)]


def active_bridge(conn: Connection, name: str) -> str:
    """The bridge of an active network, for a domain's interface (an error otherwise)."""
    net = lookup(conn, name)
    if not net.is_active():
        raise OperationInvalid(f"network '{name}' is not active")
    bridge = net.bridge()
    assert bridge is not None
    return bridge


def autostart_all(conn: Connection) -> list[tuple[str, DriverError | None]]:
    results: list[tuple[str, DriverError | None]] = []
    for name in conn.paths.network_names():
        net = Network(conn, name)
        if not net.autostart():
            continue
        try:
            if not net.is_active():
                net.create()
            results.append((name, None))
        except DriverError as e:
            results.append((name, e))
    return results
