"""Look up init's user and group in the container's own /etc/passwd and /etc/group
(after pivot_root: these are the container's files, read as the container sees them)."""

from __future__ import annotations

import os


class UnknownUser(LookupError):
    """str() is the reason the user sees."""


def _entry(path: str, key: str) -> list[str] | None:
    try:
        with open(path) as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if fields and fields[0] == key:
                    return fields
    except OSError:
        pass
    return None


def resolve(user: str | None, group: str | None) -> tuple[int, int, str]:
    """(uid, gid, home) for <inituser>/<initgroup>: names or numbers."""
    uid, gid, home = 0, 0, "/"
    if user is not None:
        entry = _entry("/etc/passwd", user)
        if entry and len(entry) >= 6:
            uid, gid, home = int(entry[2]), int(entry[3]), entry[5] or "/"
        elif user.isdigit():
            uid = int(user)
        else:
            raise UnknownUser(f"user '{user}' is not in the container's /etc/passwd")
    if group is not None:
        entry = _entry("/etc/group", group)
        if entry and len(entry) >= 3:
            gid = int(entry[2])
        elif group.isdigit():
            gid = int(group)
        else:
            raise UnknownUser(f"group '{group}' is not in the container's /etc/group")
    return uid, gid, home


def become(uid: int, gid: int) -> None:
    """Drop to `uid` and `gid` in every id (real, effective, saved), with no
    supplementary groups: the group first, while we may still change it."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
