"""Statistics commands, as virsh's: dommemstat, cpu-stats, domblkstat, domstats (the
last with --json, and nsvirt's memory events and pressure in it)."""

from __future__ import annotations

import argparse
import json

from nsvirt.driver.errors import OperationUnsupported
from nsvirt.shell import output
from nsvirt.shell.commands import Context, command, domain_arg, domain_of
from nsvirt.shell.report import CommandFailed, ShellError


def _memstat_args(p: argparse.ArgumentParser) -> None:
    domain_arg(p)
    p.add_argument("--period", help="the balloon's statistics period (no balloon here)")
    for flag in ("--config", "--live", "--current"):
        p.add_argument(flag, action="store_true", help="(with --period) as virsh has it")


@command("dommemstat", "get memory statistics for a domain", _memstat_args, domains="active")
def dommemstat(ctx: Context, args: argparse.Namespace) -> int:
    """virsh's `name value` lines, KiB: what libvirt's LXC driver reports."""
    dom = ctx.lookup(domain_of(args, "dommemstat"))
    if args.period is not None:  # a container has no balloon driver to poll
        raise ShellError("this function is not supported by the connection driver: "
                         "virDomainSetMemoryStatsPeriod")  # fmt: skip
    stats = dom.memory_stats()
    ctx.out.write("".join(f"{k} {v}\n" for k, v in stats.items()) + "\n")
    return 0


def _cpu_stats_args(p: argparse.ArgumentParser) -> None:
    domain_arg(p)
    p.add_argument("--total", action="store_true", help="Show total statistics only")
    p.add_argument("start", nargs="?", help="Show statistics from this CPU")
    p.add_argument("--start", dest="start_opt", help=argparse.SUPPRESS)
    p.add_argument("count", nargs="?", help="Number of shown CPUs at most")
    p.add_argument("--count", dest="count_opt", help=argparse.SUPPRESS)


def _number(text: str | None, option: str) -> int | None:
    if text is None:
        return None
    if not text.lstrip("-").isdigit():
        raise ShellError(f"Unable to parse integer parameter to --{option}")
    return int(text)


@command("cpu-stats", "show domain cpu statistics", _cpu_stats_args, domains="active")
def cpu_stats(ctx: Context, args: argparse.Namespace) -> int:
    """virsh's layout: `CPUn:` blocks of per-CPU time, then `Total:`."""
    dom = ctx.lookup(domain_of(args, "cpu-stats"))
    start = _number(args.start_opt or args.start, "start")
    count = _number(args.count_opt or args.count, "count")
    if start is not None and start < 0:
        raise ShellError("Invalid value for start CPU")
    if count is not None and count < 0:
        raise ShellError("Invalid value for number of CPUs to show")
    per_cpu_only = start is not None or count is not None
    shown: list[tuple[int, dict[str, int]]] = []
    notes = ""
    if not args.total:
        try:
            per_cpu = dom.cpu_stats(0, 1 << 20)
        except OperationUnsupported:
            if per_cpu_only:  # asked for by number: say why there is none
                raise
            per_cpu = []  # cgroup v2: the totals are what there is
        except Exception as e:
            raise CommandFailed(f"Failed to retrieve CPU statistics for domain '{dom.name}'",
                                e) from e  # fmt: skip
        first = start or 0
        if per_cpu and first >= len(per_cpu):
            raise ShellError(f"Start CPU {first} is out of range "
                             f"(min: 0, max: {len(per_cpu) - 1})")  # fmt: skip
        last = len(per_cpu) if count is None else first + count
        if last > len(per_cpu) and per_cpu:
            notes = f"Only {len(per_cpu)} CPUs available to show\n"
        shown = [(n, per_cpu[n]) for n in range(first, min(last, len(per_cpu)))]
    total = dom.cpu_stats()[0] if args.total or not per_cpu_only else None
    ctx.out.write(notes + output.cpu_stats(shown, total))
    return 0


def _blkstat_args(p: argparse.ArgumentParser) -> None:
    domain_arg(p)
    p.add_argument("device", nargs="?", help="block device")
    p.add_argument("--device", dest="device_opt", help=argparse.SUPPRESS)
    p.add_argument("--human", action="store_true", help="print a more human readable output")


HUMAN = {
    "rd_req": "number of read operations:",
    "rd_bytes": "number of bytes read:",
    "wr_req": "number of write operations:",
    "wr_bytes": "number of bytes written:",
}


@command("domblkstat", "get device block stats for a domain", _blkstat_args, domains="active")
def domblkstat(ctx: Context, args: argparse.Namespace) -> int:
    """virsh's `DEVICE FIELD VALUE` lines (DEVICE empty for the whole domain)."""
    dom = ctx.lookup(domain_of(args, "domblkstat"))
    device = args.device_opt or args.device or ""
    try:
        stats = dom.block_stats(device or None)
    except Exception as e:
        raise CommandFailed(f"Failed to get block stats for domain '{dom.name}' device "
                            f"'{device}'", e) from e  # fmt: skip
    if args.human:
        lines = [f"Device: {device}\n"] + [f" {HUMAN[k]:<31} {v}\n" for k, v in stats.items()]
    else:
        lines = [f"{device} {k} {v}\n" for k, v in stats.items()]
    ctx.out.write("".join(lines) + "\n")
    return 0


def _domstats_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("domains", nargs="*", metavar="DOMAIN", help="list of domains to get stats for")
    for group in ("state", "cpu-total", "balloon"):
        p.add_argument(f"--{group}", action="store_true", help=f"report domain {group} statistics")
    p.add_argument("--list-active", action="store_true", help="list only active domains")
    p.add_argument("--list-inactive", action="store_true", help="list only inactive domains")
    p.add_argument("--json", action="store_true", help="one JSON document, nsvirt's facts too")


GROUPS = {"state": "state.", "cpu_total": "cpu.", "balloon": "balloon."}


@command("domstats", "get statistics about one or multiple domains", _domstats_args)
def domstats(ctx: Context, args: argparse.Namespace) -> int:
    """virsh's `Domain: 'NAME'` blocks of `  key=value` (libvirt's LXC driver has no
    domstats); --json adds, under "nsvirt", the block I/O, memory events and
    pressure (PSI, cgroup v2), which have no libvirt field names."""
    if args.domains:
        found = [(d, d.stats()) for d in map(ctx.lookup, args.domains)]
    else:
        found = ctx.conn.all_domain_stats(active_only=False)
    running = (1, 3)
    if args.list_active:
        found = [(d, s) for d, s in found if s["state.state"] in running]
    if args.list_inactive:
        found = [(d, s) for d, s in found if s["state.state"] not in running]
    prefixes = tuple(p for g, p in GROUPS.items() if getattr(args, g)) or tuple(GROUPS.values())
    if args.json:
        data = [{"name": d.name, "uuid": d.uuid,
                 **{k: v for k, v in s.items() if k.startswith(prefixes) or k == "nsvirt"}}
                for d, s in found]  # fmt: skip
        print(json.dumps(data, indent=2), file=ctx.out)
        return 0
    out = []
    for dom, stats in found:
        out.append(f"Domain: '{dom.name}'\n")
        out += [f"  {k}={v}\n" for k, v in stats.items() if k.startswith(prefixes)]
        out.append("\n")
    ctx.out.write("".join(out))
    return 0
