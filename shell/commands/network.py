"""Network commands, as virsh's: net-define, net-undefine, net-start, net-destroy,
net-list, net-info, net-dumpxml, net-autostart, net-uuid, net-name."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from nsvirt.shell import output
from nsvirt.shell.commands import Context, command
from nsvirt.shell.report import CommandFailed, ShellError

if TYPE_CHECKING:
    from nsvirt.driver.network.networks import Network


def _net_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("network", nargs="?", metavar="NETWORK", help="network name or uuid")
    p.add_argument("--network", dest="network_opt", help=argparse.SUPPRESS)


def _network(ctx: Context, args: argparse.Namespace, cmd: str) -> Network:
    """virsh's network lookup: by uuid, then by name; `failed to get network 'X'` and
    the driver's reason."""
    from nsvirt.driver.network import networks

    key = args.network_opt or args.network
    if not key:
        raise ShellError(f"command '{cmd}' requires <network> option")
    try:
        if len(key) == 36:
            for net in networks.list_all(ctx.conn):
                if net.uuid == key:
                    return net
        return networks.lookup(ctx.conn, key)
    except Exception as e:
        raise CommandFailed(f"failed to get network '{key}'", e) from e


def _file_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", nargs="?", metavar="FILE", help="file containing an XML network")
    p.add_argument("--file", dest="file_opt", help=argparse.SUPPRESS)
    p.add_argument("--validate", action="store_true", help="(always done by nsvirt)")


@command("net-define", "define an inactive persistent virtual network", _file_args)
def net_define(ctx: Context, args: argparse.Namespace) -> int:
    from nsvirt.driver import domxml
    from nsvirt.driver.network import networks

    path = args.file_opt or args.file
    if not path:
        raise ShellError("command 'net-define' requires <file> option")
    data = domxml.read_file(path)
    try:
        net = networks.define(ctx.conn, data, source=path)
    except Exception as e:
        raise CommandFailed(f"Failed to define network from {path}", e) from e
    ctx.print(f"Network {net.name} defined from {path}\n")
    return 0


def _act(ctx: Context, args: argparse.Namespace, cmd: str, failure: str, done: str,
         verb: str) -> int:  # fmt: skip
    net = _network(ctx, args, cmd)
    try:
        getattr(net, verb)()
    except Exception as e:
        raise CommandFailed(failure.format(net.name), e) from e
    ctx.print(done.format(net.name) + "\n")
    return 0


@command("net-start", "start a (previously defined) inactive network", _net_arg)
def net_start(ctx: Context, args: argparse.Namespace) -> int:
    return _act(ctx, args, "net-start", "Failed to start network {}", "Network {} started",
                "create")  # fmt: skip


@command("net-destroy", "destroy (stop) a network", _net_arg)
def net_destroy(ctx: Context, args: argparse.Namespace) -> int:
    return _act(ctx, args, "net-destroy", "Failed to destroy network {}",
                "Network {} destroyed", "destroy")  # fmt: skip


@command("net-undefine", "undefine a persistent network", _net_arg)
def net_undefine(ctx: Context, args: argparse.Namespace) -> int:
    return _act(ctx, args, "net-undefine", "Failed to undefine network {}",
                "Network {} has been undefined", "undefine")  # fmt: skip


def _autostart_args(p: argparse.ArgumentParser) -> None:
    _net_arg(p)
    p.add_argument("--disable", action="store_true", help="disable autostarting")


@command("net-autostart", "autostart a network", _autostart_args)
def net_autostart(ctx: Context, args: argparse.Namespace) -> int:
    net = _network(ctx, args, "net-autostart")
    verb = "unmark" if args.disable else "mark"
    try:
        net.set_autostart(not args.disable)
    except Exception as e:
        raise CommandFailed(f"failed to {verb} network {net.name} as autostarted", e) from e
    ctx.print(f"Network {net.name} {verb}ed as autostarted\n")
    return 0


def _list_args(p: argparse.ArgumentParser) -> None:
    for flag, text in (("--inactive", "list inactive networks"),
                       ("--all", "list inactive & active networks"),
                       ("--persistent", "list persistent networks"),
                       ("--transient", "list transient networks"),
                       ("--autostart", "list networks with autostart enabled"),
                       ("--no-autostart", "list networks with autostart disabled"),
                       ("--uuid", "list uuid's only"), ("--name", "list network names only"),
                       ("--table", "list table (default)")):  # fmt: skip
        p.add_argument(flag, action="store_true", help=text)


@command("net-list", "list networks", _list_args)
def net_list(ctx: Context, args: argparse.Namespace) -> int:
    from nsvirt.driver.network import networks

    if sum((args.table, args.name, args.uuid)) > 1:
        raise ShellError("Only one argument from --table, --name and --uuid may be specified.")
    rows = []
    for net in networks.list_all(ctx.conn):
        active = net.is_active()
        if (active and args.inactive) or (not active and not (args.all or args.inactive)):
            continue
        if (args.persistent or args.transient) and net.is_persistent() != args.persistent:
            continue
        if (args.autostart or args.no_autostart) and net.autostart() != args.autostart:
            continue
        rows.append((net, active))
    if args.name or args.uuid:
        for net, _ in rows:
            print(net.name if args.name else net.uuid, file=ctx.out)
        print(file=ctx.out)
        return 0
    table = [[n.name, "active" if a else "inactive", "yes" if n.autostart() else "no",
              "yes" if n.is_persistent() else "no"] for n, a in rows]  # fmt: skip
    ctx.out.write(
        output.table(["Name", "State", "Autostart", "Persistent"], table, header=not ctx.quiet)
    )
    return 0


@command("net-info", "network information", _net_arg)
def net_info(ctx: Context, args: argparse.Namespace) -> int:
    net = _network(ctx, args, "net-info")
    pairs = [("Name", net.name), ("UUID", net.uuid),
             ("Active", "yes" if net.is_active() else "no"),
             ("Persistent", "yes" if net.is_persistent() else "no"),
             ("Autostart", "yes" if net.autostart() else "no")]  # fmt: skip
    bridge = net.bridge()
    if bridge:
        pairs.append(("Bridge", bridge))
    ctx.out.write(output.fields(pairs))
    return 0


def _dumpxml_args(p: argparse.ArgumentParser) -> None:
    _net_arg(p)
    p.add_argument("--inactive", action="store_true", help="show inactive defined XML")


@command("net-dumpxml", "network information in XML", _dumpxml_args)
def net_dumpxml(ctx: Context, args: argparse.Namespace) -> int:
    print(_network(ctx, args, "net-dumpxml").xml_desc(), file=ctx.out)
    return 0


@command("net-uuid", "convert a network name to network UUID", _net_arg)
def net_uuid(ctx: Context, args: argparse.Namespace) -> int:
    print(_network(ctx, args, "net-uuid").uuid + "\n", file=ctx.out)
    return 0


@command("net-name", "convert a network UUID to network name", _net_arg)
def net_name(ctx: Context, args: argparse.Namespace) -> int:
    print(_network(ctx, args, "net-name").name + "\n", file=ctx.out)
    return 0
