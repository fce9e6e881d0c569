"""The semantic checks (driver/domxml/validate.py), each on its own: a definition it
accepts, and one it refuses with its XPath and reason. Pure: models built in code."""

from __future__ import annotations

import inspect

import pytest

from nsvirt.driver.domxml import model as m
from nsvirt.driver.domxml import validate
from nsvirt.driver.errors import ConfigError
from nsvirt.driver.records import replace

BASE = m.DomainDef(name="web", uuid=None, memory=65536, current_memory=65536, os=m.Os())


def fs(target: str) -> m.Filesystem:
    return m.Filesystem(type="mount", target=target, source="/srv")


def idmap(*maps: tuple[int, int, int]) -> tuple[m.IdMap, ...]:
    return tuple(m.IdMap(*t) for t in maps)


def share(kind: str, type_: str, value: str) -> m.SharedNamespace:
    return m.SharedNamespace(kind, type_, value)


def bridge(mac: str | None = None, guest: str | None = None, target: str | None = None,
           ips: tuple = (), routes: tuple = ()) -> m.Interface:  # fmt: skip
    return m.Interface(type="bridge", mac=mac, source="br0", guest_dev=guest,
                       target_dev=target, ips=ips, routes=routes)  # fmt: skip


def ip(address: str, prefix: int | None = None, family: str = "", peer: str | None = None):
    family = family or ("ipv6" if ":" in address else "ipv4")
    return m.IpAddress(address, family, prefix, peer)


def route(gateway: str, address: str = "0.0.0.0") -> m.Route:
    return m.Route(address=address, gateway=gateway)


def nics(*ifaces: m.Interface) -> m.DomainDef:
    return replace(BASE, devices=devices(interfaces=ifaces))


def devices(**kw: object) -> m.Devices:
    return replace(m.Devices(), **kw)


# check → [(a definition it accepts)], [(one it refuses, its XPath, words of the reason)]
CASES: dict = {
    validate.check_name: (
        [BASE, replace(BASE, name="w" * 64), replace(BASE, name="web-1.example_x")],
        [
            (replace(BASE, name=""), "/domain/name", "1 to 64 bytes"),
            (replace(BASE, name="w" * 65), "/domain/name", "1 to 64 bytes"),
            (replace(BASE, name="é" * 33), "/domain/name", "1 to 64 bytes"),  # 66 bytes
            (replace(BASE, name="a/b"), "/domain/name", "must not contain '/'"),
            (replace(BASE, name=".hidden"), "/domain/name", "must not start with '.'"),
            (replace(BASE, name="two words"), "/domain/name", "whitespace or control"),
            (replace(BASE, name="bell\x07"), "/domain/name", "whitespace or control"),
        ],
    ),
    validate.check_current_memory: (
        [BASE, replace(BASE, current_memory=1024), replace(BASE, max_memory=65536)],
        [
            (replace(BASE, current_memory=65537), "/domain/currentMemory", "must not exceed"),
            (replace(BASE, max_memory=1024), "/domain/memory", "must not exceed maxMemory"),
        ],
    ),
    validate.check_vcpu_current: (
        [replace(BASE, vcpus=2, vcpu_current=2), replace(BASE, vcpus=2, vcpu_current=1)],
        [(replace(BASE, vcpus=1, vcpu_current=2), "/domain/vcpu/@current", "must not exceed")],
    ),
    validate.check_filesystem_targets: (
        [replace(BASE, devices=devices(filesystems=(fs("/"), fs("/data"), fs("/data/a"))))],
        [
            (
                replace(BASE, devices=devices(filesystems=(fs("data"),))),
                "/domain/devices/filesystem[1]/target",
                "must be an absolute path",
            ),
            (
                replace(BASE, devices=devices(filesystems=(fs("/"), fs("/a/../b")))),
                "/domain/devices/filesystem[2]/target",
                "must be a normalised path",
            ),
            (
                replace(BASE, devices=devices(filesystems=(fs("/a//b"),))),
                "/domain/devices/filesystem[1]/target",
                "must be a normalised path",
            ),
            (
                replace(BASE, devices=devices(filesystems=(fs("/a/"),))),
                "/domain/devices/filesystem[1]/target",
                "must be a normalised path",
            ),
            (
                replace(BASE, devices=devices(filesystems=(fs("/a\nb"),))),
                "/domain/devices/filesystem[1]/target",
                "NUL or newline",
            ),
            (
                replace(BASE, devices=devices(filesystems=(fs("/d"), fs("/e"), fs("/d")))),
                "/domain/devices/filesystem[3]/target",
                "'/d' is used more than once",
            ),
        ],
    ),
    validate.check_containment: (
        [
            BASE,
            replace(BASE, containment=m.Containment(privileged=True, no_new_privs=True)),
            replace(
                BASE,
                uid_map=idmap((0, 100000, 65536)),
                gid_map=idmap((0, 100000, 65536)),
                containment=m.Containment(idmapped_mounts=True),
            ),
        ],
        [
            (
                replace(
                    BASE,
                    uid_map=idmap((0, 100000, 65536)),
                    gid_map=idmap((0, 100000, 65536)),
                    containment=m.Containment(privileged=True),
                ),
                "/domain/metadata/nsvirt:config/nsvirt:privileged",
                "give one or the other",
            ),
            (
                replace(BASE, containment=m.Containment(privileged=True, idmapped_mounts=True)),
                "/domain/metadata/nsvirt:config/nsvirt:idmapped-mounts",
                "needs a user namespace",
            ),
        ],
    ),
    validate.check_idmaps: (
        [
            BASE,
            replace(BASE, uid_map=idmap((0, 100000, 65536)), gid_map=idmap((0, 100000, 65536))),
            replace(
                BASE,
                uid_map=idmap((0, 100000, 1000), (1000, 500000, 10)),
                gid_map=idmap((0, 100000, 65536)),
            ),
        ],
        [
            (
                replace(BASE, uid_map=idmap((0, 100000, 0)), gid_map=idmap((0, 100000, 1))),
                "/domain/idmap/uid[1]",
                "count must be at least 1",
            ),
            (
                replace(BASE, uid_map=idmap((0, 2**32 - 10, 100)), gid_map=idmap((0, 1, 1))),
                "/domain/idmap/uid[1]",
                "goes past id 4294967295",
            ),
            (
                replace(
                    BASE,
                    uid_map=idmap((0, 100000, 1000), (500, 300000, 10)),
                    gid_map=idmap((0, 100000, 1)),
                ),
                "/domain/idmap/uid[2]",
                "overlaps uid map 1 inside the container",
            ),
            (
                replace(
                    BASE,
                    uid_map=idmap((0, 100000, 1000), (2000, 100500, 10)),
                    gid_map=idmap((0, 100000, 1)),
                ),
                "/domain/idmap/uid[2]",
                "overlaps uid map 1 on the host",
            ),
            (
                replace(BASE, uid_map=idmap((1, 100000, 10)), gid_map=idmap((0, 100000, 1))),
                "/domain/idmap/uid",
                "must map id 0",
            ),
            (
                replace(BASE, uid_map=idmap((0, 100000, 10))),
                "/domain/idmap",
                "needs both <uid> and <gid>",
            ),
        ],
    ),
    validate.check_network_namespace: (
        [
            replace(BASE, devices=devices(interfaces=(bridge(),))),
            replace(BASE, shared_namespaces=(share("net", "netns", "red"),)),
            replace(BASE, privnet=True),
        ],
        [
            (
                replace(
                    BASE,
                    devices=devices(interfaces=(bridge(),)),
                    shared_namespaces=(share("net", "netns", "red"),),
                ),
                "/domain/devices/interface",
                "needs a private network namespace",
            ),
            (
                replace(
                    BASE,
                    devices=devices(hostdevs=(m.Hostdev("capabilities", "net", "eth9"),)),
                    shared_namespaces=(share("net", "name", "other"),),
                ),
                "/domain/devices/hostdev[1]",
                "network <hostdev> needs a private",
            ),
            (
                replace(BASE, privnet=True, shared_namespaces=(share("net", "pid", "42"),)),
                "/domain/features/privnet",
                "<privnet/> asks for a private network namespace",
            ),
        ],
    ),
    validate.check_shared_namespace_values: (
        [
            replace(
                BASE,
                shared_namespaces=(
                    share("net", "netns", "red"),
                    share("uts", "pid", "42"),
                    share("ipc", "name", "db"),
                ),
            ),
        ],
        [
            (
                replace(BASE, shared_namespaces=(share("uts", "pid", "x"),)),
                "/domain/lxc:namespace/lxc:shareuts",
                "needs a process id",
            ),
            (
                replace(BASE, shared_namespaces=(share("uts", "pid", "0"),)),
                "/domain/lxc:namespace/lxc:shareuts",
                "needs a process id",
            ),
            (
                replace(BASE, shared_namespaces=(share("ipc", "name", "a/b"),)),
                "/domain/lxc:namespace/lxc:shareipc",
                "is not a valid name",
            ),
            (
                replace(BASE, shared_namespaces=(share("net", "name", ""),)),
                "/domain/lxc:namespace/lxc:sharenet",
                "is not a valid name",
            ),
        ],
    ),
    validate.check_console_ports: (
        [
            replace(
                BASE,
                devices=devices(
                    consoles=(m.CharDevice(0), m.CharDevice(1)), serials=(m.CharDevice(0, None),)
                ),
            )
        ],
        [
            (
                replace(BASE, devices=devices(consoles=(m.CharDevice(0), m.CharDevice(0)))),
                "/domain/devices/console[2]/target",
                "console port 0 is used more than once",
            ),
            (
                replace(
                    BASE, devices=devices(serials=(m.CharDevice(1, None), m.CharDevice(1, None)))
                ),
                "/domain/devices/serial[2]/target",
                "serial port 1 is used more than once",
            ),
        ],
    ),
    validate.check_interface_macs: (
        [nics(bridge("52:54:00:00:00:01"), bridge("52:54:00:00:00:02"), bridge())],
        [
            (
                nics(bridge("01:00:5e:00:00:01")),
                "/domain/devices/interface[1]/mac",
                "01:00:5e:00:00:01 is a multicast address",
            ),
            (
                nics(bridge("52:54:00:00:00:01"), bridge("52:54:00:00:00:01")),
                "/domain/devices/interface[2]/mac",
                "is used by interface 1 too",
            ),
        ],
    ),
    validate.check_interface_names: (
        [
            nics(bridge(), bridge()),
            nics(bridge(guest="wan"), bridge(guest="eth0")),
            nics(bridge(target="veth-web-0")),
        ],
        [
            (
                nics(bridge(guest="a-very-long-name0")),
                "/domain/devices/interface[1]/guest",
                "'a-very-long-name0' is not a valid interface name",
            ),
            (
                nics(bridge(guest="a/b")),
                "/domain/devices/interface[1]/guest",
                "'a/b' is not a valid interface name",
            ),
            (
                nics(bridge(target="x" * 16)),
                "/domain/devices/interface[1]/target",
                "is not a valid interface name",
            ),
            (
                nics(bridge(guest="lan"), bridge(guest="lan")),
                "/domain/devices/interface[2]/guest",
                "'lan' is also interface 1's",
            ),
            (
                nics(bridge(), bridge(guest="eth0")),
                "/domain/devices/interface[2]/guest",
                "'eth0' is also interface 1's",
            ),
        ],
    ),
    validate.check_interface_addresses: (
        [
            nics(
                bridge(
                    ips=(ip("192.0.2.2", 24), ip("2001:db8::2", 64)),
                    routes=(route("192.0.2.1"), route("2001:db8::1", "::")),
                )
            ),
            nics(
                bridge(ips=(ip("192.0.2.2", 32, peer="192.0.2.1"),), routes=(route("192.0.2.1"),))
            ),
            nics(bridge()),
        ],
        [
            (
                nics(bridge(ips=(ip("192.0.2.2", 33),))),
                "/domain/devices/interface[1]/ip[1]",
                "prefix 33 does not fit the IPv4 address 192.0.2.2",
            ),
            (
                nics(bridge(ips=(ip("2001:db8::2", 129),))),
                "/domain/devices/interface[1]/ip[1]",
                "prefix 129 does not fit the IPv6",
            ),
            (
                nics(bridge(ips=(ip("192.0.2.2", 24, family="ipv6"),))),
                "/domain/devices/interface[1]/ip[1]",
                "is not of family ipv6",
            ),
            (
                nics(bridge(ips=(ip("192.0.2.2", 24),), routes=(route("198.51.100.1"),))),
                "/domain/devices/interface[1]/route[1]",
                "gateway 198.51.100.1 is outside every subnet",
            ),
            (
                nics(bridge(routes=(route("192.0.2.1"),))),
                "/domain/devices/interface[1]/route[1]",
                "is outside every subnet",
            ),
        ],
    ),
    validate.check_initenv_unique: (
        [replace(BASE, os=m.Os(initenv=(("A", "1"), ("B", "2"))))],
        [
            (
                replace(BASE, os=m.Os(initenv=(("A", "1"), ("B", "2"), ("A", "3")))),
                "/domain/os/initenv[3]",
                "initenv 'A' is given more than once",
            )
        ],
    ),
}


def test_every_check_runs_and_is_tested_here() -> None:
    defined = [f for name, f in inspect.getmembers(validate, inspect.isfunction)
               if name.startswith("check_")]  # fmt: skip
    assert set(defined) == set(validate.CHECKS) == set(CASES)


@pytest.mark.parametrize(
    ("check", "dom"),
    [(c, d) for c, (good, _) in CASES.items() for d in good],
    ids=lambda v: v.__name__ if callable(v) else "",
)
def test_check_accepts(check, dom: m.DomainDef) -> None:
    check(dom)


@pytest.mark.parametrize(
    ("check", "dom", "path", "words"),
    [(c, d, p, w) for c, (_, bad) in CASES.items() for d, p, w in bad],
    ids=lambda v: v.__name__ if callable(v) else (v if isinstance(v, str) and v[:1] == "/" else ""),
)
def test_check_refuses(check, dom: m.DomainDef, path: str, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        check(dom)
    assert e.value.path == path
    assert words in e.value.reason
    validate.check(BASE)  # the base is fine: the refusal is this case's alone
    with pytest.raises(ConfigError):
        validate.check(dom)  # and the whole stage refuses it too
