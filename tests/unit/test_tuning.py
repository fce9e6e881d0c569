"""The pure parts of tuning: virsh's value parsing, the limits a definition implies,
the order of cgroup writes, the capabilities document. No root needed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from lxml import etree

from nsvirt.driver.domxml.units import MAX_KIB
from nsvirt.driver.errors import InvalidArgument
from nsvirt.driver.runtime.cgroups import changed, device_changes, plain_limits
from nsvirt.driver.runtime.cgroups.v1 import _narrower, _union
from nsvirt.driver.tuning import _device_list
from nsvirt.shell.commands.tuning import BadSuffix, _memtune_size, _sched_value, scaled_kib
from nsvirt.shell.report import ShellError


@pytest.mark.parametrize(("text", "kib"), [
    ("1", 1), ("1k", 1), ("1KiB", 1), ("1M", 1024), ("1MiB", 1024), ("2G", 2 << 20),
    ("1KB", 1), ("1MB", 977), ("1b", 1), ("1025b", 2), ("0", 0),
])  # fmt: skip
def test_scaled_integers_as_virsh_reads_them(text: str, kib: int) -> None:
    assert scaled_kib(text) == kib


def test_scaled_integer_errors() -> None:
    with pytest.raises(BadSuffix):
        scaled_kib("12Q")
    for bad in ("abc", "-1", "", "1.5M"):
        with pytest.raises(ValueError):
            scaled_kib(bad)


def test_any_negative_memtune_value_is_unlimited() -> None:
    assert _memtune_size("-1", "hard_limit") == _memtune_size("-42", "soft_limit") == MAX_KIB
    assert _memtune_size("64M", "hard_limit") == 65536
    assert _memtune_size("99999999999999999999", "hard_limit") == MAX_KIB


def test_schedinfo_values_have_their_parameters_types() -> None:
    assert _sched_value("vcpu_quota=-1") == ("vcpu_quota", -1)
    assert _sched_value("cpu_shares=-1") == ("cpu_shares", 2**64 - 1)  # unsigned: wraps
    with pytest.raises(ShellError, match="invalid scheduler option: weight"):
        _sched_value("weight=5")
    with pytest.raises(ShellError, match="expecting name=value"):
        _sched_value("cpu_shares")
    with pytest.raises(InvalidArgument, match="expected long long"):
        _sched_value("vcpu_quota=x")


def test_blkio_device_lists() -> None:
    assert _device_list("device_weight", "/dev/a,500,/dev/b,0") == [("/dev/a", 500), ("/dev/b", 0)]
    with pytest.raises(InvalidArgument, match="unable to parse blkio device"):
        _device_list("device_weight", "/dev/a")
    with pytest.raises(InvalidArgument, match="invalid value '-3'"):
        _device_list("device_weight", "/dev/a,-3")


def _limits(**values: object) -> SimpleNamespace:
    return plain_limits(SimpleNamespace(), **values)  # type: ignore[return-value]


def test_a_device_no_longer_listed_gets_its_settings_taken_away() -> None:
    old = _limits(blkio_devices=(("/dev/a", 500, 0, 0, 100, 0), ("/dev/b", 0, 5, 0, 0, 0)))
    new = _limits(blkio_devices=(("/dev/b", 0, 7, 0, 0, 0),))
    out = device_changes(old, new)
    assert out["blkio_devices"] == (("/dev/b", 0, 7, 0, 0, 0), ("/dev/a", 0, 0, 0, 0, 0))
    assert out["blkio_unweighted"] == ("/dev/a",)
    assert changed(old, new) == {"blkio_devices"}
    assert changed(old, _limits(memory_limit=None)) == set()  # None: leave it as it is


def test_narrowing_writes_go_to_the_payload_first() -> None:
    wide, narrow = _limits(cpu_period=100000, cpu_quota=-1), _limits(cpu_period=100000,
                                                                     cpu_quota=50000)  # fmt: skip
    assert _narrower("cpu_quota", wide, narrow) and not _narrower("cpu_quota", narrow, wide)
    # a longer period with the same quota is less bandwidth
    assert _narrower("cpu_period", narrow, _limits(cpu_period=200000, cpu_quota=50000))
    assert _narrower("cpuset_cpus", _limits(cpuset_cpus="0-3"), _limits(cpuset_cpus="1"))
    assert not _narrower("cpuset_cpus", _limits(cpuset_cpus="1"), _limits(cpuset_cpus="0-3"))
    assert _union("0,2", "1-2") == "0,1,2"


def test_the_start_limit_is_current_memory_and_unlimited_is_minus_one() -> None:
    from nsvirt.driver import domxml
    from nsvirt.driver.launch.plan import limits

    xml = ("<domain type='lxc'><name>a</name><memory unit='MiB'>128</memory>"
           "<currentMemory unit='MiB'>64</currentMemory>"
           "<memtune><swap_hard_limit unit='KiB'>9007199254740991</swap_hard_limit></memtune>"
           "<blkiotune><device><path>/dev/vda</path><read_iops_sec>5</read_iops_sec>"
           "</device></blkiotune>"
           "<os><type>exe</type><init>/bin/sh</init></os></domain>")  # fmt: skip
    lim = limits(domxml.load(xml.encode()))
    assert lim.memory_limit == 64 << 20
    assert lim.memory_swap_limit == -1
    assert lim.blkio_devices == (("/dev/vda", 0, 5, 0, 0, 0),)


def test_capabilities_describe_an_lxc_host() -> None:
    import os

    from nsvirt.driver import hostcaps

    facts = {"cgroup_mode": "v2", "cgroup2_mount": "/sys/fs/cgroup"}
    doc = etree.fromstring(hostcaps.capabilities(facts, "/x/supervisor").encode())
    assert doc.findtext("host/cpu/arch") == os.uname().machine
    guest = doc.find("guest")
    assert guest.findtext("os_type") == "exe"
    assert guest.find("arch/domain").get("type") == "lxc"
    assert guest.findtext("arch/emulator") == "/x/supervisor"
    cells = doc.find("host/topology/cells")
    assert int(cells.get("num")) == len(cells.findall("cell")) >= 1
    ns = {"n": hostcaps.HOST_NS}
    assert doc.find("host/n:cgroups", ns).get("mode") == "v2"
    assert doc.findtext("host/secmodel/model") == "none"
