"""libvirt's <network> format without root: parse, checks with file:line, define-time
defaults and net-dumpxml's layout."""

from __future__ import annotations

import pytest

from nsvirt.driver.errors import ConfigError, XMLError
from nsvirt.driver.network import netxml

# libvirt's own /etc/libvirt/qemu/networks/default.xml, as net-dumpxml writes it
DEFAULT = """<network>
  <name>default</name>
  <uuid>3e3fce45-4f53-4fa7-bb32-11f34168b82b</uuid>
  <forward mode='nat'>
    <nat>
      <port start='1024' end='65535'/>
    </nat>
  </forward>
  <bridge name='virbr0' stp='on' delay='0'/>
  <mac address='52:54:00:0a:cd:21'/>
  <ip address='192.0.2.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.0.2.2' end='192.0.2.254'/>
      <host mac='52:54:00:aa:bb:cc' name='web' ip='192.0.2.10'/>
    </dhcp>
  </ip>
</network>
"""


def test_default_network_round_trips() -> None:
    net = netxml.load(DEFAULT.encode(), "default.xml")
    assert (net.forward, net.bridge, net.nat_ports, net.dhcp) == (
        "nat",
        "virbr0",
        (1024, 65535),
        True,
    )
    assert net.ips[0].prefix == 24 and net.ips[0].hosts[0].name == "web"
    assert netxml.format_network(net) == DEFAULT


def test_isolated_ipv6_network() -> None:
    net = netxml.load(
        b"<network><name>v6</name><ip family='ipv6' address='2001:db8::1' prefix='64'/></network>"
    )
    assert net.forward is None and not net.dhcp
    assert "<ip family='ipv6' address='2001:db8::1' prefix='64'/>" in netxml.format_network(net)


@pytest.mark.parametrize(
    ("body", "line", "reason"),
    [
        ("<bridge name='a-very-long-bridge-name'/>", 3, "is not a valid interface name"),
        ("<ip address='192.0.2.1' prefix='24'>\n<dhcp><range start='198.51.100.2' "
         "end='198.51.100.9'/></dhcp></ip>", 4, "is not in 192.0.2.0/24"),
        ("<ip address='192.0.2.1' prefix='24'>\n<dhcp><range start='192.0.2.9' "
         "end='192.0.2.2'/></dhcp></ip>", 4, "ends before it starts"),
        ("<ip address='192.0.2.0' prefix='24'/>", 3, "network's own or broadcast address"),
        ("<ip address='192.0.2.1' prefix='33'/>", 3, "does not fit"),
        ("<ip address='192.0.2.1'/>", 3, "needs a netmask or a prefix"),
        ("<ip family='ipv6' address='192.0.2.1' prefix='24'/>", 3, "is not of family ipv6"),
        ("<forward mode='nat'><nat><port start='9' end='2'/></nat></forward>", 3,
         "the NAT port range ends before it starts"),
    ],
)  # fmt: skip
def test_checks_name_file_line_and_reason(body: str, line: int, reason: str) -> None:
    data = f"<network>\n<name>n</name>\n{body}\n</network>".encode()
    with pytest.raises(ConfigError) as err:
        netxml.load(data, "n.xml")
    assert (err.value.source, err.value.line) == ("n.xml", line), str(err.value)
    assert reason in str(err.value)


@pytest.mark.parametrize(
    "data",
    [
        b"<network><name>n</name><bogus/></network>",
        b"<!DOCTYPE n [<!ENTITY x 'y'>]><network><name>&x;</name></network>",
        b"<network><name>n</name>",
        b"<domain type='lxc'><name>n</name></domain>",
    ],
    ids=["unknown-element", "entity", "truncated", "foreign"],
)
def test_bad_input_is_refused(data: bytes) -> None:
    with pytest.raises(XMLError) as err:
        netxml.load(data, "bad.xml")
    assert "bad.xml" in str(err.value)


def test_define_time_defaults_pick_a_free_bridge() -> None:
    net = netxml.at_define(netxml.load(b"<network><name>n</name></network>"), {"nsbr0"}, "nsbr")
    assert net.bridge == "nsbr1" and net.stp == "on" and net.delay == 0
    assert net.uuid and net.mac and int(net.mac.split(":")[0], 16) & 1 == 0
