"""Domain definition commands: define, undefine, dumpxml, domuuid, domname, domid,
domhostname."""

from __future__ import annotations

import argparse

from nsvirt.shell import output
from nsvirt.shell.commands import Context, command, domain_arg, domain_of, file_arg, from_xml_file


@command("define", "define (but don't start) a domain from an XML file", file_arg)
def define(ctx: Context, args: argparse.Namespace) -> int:
    dom, path = from_xml_file(args, "define", "define",
                              lambda data, src: ctx.conn.define_xml(data, source=src))  # fmt: skip
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
    p.add_argument("--xpath", metavar="EXPRESSION", help="xpath query to evaluate on the XML")
    p.add_argument(
        "--wrap", action="store_true", help="wrap xpath results in an common root element"
    )


@command("dumpxml", "domain information in XML", _dumpxml_args, domains="all")
def dumpxml(ctx: Context, args: argparse.Namespace) -> int:
    dom = ctx.lookup(domain_of(args, "dumpxml"))
    xml = dom.xml_desc(inactive=args.inactive)
    if args.xpath is None:
        print(xml, file=ctx.out)
        return 0
    print(output.xpath_result(xml, args.xpath, args.wrap) + "\n", file=ctx.out)
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


def _hostname_args(p: argparse.ArgumentParser) -> None:
    domain_arg(p)
    p.add_argument("--source", help="address source: 'lease' or 'agent'")


@command("domhostname", "print the domain's hostname", _hostname_args, domains="active")
def domhostname(ctx: Context, args: argparse.Namespace) -> int:
    """The hostname the container has now (nsvirt), or its DHCP lease's (--source lease)."""
    from nsvirt.shell.report import CommandFailed, ShellError

    dom = ctx.lookup(domain_of(args, "domhostname"))
    if args.source not in (None, "lease", "agent"):
        raise ShellError(f"Unknown data source '{args.source}'")
    try:
        name = dom.hostname(args.source)
    except Exception as e:
        raise CommandFailed("failed to get hostname", e) from e
    print("".join(map(_printable, name)) + "\n", file=ctx.out)
    return 0


def _printable(c: str) -> str:
    """The container chose its hostname: control characters and bytes that are not
    text (undecodable bytes come as surrogates) are shown escaped."""
    if c.isprintable():
        return c
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
