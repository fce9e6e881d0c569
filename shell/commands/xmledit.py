"""Commands that read or change a domain's XML: edit, desc, metadata, domiflist, domblklist."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

from nsvirt.shell import output
from nsvirt.shell.commands import Context, command, domain_arg, domain_of
from nsvirt.shell.report import CommandFailed, ShellError, report

EDIT_HELP = """y - yes, start editor again
n - no, throw away my changes
i - turn off validation and try to redefine again (nsvirt always validates)
f - force, try to redefine again (nsvirt always validates)
? - print this help"""


@command("edit", "edit XML configuration for a domain", domain_arg, domains="all")
def edit(ctx: Context, args: argparse.Namespace) -> int:
    dom = ctx.lookup(domain_of(args, "edit"))
    ctx.conn.require_writable("virDomainDefineXML")  # before the editor, not after it
    original = dom.xml_desc(inactive=True)
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.NamedTemporaryFile("w", prefix=f"nsvirsh-{dom.name}-", suffix=".xml",
                                     delete=False) as f:  # fmt: skip
        f.write(original)
        path = f.name
    try:
        while True:
            # $EDITOR may carry arguments ("code -w"): let the shell split it
            if subprocess.call(["/bin/sh", "-c", f'{editor} "$1"', "sh", path]):
                raise ShellError(f"{editor}: command failed")
            with open(path) as f:
                edited = f.read()
            if edited == original:
                ctx.print(f"Domain '{dom.name}' XML configuration not changed.\n")
                return 0
            try:
                dom = ctx.conn.define_xml(edited, source=path)
            except Exception as e:
                report(e, ctx.err)
                if not _try_again(ctx):
                    return 1
                continue
            ctx.print(f"Domain '{dom.name}' XML configuration edited.\n")
            return 0
    finally:
        os.unlink(path)


def _try_again(ctx: Context) -> bool:
    while True:
        ctx.out.write("Failed. Try again? [y,n,i,f,?]:")
        ctx.out.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer in ("y", "i", "f"):
            return True
        if answer in ("n", ""):
            return False
        ctx.out.write(EDIT_HELP + "\n")


def _desc_args(p: argparse.ArgumentParser) -> None:
    domain_arg(p)
    p.add_argument("--live", action="store_true", help="modify/get running state")
    p.add_argument("--config", action="store_true", help="modify/get persistent state")
    p.add_argument("--current", action="store_true", help="modify/get current state")
    p.add_argument("--title", action="store_true", help="modify/get the title instead")
    p.add_argument("--new-desc", dest="new_desc", help="message")
    p.add_argument("words", nargs="*", help=argparse.SUPPRESS)


def _where(ctx: Context, args: argparse.Namespace, active: bool) -> tuple[bool, bool]:
    if args.current and (args.live or args.config):
        raise ShellError("Options --current and --live/--config are mutually exclusive")
    live, config = args.live, args.config
    if not live and not config:  # --current: the live state of a running domain
        live, config = active, not active
    return live, config


@command("desc", "show or set domain's description or title", _desc_args, domains="all")
def desc(ctx: Context, args: argparse.Namespace) -> int:
    dom = ctx.lookup(domain_of(args, "desc"))
    kind = "title" if args.title else "description"
    live, config = _where(ctx, args, dom.is_active())
    text = args.new_desc if args.new_desc is not None else (" ".join(args.words) or None)
    if text is None:
        definition = dom.definition(inactive=config and not live)
        value = definition.title if args.title else definition.description
        if value:
            print(value, file=ctx.out)
        else:
            print(f"No {kind} for domain: {dom.name}", file=ctx.out)
        return 0
    try:
        dom.set_metadata(kind, text, live=live, config=config)
    except Exception as e:
        raise CommandFailed(f"Failed to set new domain {kind}", e) from e
    ctx.print(f"Domain {kind} updated successfully")
    return 0


def _metadata_args(p: argparse.ArgumentParser) -> None:
    domain_arg(p)
    p.add_argument("uri", nargs="?", help="URI of the namespace")
    p.add_argument("--uri", dest="uri_opt", help=argparse.SUPPRESS)
    p.add_argument("--live", action="store_true", help="modify/get running state")
    p.add_argument("--config", action="store_true", help="modify/get persistent state")
    p.add_argument("--current", action="store_true", help="modify/get current state")
    p.add_argument("--key", help="key to be used as a namespace identifier")
    p.add_argument("--set", dest="set_xml", help="new metadata to set")
    p.add_argument("--remove", action="store_true", help="remove the metadata")


@command("metadata", "show or set domain's custom XML metadata", _metadata_args, domains="all")
def metadata(ctx: Context, args: argparse.Namespace) -> int:
    from lxml import etree

    dom = ctx.lookup(domain_of(args, "metadata"))
    uri = args.uri_opt or args.uri
    if not uri:
        raise ShellError("command 'metadata' requires <uri> option")
    live, config = _where(ctx, args, dom.is_active())
    if args.set_xml is None and not args.remove:
        xml = dom.definition(inactive=config and not live).metadata_for(uri)
        if xml is not None:
            print(xml + "\n", file=ctx.out)
            return 0
        raise ShellError("metadata not found: Requested metadata element is not present")
    value = None
    if not args.remove:
        if not args.key:
            raise ShellError("namespace key is required when modifying metadata")
        try:
            src = etree.fromstring(args.set_xml.encode())
        except etree.XMLSyntaxError as e:
            raise ShellError(f"XML error: {e}") from None
        value = _requalify(src, uri, args.key)
    try:
        dom.set_metadata("metadata", value, live=live, config=config, uri=uri)
    except Exception as e:
        raise CommandFailed("Unable to change metadata", e) from e
    ctx.print("Metadata removed" if args.remove else "Metadata modified")
    return 0


def _requalify(el: object, uri: str, key: str) -> str:
    """Put an element tree into namespace `uri` with prefix `key`, as virsh's --set does."""
    from lxml import etree

    assert isinstance(el, etree._Element)

    def copy(src: etree._Element, parent: etree._Element | None) -> etree._Element:
        tag = f"{{{uri}}}{etree.QName(src).localname}"
        new = (etree.Element(tag, nsmap={key: uri}) if parent is None
               else etree.SubElement(parent, tag))  # fmt: skip
        for k, v in src.attrib.items():
            new.set(k, v)
        new.text = src.text
        for child in src:
            copy(child, new).tail = child.tail
        return new

    root = copy(el, None)
    etree.indent(root, space="  ")
    return etree.tostring(root, encoding="unicode")


def _list_args(p: argparse.ArgumentParser) -> None:
    domain_arg(p)
    p.add_argument("--inactive", action="store_true", help="get inactive rather than running "
                   "configuration")  # fmt: skip
    p.add_argument("--details", action="store_true", help="additionally display the type "
                   "and device value")  # fmt: skip


@command("domiflist", "list all domain virtual interfaces", _list_args, domains="all")
def domiflist(ctx: Context, args: argparse.Namespace) -> int:
    dom = ctx.lookup(domain_of(args, "domiflist"))
    definition = dom.definition(inactive=args.inactive)
    rows = [[i.target_dev or "-", i.type, i.source or "-", i.model or "-", i.mac]
            for i in definition.devices.interfaces]  # fmt: skip
    ctx.out.write(
        output.table(["Interface", "Type", "Source", "Model", "MAC"], rows, header=not ctx.quiet)
    )
    return 0


@command("domblklist", "list all domain blocks", _list_args, domains="all")
def domblklist(ctx: Context, args: argparse.Namespace) -> int:
    dom = ctx.lookup(domain_of(args, "domblklist"))
    disks = dom.definition(inactive=args.inactive).devices.disks
    if args.details:
        rows = [[d.type, d.device, d.target_dev, d.source or "-"] for d in disks]
        ctx.out.write(
            output.table(["Type", "Device", "Target", "Source"], rows, header=not ctx.quiet)
        )
    else:
        rows = [[d.target_dev, d.source or "-"] for d in disks]
        ctx.out.write(output.table(["Target", "Source"], rows, header=not ctx.quiet))
    return 0
