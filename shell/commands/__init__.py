"""The command table: plain functions with an argparse builder each, no cmd2.

The one-shot entry point and the interactive app both dispatch through
`COMMANDS`; a command module registers its commands by importing `command`.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn, TextIO

from nsvirt.shell.report import ShellError

if TYPE_CHECKING:
    from nsvirt.driver import Connection, Domain


class Context:
    """What a command runs against: the connection (opened on first use) and the streams."""

    def __init__(self, uri: str | None, out: TextIO, err: TextIO, quiet: bool = False,
                 escape: str = "^]", readonly: bool = False) -> None:  # fmt: skip
        self.uri = uri
        self.out = out
        self.err = err
        self.quiet = quiet
        self.escape = escape
        self.autodestroy: list[object] = []  # sockets whose closing destroys a domain
        self.readonly = readonly  # -r: the connection refuses every change
        self.interactive = False  # the interactive shell (cd works only there)
        self._conn: Connection | None = None

    def reconnect(self, uri: str | None, readonly: bool = False) -> None:
        """Open another connection (the interactive `connect` command)."""
        from nsvirt.driver import connect

        self._conn = connect(uri, readonly=readonly)
        self.uri = uri
        self.readonly = readonly

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            from nsvirt.driver import connect

            self._conn = connect(self.uri, readonly=self.readonly)
        return self._conn

    def lookup(self, key: str) -> Domain:
        """Find a domain by id, UUID or name, in that order, as virsh's --domain does."""
        from nsvirt.driver.errors import NoDomainError

        if key.isdigit() and int(key) > 0:
            try:
                return self.conn.lookup_by_id(int(key))
            except NoDomainError:
                pass
        if re.fullmatch(r"[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}", key):
            try:
                return self.conn.lookup_by_uuid(key)
            except NoDomainError:
                pass
        return self.conn.lookup_by_name(key)

    def print(self, text: str = "") -> None:
        """Print a message line (suppressed by -q/--quiet, as virsh does)."""
        if not self.quiet:
            print(text, file=self.out)


Runner = Callable[[Context, argparse.Namespace], int]


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Runner | None  # None: registered but not built yet
    api: str = ""  # the libvirt API named in the "not supported" error
    domains: str = ""  # which domain names complete: all | active | inactive
    aliases: tuple[str, ...] = field(default=())

    def parser(self) -> VirshArgumentParser:
        p = VirshArgumentParser(
            prog=self.name, description=self.summary, add_help=False, exit_on_error=False
        )
        p.add_argument("--help", "-h", action="store_true", help="show this help")
        self.configure(p)
        return p


COMMANDS: dict[str, Command] = {}


def load_commands() -> dict[str, Command]:
    """Import every command module (each registers its commands) and return the table."""
    from nsvirt.shell.commands import (  # noqa: F401
        builtins,
        console,
        domain,
        events,
        host,
        interfaces,
        lifecycle,
        monitor,
        network,
        pending,
        refused,
        stats,
        tuning,
        xmledit,
    )

    return COMMANDS


def command(
    name: str,
    summary: str,
    configure: Callable[[argparse.ArgumentParser], None],
    *,
    domains: str = "",
) -> Callable[[Runner], Runner]:
    """Register the decorated function as the command `name`."""

    def register(run: Runner) -> Runner:
        COMMANDS[name] = Command(name, summary, configure, run, domains=domains)
        return run

    return register


def unsupported(name: str, summary: str, api: str, *, domains: str = "") -> None:
    """Register a command whose driver part does not exist yet: it says so, as virsh would."""
    COMMANDS[name] = Command(name, summary, _any_arguments, None, api=api, domains=domains)


def _any_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("args", nargs=argparse.REMAINDER)


def domain_arg(p: argparse.ArgumentParser) -> None:
    """virsh's `<domain>`: positional, or --domain NAME."""
    p.add_argument("domain", nargs="?", metavar="DOMAIN", help="domain name, id or uuid")
    p.add_argument("--domain", dest="domain_opt", metavar="DOMAIN", help=argparse.SUPPRESS)


def file_arg(p: argparse.ArgumentParser) -> None:
    """virsh's `<file>` of define and create: positional, or --file FILE."""
    p.add_argument("file", nargs="?", metavar="FILE", help="file containing an XML domain")
    p.add_argument("--file", dest="file_opt", help=argparse.SUPPRESS)
    p.add_argument("--validate", action="store_true",
                   help="validate the XML against the schema (always done by nsvirt)")  # fmt: skip


def from_xml_file(args: argparse.Namespace, cmd: str, verb: str,
                  load: Callable[[bytes, str], Domain]) -> tuple[Domain, str]:  # fmt: skip
    """Read the command's XML file (capped as the parser caps it) and hand it to `load`;
    any failure gets virsh's preamble `Failed to VERB domain from FILE`."""
    from nsvirt.driver import domxml  # xmlschema costs ~250 ms: load it where XML is parsed

    path = args.file_opt or args.file
    if not path:
        raise ShellError(f"command '{cmd}' requires <file> option")
    data = domxml.read_file(path)  # its errors stand alone, as virsh's do
    try:
        return load(data, path), path
    except Exception as e:
        from nsvirt.shell.report import CommandFailed

        raise CommandFailed(f"Failed to {verb} domain from {path}", e) from e


def domain_of(args: argparse.Namespace, cmd: str) -> str:
    name = args.domain_opt or args.domain
    if not name:
        raise ShellError(f"command '{cmd}' requires <domain> option")
    return name


class VirshArgumentParser(argparse.ArgumentParser):
    """argparse whose errors read like virsh's and never exit the process."""

    def parse_words(self, words: list[str], intermixed: bool = True) -> argparse.Namespace:
        """Parse a command's words as virsh does: options and positional words in any
        order, and an option's value taken whatever it looks like (`--domain -rf`)."""
        takes_value = {opt for action in self._actions if action.nargs is None
                       for opt in action.option_strings}  # fmt: skip
        joined: list[str] = []
        pending = None
        for word in words:
            if pending is not None:
                joined.append(f"{pending}={word}")
                pending = None
            elif word in takes_value:
                pending = word
            else:
                joined.append(word)
        if pending is not None:
            joined.append(pending)  # argparse says the value is missing
        try:
            if intermixed:
                return self.parse_intermixed_args(joined)
            return self.parse_args(joined)
        except argparse.ArgumentError as e:
            self.error(str(e))

    def format_help(self) -> str:
        """`help CMD` in virsh's layout: NAME, SYNOPSIS, DESCRIPTION, OPTIONS."""
        synopsis, options = [], []
        for action in self._actions:
            if action.help == argparse.SUPPRESS or action.dest == "help":
                continue
            flag = action.option_strings[-1] if action.option_strings else ""
            takes = action.nargs != 0 and not isinstance(
                action, argparse._StoreTrueAction | argparse._StoreFalseAction)  # fmt: skip
            if not flag:  # positional: virsh's <name>, also given as --name
                word = f"<{action.metavar or action.dest}>".lower()
                required = action.nargs is None or action.dest in ("domain", "file")
                synopsis.append(word if required else f"[{word}]")
                options.append((f"[--{action.dest}] <string>", action.help or ""))
            elif takes:
                synopsis.append(f"[{flag} <string>]")
                options.append((f"{flag} <string>", action.help or ""))
            else:
                synopsis.append(f"[{flag}]")
                options.append((flag, action.help or ""))
        summary = self.description or ""
        out = ["  NAME", f"    {self.prog} - {summary}", "", "  SYNOPSIS",
               "    " + " ".join([self.prog, *synopsis]), "", "  DESCRIPTION",
               f"    {summary[:1].upper()}{summary[1:]}.", ""]  # fmt: skip
        if options:
            out += ["  OPTIONS", *(f"    {o:<15}  {h}" for o, h in options), ""]
        return "\n".join(out) + "\n"

    def error(self, message: str) -> NoReturn:
        unknown = re.match(r"unrecognized arguments: (.*)", message)
        if unknown:
            word = unknown.group(1).split()[0]
            if word.startswith("-"):
                raise ShellError(f"command '{self.prog}' doesn't support option {word}")
            raise ShellError(f"unexpected data '{word}'")
        required = re.match(r"the following arguments are required: (\S+)", message)
        if required:
            raise ShellError(f"command '{self.prog}' requires <{required.group(1)}> option")
        missing = re.match(r"argument (\S+?)(/\S+)?: expected one argument", message)
        if missing:
            raise ShellError(f"command '{self.prog}' requires {missing.group(1)} option's data")
        raise ShellError(f"command '{self.prog}': {message}")
