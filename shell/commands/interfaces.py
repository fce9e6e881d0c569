"""Interface commands, as virsh's: domifaddr, domifstat, domif-getlink, domif-setlink,
attach-interface, detach-interface, attach-device, detach-device."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from nsvirt.shell.commands import Context, command, domain_arg, domain_of
from nsvirt.shell.report import CommandFailed, ShellError

if TYPE_CHECKING:
    from nsvirt.driver import Domain


def _affect_args(p: argparse.ArgumentParser, persistent: bool = True) -> None:
    if persistent:
        p.add_argument("--persistent", action="store_true",
                       help="make live change persistent")  # fmt: skip
    p.add_argument("--config", action="store_true", help="affect next boot")
    p.add_argument("--live", action="store_true", help="affect running domain")
    p.add_argument("--current", action="store_true", help="affect current domain")


def affected(dom: Domain, args: argparse.Namespace) -> tuple[bool, bool]:
    """(live, config) as virsh reads --live, --config, --persistent and --current."""
    persistent = getattr(args, "persistent", False)
    for other in ("live", "config", "persistent"):
        if args.current and getattr(args, other, False):
            raise ShellError(f"Options --current and --{other} are mutually exclusive")
    if persistent:
        return dom.is_active(), True
    if not (args.live or args.config):  # --current: the running domain, else its definition
        return dom.is_active(), not dom.is_active()
    return args.live, args.config


# ---------------------------------------------------------------- addresses, counters


def _ifaddr_args(p: argparse.ArgumentParser) -> None:
    domain_arg(p)
    p.add_argument("interface", nargs="?", help="network interface name")
    p.add_argument("--interface", dest="interface_opt", help=argparse.SUPPRESS)
    p.add_argument("--full", action="store_true", help="always display names and MACs")
    p.add_argument("--source", help="address source: the container's namespace (default), "
                                    "lease, agent, arp")  # fmt: skip


@command("domifaddr", "Get network interfaces' addresses for a running domain", _ifaddr_args,
         domains="active")  # fmt: skip
def domifaddr(ctx: Context, args: argparse.Namespace) -> int:
    dom = ctx.lookup(domain_of(args, "domifaddr"))
    source = args.source or "netns"
    if source not in ("netns", "lease", "agent", "arp"):
        raise ShellError(f"Unknown data source '{source}'")
    if source in ("agent", "arp"):  # no guest agent in a container; no ARP source yet
        raise ShellError("this function is not supported by the connection driver: "
                         "virDomainInterfaceAddresses")  # fmt: skip
    try:
        found = dom.interface_addresses(source)
    except Exception as e:
        raise CommandFailed("Failed to query for interfaces addresses", e) from e
    wanted = args.interface_opt or args.interface
    lines = [f" {'Name':<10} {'MAC address':<20} {'Protocol':<8}     Address", "-" * 79]
    for iface in found:
        if wanted and wanted not in (iface["name"], iface["mac"]):
            continue
        if not iface["addrs"]:
            lines.append(f" {iface['name']:<10} {iface['mac'] or 'N/A':<17}    {'N/A':<12} N/A")
        for n, (family, address, prefix) in enumerate(iface["addrs"]):
            name, mac = (iface["name"], iface["mac"]) if n == 0 or args.full else ("-", "-")
            lines.append(f" {name:<10} {mac:<17}    {family:<12} {address}/{prefix}")
    print("\n".join(lines) + "\n", file=ctx.out)
    return 0


def _ifstat_args(p: argparse.ArgumentParser) -> None:
    domain_arg(p)
    p.add_argument("interface", nargs="?", help="interface device specified by name or MAC")
    p.add_argument("--interface", dest="interface_opt", help=argparse.SUPPRESS)


def _interface_of(args: argparse.Namespace, cmd: str) -> str:
    name = args.interface_opt or args.interface
    if not name:
        raise ShellError(f"command '{cmd}' requires <interface> option")
    return name


@command("domifstat", "get network interface stats for a domain", _ifstat_args,
         domains="active")  # fmt: skip
def domifstat(ctx: Context, args: argparse.Namespace) -> int:
    dom = ctx.lookup(domain_of(args, "domifstat"))
    iface = _interface_of(args, "domifstat")
    try:
        stats = dom.interface_stats(iface)
    except Exception as e:
        raise CommandFailed(f"Failed to get interface stats {dom.name} {iface}", e) from e
    print("".join(f"{iface} {k} {v}\n" for k, v in stats.items()), file=ctx.out)
    return 0


# ---------------------------------------------------------------- link state


def _getlink_args(p: argparse.ArgumentParser) -> None:
    _ifstat_args(p)
    p.add_argument("--config", "--persistent", dest="config", action="store_true",
                   help="get persistent interface state")  # fmt: skip


@command("domif-getlink", "get link state of a virtual interface", _getlink_args,
         domains="all")  # fmt: skip
def domif_getlink(ctx: Context, args: argparse.Namespace) -> int:
    dom = ctx.lookup(domain_of(args, "domif-getlink"))
    iface = _interface_of(args, "domif-getlink")
    try:
        state = dom.interface_link(iface, config=args.config)
    except Exception as e:
        kind = "mac" if iface.count(":") == 5 else "dev"
        raise ShellError(f"Interface ({kind}: {iface}) not found.") from e
    print(f"{iface} {state}\n", file=ctx.out)
    return 0


def _setlink_args(p: argparse.ArgumentParser) -> None:
    _ifstat_args(p)
    p.add_argument("state", nargs="?", help="new state of the device")
    p.add_argument("--state", dest="state_opt", help=argparse.SUPPRESS)
    p.add_argument("--config", "--persistent", dest="config", action="store_true",
                   help="affect next boot")  # fmt: skip


@command("domif-setlink", "set link state of a virtual interface", _setlink_args,
         domains="all")  # fmt: skip
def domif_setlink(ctx: Context, args: argparse.Namespace) -> int:
    dom = ctx.lookup(domain_of(args, "domif-setlink"))
    iface = _interface_of(args, "domif-setlink")
    state = args.state_opt or args.state
    if not state:
        raise ShellError("command 'domif-setlink' requires <state> option")
    if state not in ("up", "down"):
        raise ShellError(f"invalid link state '{state}'")
    live = dom.is_active() and not args.config
    config = args.config or not dom.is_active()
    try:
        dom.set_interface_link(iface, state, live=live, config=config)
    except Exception as e:
        raise CommandFailed("Failed to update interface link state", e) from e
    ctx.print("Device updated successfully\n")
    return 0


# ---------------------------------------------------------------- hot plug


def _attach_args(p: argparse.ArgumentParser) -> None:
    domain_arg(p)
    p.add_argument("type", nargs="?", help="network interface type")
    p.add_argument("source", nargs="?", help="source of network interface")
    p.add_argument("--type", dest="type_opt", help=argparse.SUPPRESS)
    p.add_argument("--source", dest="source_opt", help=argparse.SUPPRESS)
    p.add_argument("--target", help="target network name")
    p.add_argument("--mac", help="MAC address")
    p.add_argument("--model", help="model type")
    p.add_argument("--source-mode", dest="source_mode", help="mode attribute of <source/>")
    p.add_argument("--print-xml", dest="print_xml", action="store_true",
                   help="print XML document rather than attach the interface")  # fmt: skip
    _affect_args(p)


def _quoted(value: str) -> str:
    """An attribute value in single quotes, escaped as virsh's XML buffer does
    (xml.sax.saxutils would bring urllib and email: 20 ms on every command)."""
    escaped = value.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;")
    return "'" + escaped.replace('"', "&quot;") + "'"


@command("attach-interface", "attach network interface", _attach_args, domains="all")
def attach_interface(ctx: Context, args: argparse.Namespace) -> int:
    dom = ctx.lookup(domain_of(args, "attach-interface"))
    kind, source = args.type_opt or args.type, args.source_opt or args.source
    if not kind:
        raise ShellError("command 'attach-interface' requires <type> option")
    if not source:
        raise ShellError("command 'attach-interface' requires <source> option")
    attr = {"network": "network", "bridge": "bridge", "direct": "dev"}.get(kind)
    if attr is None:
        raise ShellError(f"No support for {kind} in command 'attach-interface'")
    mode = f" mode={_quoted(args.source_mode)}" if args.source_mode else ""
    xml = [f"<interface type={_quoted(kind)}>", f"  <source {attr}={_quoted(source)}{mode}/>"]
    if args.target:
        xml.append(f"  <target dev={_quoted(args.target)}/>")
    if args.mac:
        xml.append(f"  <mac address={_quoted(args.mac)}/>")
    if args.model:
        xml.append(f"  <model type={_quoted(args.model)}/>")
    xml.append("</interface>")
    if args.print_xml:
        print("\n".join(xml) + "\n", file=ctx.out)
        return 0
    live, config = affected(dom, args)
    try:
        dom.attach_interface("\n".join(xml), live=live, config=config)
    except Exception as e:
        raise CommandFailed("Failed to attach interface", e) from e
    ctx.print("Interface attached successfully\n")
    return 0


def _detach_args(p: argparse.ArgumentParser) -> None:
    domain_arg(p)
    p.add_argument("type", nargs="?", help="network interface type")
    p.add_argument("--type", dest="type_opt", help=argparse.SUPPRESS)
    p.add_argument("--mac", help="MAC address")
    _affect_args(p)


@command("detach-interface", "detach network interface", _detach_args, domains="all")
def detach_interface(ctx: Context, args: argparse.Namespace) -> int:
    dom = ctx.lookup(domain_of(args, "detach-interface"))
    kind = args.type_opt or args.type
    if not kind:
        raise ShellError("command 'detach-interface' requires <type> option")
    live, config = affected(dom, args)
    try:
        dom.detach_interface(mac=args.mac, type_=kind, live=live, config=config)
    except Exception as e:
        raise CommandFailed("Failed to detach interface", e) from e
    ctx.print("Interface detached successfully\n")
    return 0


def _device_args(p: argparse.ArgumentParser) -> None:
    domain_arg(p)
    p.add_argument("file", nargs="?", metavar="FILE", help="XML file")
    p.add_argument("--file", dest="file_opt", help=argparse.SUPPRESS)
    _affect_args(p)


def _device(ctx: Context, args: argparse.Namespace, cmd: str, verb: str) -> int:
    from nsvirt.driver import domxml

    dom = ctx.lookup(domain_of(args, cmd))
    path = args.file_opt or args.file
    if not path:
        raise ShellError(f"command '{cmd}' requires <file> option")
    xml = domxml.read_file(path).decode(errors="replace")
    live, config = affected(dom, args)
    try:
        if verb == "attach":
            dom.attach_device(xml, live=live, config=config)
        else:
            dom.detach_device(xml, live=live, config=config)
    except Exception as e:
        raise CommandFailed(f"Failed to {verb} device from {path}", e) from e
    ctx.print(f"Device {verb}ed successfully\n")
    return 0


@command("attach-device", "attach device from an XML file", _device_args, domains="all")
def attach_device(ctx: Context, args: argparse.Namespace) -> int:
    return _device(ctx, args, "attach-device", "attach")


@command("detach-device", "detach device from an XML file", _device_args, domains="all")
def detach_device(ctx: Context, args: argparse.Namespace) -> int:
    return _device(ctx, args, "detach-device", "detach")
