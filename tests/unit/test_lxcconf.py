"""domxml-from-native lxc-tools (driver/native/lxcconf.py): libvirt's own lxcconf2xml
corpus converted byte for byte, its fstab configs refused with libvirt's reason, and
what nsvirt adds: cgroup2 keys, a reason for every refusal, notes for what is left."""

from __future__ import annotations

from pathlib import Path

import pytest

from nsvirt.driver import domxml
from nsvirt.driver.native import lxcconf
from tests.conftest import shared_dir

CORPUS = shared_dir() / "conformance" / "libvirt" / "lxcconf2xmldata"
CONFIGS = sorted(CORPUS.glob("*.config")) if CORPUS.is_dir() else []
UUID = lxcconf.LIBVIRT_TEST_UUID
FSTAB = (
    "argument unsupported: lxc.mount.fstab or lxc.mount found, use lxc.mount.entry lines instead"
)
BASE = "lxc.uts.name = web\nlxc.rootfs.path = /srv/web\n"


def expected(config: Path) -> Path:
    return CORPUS / (config.name.removesuffix(".config").removesuffix("-v3") + ".xml")


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_the_corpus_converts_as_libvirt_does(config: Path) -> None:
    if "fstab" in config.name:
        with pytest.raises(lxcconf.NativeError) as e:
            lxcconf.convert(config.read_text(), UUID)
        assert str(e.value) == FSTAB
        return
    xml, _ = lxcconf.convert(config.read_text(), UUID)
    assert xml == expected(config).read_text()
    domxml.load(xml.encode(), source=config.name)  # and nsvirt defines what it wrote


def test_the_corpus_is_there() -> None:
    if not CONFIGS:
        pytest.skip(f"libvirt's lxcconf2xml corpus is not at {CORPUS}")
    assert len(CONFIGS) == 28


def test_cgroup2_keys_map_to_the_same_elements() -> None:
    keys = ("lxc.cgroup2.memory.max = 256M", "lxc.cgroup2.memory.high = 128M",
            "lxc.cgroup2.memory.swap.max = 64M", "lxc.cgroup2.cpu.max = 50000 100000",
            "lxc.cgroup2.cpu.weight = 100", "lxc.cgroup2.cpuset.cpus = 0-1,3",
            "lxc.cgroup2.io.weight = 200")  # fmt: skip
    xml, _ = lxcconf.convert(BASE + "\n".join(keys) + "\n", UUID)
    assert "<memory unit='KiB'>262144</memory>" in xml
    assert "<hard_limit unit='KiB'>262144</hard_limit>" in xml
    assert "<soft_limit unit='KiB'>131072</soft_limit>" in xml
    assert "<swap_hard_limit unit='KiB'>327680</swap_hard_limit>" in xml  # memory + swap
    assert "<period>100000</period>" in xml and "<quota>50000</quota>" in xml
    assert "<shares>2597</shares>" in xml  # weight 100, through the kernel's map to shares
    assert "cpuset='0-1,3'" in xml and "<weight>200</weight>" in xml
    domxml.load(xml.encode(), source="cgroup2")


@pytest.mark.parametrize(("config", "error"), [
    ("lxc.rootfs.path = /srv\n", "invalid argument: lxc.uts.name or lxc.utsname is missing: "
                                 "the domain's name"),
    ("lxc.uts.name = web\n", "invalid argument: lxc.rootfs.path or lxc.rootfs is missing: the "
                             "root filesystem"),
    (BASE + "lxc.net.0.type = veth\nlxc.net.0.mtu = 1400\n", "unsupported configuration: "
     "lxc.net.0.mtu (line 4) has no libvirt equivalent: remove it to convert the rest"),
    (BASE + "lxc.network.link = br0\n", "invalid argument: lxc.network.link on line 3 comes "
                                        "before any lxc.network.type"),
    (BASE + "lxc.mount.entry = /a b\n", "invalid argument: lxc.mount.entry on line 3 has 2 "
                                        "fields, not an fstab line's 4 to 6"),
    (BASE + "lxc.mount.entry = none tmp tmpfs defaults 0 0\n", "internal error: missing tmpfs "
                                                               "size, set the size option"),
    (BASE + "lxc.net.0.type = veth\nlxc.net.0.ipv4.address = 10.0.0.1\n",
     "invalid argument: Invalid CIDR address: '10.0.0.1'"),
    (BASE + "lxc.hook.pre-start = /x\n", "configuration file syntax error: memory conf:3: "
                                         "expecting an assignment"),
    (BASE + "lxc.arch = s390x\n", "invalid argument: could not find capabilities for "
                                  "ostype=exe arch=s390x domaintype=lxc "),
])  # fmt: skip
def test_refusals_say_why(config: str, error: str) -> None:
    with pytest.raises(lxcconf.NativeError) as e:
        lxcconf.convert(config, UUID)
    assert str(e.value) == error


def test_notes_name_every_key_left_out_and_the_idmap_reading() -> None:
    _, notes = lxcconf.convert(BASE + "lxc.pts = 1024\nlxc.idmap = u 0 100000 65536\n"
                               "lxc.cap.drop = sys_module frobnicate\n", UUID)  # fmt: skip
    assert "line 3: lxc.pts: no equivalent in libvirt's domain format: left out" in notes
    assert any(n.startswith("line 4: lxc.idmap = u 0 100000 65536: read as libvirt reads it")
               for n in notes)  # fmt: skip
    assert "line 5: lxc.cap.drop: frobnicate unknown: not dropped" in notes


@pytest.mark.parametrize("xml", sorted(CORPUS.glob("*.xml")) if CORPUS.is_dir() else [],
                         ids=lambda p: p.name)  # fmt: skip
def test_to_native_and_back_keeps_what_lxc_can_say(xml: Path) -> None:
    from nsvirt.driver.native import tolxc

    dom = domxml.load(xml.read_bytes(), source=xml.name)
    config = tolxc.config(dom)
    if dom.uid_map:  # LXC's order (inside, host, count), which libvirt reads the other way
        first = dom.uid_map[0]
        assert f"lxc.idmap = u {first.start} {first.target} {first.count}" in config
        config = "\n".join(k for k in config.splitlines() if not k.startswith("lxc.idmap"))
    back = domxml.load(lxcconf.convert(config, UUID)[0].encode(), source="back")
    assert (back.name, back.memory, back.vcpu_cpuset) == (dom.name, dom.memory, dom.vcpu_cpuset)
    assert [(f.type, f.target, f.source, f.readonly) for f in back.devices.filesystems] == [
        (f.type, f.target, f.source, f.readonly) for f in dom.devices.filesystems]  # fmt: skip
    assert [(i.type, i.source, i.mac, i.ips, i.guest_dev) for i in back.devices.interfaces] == [
        (i.type, i.source, i.mac, i.ips, i.guest_dev) for i in dom.devices.interfaces]  # fmt: skip
    assert [h.source for h in back.devices.hostdevs] == [h.source for h in dom.devices.hostdevs]
    assert back.cap_states == dom.cap_states
    mt, bt = dom.memtune, back.memtune  # the limit is always said: memory.max
    assert bt is not None and bt.hard_limit == ((mt and mt.hard_limit) or dom.memory)
    assert (bt.soft_limit, bt.swap_hard_limit) == ((mt and mt.soft_limit) or None,
                                                   (mt and mt.swap_hard_limit) or None)  # fmt: skip
    assert len(back.devices.consoles) == max(1, len(dom.devices.consoles))


def test_to_native_names_what_it_cannot_carry() -> None:
    from nsvirt.driver.native import tolxc

    dom = domxml.load(
        b"<domain type='lxc'><name>web</name><memory unit='MiB'>64</memory>"
        b"<os><type>exe</type><init>/bin/sh</init><initarg>-c</initarg>"
        b"<initarg>echo a b</initarg></os><on_reboot>destroy</on_reboot><devices>"
        b"<filesystem type='mount'><source dir='/srv/web'/><target dir='/'/></filesystem>"
        b"<interface type='network'><source network='default'/></interface>"
        b"</devices></domain>", source="t")  # fmt: skip
    text = tolxc.config(dom)
    assert "# not carried: <interface type='network'> (a libvirt network: use its bridge)" in text
    assert "# not carried: <on_poweroff>/<on_reboot>/<on_crash> other than LXC's" in text
    assert "lxc.init.cmd = /bin/sh -c 'echo a b'" in text
    assert "lxc.rootfs.path = /srv/web" in text and "lxc.cgroup2.memory.max = 67108864" in text
