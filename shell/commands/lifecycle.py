"""Lifecycle commands: start, create, destroy, shutdown, reboot, suspend, resume, autostart."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from nsvirt.shell.commands import (
    Context,
    command,
    domain_arg,
    domain_of,
    file_arg,
    from_xml_file,
)
from nsvirt.shell.report import CommandFailed, ShellError

if TYPE_CHECKING:
    from nsvirt.driver import Domain


def _start_args(p: argparse.ArgumentParser) -> None:
    domain_arg(p)
    p.add_argument("--console", action="store_true", help="attach to console after creation")
    p.add_argument("--force-boot", action="store_true", help="(accepted; nothing to discard)")


@command("start", "start a (previously defined) inactive domain", _start_args, domains="inactive")
def start(ctx: Context, args: argparse.Namespace) -> int:
    dom = ctx.lookup(domain_of(args, "start"))
    if dom.is_active():
        raise ShellError("Domain is already active")  # virsh checks before asking
    try:
        dom.create()
    except Exception as e:
        raise CommandFailed(f"Failed to start domain '{dom.name}'", e) from e
    ctx.print(f"Domain '{dom.name}' started\n")
    if args.console:
        from nsvirt.shell.commands.console import attach

        return attach(ctx, dom.name, escape=ctx.escape)
    return 0


def _create_args(p: argparse.ArgumentParser) -> None:
    file_arg(p)
    p.add_argument("--console", action="store_true", help="attach to console after creation")
    p.add_argument("--autodestroy", action="store_true",
                   help="destroy the domain when nsvirsh exits")  # fmt: skip


@command("create", "create a domain from an XML file", _create_args)
def create(ctx: Context, args: argparse.Namespace) -> int:
    dom, path = from_xml_file(args, "create", "create",
                              lambda data, src: ctx.conn.create_xml(data, source=src))  # fmt: skip
    if args.autodestroy:  # the domain goes when this nsvirsh exits
        ctx.autodestroy.append(dom.hold_autodestroy())
    ctx.print(f"Domain '{dom.name}' created from {path}\n")
    if args.console:
        from nsvirt.shell.commands.console import attach

        return attach(ctx, dom.name, escape=ctx.escape)
    return 0


def _destroy_args(p: argparse.ArgumentParser) -> None:
    domain_arg(p)
    p.add_argument("--graceful", action="store_true", help="(accepted; destroy is immediate)")


def act(ctx: Context, args: argparse.Namespace, cmd: str, failure: str, done: str,
        operation: Callable[[Domain], object]) -> int:  # fmt: skip
    """The shape of virsh's lifecycle commands: look up, act, say what happened.

    `failure` and `done` are formatted with the domain's name."""
    dom = ctx.lookup(domain_of(args, cmd))
    try:
        operation(dom)
    except Exception as e:
        raise CommandFailed(failure.format(dom.name), e) from e
    ctx.print(done.format(dom.name) + "\n")
    return 0


@command("destroy", "destroy (stop) a domain", _destroy_args, domains="active")
def destroy(ctx: Context, args: argparse.Namespace) -> int:
    return act(ctx, args, "destroy", "Failed to destroy domain '{}'", "Domain '{}' destroyed",
               lambda dom: dom.destroy())  # fmt: skip


def _mode_args(p: argparse.ArgumentParser) -> None:
    domain_arg(p)
    p.add_argument("--mode", help="shutdown mode: signal or initctl")
    p.add_argument("--timeout", type=_seconds, metavar="SECONDS",
                   help="destroy the domain if init has not stopped after this many "
                        "seconds (nsvirt; default: only ask, as virsh)")  # fmt: skip


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1e9:
        raise ValueError(text)
    return value


@command("shutdown", "gracefully shutdown a domain", _mode_args, domains="active")
def shutdown(ctx: Context, args: argparse.Namespace) -> int:
    return act(
        ctx,
        args,
        "shutdown",
        "Failed to shutdown domain '{}'",
        "Domain '{}' is being shutdown",
        lambda dom: dom.shutdown(mode=args.mode, timeout=args.timeout),
    )


@command("reboot", "reboot a domain", _mode_args, domains="active")
def reboot(ctx: Context, args: argparse.Namespace) -> int:
    return act(
        ctx,
        args,
        "reboot",
        "Failed to reboot domain '{}'",
        "Domain '{}' is being rebooted",
        lambda dom: dom.reboot(mode=args.mode, timeout=args.timeout),
    )


@command("suspend", "suspend a domain", domain_arg, domains="active")
def suspend(ctx: Context, args: argparse.Namespace) -> int:
    return act(ctx, args, "suspend", "Failed to suspend domain '{}'", "Domain '{}' suspended",
               lambda dom: dom.suspend())  # fmt: skip


@command("resume", "resume a domain", domain_arg, domains="active")
def resume(ctx: Context, args: argparse.Namespace) -> int:
    return act(ctx, args, "resume", "Failed to resume domain '{}'", "Domain '{}' resumed",
               lambda dom: dom.resume())  # fmt: skip


def _autostart_args(p: argparse.ArgumentParser) -> None:
    domain_arg(p)
    p.add_argument("--disable", action="store_true", help="disable autostarting")


@command("autostart", "autostart a domain", _autostart_args, domains="all")
def autostart(ctx: Context, args: argparse.Namespace) -> int:
    dom = ctx.lookup(domain_of(args, "autostart"))
    verb = "unmark" if args.disable else "mark"
    try:
        dom.set_autostart(not args.disable)
    except Exception as e:
        raise CommandFailed(f"Failed to {verb} domain '{dom.name}' as autostarted", e) from e
    ctx.print(f"Domain '{dom.name}' {verb}ed as autostarted\n")
    return 0


def _enter_args(p: argparse.ArgumentParser) -> None:
    domain_arg(p)
    p.add_argument("--noseclabel", action="store_true",
                   help="keep nsvirsh's security label (nsvirt sets none: accepted)")  # fmt: skip
    p.add_argument("cmd", nargs="*", metavar="/path/to/binary",
                   help="the command (a path inside the container) and its arguments, "
                        "after -- when they start with a dash")  # fmt: skip


@command("lxc-enter-namespace", "LXC Guest Enter Namespace", _enter_args, domains="active")
def lxc_enter_namespace(ctx: Context, args: argparse.Namespace) -> int:
    """Run a command in the container's namespaces and cgroup; nsvirsh exits with its
    status (virsh exits 1 whenever it is not 0: a deliberate difference)."""
    dom = ctx.lookup(domain_of(args, "lxc-enter-namespace"))
    argv = list(args.cmd)
    if not argv:
        raise ShellError("command 'lxc-enter-namespace' requires <cmd> option")
    ctx.out.flush()
    return dom.lxc_enter_namespace(argv)


def _signal_args(p: argparse.ArgumentParser) -> None:
    domain_arg(p)
    p.add_argument("pid", nargs="?", metavar="PID", help="the process ID, as the domain sees it")
    p.add_argument("signame", nargs="?", metavar="SIGNAME", help="the signal: a number or name")
    p.add_argument("--pid", dest="pid_opt", help=argparse.SUPPRESS)
    p.add_argument("--signame", dest="signame_opt", help=argparse.SUPPRESS)


@command("send-process-signal", "Send signals to processes", _signal_args, domains="active")
def send_process_signal(ctx: Context, args: argparse.Namespace) -> int:
    from nsvirt.driver import signals

    dom = ctx.lookup(domain_of(args, "send-process-signal"))
    pid = args.pid_opt or args.pid
    name = args.signame_opt or args.signame
    if pid is None:
        raise ShellError("command 'send-process-signal' requires <pid> option")
    if name is None:
        raise ShellError("command 'send-process-signal' requires <signame> option")
    try:
        number = int(pid)
    except ValueError:
        raise ShellError(
            f"Numeric value '{pid}' for <pid> option is malformed or out of range"
        ) from None
    dom.send_process_signal(number, signals.parse(name))
    return 0
