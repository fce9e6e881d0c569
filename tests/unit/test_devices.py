"""Host devices, presets and image filesystems in the plan (launch/devices.py,
launch/plan.py) and the USB look-up on a fake sysfs (launch/hostdevices.py): no root."""

from __future__ import annotations

from pathlib import Path

import pytest

from nsvirt.driver import domxml
from nsvirt.driver.errors import DriverError, HostError, InternalError, OperationFailed
from nsvirt.driver.launch import hostdevices, plan
from nsvirt.driver.launch.devices import DeviceRule, DevNode, HostDevices, HostNode
from nsvirt.driver.launch.hostfacts import HostFacts
from nsvirt.driver.records import replace

FACTS = HostFacts(
    cgroup_mode="v2", cgroup2_mount="/sys/fs/cgroup", cpus_online=frozenset({0}), kernel="6.1.0"
)
NS = "https://nsvirt.dev/xmlns/domain/1.0"
TUN = HostNode("c", 10, 200, 0o666)
LOOP7 = HostNode("b", 7, 7, 0o660)


def domain(devices: str = "", config: str = "") -> str:
    meta = f"<metadata><nsvirt:config xmlns:nsvirt='{NS}'>{config}</nsvirt:config></metadata>"
    return (
        "<domain type='lxc'><name>d</name><uuid>05621346-d353-4bab-acc3-5004556ddd1a</uuid>"
        f"<memory unit='MiB'>64</memory>{meta if config else ''}<os><type>exe</type></os>"
        f"<devices>{devices}</devices></domain>"
    )


def build(xml: str, host: HostDevices | None = None) -> plan.LaunchPlan:
    return plan.build(domxml.load(xml.encode()), FACTS, partition="/p", host_devices=host)


def misc(path: str) -> str:
    return (f"<hostdev mode='capabilities' type='misc'><source><char>{path}</char></source>"
            "</hostdev>")  # fmt: skip


def storage(path: str) -> str:
    return (
        f"<hostdev mode='capabilities' type='storage'><source><block>{path}</block></source>"
        "</hostdev>"
    )


def added(p: plan.LaunchPlan) -> tuple[list[DevNode], list[DeviceRule]]:
    base = build(domain())
    return ([n for n in p.dev_nodes if n not in base.dev_nodes],
            [r for r in p.device_rules if r not in base.device_rules])  # fmt: skip


def test_a_misc_hostdev_is_its_node_and_exactly_its_rule() -> None:
    p = build(domain(misc("/dev/net/tun")), HostDevices(nodes={"/dev/net/tun": TUN}))
    nodes, rules = added(p)
    assert nodes == [DevNode("net/tun", "c", 10, 200, 0o666, "/dev/net/tun")]
    assert rules == [DeviceRule("c", 10, 200, "rwm")]
    assert plan.LaunchPlan.from_json(p.to_json()) == p


def test_a_storage_hostdev_lands_where_libvirt_puts_it() -> None:
    # libvirt: the host path less its first component, under the container's /dev
    p = build(domain(storage("/srv/disks/loop7")), HostDevices(nodes={"/srv/disks/loop7": LOOP7}))
    nodes, rules = added(p)
    assert [(n.name, n.type, n.major, n.minor) for n in nodes] == [("disks/loop7", "b", 7, 7)]
    assert rules == [DeviceRule("b", 7, 7, "rwm")]


@pytest.mark.parametrize(
    ("devices", "found", "message"),
    [
        (storage("/dev/net/tun"), TUN, "Storage source /dev/net/tun must be a block device: "
         "Invalid argument"),
        (misc("/dev/loop7"), LOOP7, "Storage source /dev/loop7 must be a character device"),
        (misc("/etc/hostname"), HostNode("f"), "must be a character device: Invalid argument"),
        (misc("/dev/nothing"), HostNode("", errno=2),
         "Unable to access /dev/nothing: No such file or directory"),
    ],
)  # fmt: skip
def test_a_hostdev_that_is_not_the_device_it_says_is_refused(
    devices: str, found: HostNode, message: str
) -> None:
    path = devices.split(">/")[1].split("<")[0]
    with pytest.raises(HostError, match=message):
        build(domain(devices), HostDevices(nodes={"/" + path: found}))


def test_a_hostdev_may_not_replace_what_the_container_has() -> None:
    null = HostNode("c", 1, 5, 0o666)  # /srv/null is zero's numbers: not /dev/null
    with pytest.raises(DriverError, match="would be /dev/null inside"):
        build(domain(misc("/srv/null")), HostDevices(nodes={"/srv/null": null}))


def test_the_tun_preset_is_node_rule_and_capability_even_when_dropped() -> None:
    caps = ("<features><capabilities policy='default'><net_admin state='off'/></capabilities>"
            "</features>")  # fmt: skip
    xml = domain(config="<nsvirt:device preset='tun'/>").replace("<os>", caps + "<os>")
    p = build(xml, HostDevices(nodes={"/dev/net/tun": TUN}))
    nodes, rules = added(p)
    assert [n.name for n in nodes] == ["net/tun"] and rules == [DeviceRule("c", 10, 200, "rwm")]
    assert "net_admin" in p.keep_caps
    assert "net_admin" not in build(xml.replace("<nsvirt:device preset='tun'/>", "")).keep_caps


def test_the_dri_preset_takes_every_node_and_a_missing_device_is_named() -> None:
    card, render = HostNode("c", 226, 0, 0o660), HostNode("c", 226, 128, 0o666)
    listed = ("/dev/dri/card0", "/dev/dri/renderD128")
    host = HostDevices(nodes=dict(zip(listed, (card, render), strict=True)),
                       listings={"/dev/dri/": listed})  # fmt: skip
    nodes, rules = added(build(domain(config="<nsvirt:device preset='dri'/>"), host))
    assert [n.name for n in nodes] == ["dri/card0", "dri/renderD128"]
    assert [r.minor for r in rules] == [0, 128]
    with pytest.raises(DriverError, match="the device preset 'kvm' needs /dev/kvm, which"):
        build(domain(config="<nsvirt:device preset='kvm'/>"),
              HostDevices(nodes={"/dev/kvm": HostNode("", errno=2)}))  # fmt: skip


def test_presets_round_trip_through_the_definition() -> None:
    presets = "<nsvirt:device preset='fuse'/><nsvirt:device preset='kvm'/>"
    dom = domxml.load(domain(config=presets).encode())
    assert dom.containment.device_presets == ("fuse", "kvm")
    assert domxml.load(domxml.format(dom).encode()) == dom


def test_a_block_disk_is_its_target_with_read_only_honoured() -> None:
    disk = ("<disk type='block' device='disk'><source dev='/dev/loop7'/><target dev='sdb'/>"
            "<readonly/></disk>")  # fmt: skip
    nodes, rules = added(build(domain(disk), HostDevices(nodes={"/dev/loop7": LOOP7})))
    assert [n.name for n in nodes] == ["sdb"] and rules == [DeviceRule("b", 7, 7, "rm")]


def image(fmt: str = "", driver: str = "", target: str = "/data", extra: str = "") -> str:
    attrs = (f" type='{driver}'" if driver else "") + (f" format='{fmt}'" if fmt else "")
    drv = f"<driver{attrs}/>" if attrs else ""
    return (f"<filesystem type='file'{extra}>{drv}<source file='/i.img'/>"
            f"<target dir='{target}'/></filesystem>")  # fmt: skip


def test_an_image_is_a_block_mount_on_a_loop_device() -> None:
    host = HostDevices(nodes={"/i.img": HostNode("f")})
    p = build(domain(image("raw", "loop") + "<filesystem type='block'><source dev='/dev/loop7'/>"
                     "<target dir='/b'/><readonly/></filesystem>"),
              replace(host, nodes={**host.nodes, "/dev/loop7": LOOP7}))  # fmt: skip
    blocks = [op for op in p.mounts if op.kind == "block"]
    assert [(op.dest, op.source, op.loop, op.readonly) for op in blocks] == [
        ("/data", "/i.img", True, False),
        ("/b", "/dev/loop7", False, True),
    ]
    assert not added(p)[1]  # the supervisor mounts it: nothing inside opens the device
    root = build(domain(image(target="/")), host)
    assert root.root_mount is not None and root.root_mount.loop and root.root == "/i.img"
    assert plan.LaunchPlan.from_json(root.to_json()) == root


@pytest.mark.parametrize(
    ("fs", "message"),
    [
        (image("qcow2", "loop"), "fs format qcow2 is not supported"),
        (image(driver="nbd"), "An explicit disk format must be specified"),
        (image(extra=" accessmode='squash'"), "only accessmode='passthrough' is supported"),
        ("<filesystem type='template'><source name='t'/><target dir='/t'/></filesystem>",
         "Cannot mount filesystem type template"),
    ],
)  # fmt: skip
def test_what_libvirt_lxc_cannot_mount_is_refused_in_its_words(fs: str, message: str) -> None:
    with pytest.raises(DriverError, match=message):
        build(domain(fs), HostDevices(nodes={"/i.img": HostNode("f")}))


def test_an_image_of_another_format_is_served_by_nbd() -> None:
    p = build(domain(image("qcow2")), HostDevices(nodes={"/i.img": HostNode("f")}))
    (op,) = [op for op in p.mounts if op.kind == "block"]
    assert (op.nbd, op.loop, op.source) == ("qcow2", False, "/i.img")


def test_a_missing_image_or_a_directory_is_refused() -> None:
    with pytest.raises(HostError, match=r"Unable to access /i\.img: No such file or directory"):
        build(domain(image()), HostDevices(nodes={"/i.img": HostNode("", errno=2)}))
    with pytest.raises(HostError, match=r"/i\.img must be an image file"):
        build(domain(image()), HostDevices(nodes={"/i.img": HostNode("d")}))


# ---------------------------------------------------------------- USB, on a fake sysfs


def fake_usb(top: Path, devices: dict[str, tuple[str, str, int]]) -> str:
    base = top / "bus/usb/devices"
    for name, (vendor, product, devnum) in devices.items():
        (base / name).mkdir(parents=True)
        (base / name / "idVendor").write_text(vendor + "\n")
        (base / name / "idProduct").write_text(product + "\n")
        (base / name / "devnum").write_text(f"{devnum}\n")
    (base / "1-1:1.0").mkdir()  # an interface: skipped
    return str(top)


def usb(source: str, policy: str = "") -> domxml.model.Hostdev:
    attr = f" startupPolicy='{policy}'" if policy else ""
    xml = domain(f"<hostdev mode='subsystem' type='usb'><source{attr}>{source}</source></hostdev>")
    return domxml.load(xml.encode()).devices.hostdevs[0]


def test_a_usb_device_is_found_by_vendor_and_product_or_by_address(tmp_path: Path) -> None:
    sysfs = fake_usb(tmp_path, {"usb1": ("1d6b", "0002", 1), "1-1": ("046d", "c52b", 4),
                                "2-3": ("0781", "5581", 9)})  # fmt: skip
    by_id = usb("<vendor id='0x0781'/><product id='0x5581'/>")
    assert hostdevices.find_usb(by_id, sysfs) == (2, 9)
    assert hostdevices.find_usb(usb("<address bus='1' device='4'/>"), sysfs) == (1, 4)
    with pytest.raises(InternalError, match="Did not find USB device bus:3 device:1"):
        hostdevices.find_usb(usb("<address bus='3' device='1'/>"), sysfs)
    with pytest.raises(InternalError, match=r"Did not find USB device 1234:5678$"):
        hostdevices.find_usb(usb("<vendor id='0x1234'/><product id='0x5678'/>"), sysfs)
    missing = usb("<vendor id='0x1234'/><product id='0x5678'/>", "optional")
    assert hostdevices.find_usb(missing, sysfs) is None  # the domain starts without it


def test_two_usb_devices_of_one_kind_need_an_address(tmp_path: Path) -> None:
    sysfs = fake_usb(tmp_path, {"1-1": ("0781", "5581", 2), "1-2": ("0781", "5581", 3)})
    with pytest.raises(OperationFailed, match=r"Multiple USB devices for 781:5581, use <address>"):
        hostdevices.find_usb(usb("<vendor id='0x0781'/><product id='0x5581'/>"), sysfs)


def test_a_found_usb_device_is_its_bus_node_and_rule(tmp_path: Path) -> None:
    sysfs = fake_usb(tmp_path, {"3-1": ("0781", "5581", 12)})
    xml = domain("<hostdev mode='subsystem' type='usb'><source><vendor id='0x0781'/>"
                 "<product id='0x5581'/></source></hostdev>")  # fmt: skip
    dom = domxml.load(xml.encode())
    host = hostdevices.look_up(dom, sysfs=sysfs, dev=str(tmp_path / "dev"))
    node = str(tmp_path / "dev/bus/usb/003/012")
    assert host.usb == (node,)
    assert not host.nodes[node].kind  # the fake tree has no node: refused as libvirt does
    with pytest.raises(HostError, match=r"Unable to access .*/dev/bus/usb/003/012"):
        plan.build(dom, FACTS, partition="/p", host_devices=host)
    found = replace(host, nodes={node: HostNode("c", 189, 267, 0o664)})
    p = plan.build(dom, FACTS, partition="/p", host_devices=found)
    assert added(p)[1] == [DeviceRule("c", 189, 267, "rwm")]
    assert added(p)[0][0].name.endswith("bus/usb/003/012")


def test_an_image_naming_other_files_is_not_served(tmp_path: Path) -> None:
    import os

    from nsvirt.driver.runtime import nbd

    def qcow2(name: str, version: int, backing: int, features: int = 0) -> int:
        path = tmp_path / name
        head = b"QFI\xfb" + version.to_bytes(4, "big") + backing.to_bytes(8, "big")
        path.write_bytes(head.ljust(72, b"\0") + features.to_bytes(8, "big") + b"\0" * 32)
        return os.open(path, os.O_RDONLY)

    nbd.check_self_contained(qcow2("ok.qcow2", 3, 0), "ok", "qcow2")
    with pytest.raises(OSError, match="has a backing file"):
        nbd.check_self_contained(qcow2("b.qcow2", 2, 4096), "b", "qcow2")
    with pytest.raises(OSError, match="has an external data file"):
        nbd.check_self_contained(qcow2("x.qcow2", 3, 0, 0x4), "x", "qcow2")
    with pytest.raises(OSError, match="only qcow2 images are served"):
        nbd.check_self_contained(qcow2("v.vmdk", 3, 0), "v", "vmdk")


def test_an_image_disk_is_on_loop_or_nbd_as_libvirt_chooses() -> None:
    def disk(driver: str) -> str:
        return (f"<disk type='file'>{driver}<source file='/i.img'/><target dev='sdb'/>"
                "<readonly/></disk>")  # fmt: skip

    host = HostDevices(nodes={"/i.img": HostNode("f")})
    (raw,) = build(domain(disk("")), host).image_disks
    assert (raw.source, raw.name, raw.readonly, raw.nbd) == ("/i.img", "sdb", True, "")
    (q,) = build(domain(disk("<driver type='qcow2'/>")), host).image_disks
    assert q.nbd == "qcow2"
    with pytest.raises(DriverError, match="disk format qcow2 is not supported"):
        build(domain(disk("<driver name='loop' type='qcow2'/>")), host)
    with pytest.raises(DriverError, match="An explicit disk format must be specified"):
        build(domain(disk("<driver name='nbd'/>")), host)


def test_attach_device_reads_the_element_past_a_declaration_and_comments() -> None:
    from nsvirt.driver.deviceops import _tag

    assert _tag("<?xml version='1.0'?>\n<!-- tun -->\n<hostdev mode='capabilities'/>") == "hostdev"
    assert _tag("  <disk type='block'>") == "disk" and _tag("<interface/>") == "interface"
    with pytest.raises(DriverError, match="does not start with an element"):
        _tag("hostdev")
