"""What the host offers, read from /proc and /sys as plain data: cgroup layout,
online CPUs, architecture, kernel, user namespaces.

Light on purpose (no dataclasses, pathlib, platform): the one-shot start checks
that the host is still the one a compiled launch plan was made for. hostfacts.py
wraps the same dict in HostFacts for the driver.
"""

from __future__ import annotations

import os

from nsvirt.driver.domxml.units import parse_cpuset

CGROUP_ROOT = "/sys/fs/cgroup"
V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids")


def host_arch() -> str:
    """The host's architecture in libvirt's names."""
    machine = os.uname().machine
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def mounts() -> list[tuple[str, str, str]]:
    """(mount point, fstype, super options) of every mount, from /proc/self/mountinfo."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            mount_point = left.split()[4]
            fstype, _source, super_opts = right.split()[:3]
            out.append((mount_point.replace("\\040", " "), fstype, super_opts))
    return out


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def probe() -> dict[str, object]:
    """The host, as HostFacts.to_dict() has it. $NSVIRT_CGROUP_MODE ("v1"/"v2")
    forces a backend."""
    v1: dict[str, str] = {}
    v2 = ""
    for point, fstype, opts in mounts():
        if fstype == "cgroup":
            for ctrl in opts.split(","):
                if ctrl in V1_CONTROLLERS and ctrl not in v1:
                    v1[ctrl] = point
        elif fstype == "cgroup2" and (not v2 or point == CGROUP_ROOT):
            v2 = point
    try:
        online = parse_cpuset(_read("/sys/devices/system/cpu/online"))
    except OSError:
        online = frozenset(range(os.cpu_count() or 1))
    try:
        userns = int(_read("/proc/sys/user/max_user_namespaces")) > 0
    except (OSError, ValueError):
        userns = os.path.exists("/proc/self/ns/user")
    return {
        "cgroup_mode": os.environ.get("NSVIRT_CGROUP_MODE") or ("v1" if v1 else "v2"),
        "cgroup_mounts": v1,
        "cgroup2_mount": v2,
        "cpus_online": sorted(online),
        "arch": host_arch(),
        "kernel": os.uname().release,
        "user_namespaces": userns,
    }
