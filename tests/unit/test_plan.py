"""The launch plan is pure data: golden-tested, no root needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nsvirt.driver import domxml
from nsvirt.driver.errors import Unsupported
from nsvirt.driver.launch import plan
from nsvirt.driver.launch.hostfacts import HostFacts
from nsvirt.driver.records import replace
from nsvirt.driver.runtime.cgroups import rule_text
from nsvirt.driver.supervisor import planview
from tests.conftest import EXAMPLES

GOLDEN = Path(__file__).parent.parent / "data/plans"
FACTS = HostFacts(
    cgroup_mode="v1",
    cgroup_mounts={"memory": "/sys/fs/cgroup/memory"},
    cpus_online=frozenset({0, 1}),
    arch="x86_64",
    kernel="6.1.0",
)


def build(xml: str, **kw: object) -> plan.LaunchPlan:
    return plan.build(domxml.load(xml.encode()), FACTS, partition="/nsvirt-test", **kw)


def minimal(extra: str = "", devices: str = "") -> str:
    return (
        f"<domain type='lxc'><name>web</name>"
        "<uuid>05621346-d353-4bab-acc3-5004556ddd1a</uuid>"
        f"<memory unit='MiB'>64</memory>{extra}<os><type>exe</type></os>"
        f"<devices>{devices}</devices></domain>"
    )


@pytest.mark.parametrize("example", ["tuning", "idmap", "busybox", "app-container", "bridged"])
def test_plan_matches_golden(example: str) -> None:
    dom = domxml.load_file(EXAMPLES / f"{example}.xml")
    dom = replace(dom, uuid="05621346-d353-4bab-acc3-5004556ddd1a")
    text = plan.build(dom, FACTS, partition="/nsvirt-test").to_json()
    got = json.loads(text)
    assert text == json.dumps(got, sort_keys=True)  # canonical: the same plan, the same bytes
    golden = GOLDEN / f"{example}.json"
    if not golden.exists():
        golden.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        pytest.fail(f"{golden} was missing and has been written: review it and commit it")
    assert got == json.loads(golden.read_text())


def test_plan_round_trips_through_json_and_the_supervisor_view() -> None:
    p = build(minimal())
    assert plan.LaunchPlan.from_json(p.to_json()) == p
    view = planview.load(p.to_json())
    assert view.name == "web" and view.mounts[0].kind == p.mounts[0].kind
    assert view.limits.memory_limit == 64 << 20
    assert view.env == p.env and view.facts == p.facts
    assert planview.PLAN_FORMAT == plan.PLAN_FORMAT


def test_other_plan_format_is_refused() -> None:
    data = json.loads(build(minimal()).to_json())
    data["format"] = 99
    with pytest.raises(ValueError, match="format 99"):
        planview.load(json.dumps(data))
    with pytest.raises(ValueError, match="format 99"):
        plan.LaunchPlan.from_json(json.dumps(data))


def test_namespaces_order_and_choice() -> None:
    # the default: a user namespace first (it owns the others), a cgroup namespace last
    assert build(minimal()).namespaces == ("user", "mnt", "pid", "uts", "ipc", "cgroup")
    privileged = "<metadata><nsvirt:config xmlns:nsvirt='https://nsvirt.dev/xmlns/domain/1.0'>"
    privileged += "<nsvirt:privileged/></nsvirt:config></metadata>"
    assert build(minimal(privileged)).namespaces == ("mnt", "pid", "uts", "ipc", "cgroup")
    assert "net" in build(minimal("<features><privnet/></features>")).namespaces
    idmap = (
        "<idmap><uid start='0' target='1000' count='10'/>"
        "<gid start='0' target='1000' count='10'/></idmap>"
    )
    assert build(minimal(idmap)).namespaces[0] == "user"  # first: it owns the others
    shared = build(minimal(), join=(("uts", "/proc/1/ns/uts"),))
    assert "uts" not in shared.namespaces and shared.hostname is None


def test_default_capabilities_and_device_rules() -> None:
    p = build(minimal())
    for cap in plan.DEFAULT_DROPPED_CAPS:
        assert cap not in p.keep_caps
    assert "sys_boot" in p.keep_caps and "sys_admin" in p.keep_caps
    rules = [rule_text(r) for r in p.device_rules]
    assert rules[0] == "a"
    assert "c 136:* rwm" in rules and "c 1:3 rwm" in rules
    assert "c *:* m" not in rules  # mknod is dropped by default


def test_capability_policies() -> None:
    allow = build(
        minimal(
            "<features><capabilities policy='allow'><mknod state='off'/></capabilities></features>"
        )
    )
    assert "mknod" not in allow.keep_caps and "sys_module" in allow.keep_caps
    deny = build(
        minimal(
            "<features><capabilities policy='deny'><kill state='on'/></capabilities></features>"
        )
    )
    assert deny.keep_caps == ("kill",)
    mknod = build(
        minimal(
            "<features><capabilities policy='default'><mknod state='on'/></capabilities></features>"
        )
    )
    assert "c *:* m" in [rule_text(r) for r in mknod.device_rules]


def test_limits_from_tuning() -> None:
    lim = build(
        minimal(
            "<memtune><hard_limit unit='MiB'>32</hard_limit></memtune>"
            "<cputune><shares>100</shares><quota>-1</quota></cputune>"
        )
    ).limits
    assert lim.memory_limit == 32 << 20  # hard_limit wins over <memory>
    assert lim.cpu_shares == 100 and lim.cpu_quota == -1


def test_cpuset_is_checked_against_the_host() -> None:
    with pytest.raises(Unsupported, match="names CPU 7, which this host does not have"):
        build(minimal("<vcpu cpuset='0,7'>1</vcpu>"))


def test_a_net_hostdev_is_the_host_device_moved_into_a_namespace_of_its_own() -> None:
    net = ("<hostdev mode='capabilities' type='net'><source><interface>eth9</interface>"
           "</source><ip address='192.0.2.5' prefix='24'/></hostdev>")  # fmt: skip
    p = build(minimal(devices=net))
    assert "net" in p.namespaces and p.privnet
    (iface,) = p.interfaces
    assert (iface.type, iface.guest, iface.source_dev, iface.host, iface.mac) == (
        "hostdev",
        "eth9",
        "eth9",
        None,
        "",
    )
    assert [(a.address, a.prefix) for a in iface.ips] == [("192.0.2.5", 24)]


def test_mount_order_parents_first_and_ram_size() -> None:
    devices = (
        "<filesystem><source dir='/a'/><target dir='/srv/a/b'/></filesystem>"
        "<filesystem type='ram'><source usage='2' units='MiB'/><target dir='/srv'/>"
        "</filesystem><filesystem><source dir='/r'/><target dir='/'/><readonly/>"
        "</filesystem>"
    )
    p = build(minimal(devices=devices))
    user = [m for m in p.mounts if m.dest.startswith("/srv")]
    assert [m.dest for m in user] == ["/srv", "/srv/a/b"]
    assert user[0].options.startswith("size=2048k")
    assert p.root == "/r" and p.root_readonly


def test_environment_and_init() -> None:
    p = build(
        minimal().replace(
            "</os>",
            "<init>/sbin/init</init><initarg>-v</initarg><initenv name='A'>1</initenv></os>",
        )
    )
    env = dict(p.env)
    assert env["container"] == "lxc-libvirt"
    assert env["LIBVIRT_LXC_NAME"] == "web" and env["A"] == "1"
    assert p.argv == ("/sbin/init", "-v")
    assert p.shutdown_signal == "SIGTERM"
    systemd = build(minimal().replace("</os>", "<init>/usr/lib/systemd/systemd</init></os>"))
    assert systemd.shutdown_signal == "SIGRTMIN+4"
    assert build(minimal()).init == "/sbin/init"  # libvirt's default


NICS = """
<interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/>
  <ip address='192.0.2.2'/><ip address='2001:db8::2' prefix='48'/>
  <route address='0.0.0.0' gateway='192.0.2.1'/>
  <route address='198.51.100.0' netmask='255.255.255.0' gateway='192.0.2.1' metric='7'/>
</interface>
<interface type='network'><mac address='52:54:00:00:00:02'/><source network='default'/>
  <link state='down'/><mtu size='1400'/></interface>
<interface type='direct'><mac address='52:54:00:00:00:03'/><source dev='eth9' mode='bridge'/>
  <guest dev='wan'/><target dev='mv-web'/></interface>
<interface type='ethernet'><mac address='52:54:00:00:00:04'/>
  <source><ip address='10.0.0.1' prefix='30'/></source></interface>
"""


def test_interfaces_in_the_plan() -> None:
    p = build(minimal(devices=NICS), bridges={"default": "nsvirt0"})
    assert p.privnet and "net" in p.namespaces
    br, net, direct, eth = p.interfaces
    assert (br.guest, br.bridge, br.host, br.up) == ("eth0", "br0", None, True)
    assert br.ips == (plan.NetAddr("192.0.2.2", 24), plan.NetAddr("2001:db8::2", 48))
    assert br.routes == (plan.NetRoute("0.0.0.0", 0, "192.0.2.1"),
                         plan.NetRoute("198.51.100.0", 24, "192.0.2.1", 7))  # fmt: skip
    assert (net.guest, net.bridge, net.network, net.up, net.mtu) == (
        "eth1", "nsvirt0", "default", False, 1400)  # fmt: skip
    assert (direct.guest, direct.host, direct.source_dev, direct.mode) == (
        "wan", "mv-web", "eth9", "bridge")  # fmt: skip
    assert (eth.guest, eth.bridge, eth.host_ips) == ("eth3", None, (plan.NetAddr("10.0.0.1", 30),))
    assert plan.LaunchPlan.from_json(p.to_json()) == p
    assert planview.load(p.to_json()).interfaces[0].ips[0].address == "192.0.2.2"


def test_no_interface_and_no_privnet_share_the_host_network() -> None:
    assert "net" not in build(minimal()).namespaces  # as libvirt does
    assert "net" in build(minimal("<features><privnet/></features>")).namespaces


@pytest.mark.parametrize(("address", "prefix"), [("10.1.2.3", 8), ("172.16.0.1", 16),
                                                 ("192.0.2.9", 24), ("2001:db8::1", 64),
                                                 ("0.0.0.0", 0)])  # fmt: skip
def test_default_prefix_is_libvirts(address: str, prefix: int) -> None:
    from nsvirt.driver.domxml.netaddr import default_prefix

    assert default_prefix(address) == prefix
