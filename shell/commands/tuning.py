"""Tuning commands, as virsh's: setmem, setmaxmem, memtune, schedinfo, blkiotune,
numatune. Reading prints virsh's `%-15s: %s` rows; a change prints nothing."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from nsvirt.shell import output
from nsvirt.shell.commands import Context, command, domain_arg, domain_of
from nsvirt.shell.report import CommandFailed, ShellError

if TYPE_CHECKING:
    from nsvirt.driver import Domain

UNLIMITED_KIB = (2**63 - 1) >> 10  # VIR_DOMAIN_MEMORY_PARAM_UNLIMITED


def _affect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", action="store_true", help="affect next boot")
    p.add_argument("--live", action="store_true", help="affect running domain")
    p.add_argument("--current", action="store_true", help="affect current domain")


def _where(dom: Domain, args: argparse.Namespace) -> tuple[bool, bool]:
    """(live, config): --current, or neither flag, is the running domain when it runs
    and its definition when it does not (VIR_DOMAIN_AFFECT_CURRENT)."""
    for other in ("live", "config"):
        if args.current and getattr(args, other):
            raise ShellError(f"Options --current and --{other} are mutually exclusive")
    if not (args.live or args.config):
        active = dom.is_active()
        return active, not active
    return args.live, args.config


def _line(name: str, value: object) -> str:
    return f"{name:<15}: {value}\n"


class BadSuffix(ValueError):
    """A scaled integer's unit virsh does not know."""


def scaled_kib(text: str) -> int:
    """virsh's scaled integer: a number with an optional unit (b, k/KiB, KB, M, MiB…),
    KiB without one, rounded up to whole KiB. ValueError if it is not one (BadSuffix
    for a number with an unknown unit)."""
    body = text.strip()
    digits = body.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    unit = body[len(digits) :]
    if not digits.isdigit():
        raise ValueError(text)
    low = unit.lower()
    if low in ("", "k", "kib"):
        scale = 1024
    elif low[:1] in "bkmgtpe" and low[1:] in ("", "b", "ib") and low != "bb":
        power = "bkmgtpe".index(low[0])
        scale = (1000 if low[1:] == "b" and power else 1024) ** power
    else:
        raise BadSuffix(unit)
    return -(-int(digits) * scale // 1024)


# ---------------------------------------------------------------- setmem, setmaxmem


def _setmem_args(p: argparse.ArgumentParser) -> None:
    domain_arg(p)
    p.add_argument("size", nargs="?", help="new memory size, as scaled integer (default KiB)")
    p.add_argument("--size", dest="size_opt", help=argparse.SUPPRESS)
    p.add_argument("--kilobytes", dest="size_opt", help=argparse.SUPPRESS)
    _affect_args(p)


def _set_memory(ctx: Context, args: argparse.Namespace, cmd: str, maximum: bool) -> int:
    dom = ctx.lookup(domain_of(args, cmd))
    size = args.size_opt or args.size
    if size is None:
        raise ShellError(f"command '{cmd}' requires --size option")
    try:
        kib = scaled_kib(size)
    except ValueError:
        raise ShellError(f"Scaled numeric value '{size}' for <size> option is malformed "
                         "or out of range") from None  # fmt: skip
    live, config = _where(dom, args)
    if not (args.live or args.config or args.current) and not maximum:
        live, config = True, False  # virsh's plain setmem is virDomainSetMemory: live
    if not maximum:  # virsh's setmem adds no line of its own to the driver's error
        dom.set_memory(kib, live=live, config=config)
    else:
        try:
            dom.set_memory(kib, live=live, config=config, maximum=True)
        except Exception as e:
            raise CommandFailed("Unable to change MaxMemorySize", e) from e
    ctx.out.write("\n")
    return 0


@command("setmem", "change memory allocation", _setmem_args, domains="all")
def setmem(ctx: Context, args: argparse.Namespace) -> int:
    return _set_memory(ctx, args, "setmem", maximum=False)


@command("setmaxmem", "change maximum memory limit", _setmem_args, domains="all")
def setmaxmem(ctx: Context, args: argparse.Namespace) -> int:
    return _set_memory(ctx, args, "setmaxmem", maximum=True)


# ---------------------------------------------------------------- memtune


def _memtune_args(p: argparse.ArgumentParser) -> None:
    domain_arg(p)
    for name in ("hard-limit", "soft-limit", "swap-hard-limit", "min-guarantee"):
        p.add_argument(f"--{name}", help="max memory, as scaled integer (default KiB)")
    _affect_args(p)


@command("memtune", "Get or set memory parameters", _memtune_args, domains="all")
def memtune(ctx: Context, args: argparse.Namespace) -> int:
    dom = ctx.lookup(domain_of(args, "memtune"))
    live, config = _where(dom, args)
    given = {name: _memtune_size(getattr(args, name), name)
             for name in ("hard_limit", "soft_limit", "swap_hard_limit", "min_guarantee")
             if getattr(args, name) is not None}  # fmt: skip
    if given:
        try:
            dom.set_memory_parameters(given, live=live, config=config)
        except Exception as e:
            raise CommandFailed("Unable to change memory parameters", e) from e
        ctx.out.write("\n")
        return 0
    try:
        _one_of(live, config)
        params = dom.memory_parameters(live=live)
    except Exception as e:
        raise CommandFailed("Unable to get number of memory parameters", e) from e
    ctx.out.write(output.parameters(params, UNLIMITED_KIB))
    return 0


def _memtune_size(text: str, name: str) -> int:
    """virsh's memtune value: any negative number is unlimited, else a scaled size."""
    from nsvirt.driver.errors import InvalidArgument

    number = text.strip()
    if number.startswith("-") and number[1:].isdigit():
        return UNLIMITED_KIB
    try:
        return min(scaled_kib(number), UNLIMITED_KIB)
    except BadSuffix as e:
        raise CommandFailed(f"Unable to parse integer parameter {name.replace('_', '-')}",
                            InvalidArgument(f"unknown suffix '{e}'")) from None  # fmt: skip
    except ValueError:
        raise ShellError(f"Unable to parse integer parameter {name.replace('_', '-')}") from None


def _one_of(live: bool, config: bool) -> None:
    """libvirt's getters take the running or the persistent definition, not both."""
    from nsvirt.driver.errors import InvalidArgument

    if live and config:
        raise InvalidArgument("Flags 'VIR_DOMAIN_AFFECT_LIVE' and 'VIR_DOMAIN_AFFECT_CONFIG' "
                              "are mutually exclusive")  # fmt: skip


# ---------------------------------------------------------------- schedinfo


def _schedinfo_args(p: argparse.ArgumentParser) -> None:
    domain_arg(p)
    p.add_argument("--set", action="append", default=[], help="parameter=value")
    p.add_argument("--weight", help="weight for XEN_CREDIT")
    p.add_argument("--cap", help="cap for XEN_CREDIT")
    p.add_argument("assignments", nargs="*", help=argparse.SUPPRESS)
    _affect_args(p)


@command("schedinfo", "show/set scheduler parameters", _schedinfo_args, domains="all")
def schedinfo(ctx: Context, args: argparse.Namespace) -> int:
    dom = ctx.lookup(domain_of(args, "schedinfo"))
    live, config = _where(dom, args)
    kind, _ = dom.scheduler_type()
    ctx.out.write(_line("Scheduler", kind))
    wanted = [*args.set, *args.assignments]
    wanted += [f"{n}={getattr(args, n)}" for n in ("weight", "cap") if getattr(args, n)]
    changes = dict(_sched_value(item) for item in wanted)
    if changes:
        dom.set_scheduler_parameters(changes, live=live, config=config)
    elif live and config:
        raise ShellError("cannot query both live and config at once")
    ctx.out.write(output.parameters(dom.scheduler_parameters(live=live)))
    return 0


def _sched_value(item: str) -> tuple[str, int]:
    """`name=value` as virsh reads it: the name one the driver has, the value of that
    parameter's type (cpu_shares and vcpu_period unsigned: "-1" wraps, as in C)."""
    from nsvirt.driver.errors import InvalidArgument

    name, eq, value = item.partition("=")
    if not eq:
        raise ShellError("Invalid syntax for --set, expecting name=value")
    if name not in ("cpu_shares", "vcpu_period", "vcpu_quota"):
        raise ShellError(f"invalid scheduler option: {name}")
    kind = "long long" if name == "vcpu_quota" else "unsigned long long"
    try:
        number = int(value, 10)
    except ValueError:
        number = None
    if number is None or not -(2**63) <= number < 2**64:
        raise InvalidArgument(f"Invalid value for field '{name}': expected {kind}")
    if kind == "unsigned long long" and number < 0:
        number += 2**64
    return name, number


# ---------------------------------------------------------------- blkiotune


def _blkiotune_args(p: argparse.ArgumentParser) -> None:
    domain_arg(p)
    p.add_argument("--weight", help="IO Weight")
    for name in ("weights", "read-iops-sec", "write-iops-sec", "read-bytes-sec",
                 "write-bytes-sec"):  # fmt: skip
        p.add_argument(f"--device-{name}", help="per-device list: /path/to/device,value,...")
    _affect_args(p)


@command("blkiotune", "Get or set blkio parameters", _blkiotune_args, domains="all")
def blkiotune(ctx: Context, args: argparse.Namespace) -> int:
    dom = ctx.lookup(domain_of(args, "blkiotune"))
    live, config = _where(dom, args)
    changes: dict[str, object] = {}
    if args.weight is not None:
        try:
            weight = int(args.weight)
        except ValueError:
            raise ShellError(f"Numeric value '{args.weight}' for <weight> option is malformed "
                             "or out of range") from None  # fmt: skip
        if weight <= 0:
            raise ShellError(f"Invalid value of {weight} for I/O weight")
        changes["weight"] = weight
    for option, param in (("device_weights", "device_weight"),
                          ("device_read_iops_sec", "device_read_iops_sec"),
                          ("device_write_iops_sec", "device_write_iops_sec"),
                          ("device_read_bytes_sec", "device_read_bytes_sec"),
                          ("device_write_bytes_sec", "device_write_bytes_sec")):  # fmt: skip
        if getattr(args, option) is not None:
            changes[param] = getattr(args, option)
    if changes:
        try:
            dom.set_blkio_parameters(changes, live=live, config=config)
        except Exception as e:
            raise CommandFailed("Unable to change blkio parameters", e) from e
        ctx.out.write("\n")
        return 0
    try:
        _one_of(live, config)
        params = dom.blkio_parameters(live=live)
    except Exception as e:
        raise CommandFailed("Unable to get blkio parameters", e) from e
    ctx.out.write(output.parameters(params))
    return 0


# ---------------------------------------------------------------- numatune


def _numatune_args(p: argparse.ArgumentParser) -> None:
    domain_arg(p)
    p.add_argument("--mode", help="NUMA mode, one of strict, preferred and interleave")
    p.add_argument("--nodeset", help="NUMA node selections to set")
    _affect_args(p)


@command("numatune", "Get or set numa parameters", _numatune_args, domains="all")
def numatune(ctx: Context, args: argparse.Namespace) -> int:
    dom = ctx.lookup(domain_of(args, "numatune"))
    live, config = _where(dom, args)
    changes = {}
    if args.mode is not None:
        if args.mode not in ("strict", "preferred", "interleave", "restrictive"):
            raise ShellError(f"Invalid mode: {args.mode}")
        changes["numa_mode"] = args.mode
    if args.nodeset is not None:
        changes["numa_nodeset"] = args.nodeset
    if changes:
        try:
            dom.set_numa_parameters(changes, live=live, config=config)
        except Exception as e:
            raise CommandFailed("Unable to change numa parameters", e) from e
        ctx.out.write("\n")
        return 0
    try:
        _one_of(live, config)
        params = dom.numa_parameters(live=live)
    except Exception as e:  # sic: virsh's numatune says "memory" here
        raise CommandFailed("Unable to get number of memory parameters", e) from e
    ctx.out.write(output.parameters(params))
    return 0
