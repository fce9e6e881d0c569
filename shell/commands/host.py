"""Host and connection commands: uri, version, hostname, nodeinfo, nodememstats,
nodecpustats, capabilities, sysinfo."""

from __future__ import annotations

import argparse
import os
import socket

from nsvirt.shell.commands import Context, command
from nsvirt.shell.report import ShellError


def _none(p: argparse.ArgumentParser) -> None:
    pass


@command("uri", "print the hypervisor canonical URI", _none)
def uri(ctx: Context, args: argparse.Namespace) -> int:
    from nsvirt.driver.connection import default_uri

    given = ctx.uri or default_uri()  # as libvirt: lxc:/// stays lxc:///
    print((given if given in ("lxc:///", "lxc:///system") else ctx.conn.uri) + "\n",
          file=ctx.out)  # fmt: skip
    return 0


@command("hostname", "print the hypervisor hostname", _none)
def hostname(ctx: Context, args: argparse.Namespace) -> int:
    print(socket.gethostname() + "\n", file=ctx.out)
    return 0


@command("version", "show version", _none)
def version(ctx: Context, args: argparse.Namespace) -> int:
    from nsvirt.driver import __version__

    kernel = os.uname().release.split("-")[0]
    print(
        f"Compiled against library: nsvirt {__version__}\n"
        f"Using library: nsvirt {__version__}\n"
        f"Using API: LXC {__version__}\n"
        f"Running hypervisor: LXC {kernel}\n",
        file=ctx.out,
    )
    return 0


def _connect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", metavar="URI", help="hypervisor connection URI")
    p.add_argument("--name", dest="name_opt", help=argparse.SUPPRESS)
    p.add_argument("--readonly", action="store_true", help="read-only connection")


@command("connect", "(re)connect to hypervisor", _connect_args)
def connect(ctx: Context, args: argparse.Namespace) -> int:
    ctx.reconnect(args.name_opt or args.name or ctx.uri, readonly=args.readonly)
    return 0


def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return info


def _topology() -> tuple[int, int, int, int]:
    """(sockets, cores per socket, threads per core, NUMA cells) from sysfs."""
    base = "/sys/devices/system/cpu"
    cpus = sorted(int(d[3:]) for d in os.listdir(base) if d[3:].isdigit() and d.startswith("cpu"))
    packages: set[str] = set()
    cores: set[tuple[str, str]] = set()
    for cpu in cpus:
        try:
            with open(f"{base}/cpu{cpu}/topology/physical_package_id") as f:
                pkg = f.read().strip()
            with open(f"{base}/cpu{cpu}/topology/core_id") as f:
                core = f.read().strip()
        except OSError:
            continue
        packages.add(pkg)
        cores.add((pkg, core))
    sockets = max(1, len(packages))
    per_socket = max(1, len(cores) // sockets)
    threads = max(1, len(cpus) // max(1, len(cores)))
    try:
        cells = len([d for d in os.listdir("/sys/devices/system/node") if d.startswith("node")])
    except OSError:
        cells = 1
    return sockets, per_socket, threads, max(1, cells)


@command("nodeinfo", "node information", _none)
def nodeinfo(ctx: Context, args: argparse.Namespace) -> int:
    info = _cpuinfo()
    sockets, per_socket, threads, cells = _topology()
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    mhz = info.get("cpu MHz", "0").split(".")[0]
    rows = [
        ("CPU model", os.uname().machine),
        ("CPU(s)", str(os.cpu_count() or 1)),
        ("CPU frequency", f"{mhz} MHz"),
        ("CPU socket(s)", str(sockets)),
        ("Core(s) per socket", str(per_socket)),
        ("Thread(s) per core", str(threads)),
        ("NUMA cell(s)", str(cells)),
        ("Memory size", f"{mem_kib} KiB"),
    ]
    ctx.out.write("".join(f"{k + ':':<20} {v}\n" for k, v in rows) + "\n")
    return 0


def _cell_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("cell", nargs="?", metavar="CELL", help="a NUMA cell (this host has one: 0)")
    p.add_argument("--cell", dest="cell_opt", help=argparse.SUPPRESS)


@command("nodememstats", "Prints memory stats of the node.", _cell_arg)
def nodememstats(ctx: Context, args: argparse.Namespace) -> int:
    """virsh's layout: total, free, buffers, cached (KiB), from /proc/meminfo."""
    cell = args.cell_opt if args.cell_opt is not None else args.cell
    if cell is not None and cell not in ("0", "-1"):
        raise ShellError(f"invalid argument: cell number {cell} is not valid: this host has "
                         "one NUMA cell, 0")  # fmt: skip
    fields = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, _, rest = line.partition(":")
            fields[key] = int(rest.split()[0]) if rest.split() else 0
    rows = (("total", "MemTotal"), ("free", "MemFree"), ("buffers", "Buffers"),
            ("cached", "Cached"))  # fmt: skip
    ctx.out.write("".join(f"{label:<7}: {fields.get(key, 0):20} KiB\n" for label, key in rows))
    ctx.out.write("\n")
    return 0


@command("capabilities", "capabilities", _none)
def capabilities(ctx: Context, args: argparse.Namespace) -> int:
    """libvirt's <capabilities> of an LXC host (driver/hostcaps.py)."""
    ctx.out.write(ctx.conn.get_capabilities() + "\n")
    return 0


@command("sysinfo", "print the hypervisor sysinfo", _none)
def sysinfo(ctx: Context, args: argparse.Namespace) -> int:
    from nsvirt.shell.report import CommandFailed

    try:
        text = ctx.conn.get_sysinfo()
    except Exception as e:
        raise CommandFailed("failed to get sysinfo", e) from e
    ctx.out.write(text + "\n")
    return 0


def _cpustats_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cpu", help="prints specified cpu statistics only.")
    p.add_argument("--percent", action="store_true", help="prints by percentage during 1 second.")


def _cpu_times(cpu: int | None) -> dict[str, int]:
    """libvirt's virHostCPUGetStatsLinux: kernel (system, irq, softirq), user (user,
    nice), idle and iowait of /proc/stat's `cpu` (or `cpuN`) line, in ns."""
    from nsvirt.shell.report import CommandFailed

    tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    label = "cpu" if cpu is None else f"cpu{cpu}"
    with open("/proc/stat") as f:
        for line in f:
            name, *values = line.split()
            if name == label:
                user, nice, system, idle, iowait, irq, softirq = map(int, values[:7])
                return {"user": (user + nice) * tick, "kernel": (system + irq + softirq) * tick,
                        "idle": idle * tick, "iowait": iowait * tick}  # fmt: skip
    from nsvirt.driver.errors import DriverError

    raise CommandFailed("Unable to get node cpu stats",
                        DriverError("Invalid cpuNum in virHostCPUGetStatsLinux"))  # fmt: skip


@command("nodecpustats", "Prints cpu stats of the node.", _cpustats_args)
def nodecpustats(ctx: Context, args: argparse.Namespace) -> int:
    """virsh's layout: user, system, idle, iowait in ns; with --percent, their shares
    (and usage) over one second."""
    cpu = None
    if args.cpu is not None:
        if not args.cpu.isdigit():
            raise ShellError(f"Numeric value '{args.cpu}' for <cpu> option is malformed or "
                             "out of range")  # fmt: skip
        cpu = int(args.cpu)
    first = _cpu_times(cpu)
    labels = (("user:", "user"), ("system:", "kernel"), ("idle:", "idle"), ("iowait:", "iowait"))
    if not args.percent:
        ctx.out.write("".join(f"{label:<15} {first[key]:20}\n" for label, key in labels) + "\n")
        return 0
    import time

    time.sleep(1)
    second = _cpu_times(cpu)
    delta = {k: second[k] - first[k] for k in first}
    total = sum(delta.values()) or 1
    usage = (delta["user"] + delta["kernel"]) / total * 100
    rows = [("usage:", usage)] + [(label, delta[key] / total * 100) for label, key in labels]
    ctx.out.write("".join(f"{label:<15} {value:5.1f}%\n" for label, value in rows) + "\n")
    return 0


def _from_native_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("format", help="source config data format (lxc-tools)")
    p.add_argument("config", help="config data file to import from")
    p.add_argument("--explain", action="store_true",
                   help="say on stderr what was left out or read differently (nsvirt)")  # fmt: skip


@command("domxml-from-native", "Convert native config to domain XML", _from_native_args)
def domxml_from_native(ctx: Context, args: argparse.Namespace) -> int:
    from nsvirt.driver.errors import FileError

    try:
        with open(args.config, "rb") as f:
            text = f.read(1 << 20).decode(errors="replace")
    except OSError as e:
        raise FileError(f"Failed to open file '{args.config}': {e.strerror}") from None
    notes: list[str] = []
    xml = ctx.conn.domain_xml_from_native(args.format, text, notes=notes)
    if args.explain:
        for note in notes:
            print(f"{args.config}: {note}", file=ctx.err)
    print(xml, file=ctx.out)
    return 0


def _freecell_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("cellno", nargs="?", type=int, help="NUMA cell number")
    p.add_argument("--cellno", dest="cellno_opt", type=int, help=argparse.SUPPRESS)
    p.add_argument("--all", action="store_true", help="show free memory for all NUMA cells")


@command("freecell", "NUMA free memory", _freecell_args)
def freecell(ctx: Context, args: argparse.Namespace) -> int:
    free = _free_by_node()
    cell = args.cellno_opt if args.cellno_opt is not None else args.cellno
    if args.all:
        for node, kib in free.items():
            print(f"{node:5d}: {kib:10d} KiB", file=ctx.out)
        print("--------------------", file=ctx.out)
        print(f"{'Total':>5s}: {sum(free.values()):10d} KiB\n", file=ctx.out)
        return 0
    if cell is not None:
        if cell not in free:
            raise ShellError(f"invalid argument: Invalid NUMA cell number {cell}")
        print(f"{cell}: {free[cell]} KiB\n", file=ctx.out)
        return 0
    print(f"Total: {sum(free.values())} KiB\n", file=ctx.out)
    return 0


def _free_by_node() -> dict[int, int]:
    """Free memory (KiB) of each NUMA node (sysfs), or of the one host node."""
    base = "/sys/devices/system/node"
    out = {}
    try:
        nodes = sorted(int(n[4:]) for n in os.listdir(base) if n[4:].isdigit())
    except OSError:
        nodes = []
    for node in nodes:
        with open(f"{base}/node{node}/meminfo") as f:
            for line in f:
                if "MemFree:" in line:
                    out[node] = int(line.split()[3])
    if not out:
        with open("/proc/meminfo") as f:
            out[0] = next(int(line.split()[1]) for line in f if line.startswith("MemFree:"))
    return out


def _to_native_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("format", help="target config data type format (lxc-tools)")
    p.add_argument("xml", nargs="?", help="xml data file to export from")
    p.add_argument("--xml", dest="xml_opt", help=argparse.SUPPRESS)
    p.add_argument("--domain", help="domain name, id or uuid")


@command("domxml-to-native", "Convert domain XML to native config", _to_native_args)
def domxml_to_native(ctx: Context, args: argparse.Namespace) -> int:
    from nsvirt.driver.errors import FileError

    path = args.xml_opt or args.xml
    if args.domain and path:
        raise ShellError("Options --domain and --xml are mutually exclusive")
    if args.domain:
        data = ctx.lookup(args.domain).xml_desc(inactive=True).encode()
    elif path:
        from nsvirt.driver import domxml

        data = domxml.read_file(path)
    else:
        raise FileError("command 'domxml-to-native' requires <xml> option or --domain")
    print(ctx.conn.domain_xml_to_native(args.format, data), file=ctx.out)
    return 0


def _import_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="source", default="/etc/libvirt/lxc",
                   help="libvirt-lxc's definitions (default /etc/libvirt/lxc)")  # fmt: skip
    p.add_argument("--autostart", action="store_true", help="carry autostart links over too")
    p.add_argument(
        "--dry-run", action="store_true", help="show what would be stored, change nothing"
    )


@command("import-libvirt", "define libvirt-lxc's domains in nsvirt (nsvirt)", _import_args)
def import_libvirt(ctx: Context, args: argparse.Namespace) -> int:
    from nsvirt.driver import migrate
    from nsvirt.driver.errors import FileError

    if not os.path.isdir(args.source):
        raise FileError(f"Failed to open dir '{args.source}': No such file or directory")
    failed = 0
    for r in migrate.import_libvirt(ctx.conn, args.source, autostart=args.autostart,
                                    dry_run=args.dry_run):  # fmt: skip
        if args.dry_run and r.diff:
            ctx.out.write(r.diff)
        if r.error is not None:
            failed += 1
            print(f"error: {r.source}: {r.error}", file=ctx.err)
            continue
        verb = "would be imported" if args.dry_run else "imported"
        auto = " (autostart)" if r.autostart else ""
        print(f"Domain '{r.name}' {verb} from {r.source}{auto}", file=ctx.out)
        for note in r.notes:
            print(f"  note: {note}", file=ctx.out)
    print(file=ctx.out)
    return 1 if failed else 0
