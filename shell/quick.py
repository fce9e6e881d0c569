"""The one-shot fast path: the daily commands, answered from the store with the
standard library's C modules and nsvirt's light state modules only.

Scripts run nsvirsh once per command, so one process's start is nsvirt's speed
(docs/performance.md): cmd2, argparse, lxml, xmlschema, pyroute2, dataclasses,
typing, pathlib, json, enum and re are never imported here. `run` answers `list`,
`dominfo`, `domstate`, `domid`, `domuuid`, `domname`, `dumpxml`, `undefine`,
`start`, `suspend`, `resume`, `shutdown` and `destroy` in their common forms, and
`define FILE` and `create FILE` through the driver (which loads the XML stack, but
not the full shell's command table and argparse). For anything else it returns
None and the full shell (shell/oneshot.py) runs the same words:
an option it does not know, a name it does not find, a file it cannot trust as
it is (a definition nsvirt did not write, a missing or stale compiled form, a run
that needs recovery), any error. It prints nothing before it knows it can answer,
and sends a supervisor a request only once nothing is left to check; a request
that then fails is handed to the full shell, which asks again and reports.
"""

from __future__ import annotations

import os
import sys

from nsvirt.driver.state import runstate, store, words
from nsvirt.driver.state.names import (
    CONFIG_DIR,
    RUN_DIR,
    Layout,
    entries,
    root_uri,
    uri_from_environment,
)

MAX_XML = 1 << 20  # the parser's cap (a bigger file is not one nsvirt wrote)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TextIO

    from nsvirt.driver.launch.spare import Spare
    from nsvirt.driver.state.runstate import RunState

    Handler = Callable[[Layout, list[str], bool, bool], str | None]


class _Fallback(Exception):
    """Not for the fast path: the full shell answers."""


class Failed(Exception):
    """The command failed after it changed something: its virsh `error:` lines."""

    def __init__(self, *lines: str) -> None:
        super().__init__(*lines)
        self.lines = lines


def main(argv: list[str] | None = None, out: TextIO | None = None,
         err: TextIO | None = None) -> int:  # fmt: skip
    """nsvirsh's entry point: the fast path when it can answer, else the full shell.
    Called as the program itself (no `argv`), it ends the process once the fast path
    has answered."""
    program = argv is None
    argv = sys.argv[1:] if argv is None else argv
    quiet = _options(argv)[1]
    try:
        text = run(argv)
    except Failed as e:
        (err or sys.stderr).write("".join(f"error: {line}\n" for line in e.lines))
        if not quiet:
            (out or sys.stdout).write("\n")  # virsh's empty line after each command
        return _leave(1) if program else 1
    if text is None:
        from nsvirt.shell.oneshot import main as full

        return full(argv, out, err)
    stream = out or sys.stdout
    try:
        stream.write(text)
        stream.flush()
    except BrokenPipeError:  # `nsvirsh list --name | head -1`, as the full shell does
        if stream is sys.stdout:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return _leave(0) if program else 0


def _leave(status: int) -> int:
    """End the process without Python's teardown (~3 ms after a start, ~1 ms after a
    list): the fast path holds nothing that needs it (its files and locks are closed
    by now), so only the atexit handlers run and stdio is flushed."""
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def run(argv: list[str]) -> str | None:
    """What the command prints (it succeeded), or None: the full shell must run it."""
    uri, quiet, readonly, words_ = _options(argv)
    if not words_ or words_[0] not in COMMANDS:
        return None
    root = _root_of(uri if uri is not None else uri_from_environment())
    if root is None:
        return None
    try:
        text = COMMANDS[words_[0]](Layout(root), words_[1:], quiet, readonly)
        if quiet and text and text.endswith("\n") and (text == "\n" or text.endswith("\n\n")):
            text = text[:-1]  # -q: without the empty line that ends a command's output
        return text
    except Failed:
        raise
    except Exception:  # _Fallback, NeedsRecovery, OSError, …: the full shell decides
        return None


def _options(argv: list[str]) -> tuple[str | None, bool, bool, list[str]]:
    """virsh's global options that the fast path knows; any other makes it step aside."""
    uri, quiet, readonly = None, False, False
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        arg = argv[i]
        if arg in ("-c", "--connect") and i + 1 < len(argv):
            uri = argv[i + 1]
            i += 1
        elif arg.startswith("--connect="):
            uri = arg[len("--connect=") :]
        elif arg in ("-q", "--quiet"):
            quiet = True
        elif arg in ("-r", "--readonly"):
            readonly = True
        else:
            return None, False, False, []
        i += 1
    rest = argv[i:]
    # one word that is a command string (`nsvirsh 'start d; console d'`), or
    # words with characters virsh's parser gives a meaning to: the full shell
    if any(c in w for w in rest for c in " \t\n;#'\"\\") or any(w == "--" for w in rest):
        return None, False, False, []
    return uri, quiet, readonly, rest


def _root_of(uri: str | None) -> str | None:
    """The connection root of the plain URIs (connection.parse_uri has them all)."""
    uri = uri or "lxc:///system"
    for scheme in ("lxc://localhost", "lxc://"):
        if uri.startswith(scheme):
            rest = uri[len(scheme) :]
            break
    else:
        return None
    if any(c in rest for c in "%+#&;"):
        return None  # percent-encoding and friends: parse_uri's job
    path, _, query = rest.partition("?")
    if path in ("", "/", "/system") and not query:
        return "/"
    if path == "/embed" and query.startswith("root=/"):
        return os.path.normpath(query[len("root=") :])
    return None


def _one_domain(args: list[str], flags: tuple[str, ...] = ()) -> tuple[str, set[str]]:
    """The domain name and the flags of `CMD [--domain] NAME [FLAGS]`."""
    seen = set()
    names = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--domain" and i + 1 < len(args):
            names.append(args[i + 1])
            i += 1
        elif a in flags:
            seen.add(a)
        elif a.startswith("-"):
            raise _Fallback
        else:
            names.append(a)
        i += 1
    if len(names) != 1:
        raise _Fallback
    name = names[0]
    if not name or "/" in name or name.startswith(".") or store.canonical_uuid(name.lower()):
        raise _Fallback  # a uuid (or no name at all): the full shell looks it up
    return name, seen


class _Found:
    """One domain as the store has it: uuid, run state, persistent or not."""

    __slots__ = ("name", "persistent", "state", "uuid")

    def __init__(self, names: Layout, name: str) -> None:
        self.name = name
        self.persistent = store.is_persistent(names, name)
        uuid = store.head_uuid(names.config(name)) if self.persistent else None
        if self.persistent and uuid is None:
            raise _Fallback  # not in nsvirt's own layout: the full parse says where
        self.state: RunState | None = runstate.read_trusted(names, name)
        if uuid is None:  # a transient domain: known while it runs
            if self.state is None or not self.state.live or not self.state.uuid:
                raise _Fallback
            uuid = self.state.uuid
        self.uuid = uuid

    @property
    def live(self) -> bool:
        return self.state is not None and self.state.live

    @property
    def id(self) -> int:
        return self.state.supervisor_pid if self.live else -1  # type: ignore[union-attr]

    def numbers(self) -> tuple[int, int]:
        return runstate.numbers_of(self.state)


# ---------------------------------------------------------------- read-only commands


def _list(names: Layout, args: list[str], quiet: bool, readonly: bool) -> str | None:
    known = {"--all", "--inactive", "--name", "--uuid", "--id", "--table"}
    if not set(args) <= known:
        raise _Fallback
    flags = set(args)
    every = entries(names.under(CONFIG_DIR), ".xml") + entries(names.under(RUN_DIR), ".json")
    rows = []
    for name in sorted(set(every)):
        try:
            dom = _Found(names, name)
        except _Fallback:
            if store.is_persistent(names, name):
                raise  # a broken definition: the full shell names it and lists the rest
            continue  # a shut-off record of a transient domain: not a domain
        st, _ = dom.numbers()
        if st == words.SHUTOFF and not flags & {"--all", "--inactive"}:
            continue
        if st != words.SHUTOFF and "--inactive" in flags:
            continue
        rows.append((dom, st))
    rows.sort(key=lambda r: (r[0].id < 0, max(r[0].id, 0), r[0].name))  # as virsh
    from nsvirt.shell import output

    if "--table" in flags and flags & {"--name", "--uuid", "--id"}:
        raise _Fallback  # the full shell says which options clash
    if flags & {"--name", "--uuid", "--id"}:
        return "".join(output.list_line(d.id, d.uuid, d.name, "--uuid" in flags, "--id" in flags,
                                        "--name" in flags) for d, _ in rows) + "\n"  # fmt: skip
    table = [["-" if d.id < 0 else str(d.id), d.name, words.LABELS[st]] for d, st in rows]
    return output.table(["Id", "Name", "State"], table, header=not quiet)


def _dominfo(names: Layout, args: list[str], quiet: bool, readonly: bool) -> str | None:
    from nsvirt.driver.state import compiled
    from nsvirt.shell import output

    name, _ = _one_domain(args)
    dom = _Found(names, name)
    source = names.live_xml(name) if dom.live else names.config(name)
    summary = compiled.read(source, names.compiled(name, dom.live))
    if summary is None:
        raise _Fallback  # the full shell compiles it again
    st, _ = dom.numbers()
    pairs = [
        ("Id", "-" if dom.id < 0 else str(dom.id)),
        ("Name", name),
        ("UUID", dom.uuid),
        ("OS Type", "exe"),
        ("State", words.LABELS[st]),
        ("CPU(s)", str(summary["vcpus"])),
    ]
    used = summary["current_memory"]
    if dom.live:
        from nsvirt.driver.runtime import cgusage

        used, cpu = cgusage.usage(dom.state.cgroup)  # type: ignore[union-attr]
        pairs.append(("CPU time", f"{cpu / 1e9:.1f}s"))
    pairs += [
        ("Max memory", f"{summary['memory']} KiB"),
        ("Used memory", f"{used} KiB"),
        ("Persistent", "yes" if dom.persistent else "no"),
        ("Autostart", "enable" if os.path.islink(names.autostart_link(name)) else "disable"),
        ("Managed save", "no"),
        ("Security model", "none"),
        ("Security DOI", "0"),
    ]
    return output.fields(pairs)


def _domstate(names: Layout, args: list[str], quiet: bool, readonly: bool) -> str | None:
    name, flags = _one_domain(args, ("--reason",))
    st, reason = _Found(names, name).numbers()
    text = words.LABELS[st]
    if "--reason" in flags:
        text += f" ({words.reason_label(st, reason)})"
    return text + "\n\n"


def _running(names: Layout, args: list[str], flags: tuple[str, ...] = ()) -> tuple[
        RunState, set[str], str]:  # fmt: skip
    """A statistics command's running domain: its state, flags and name (anything else,
    "domain is not running" included, is the full shell's to say)."""
    name, seen = _one_domain(args, flags)
    dom = _Found(names, name)
    if not dom.live:
        raise _Fallback
    return dom.state, seen, name  # type: ignore[return-value]


def _dommemstat(names: Layout, args: list[str], quiet: bool, readonly: bool) -> str | None:
    from nsvirt.driver.runtime import cgusage
    from nsvirt.driver.state import compiled

    state, _, name = _running(names, args)
    summary = compiled.read(names.live_xml(name), names.compiled(name, True))
    if summary is None:
        raise _Fallback
    try:
        rss = cgusage.memory_usage(state.cgroup) // 1024
        swap = cgusage.swap_usage(state.cgroup) // 1024
    except (OSError, ValueError, KeyError):
        raise _Fallback from None
    return f"actual {summary['current_memory']}\nswap_in {swap}\nrss {rss}\n\n"


def _domblkstat(names: Layout, args: list[str], quiet: bool, readonly: bool) -> str | None:
    from nsvirt.driver.runtime import cgusage

    state, _, _ = _running(names, args)
    try:
        stats = cgusage.block_stats(state.cgroup)
    except (OSError, ValueError, KeyError):
        raise _Fallback from None
    return "".join(f" {k} {v}\n" for k, v in stats.items()) + "\n"


def _cpu_stats(names: Layout, args: list[str], quiet: bool, readonly: bool) -> str | None:
    """`cpu-stats D` and `cpu-stats D --total` (a start or a count: the full shell)."""
    from nsvirt.driver.runtime import cgusage
    from nsvirt.shell import output

    state, flags, _ = _running(names, args, ("--total",))
    dirs = state.cgroup
    try:
        per_cpu = [] if "--total" in flags else cgusage.cpu_time_per_cpu(dirs) or []
        user, system = cgusage.cpu_split_ns(dirs)
        total = {"cpu_time": cgusage.cpu_time_ns(dirs), "user_time": user, "system_time": system}
    except (OSError, ValueError, KeyError, IndexError):
        raise _Fallback from None
    return output.cpu_stats([(n, {"cpu_time": t}) for n, t in enumerate(per_cpu)], total)


def _settings(state: RunState) -> dict[str, object]:
    """The running cgroup's limits, as the backends read them."""
    from nsvirt.driver.runtime.cgroups import CgroupError, backend_for

    try:
        return backend_for(state.facts, state.cgroup_partition, state.cgroup_name).settings()
    except (CgroupError, OSError, ValueError, KeyError):
        raise _Fallback from None


def _memtune(names: Layout, args: list[str], quiet: bool, readonly: bool) -> str | None:
    """`memtune D` of a running domain: its cgroup's limits."""
    from nsvirt.driver.runtime.cgroups import params
    from nsvirt.shell import output

    state, _, _ = _running(names, args)
    return output.parameters(params.live_memory(_settings(state)), params.UNLIMITED)


def _schedinfo(names: Layout, args: list[str], quiet: bool, readonly: bool) -> str | None:
    """`schedinfo D` of a running domain: its cgroup's CPU settings."""
    from nsvirt.driver.runtime.cgroups import params
    from nsvirt.shell import output

    state, _, _ = _running(names, args)
    rows = params.live_scheduler(_settings(state))
    return f"{'Scheduler':<15}: posix\n" + output.parameters(rows)


def _domid(names: Layout, args: list[str], quiet: bool, readonly: bool) -> str | None:
    dom = _Found(names, _one_domain(args)[0])
    return ("-" if dom.id < 0 else str(dom.id)) + "\n\n"


def _domuuid(names: Layout, args: list[str], quiet: bool, readonly: bool) -> str | None:
    return _Found(names, _one_domain(args)[0]).uuid + "\n\n"


def _domname(names: Layout, args: list[str], quiet: bool, readonly: bool) -> str | None:
    return _Found(names, _one_domain(args)[0]).name + "\n\n"


def _dumpxml(names: Layout, args: list[str], quiet: bool, readonly: bool) -> str | None:
    name, flags = _one_domain(args, ("--inactive", "--security-info"))
    dom = _Found(names, name)
    live = dom.live and "--inactive" not in flags
    if not live and not dom.persistent:
        raise _Fallback
    with open(names.live_xml(name) if live else names.config(name), "rb") as f:
        text = f.read(MAX_XML + 1).decode()
    if not (text.startswith("<domain") and text.rstrip().endswith("</domain>")):
        raise _Fallback  # not as nsvirt writes it: the full parse says where
    return text + "\n"


# ---------------------------------------------------------------- commands that change


def _undefine(names: Layout, args: list[str], quiet: bool, readonly: bool) -> str | None:
    name, _ = _one_domain(args)
    if readonly or not store.is_persistent(names, name):
        raise _Fallback
    from nsvirt.driver.state import files

    with files.locked(names.define_lock(), "the domain definitions"), \
         files.locked(names.lock(name), f"domain '{name}'"):  # fmt: skip
        state = runstate.read_trusted(names, name)  # NeedsRecovery: the full shell
        if not store.forget(names, name, runstate.is_live(state)):
            raise _Fallback
    return "" if quiet else f"Domain '{name}' has been undefined\n\n"


def _start(names: Layout, args: list[str], quiet: bool, readonly: bool) -> str | None:
    """Start a defined domain from its prepared launch (launch/prepared.py): no XML,
    model or plan to make; with no running supervisor to fork the new one, a spare
    forked first (launch/spare.py) becomes it, having loaded its code meanwhile."""
    name, _ = _one_domain(args, ("--force-boot",))
    if readonly or not store.is_persistent(names, name):
        raise _Fallback
    spare = _spare(names)  # loads the supervisor's code while this reads and locks
    try:
        return _start_with(names, name, quiet, spare)
    finally:
        if spare is not None:
            spare.discard()  # unused: the full shell starts it, or a donor forked it


def _spare(names: Layout) -> Spare | None:
    """A spare supervisor (launch/spare.py) when no supervisor serves under this root,
    so none can fork the new one; None otherwise (a donor's fork is cheaper)."""
    if entries(names.under(RUN_DIR), ".sock"):
        return None
    from nsvirt.driver.launch import spare

    return spare.fork(names.procfs())


def _start_with(names: Layout, name: str, quiet: bool, spare: Spare | None) -> str:
    from nsvirt.driver.launch import hostprobe, prepared
    from nsvirt.driver.state import compiled, files

    found = compiled.read(names.config(name), names.compiled(name, live=False))
    launch = found and found.get("launch")
    if not isinstance(launch, dict) or not prepared.usable(launch, names.root, hostprobe.probe()):
        raise _Fallback  # the driver plans it (and compiles it again)
    with files.locked(names.lock(name), f"domain '{name}'"):
        state = runstate.read_trusted(names, name)  # NeedsRecovery: the full shell
        if runstate.is_live(state):
            raise _Fallback  # "Domain is already active": the full shell says so
        from nsvirt.driver.launch import launcher, livexml

        try:
            info = launcher.launch(names, launch["plan"], persistent=True, fork_here=True,
                                   spare=spare)  # fmt: skip
        except launcher.StartFailed:
            raise _Fallback from None  # it left nothing: the full shell tries and reports
        try:
            text = livexml.fill(launch["live"], info["pid"], info["consoles"],
                                info.get("containment")).encode()  # fmt: skip
        except ValueError:
            text = b""
        if not text or not _write_live(names, name, text, found, info["pid"]):
            _live_by_driver(names, name, info)
    return "" if quiet else f"Domain '{name}' started\n\n"


def _from_file(verb: str) -> Handler:
    """`define FILE` and `create FILE`: the driver's define_xml or create_xml, without
    the full shell's command table and argparse (~12 ms). Any option: the full shell."""

    def handler(names: Layout, args: list[str], quiet: bool, readonly: bool) -> str | None:
        if len(args) == 2 and args[0] == "--file":
            args = args[1:]
        if readonly or len(args) != 1 or args[0].startswith("-"):
            raise _Fallback
        # forked before the XML stack is loaded, the spare stays small
        spare = _spare(names) if verb == "create" else None
        try:
            from nsvirt.driver import connect, domxml

            path = args[0]
            data = domxml.read_file(path)  # DriverError: the full shell reads it, says why
            conn = connect(root_uri(names.root))
            conn.spare = spare
            try:
                load = conn.define_xml if verb == "define" else conn.create_xml
                dom = load(data, source=path)
            except Exception as e:
                from nsvirt.shell.report import CommandFailed, error_lines

                failed = CommandFailed(f"Failed to {verb} domain from {path}", e)
                raise Failed(*error_lines(failed)) from None
        finally:
            if spare is not None:
                spare.discard()  # unused (the start failed early, or a donor forked it)
        done = "defined" if verb == "define" else "created"
        return "" if quiet else f"Domain '{dom.name}' {done} from {path}\n\n"

    return handler


def _write_live(names: Layout, name: str, text: bytes, found: dict[str, object],
                supervisor: int) -> bool:  # fmt: skip
    """The live XML, and its compiled form from the definition's (the same fields)."""
    from nsvirt.driver.state import compiled

    fields = {**{k: found[k] for k in compiled.FIELDS}, "launch": None}
    try:
        store.write_live(names, name, text, fields, supervisor)
    except OSError:
        return False
    return True


def _live_by_driver(names: Layout, name: str, info: dict) -> None:
    """The live XML the driver's way (it also destroys a domain whose live XML cannot
    be written: one nobody could see must not run on)."""
    from nsvirt.driver import connect

    dom = connect(root_uri(names.root)).lookup_by_name(name)
    try:
        dom._write_live_xml(dom.definition(inactive=True), info["pid"], info["consoles"],
                            info.get("interfaces", []), info.get("containment"))  # fmt: skip
    except OSError as e:
        dom.destroy()
        raise Failed(f"Failed to start domain '{name}'",
                     f"internal error: cannot write the live definition: {e.strerror}; "
                     "the domain was destroyed") from None  # fmt: skip


def _request(op: str, done: str, **fields: object) -> Handler:
    """A command that is one request to the running domain's supervisor."""

    def handler(names: Layout, args: list[str], quiet: bool, readonly: bool) -> str | None:
        from nsvirt.driver.supervisor import wire

        name, _ = _one_domain(args)
        if readonly:
            raise _Fallback
        state = runstate.read_trusted(names, name)
        if state is None or not state.live:
            raise _Fallback  # "domain is not running": the full shell says so
        if (op == "suspend") == (state.state == runstate.PAUSED) and op in ("suspend", "resume"):
            raise _Fallback  # already paused / not paused
        if op == "destroy":
            from nsvirt.driver.runtime import procstat

            stat = procstat.read(state.supervisor_pid)
            if stat is None or stat.state in ("T", "t"):
                raise _Fallback  # a stopped supervisor cannot answer: the full destroy
        bound = wire.answer_timeout() if op == "destroy" else wire.CALL_TIMEOUT
        line = wire.request_line(op, bound, **fields)
        try:
            reply = wire.decode(wire.call(names.socket(name), line, bound))
        except (OSError, wire.WireError):
            raise _Fallback from None  # cannot reach it, or no answer: the full shell
        if not reply.get("ok"):
            raise _Fallback  # it refused: the full shell asks again and reports
        if op == "destroy" and state.interfaces:
            runstate.remove_host_interfaces(state)
        return "" if quiet else done.format(name) + "\n\n"

    return handler


COMMANDS: dict[str, Handler] = {
    "list": _list,
    "dominfo": _dominfo,
    "domstate": _domstate,
    "domid": _domid,
    "domuuid": _domuuid,
    "domname": _domname,
    "dumpxml": _dumpxml,
    "dommemstat": _dommemstat,
    "domblkstat": _domblkstat,
    "cpu-stats": _cpu_stats,
    "memtune": _memtune,
    "schedinfo": _schedinfo,
    "undefine": _undefine,
    "start": _start,
    "define": _from_file("define"),
    "create": _from_file("create"),
    "suspend": _request("suspend", "Domain '{}' suspended"),
    "resume": _request("resume", "Domain '{}' resumed"),
    "shutdown": _request(
        "shutdown", "Domain '{}' is being shutdown", mode=None, timeout=None, wait=False
    ),
    "destroy": _request("destroy", "Domain '{}' destroyed"),
}
