"""Networking on real containers (issue 11): bridge, ethernet, direct and network
interfaces, a managed network with NAT and DHCP, hot plug, and teardown.

Each test moves its thread — and so the nsvirt client and every supervisor it starts —
into a network namespace of its own (unshare(CLONE_NEWNET), as `nsenter --net=` would
put a process there; not `ip netns exec`, which remounts /sys): every bridge, veth,
address, nftables table and dnsmasq stays in it, and only 192.0.2.0/24 and
2001:db8::/32 are used. No traffic leaves the machine.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nsvirt.driver import connect
from nsvirt.driver.connection import Connection
from nsvirt.driver.errors import InternalError
from nsvirt.driver.network import networks
from nsvirt.driver.network.attach import host_prefix
from nsvirt.driver.runtime import netdev, procstat
from nsvirt.driver.runtime import syscalls as sc
from tests.integration.conftest import domain_xml, leftovers, start

ROUTER = "192.0.2.1"


def net_leftovers(conn: Connection) -> list[str]:
    """Host-side devices, nftables tables and DHCP servers of this root still there."""
    out = wait_links_gone((host_prefix(conn.paths.tag()), "nvbr"))
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    out += [t for t in tables.splitlines() if "nsvirt-" in t]
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            stat = procstat.read(int(pid))
            if "dnsmasq" in cmd and str(conn.paths.root) in cmd and stat and stat.state != "Z":
                out.append(f"dnsmasq {pid}")
    return out


@pytest.fixture
def netconn(tmp_path: Path) -> Iterator[Connection]:
    """A connection whose client runs in a network namespace of the test's own."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    sc.unshare(sc.CLONE_NEWNET)
    try:
        netdev.loopback_up()
        conn = connect(f"lxc:///embed?root={tmp_path / 'root'}")
        yield conn
        for dom in conn.list_all():
            if dom.is_active():
                dom.destroy()
        for net in networks.list_all(conn):
            if net.is_active():
                net.destroy()
        left = leftovers(conn) + net_leftovers(conn)
        assert not left, f"left behind: {left}"
    finally:
        sc.setns(home, sc.CLONE_NEWNET, "cannot return to the test's own network namespace")
        os.close(home)


def sh(command: str) -> str:
    return subprocess.run(command, shell=True, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def bridge(netconn) -> str:
    """A bridge the test made, with the router's addresses."""
    sh(
        f"ip link add brtest type bridge && ip addr add {ROUTER}/24 dev brtest && "
        "ip addr add 2001:db8::1/64 dev brtest nodad && ip link set brtest up"
    )
    return "brtest"


def nic(kind: str, source: str = "", extra: str = "") -> str:
    attr = {"bridge": "bridge", "network": "network", "direct": "dev"}.get(kind)
    src = f"<source {attr}='{source}'/>" if attr else ""
    return f"<interface type='{kind}'>{src}{extra}</interface>"


def is_up(link: str) -> bool:
    """Is the device administratively up, by `ip -o link`'s flags (<…,UP,…>)?"""
    flags = re.search(r"<([^>]*)>", link)
    return bool(flags) and "UP" in flags.group(1).split(",")


def ip(address: str, prefix: int) -> str:
    return f"<ip address='{address}' prefix='{prefix}'/>"


def nsvirsh(conn: Connection, *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nsvirt.shell", "-c", conn.uri, *words],
        capture_output=True,
        text=True,
        timeout=120,
    )


# ---------------------------------------------------------------- veth, direct


@pytest.mark.v2
def test_two_containers_on_a_bridge_ping_each_other(
    netconn, rootfs: Path, bridge: str, shell_of
) -> None:
    doms = []
    for n in (2, 3):
        extra = ip(f"192.0.2.{n}", 24) + ip(f"2001:db8::{n}", 64)
        doms.append(
            start(netconn, domain_xml(f"peer{n}", rootfs, devices=nic("bridge", bridge, extra)))
        )
    a = shell_of(doms[0])
    assert a.run("ping -c1 -W5 192.0.2.3 >/dev/null && echo v4").strip() == "v4"
    assert a.run("ping -c1 -W5 2001:db8::3 >/dev/null && echo v6").strip() == "v6"
    assert a.run(f"ping -c1 -W5 {ROUTER} >/dev/null && echo router").strip() == "router"
    hosts = [i["host"] for d in doms for i in d.run_state().interfaces]
    assert all(h.startswith(host_prefix(netconn.paths.tag())) for h in hosts)
    ports = sh(f"ip -o link show master {bridge}")
    assert all(h in ports for h in hosts)


def test_inside_shows_exactly_what_is_configured(
    netconn, rootfs: Path, bridge: str, shell_of
) -> None:
    extra = (
        ip("192.0.2.2", 24) + ip("2001:db8::2", 64) + "<mac address='52:54:00:00:0a:01'/>"
        "<mtu size='1400'/><guest dev='lan0'/><target dev='host-lan0'/>"
        f"<route address='198.51.100.0' prefix='24' gateway='{ROUTER}'/>"
    )
    second = nic("bridge", bridge, "<mac address='52:54:00:00:0a:02'/><link state='down'/>")
    dom = start(netconn, domain_xml("exact", rootfs, devices=nic("bridge", bridge, extra) + second))
    inside = shell_of(dom)
    assert sorted(inside.run("ls /sys/class/net").split()) == ["eth1", "lan0", "lo"]
    link = inside.run("ip -o link show lan0")
    assert "mtu 1400" in link and "52:54:00:00:0a:01" in link and is_up(link)
    addrs = inside.run("ip -o addr show lan0")
    assert "inet 192.0.2.2/24" in addrs and "inet6 2001:db8::2/64" in addrs
    assert f"198.51.100.0/24 via {ROUTER} dev lan0" in inside.run("ip route")
    assert "52:54:00:00:0a:02" in inside.run("ip -o link show eth1")
    assert "NO-CARRIER" in inside.run("ip -o link show eth1")  # <link state='down'/>: unplugged
    assert "host-lan0" in sh("ip -o link")  # the <target dev> it was given
    assert "<target dev='host-lan0'/>" in dom.xml_desc()


def test_privnet_alone_gives_only_lo(netconn, rootfs: Path, shell_of) -> None:
    dom = start(netconn, domain_xml("alone", rootfs, extra="<features><privnet/></features>"))
    assert shell_of(dom).run("ls /sys/class/net").split() == ["lo"]


def test_ethernet_reaches_its_host_side_address(netconn, rootfs: Path, shell_of) -> None:
    extra = ip("192.0.2.130", 30) + "<source><ip address='192.0.2.129' prefix='30'/></source>"
    dom = start(netconn, domain_xml("wired", rootfs, devices=nic("ethernet", extra=extra)))
    host_end = dom.run_state().interfaces[0]["host"]
    assert "192.0.2.129/30" in sh(f"ip -o addr show {host_end}")
    assert shell_of(dom).run("ping -c1 -W5 192.0.2.129 >/dev/null && echo ok").strip() == "ok"


def test_direct_interface_on_a_veth_end(netconn, rootfs: Path, shell_of) -> None:
    # this kernel has no dummy driver: one end of a veth pair stands in for a NIC
    sh("ip link add nicA type veth peer name nicB && ip link set nicA up && ip link set nicB up")
    extra = "<mac address='52:54:00:00:0d:01'/>" + ip("192.0.2.40", 24)
    macvlan = nic("direct", "nicA", extra).replace("dev='nicA'", "dev='nicA' mode='bridge'")
    dom = start(netconn, domain_xml("macv", rootfs, devices=macvlan))
    inside = shell_of(dom)
    link = inside.run("ip -o link show eth0")
    assert "52:54:00:00:0d:01" in link and is_up(link)
    details = sh(f"nsenter --net=/proc/{dom.init_pid()}/ns/net ip -d -o link show eth0")
    assert "macvlan mode bridge" in details  # iproute2's view from the host
    assert dom.run_state().interfaces[0]["host"] is None  # nothing of it on the host side


# ---------------------------------------------------------------- managed networks


NAT_NET = f"""<network>
  <name>natnet</name>
  <forward mode='nat'/>
  <ip address='{ROUTER}' prefix='24'>
    <dhcp>
      <range start='192.0.2.100' end='192.0.2.150'/>
    </dhcp>
  </ip>
</network>
"""
# the lease's address configured by udhcpc's script (busybox has none of its own)
DHCP_SCRIPT = (
    "printf '#!/bin/sh\\n[ \"$1\" = bound ] && ip addr add $ip/$mask dev $interface\\n'"
    " > /dev/udhcpc.sh && chmod +x /dev/udhcpc.sh"
)


@pytest.mark.v2
def test_network_with_nat_and_dhcp(netconn, rootfs: Path, tmp_path: Path, shell_of) -> None:
    path = tmp_path / "natnet.xml"
    path.write_text(NAT_NET)
    assert (
        nsvirsh(netconn, "net-define", str(path)).stdout
        == f"Network natnet defined from {path}\n\n"
    )
    assert nsvirsh(netconn, "net-start", "natnet").stdout == "Network natnet started\n\n"
    net = networks.lookup(netconn, "natnet")
    record = net.status()
    assert record and record["dnsmasq"] and record["table"]
    assert "masquerade" in sh(f"nft list table inet {record['table']}")
    listed = nsvirsh(netconn, "net-list").stdout
    assert re.search(r"natnet\s+active\s+no\s+yes", listed)
    assert f"Bridge:         {record['bridge']}" in nsvirsh(netconn, "net-info", "natnet").stdout
    dom = start(netconn, domain_xml("leased", rootfs, devices=nic("network", "natnet")))
    inside = shell_of(dom)
    inside.run(DHCP_SCRIPT)
    inside.run("ip link set eth0 up; udhcpc -i eth0 -n -q -t 10 -s /dev/udhcpc.sh >/dev/null 2>&1")
    got = re.search(r"inet (192\.0\.2\.\d+)/24", inside.run("ip -o addr show eth0"))
    assert got and 100 <= int(got.group(1).rsplit(".", 1)[1]) <= 150
    assert inside.run(f"ping -c1 -W5 {ROUTER} >/dev/null && echo ok").strip() == "ok"
    leased = nsvirsh(netconn, "domifaddr", "leased", "--source", "lease").stdout
    assert f"{got.group(1)}/24" in leased and dom.definition().devices.interfaces[0].mac in leased
    ours = nsvirsh(netconn, "domifaddr", "leased").stdout  # from the container's namespace
    assert " eth0 " in ours and f"{got.group(1)}/24" in ours
    dom.destroy()
    assert nsvirsh(netconn, "net-destroy", "natnet").stdout == "Network natnet destroyed\n\n"
    assert not net_leftovers(netconn)


def test_unknown_or_inactive_network_is_a_clear_error(
    netconn, rootfs: Path, tmp_path: Path
) -> None:
    dom = netconn.define_xml(domain_xml("lost", rootfs, devices=nic("network", "nowhere")))
    with pytest.raises(Exception, match="no network with matching name 'nowhere'"):
        dom.create()
    networks.define(netconn, NAT_NET.replace("natnet", "idle"))
    dom = netconn.define_xml(domain_xml("lost2", rootfs, devices=nic("network", "idle")))
    with pytest.raises(Exception, match="network 'idle' is not active"):
        dom.create()


# ---------------------------------------------------------------- hot plug, link state


def test_hot_plug_an_interface(netconn, rootfs: Path, bridge: str, shell_of) -> None:
    dom = start(netconn, domain_xml("plug", rootfs, extra="<features><privnet/></features>"))
    inside = shell_of(dom)
    proc = nsvirsh(
        netconn, "attach-interface", "plug", "bridge", bridge, "--mac", "52:54:00:00:0b:01"
    )
    assert (proc.returncode, proc.stdout) == (0, "Interface attached successfully\n\n"), proc.stderr
    assert "52:54:00:00:0b:01" in inside.run("ip -o link show eth0")
    listed = nsvirsh(netconn, "domiflist", "plug").stdout
    assert re.search(r"nv\S+\s+bridge\s+brtest\s+-\s+52:54:00:00:0b:01", listed)
    host = dom.run_state().interfaces[0]["host"]
    assert host in sh(f"ip -o link show master {bridge}")
    proc = nsvirsh(netconn, "detach-interface", "plug", "bridge")
    assert proc.stdout == "Interface detached successfully\n\n", proc.stderr
    assert inside.run("ls /sys/class/net").split() == ["lo"]
    assert host not in sh("ip -o link") and dom.run_state().interfaces == []


def test_link_state_and_counters(netconn, rootfs: Path, bridge: str, shell_of) -> None:
    dom = start(
        netconn, domain_xml("flappy", rootfs, devices=nic("bridge", bridge, ip("192.0.2.5", 24)))
    )
    inside = shell_of(dom)
    host = dom.run_state().interfaces[0]["host"]
    inside.run(f"ping -c3 -W5 {ROUTER} >/dev/null")
    stats = nsvirsh(netconn, "domifstat", "flappy", host).stdout
    counters = dict(re.findall(rf"{host} (\w+) (\d+)", stats))
    assert int(counters["tx_packets"]) >= 3 and int(counters["rx_packets"]) >= 3
    assert nsvirsh(netconn, "domif-getlink", "flappy", host).stdout == f"{host} up\n\n"
    assert nsvirsh(netconn, "domif-setlink", "flappy", host, "down").stdout == (
        "Device updated successfully\n\n"
    )
    assert "NO-CARRIER" in inside.run("ip -o link show eth0")
    assert nsvirsh(netconn, "domif-getlink", "flappy", host).stdout == f"{host} down\n\n"
    nsvirsh(netconn, "domif-setlink", "flappy", host, "up")
    assert inside.run(f"ping -c1 -W5 {ROUTER} >/dev/null && echo back").strip() == "back"


# ---------------------------------------------------------------- teardown


def test_nothing_of_a_failed_start_remains(netconn, rootfs: Path, bridge: str) -> None:
    devices = nic("bridge", bridge) + nic("bridge", "no-such-bridge")
    dom = netconn.define_xml(domain_xml("halfway", rootfs, devices=devices))
    with pytest.raises(InternalError, match="no-such-bridge: it does not exist"):
        dom.create()
    assert not net_leftovers(netconn) and not leftovers(netconn)


def test_nothing_remains_after_a_supervisor_sigkill(netconn, rootfs: Path, bridge: str) -> None:
    dom = start(netconn, domain_xml("killed", rootfs, devices=nic("bridge", bridge)))
    init = dom.init_pid()
    os.kill(dom.id, signal.SIGKILL)
    assert procstat.wait_gone(init, 30)
    assert dom.state()[0].label == "shut off"  # the next call cleans up
    assert not net_leftovers(netconn)


def wait_links_gone(prefixes: tuple[str, ...], timeout: float = 10.0) -> list[str]:
    """Links with these prefixes that are still there once the kernel's (asynchronous)
    cleanup of a dead namespace has had `timeout` seconds: woken by link events, no
    polling."""
    import select
    import socket as sk
    import time

    events = sk.socket(sk.AF_NETLINK, sk.SOCK_RAW, sk.NETLINK_ROUTE)
    events.bind((0, 1))  # RTMGRP_LINK
    deadline = time.monotonic() + timeout
    try:
        while True:
            names = [
                line.split(":")[1].strip().split("@")[0] for line in sh("ip -o link").splitlines()
            ]
            left = [n for n in names if n.startswith(prefixes)]
            remaining = deadline - time.monotonic()
            if not left or remaining <= 0:
                return left
            if select.select([events], [], [], remaining)[0]:
                events.recv(65536)
    finally:
        events.close()


def test_the_bridged_example_starts_on_its_bridge(netconn, shell_of) -> None:
    from tests.conftest import EXAMPLES

    subprocess.run([str(EXAMPLES / "prepare.sh")], check=True, capture_output=True)
    sh(
        "ip link add nsvirt-br0 type bridge && ip addr add 192.0.2.1/24 dev nsvirt-br0 && "
        "ip link set nsvirt-br0 up"
    )  # what its first line asks for
    dom = start(netconn, (EXAMPLES / "bridged.xml").read_text())
    inside = shell_of(dom)
    assert "192.0.2.2/24" in inside.run("ip -o addr show eth0")
    assert inside.run("ping -c1 -W5 192.0.2.1 >/dev/null && echo ok").strip() == "ok"


# ---------------------------------------------------------------- a host device moved in


@pytest.mark.parametrize("privileged", [False, True], ids=["unprivileged", "privileged"])
def test_a_network_hostdev_is_moved_in_configured_and_given_back(
    netconn, rootfs: Path, shell_of, privileged: bool
) -> None:
    # this kernel has no dummy driver: one end of a veth pair stands in for a NIC
    sh("ip link add nicA type veth peer name nicB && ip link set nicB up")
    sh(f"ip addr add {ROUTER}/24 dev nicB")
    hostdev = ("<hostdev mode='capabilities' type='net'><source><interface>nicA</interface>"
               "</source><ip address='192.0.2.41' family='ipv4' prefix='24'/>"
               f"<route family='ipv4' address='198.51.100.0' prefix='24' gateway='{ROUTER}'/>"
               "</hostdev>")  # fmt: skip
    dom = start(netconn, domain_xml("hd", rootfs, devices=hostdev, privileged=privileged))
    inside = shell_of(dom)
    assert "192.0.2.41/24" in inside.run("ip -o addr show nicA")
    assert f"198.51.100.0/24 via {ROUTER}" in inside.run("ip route")
    assert inside.run(f"ping -c 1 -W 5 {ROUTER} >/dev/null && echo reached").strip() == "reached"
    assert subprocess.run(["ip", "link", "show", "nicA"], capture_output=True).returncode != 0
    # a hostile container renames it and gives its name to a device of its own
    inside.run("ip link set nicA down && ip link set nicA name moved0 && "
               "ip link add nicA type veth peer name fake1")  # fmt: skip
    dom.destroy()
    # the host's own device is back, under its own name (a veth would be deleted with
    # the namespace otherwise), and nothing of the container's came out
    assert "nicA@nicB" in sh("ip -o link show nicA")
    assert subprocess.run(["ip", "link", "show", "fake1"], capture_output=True).returncode != 0
    dom.create()  # and moved in again
    again = shell_of(dom)
    assert "192.0.2.41/24" in again.run("ip -o addr show nicA")
    again.close()  # the console is the new init's after the restart
    dom.reboot(timeout=1, wait=True)  # a restart gives it back, then moves it into the new one
    assert "192.0.2.41/24" in shell_of(dom).run("ip -o addr show nicA")
    dom.destroy()
    assert "nicA" in sh("ip -o link show nicA")
