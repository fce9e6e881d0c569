"""What define adds to a parsed definition, as libvirt's define does: a uuid, MAC
addresses for interfaces without one, and the host's architecture.

Parsing is deterministic (the same bytes, the same DomainDef); this is where
randomness and the host come in, once, and the result is what gets stored.
"""

from __future__ import annotations

import os
import re

from nsvirt.driver import uuids
from nsvirt.driver.domxml import model as m
from nsvirt.driver.errors import OperationFailed
from nsvirt.driver.records import replace

# Guest arches an exe container can run on each host arch (libvirt's capabilities).
COMPAT_ARCHES = {
    "x86_64": ("x86_64", "i686"),
    "aarch64": ("aarch64", "armv7l"),
    "ppc64le": ("ppc64le",),
    "s390x": ("s390x",),
    "riscv64": ("riscv64",),
}
MAC_PREFIX = "52:54:00"  # libvirt's prefix for generated guest MACs


# host-side names made by libvirt (vnetN, macvtapN…) or by nsvirt (nv<tag>-N): live state
# of the run that made them (a dump's), dropped as libvirt's define drops them
GENERATED_HOST_NAME = re.compile(r"(vnet|vif|macvtap|macvlan).*|nv([0-9a-f]{8}|system)-\d+")


def chosen_host_name(name: str | None) -> str | None:
    """A <target dev> the user chose; None for one a run generated."""
    return None if name is None or GENERATED_HOST_NAME.fullmatch(name) else name


def random_mac() -> str:
    return MAC_PREFIX + "".join(f":{b:02x}" for b in os.urandom(3))


def at_define(dom: m.DomainDef, host_arch: str, uuid: str | None = None) -> m.DomainDef:
    """Fill in the uuid (the given one, else a new one), missing MACs and the arch;
    refuse an arch this host cannot run."""
    allowed = COMPAT_ARCHES.get(host_arch, (host_arch,))
    if dom.os.arch is not None and dom.os.arch not in allowed:
        raise OperationFailed(
            f"no container support for arch={dom.os.arch} on a "
            f"{host_arch} host (supported: {', '.join(allowed)})"
        )
    interfaces = tuple(
        replace(i, mac=i.mac or random_mac(), target_dev=chosen_host_name(i.target_dev))
        for i in dom.devices.interfaces
    )
    return replace(
        dom,
        live_idmap=None,  # a run's, as libvirt's define drops live state
        uuid=dom.uuid or uuid or uuids.new(),
        os=dom.os if dom.os.arch is not None else replace(dom.os, arch=host_arch),
        devices=replace(dom.devices, interfaces=interfaces),
    )
