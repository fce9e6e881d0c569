"""What the host offers, detected once: cgroup layout, online CPUs, architecture.

`detect()` reads /proc and /sys; everything downstream (plan, backends) takes
the resulting HostFacts as data, so tests can build their own.
"""

from __future__ import annotations

from nsvirt.driver.launch import hostprobe
from nsvirt.driver.records import Record, factory


class HostFacts(Record):
    cgroup_mode: str  # the backend: "v1" | "v2" (a hybrid host's controllers are v1)
    cgroup_mounts: dict[str, str] = factory(dict)  # v1: controller -> mount
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
    return hostprobe.host_arch()


def detect() -> HostFacts:
    """Detect the host (hostprobe.py reads it). $NSVIRT_CGROUP_MODE forces a backend."""
    found = hostprobe.probe()
    return HostFacts(
        user_namespaces=bool(found["user_namespaces"]),
        cgroup_mode=str(found["cgroup_mode"]),
        cgroup_mounts=dict(found["cgroup_mounts"]),  # type: ignore[call-overload]
        cgroup2_mount=str(found["cgroup2_mount"]),
        cpus_online=frozenset(found["cpus_online"]),  # type: ignore[arg-type]
        arch=str(found["arch"]),
        kernel=str(found["kernel"]),
    )
