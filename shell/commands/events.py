"""`event`, as virsh's: wait for domain events and print them as they come, from the
event log that supervisors and clients write (driver/events.py), with no daemon."""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING

from nsvirt.shell.commands import Context, command
from nsvirt.shell.report import ShellError

if TYPE_CHECKING:
    from nsvirt.driver.events import DomainEvent

# virsh 9.0's event types, in its order (`event --list`); nsvirt's domains have the
# first two, and waiting for another is waiting for what never comes, as with virsh.
# nsvirt adds "memory" (a memory limit bit: memory.events moved), also in --all.
EVENT_TYPES = (
    "lifecycle", "reboot", "rtc-change", "watchdog", "io-error", "graphics",
    "io-error-reason", "control-error", "block-job", "disk-change", "tray-change",
    "pm-wakeup", "pm-suspend", "balloon-change", "pm-suspend-disk", "device-removed",
    "block-job-2", "tunable", "agent-lifecycle", "device-added", "migration-iteration",
    "job-completed", "device-removal-failed", "metadata-change", "block-threshold",
    "memory-failure", "memory-device-size-change",
)  # fmt: skip


def _event_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--domain", help="filter by domain name, id or uuid")
    p.add_argument("--event", help="which event type to wait for")
    p.add_argument(
        "--all", action="store_true", help="wait for all events instead of just one type"
    )
    p.add_argument("--loop", action="store_true",
                   help="loop until timeout or interrupt, rather than one-shot")  # fmt: skip
    p.add_argument("--timeout", help="timeout seconds")
    p.add_argument("--list", action="store_true", help="list valid event types")
    p.add_argument("--timestamp", action="store_true", help="show timestamp for each printed event")
    p.add_argument("--json", action="store_true", help="one JSON object per event (nsvirt)")
    p.add_argument("--since", metavar="CURSOR",
                   help="go on after CURSOR (a --json line's), not from now (nsvirt)")  # fmt: skip


def _exclusive(args: argparse.Namespace) -> None:
    for a, b in (("all", "event"), ("list", "all"), ("list", "event")):
        if getattr(args, a) and getattr(args, b):
            raise ShellError(f"Options --{a} and --{b} are mutually exclusive")


def _timestamp(when: float) -> str:
    """virsh's: UTC, milliseconds, a literal +0000."""
    t = time.gmtime(when)
    millis = int(when * 1000) % 1000
    return (f"{t.tm_year:4d}-{t.tm_mon:02d}-{t.tm_mday:02d} {t.tm_hour:02d}:{t.tm_min:02d}:"
            f"{t.tm_sec:02d}.{millis:03d}+0000")  # fmt: skip


@command("event", "Domain Events", _event_args)
def event(ctx: Context, args: argparse.Namespace) -> int:
    from nsvirt.driver.events import EventReader

    _exclusive(args)
    if args.list:
        ctx.out.write("".join(f"{name}\n" for name in EVENT_TYPES))
        return 0
    if not args.all and not args.event:
        raise ShellError("one of --list, --all, or --event <type> is required")
    if args.event and args.event not in (*EVENT_TYPES, "memory"):
        raise ShellError(f"unknown event type {args.event}")
    timeout = None
    if args.timeout is not None:
        digits = args.timeout.isascii() and args.timeout.isdigit()
        if not digits or not 0 < int(args.timeout) <= 2**31 // 1000:
            raise ShellError(f"Numeric value '{args.timeout}' for <timeout> option is "
                             "malformed or out of range")  # fmt: skip
        timeout = float(args.timeout)
    uuid = ctx.lookup(args.domain).uuid if args.domain else None
    kinds = {"lifecycle", "reboot", "memory"} if args.all else {args.event}
    count = 0
    ending = "event loop timed out\n"
    try:
        reader = EventReader(ctx.conn.paths.names, args.since)
    except OSError as e:  # no inotify instance left, say
        raise ShellError(f"cannot follow the event log: {e.strerror}") from None
    deadline = None if timeout is None else time.monotonic() + timeout  # from the wait's start
    with reader:
        try:
            while True:  # at least one read: what --since names is there already
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                for found in reader.next(left):
                    if found.kind not in kinds or (uuid is not None and found.uuid != uuid):
                        continue
                    _print(ctx, args, found)
                    count += 1
                    if not args.loop:
                        break
                if count and not args.loop:
                    ending = ""
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
        except KeyboardInterrupt:
            ending = "event loop interrupted\n"
    ctx.out.write(f"{ending}events received: {count}\n")
    return 0 if count else 1  # virsh: no event, no success (and no error line)


def _print(ctx: Context, args: argparse.Namespace, found: DomainEvent) -> None:
    event_word, detail_word = found.words
    if args.json:
        data: dict[str, object] = {"time": found.time, "cursor": found.cursor,
                                   "kind": found.kind, "domain": found.domain,
                                   "uuid": found.uuid}  # fmt: skip
        if found.kind == "lifecycle":
            data |= {"event": event_word.lower(), "detail": detail_word.lower()}
        line = json.dumps(data | found.extra)
    else:
        stamp = f"{_timestamp(found.time)}: " if args.timestamp else ""
        line = f"{stamp}event '{found.kind}' for domain '{found.domain}'"
        if found.kind == "lifecycle":
            line += f": {event_word} {detail_word}"
        elif found.kind == "memory":  # nsvirt's: which memory.events counters moved
            moved = found.extra.get("moved", {})
            line += ": " + ", ".join(f"{k} +{v}" for k, v in moved.items())
    ctx.out.write(line + "\n")
    ctx.out.flush()  # as virsh: each event as it comes, through a pipe too
