"""The host-wide table of host id ranges given to unprivileged containers.

A default domain (no <idmap>) runs in a user namespace whose 65536 ids map to a
range of host ids no other container holds. The supervisor takes one at start and
gives it back at the end; one table serves every connection root on the host, under
a lock. An entry names its owner (the supervisor's pid and start time): the range of
an owner that is gone (killed, or the machine rebooted: the table lives in /run) is
free again, for a supervisor's container never outlives it (init dies with it, and
its pid namespace with init).

Ranges overlapping any entry of /etc/subuid or /etc/subgid are never given: they
are someone else's (rootless podman, LXC, Incus). $NSVIRT_IDRANGES points tests at
their own table. Free of dataclasses: the supervisor uses it.
"""

from __future__ import annotations

import os

from nsvirt.driver.errors import InternalError
from nsvirt.driver.runtime import procstat
from nsvirt.driver.state import files, jsonlite

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

TABLE = "/run/nsvirt/idranges.json"
FORMAT = 1
# 0x70000000 up to systemd's "foreign" range (0x7FFE0000): 4094 ranges, above what
# useradd (subordinate ids), Incus (1000000-1000999999) and systemd-nspawn
# (524288-1879048191) give out; the table's "first" and "ranges" may be edited
FIRST = 0x70000000
RANGES = 4094
SIZE = 65536
SUBID_FILES = ("/etc/subuid", "/etc/subgid")


class Exhausted(InternalError):
    """Every range is held."""


def table_path() -> str:
    return os.environ.get("NSVIRT_IDRANGES") or TABLE


def allocate(table: str, *, pid: int, pid_start: int, root: str, name: str,
             uuid: str) -> int:  # fmt: skip
    """Give the caller (the supervisor `pid`) a free range; return its first host id.
    A domain gets the same range each start while nobody else took it."""
    with _locked(table):
        data = _read(table)
        entries = [e for e in data["allocated"] if _pid_exists(int(e["pid"]))]
        by_start = {e["start"]: e for e in entries}
        first, count = int(data["first"]), int(data["ranges"])
        reserved = _subordinate_ranges()
        preferred = int(uuid.replace("-", ""), 16) % count if uuid else 0
        for k in range(count):
            start = first + ((preferred + k) % count) * SIZE
            if _overlaps(start, reserved):
                continue
            holder = by_start.get(start)
            # only a holder in the way is checked: a start among hundreds stays cheap
            if holder is not None:
                if _owner_alive(holder):
                    continue
                entries.remove(holder)  # its supervisor is gone: the range is free
            entries.append({"start": start, "pid": pid, "pid_start": pid_start,
                            "root": root, "name": name, "uuid": uuid})  # fmt: skip
            _write(table, data, entries)
            return start
    raise Exhausted(f"every one of the {count} host id ranges in {table} is held by a running "
                    "container")  # fmt: skip


def release(table: str, start: int, pid: int) -> None:
    """Give back the range `start` that the supervisor `pid` holds."""
    with _locked(table):
        data = _read(table)
        kept = [e for e in data["allocated"] if not (e["start"] == start and e["pid"] == pid)]
        if len(kept) != len(data["allocated"]):
            _write(table, data, kept)


def release_gone(table: str) -> None:
    """Drop the entries whose owner is gone (after a supervisor was killed)."""
    if not os.path.exists(table):
        return
    with _locked(table):
        data = _read(table)
        kept = [e for e in data["allocated"] if _owner_alive(e)]
        if len(kept) != len(data["allocated"]):
            _write(table, data, kept)


def held(table: str) -> list[dict[str, Any]]:
    """The entries whose owner runs."""
    if not os.path.exists(table):
        return []
    return [e for e in _read(table)["allocated"] if _owner_alive(e)]


def _locked(table: str) -> Any:
    os.makedirs(os.path.dirname(table) or ".", mode=0o755, exist_ok=True)
    return files.locked(table + ".lock", "the host id range table")


def _read(table: str) -> dict[str, Any]:
    try:
        with open(table, "rb") as f:
            data = jsonlite.loads(f.read())
    except FileNotFoundError:
        return {"format": FORMAT, "first": FIRST, "ranges": RANGES, "allocated": []}
    except (OSError, ValueError) as e:
        raise InternalError(f"the host id range table {table} is unreadable ({e}); it lists "
                            "the ids of running containers: repair it, or remove it when "
                            "no default (unprivileged) domain runs") from None  # fmt: skip
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InternalError(f"the host id range table {table} is not of format {FORMAT}")
    return data


def _write(table: str, data: dict[str, Any], allocated: list[dict[str, Any]]) -> None:
    """The table with one entry a line: readable, and written by json's C encoder."""
    head = "".join(f"{jsonlite.dumps(k)}: {jsonlite.dumps(v)}, "
                   for k, v in data.items() if k != "allocated")  # fmt: skip
    lines = ",\n".join(" " + jsonlite.dumps(e) for e in sorted(allocated, key=lambda e: e["start"]))
    text = "{" + head + '"allocated": [' + (f"\n{lines}\n" if lines else "") + "]}\n"
    files.write_atomic(table, text.encode(), mode=0o644, durable=False)


def _pid_exists(pid: int) -> bool:
    """Cheap (one signal-0 syscall, no /proc read): False means the owner is surely
    gone; True may be a reused pid, which _owner_alive tells apart when it matters."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_alive(entry: dict[str, Any]) -> bool:
    stat = procstat.read(int(entry["pid"]))
    return stat is not None and stat.start_time == entry["pid_start"] and stat.state != "Z"


def _subordinate_ranges() -> list[tuple[int, int]]:
    """(first, count) of every /etc/subuid and /etc/subgid entry."""
    out = []
    for path in SUBID_FILES:
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in lines:
            fields = line.strip().split(":")
            if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
                out.append((int(fields[1]), int(fields[2])))
    return out


def _overlaps(start: int, ranges: list[tuple[int, int]]) -> bool:
    return any(first < start + SIZE and start < first + count for first, count in ranges)
