"""Write a user namespace's uid_map and gid_map (from outside it, as its parent)."""

from __future__ import annotations

from nsvirt.driver.runtime.syscalls import SyscallError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any


def format_map(maps: Sequence[Any]) -> str:
    """`start target count` lines, as /proc/PID/uid_map takes them."""
    return "".join(f"{m.start} {m.target} {m.count}\n" for m in maps)


def write_id_maps(pid: int, uid_map: Sequence[Any], gid_map: Sequence[Any]) -> None:
    """Map ids for the user namespace of `pid`. As root outside it, no setgroups=deny
    is needed (only an unprivileged writer must give up setgroups, CVE-2014-8989)."""
    for name, maps in (("uid_map", uid_map), ("gid_map", gid_map)):
        path = f"/proc/{pid}/{name}"
        try:
            with open(path, "w") as f:
                f.write(format_map(maps))  # one write(2): the kernel takes the map once
        except OSError as e:
            raise SyscallError(f"cannot write {name}", e.errno or 5) from None


def host_id(maps: Sequence[Any], inside: int = 0) -> int:
    """The host id that `inside` maps to."""
    for m in maps:
        if m.start <= inside < m.start + m.count:
            return m.target + inside - m.start
    raise LookupError(f"id {inside} is not mapped")
