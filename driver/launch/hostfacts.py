"""What the host offers, detected once: cgroup layout, online CPUs, architecture.

`detect()` reads /proc and /sys; everything downstream (plan, backends) takes
the resulting HostFacts as data, so tests can build their own.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

from nsvirt.driver.domxml.units import parse_cpuset
from nsvirt.driver.runtime.cgroups.v1 import CONTROLLERS as V1_CONTROLLERS

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True, slots=True)
class HostFacts:
    cgroup_mode: str  # the backend: "v1" | "v2" (a hybrid host's controllers are v1)
    cgroup_mounts: dict[str, str] = field(default_factory=dict)  # v1: controller -> mount
    cgroup2_mount: str = ""  # v2: the cgroup2 mount point
    cpus_online: frozenset[int] = frozenset({0})
    arch: str = "x86_64"
    kernel: str = ""
    user_namespaces: bool = True  # user.max_user_namespaces is not 0

    def to_dict(self) -> dict[str, object]:
        return {
            "cgroup_mode": self.cgroup_mode,
            "cgroup_mounts": self.cgroup_mounts,
            "cgroup2_mount": self.cgroup2_mount,
            "cpus_online": sorted(self.cpus_online),
            "arch": self.arch,
            "kernel": self.kernel,
            "user_namespaces": self.user_namespaces,
        }


def host_arch() -> str:
    """The host's architecture in libvirt's names."""
    machine = platform.machine()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def _mounts() -> list[tuple[str, str, str]]:
    """(mount point, fstype, super options) of every mount, from /proc/self/mountinfo."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            mount_point = left.split()[4]
            fstype, _source, super_opts = right.split()[:3]
            out.append((mount_point.replace("\\040", " "), fstype, super_opts))
    return out


def detect() -> HostFacts:
    """Detect the host. $NSVIRT_CGROUP_MODE ("v1"/"v2") forces a backend."""
    mounts = _mounts()
    v1: dict[str, str] = {}
    v2 = ""
    for point, fstype, opts in mounts:
        if fstype == "cgroup":
            for ctrl in opts.split(","):
                if ctrl in V1_CONTROLLERS and ctrl not in v1:
                    v1[ctrl] = point
        elif fstype == "cgroup2" and (not v2 or point == str(CGROUP_ROOT)):
            v2 = point
    mode = os.environ.get("NSVIRT_CGROUP_MODE") or ("v1" if v1 else "v2")
    try:
        online = parse_cpuset(Path("/sys/devices/system/cpu/online").read_text().strip())
    except OSError:
        online = frozenset(range(os.cpu_count() or 1))
    try:
        userns = int(Path("/proc/sys/user/max_user_namespaces").read_text()) > 0
    except (OSError, ValueError):
        userns = Path("/proc/self/ns/user").exists()
    return HostFacts(
        user_namespaces=userns,
        cgroup_mode=mode,
        cgroup_mounts=v1,
        cgroup2_mount=v2,
        cpus_online=online,
        arch=host_arch(),
        kernel=platform.release(),
    )
