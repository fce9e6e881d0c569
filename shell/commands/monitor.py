"""Monitoring commands: list, dominfo, domstate (statistics: shell/commands/stats.py)."""

from __future__ import annotations

import argparse
import json

from nsvirt.driver.state.states import DomainState, reason_label
from nsvirt.shell import output
from nsvirt.shell.commands import Context, command, domain_arg, domain_of
from nsvirt.shell.report import ShellError


def _list_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--all", action="store_true", help="list inactive & active domains")
    p.add_argument("--inactive", action="store_true", help="list inactive domains")
    p.add_argument("--state-running", action="store_true", help="list domains in running state")
    p.add_argument("--state-paused", action="store_true", help="list domains in paused state")
    p.add_argument("--state-shutoff", action="store_true", help="list domains in shutoff state")
    p.add_argument("--state-other", action="store_true", help="list domains in other states")
    p.add_argument("--autostart", action="store_true", help="list domains with autostart enabled")
    p.add_argument(
        "--no-autostart", action="store_true", help="list domains with autostart disabled"
    )
    p.add_argument("--persistent", action="store_true", help="list persistent domains")
    p.add_argument("--transient", action="store_true", help="list transient domains")
    p.add_argument("--name", action="store_true", help="list domain names only")
    p.add_argument("--uuid", action="store_true", help="list uuid's only")
    p.add_argument("--id", action="store_true", help="list domain IDs only")
    p.add_argument("--title", action="store_true", help="show domain title")
    p.add_argument("--table", action="store_true", help="list table (default)")
    p.add_argument("--json", action="store_true", help="machine-readable output (nsvirt)")


def _wanted(args: argparse.Namespace, state: DomainState, dom: object) -> bool:
    states = {DomainState.RUNNING: args.state_running, DomainState.PAUSED: args.state_paused,
              DomainState.SHUTOFF: args.state_shutoff}  # fmt: skip
    if any(states.values()) or args.state_other:
        if not states.get(state, args.state_other):
            return False
    elif state == DomainState.SHUTOFF:
        if not (args.all or args.inactive):
            return False
    elif args.inactive:
        return False
    if (args.autostart or args.no_autostart) and dom.autostart() != args.autostart:  # type: ignore[attr-defined]
        return False
    return not ((args.persistent or args.transient) and dom.is_persistent() != args.persistent)  # type: ignore[attr-defined]


@command("list", "list domains", _list_args)
def list_domains(ctx: Context, args: argparse.Namespace) -> int:
    rows = []

    def broken(e: Exception) -> None:  # one line per broken file; the others are listed
        print(f"error: {e}", file=ctx.err)

    for dom in ctx.conn.list_all(on_broken=broken):
        state, reason, dom_id = dom.status()
        if _wanted(args, state, dom):
            rows.append((dom, state, reason, dom_id))
    # as virsh: running domains first, by id; then the inactive ones, by name
    rows.sort(key=lambda r: (r[3] < 0, r[3] if r[3] > 0 else 0, r[0].name))
    if args.json:
        data = [{"id": i if i > 0 else None, "name": d.name, "uuid": d.uuid,
                 "state": s.label, "reason": reason_label(s, r),
                 "persistent": d.is_persistent(), "autostart": d.autostart()}
                for d, s, r, i in rows]  # fmt: skip
        print(json.dumps(data, indent=2), file=ctx.out)
        return 0
    if args.table:
        for flag in ("name", "uuid", "id"):
            if getattr(args, flag):
                raise ShellError(f"Options --table and --{flag} are mutually exclusive")
    if args.name or args.uuid or args.id:
        for dom, _, _, dom_id in rows:
            print(output.list_line(dom_id, dom.uuid, dom.name, args.uuid, args.id, args.name),
                  end="", file=ctx.out)  # fmt: skip
        print(file=ctx.out)
        return 0
    headers = ["Id", "Name", "State"] + (["Title"] if args.title else [])
    table = []
    for dom, state, _, dom_id in rows:
        row = ["-" if dom_id < 0 else str(dom_id), dom.name, state.label]
        if args.title:
            row.append(dom.definition().title or "")
        table.append(row)
    ctx.out.write(output.table(headers, table, header=not ctx.quiet))
    return 0


def _info_args(p: argparse.ArgumentParser) -> None:
    domain_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output (nsvirt)")


@command("dominfo", "domain information", _info_args, domains="all")
def dominfo(ctx: Context, args: argparse.Namespace) -> int:
    dom = ctx.lookup(domain_of(args, "dominfo"))
    info = dom.info()
    pairs = [
        ("Id", "-" if dom.id < 0 else str(dom.id)),
        ("Name", dom.name),
        ("UUID", dom.uuid),
        ("OS Type", "exe"),
        ("State", info.state.label),
        ("CPU(s)", str(info.vcpus)),
    ]
    if info.state != DomainState.SHUTOFF:
        pairs.append(("CPU time", f"{info.cpu_time / 1e9:.1f}s"))
    pairs += [
        ("Max memory", f"{info.max_memory} KiB"),
        ("Used memory", f"{info.memory} KiB"),
        ("Persistent", "yes" if dom.is_persistent() else "no"),
        ("Autostart", "enable" if dom.autostart() else "disable"),
        ("Managed save", "no"),
        ("Security model", "none"),
        ("Security DOI", "0"),
    ]
    if args.json:  # the vocabulary of docs/json.md
        state, reason = dom.state()
        data = {
            "id": dom.id if dom.id > 0 else None, "name": dom.name, "uuid": dom.uuid,
            "os_type": "exe", "state": state.label, "reason": reason_label(state, reason),
            "cpus": info.vcpus,
            "cpu_time_ns": info.cpu_time if info.state != DomainState.SHUTOFF else None,
            "max_memory_kib": info.max_memory, "used_memory_kib": info.memory,
            "persistent": dom.is_persistent(), "autostart": dom.autostart(),
            "managed_save": False, "security_model": "none",
            "containment": dom.containment(), "proc": dom.proc(),
        }  # fmt: skip
        print(json.dumps(data, indent=2), file=ctx.out)
        return 0
    ctx.out.write(output.fields(pairs))
    return 0


def _domstate_args(p: argparse.ArgumentParser) -> None:
    domain_arg(p)
    p.add_argument("--reason", action="store_true", help="also print reason for the state")
    p.add_argument("--json", action="store_true", help="machine-readable output (nsvirt)")


@command("domstate", "domain state", _domstate_args, domains="all")
def domstate(ctx: Context, args: argparse.Namespace) -> int:
    state, reason = ctx.lookup(domain_of(args, "domstate")).state()
    if args.json:
        data = {"state": state.label, "reason": reason_label(state, reason)}
        print(json.dumps(data), file=ctx.out)
        return 0
    text = f"{state.label} ({reason_label(state, reason)})" if args.reason else state.label
    print(text + "\n", file=ctx.out)
    return 0
