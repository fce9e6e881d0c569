"""Domain definition commands: define, undefine, dumpxml, domuuid, domname, domid."""

from __future__ import annotations

import argparse

from nsvirt.shell.commands import Context, command, domain_arg, domain_of
from nsvirt.shell.report import CommandFailed, ShellError


def _define_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", nargs="?", metavar="FILE", help="file containing an XML domain")
    p.add_argument("--file", dest="file_opt", help=argparse.SUPPRESS)
    p.add_argument(
        "--validate",
        action="store_true",
        help="validate the XML against the schema (always done by nsvirt)",
    )


@command("define", "define (but don't start) a domain from an XML file", _define_args)
def define(ctx: Context, args: argparse.Namespace) -> int:
    from nsvirt.driver import xmlio  # xmlschema costs ~250 ms: load it where XML is parsed

    path = args.file_opt or args.file
    if not path:
        raise ShellError("command 'define' requires <file> option")
    try:
        with open(path, "rb") as f:
            data = f.read(xmlio.MAX_BYTES + 1)
        dom = ctx.conn.define_xml(data, source=path)
    except Exception as e:
        raise CommandFailed(f"Failed to define domain from {path}", e) from e
    ctx.print(f"Domain '{dom.name}' defined from {path}\n")
    return 0


@command("undefine", "undefine a domain", domain_arg, domains="all")
def undefine(ctx: Context, args: argparse.Namespace) -> int:
    from nsvirt.shell.commands.lifecycle import act

    return act(
        ctx,
        args,
        "undefine",
        "Failed to undefine domain '{}'",
        "Domain '{}' has been undefined",
        lambda dom: dom.undefine(),
    )


def _dumpxml_args(p: argparse.ArgumentParser) -> None:
    domain_arg(p)
    p.add_argument("--inactive", action="store_true", help="show inactive defined XML")
    p.add_argument("--security-info", action="store_true", help="include security info")


@command("dumpxml", "domain information in XML", _dumpxml_args, domains="all")
def dumpxml(ctx: Context, args: argparse.Namespace) -> int:
    dom = ctx.lookup(domain_of(args, "dumpxml"))
    print(dom.xml_desc(inactive=args.inactive), file=ctx.out)
    return 0


@command("domuuid", "convert a domain name or id to domain UUID", domain_arg, domains="all")
def domuuid(ctx: Context, args: argparse.Namespace) -> int:
    print(ctx.lookup(domain_of(args, "domuuid")).uuid + "\n", file=ctx.out)
    return 0


@command("domname", "convert a domain id or UUID to domain name", domain_arg, domains="all")
def domname(ctx: Context, args: argparse.Namespace) -> int:
    print(ctx.lookup(domain_of(args, "domname")).name + "\n", file=ctx.out)
    return 0


@command("domid", "convert a domain name or UUID to domain id", domain_arg, domains="all")
def domid(ctx: Context, args: argparse.Namespace) -> int:
    dom = ctx.lookup(domain_of(args, "domid"))
    print(("-" if dom.id < 0 else str(dom.id)) + "\n", file=ctx.out)
    return 0
