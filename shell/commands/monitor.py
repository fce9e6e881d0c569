"""Monitoring commands: list, dominfo, domstate."""

from __future__ import annotations

import argparse

from nsvirt.driver.state import DomainState, reason_label
from nsvirt.shell import output
from nsvirt.shell.commands import Context, command, domain_arg, domain_of


def _list_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--all", action="store_true", help="list inactive & active domains")
    p.add_argument("--inactive", action="store_true", help="list inactive domains")
    p.add_argument("--name", action="store_true", help="list domain names only")
    p.add_argument("--uuid", action="store_true", help="list uuid's only")
    p.add_argument("--title", action="store_true", help="show domain title")
    p.add_argument("--table", action="store_true", help="list table (default)")


@command("list", "list domains", _list_args)
def list_domains(ctx: Context, args: argparse.Namespace) -> int:
    doms = []
    for dom in ctx.conn.list_all():
        active = dom.is_active()
        if (active and not args.inactive) or (not active and (args.all or args.inactive)):
            doms.append(dom)
    if (args.name or args.uuid) and not args.table:
        for dom in doms:
            words = [w for w, on in ((dom.uuid, args.uuid), (dom.name, args.name)) if on]
            print(" ".join(words), file=ctx.out)
        print(file=ctx.out)
        return 0
    headers = ["Id", "Name", "State"] + (["Title"] if args.title else [])
    rows = []
    for dom in doms:
        state, _ = dom.state()
        row = ["-" if dom.id < 0 else str(dom.id), dom.name, state.label]
        if args.title:
            row.append(dom.definition().title or "")
        rows.append(row)
    ctx.out.write(output.table(headers, rows))
    return 0


@command("dominfo", "domain information", domain_arg, domains="all")
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
    ctx.out.write(output.fields(pairs))
    return 0


def _domstate_args(p: argparse.ArgumentParser) -> None:
    domain_arg(p)
    p.add_argument("--reason", action="store_true", help="also print reason for the state")


@command("domstate", "domain state", _domstate_args, domains="all")
def domstate(ctx: Context, args: argparse.Namespace) -> int:
    state, reason = ctx.lookup(domain_of(args, "domstate")).state()
    text = f"{state.label} ({reason_label(state, reason)})" if args.reason else state.label
    print(text + "\n", file=ctx.out)
    return 0
