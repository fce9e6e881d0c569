"""nsvirsh's full one-shot shell: `nsvirsh [OPTIONS] COMMAND [ARGS]`, `nsvirsh 'cmd1;
cmd2'`, or (no command) the interactive shell.

shell/quick.py answers the daily commands first, without this module; what it
leaves comes here. Even here cmd2, xmlschema and pyroute2 are loaded only by the
commands that need them (DESIGN.md §8).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TextIO

from nsvirt.shell import parse
from nsvirt.shell.commands import Context, load_commands
from nsvirt.shell.report import ShellError, report

COMMANDS = load_commands()

USAGE = """\
nsvirsh [options]... [<command_string>]
nsvirsh [options]... <command> [args...]

  options:
    -c | --connect=URI      hypervisor connection URI (default: $NSVIRT_DEFAULT_URI
                            or lxc:///system)
    -d | --debug=NUM        debug level; any level shows tracebacks of internal errors
    -e | --escape <char>    set escape sequence for console
    -h | --help             this help
    -q | --quiet            quiet mode
    -r | --readonly         connect readonly
    -v                      short version
    -V                      long version
         --version[=TYPE]   version, TYPE is short or long (default short)

  commands (non interactive mode): see 'nsvirsh help'
"""


@dataclass
class Options:
    uri: str | None = None
    quiet: bool = False
    readonly: bool = False
    debug: bool = False
    escape: str = "^]"


def parse_options(argv: list[str]) -> tuple[Options, list[str]]:
    """Split virsh's global options from the command words that follow them."""
    opts = Options()
    i = 0
    takes_value = {
        "-c": "uri",
        "--connect": "uri",
        "-e": "escape",
        "--escape": "escape",
        "-d": "debug",
        "--debug": "debug",
        "-k": None,
        "--keepalive-interval": None,
        "-K": None,
        "--keepalive-count": None,
        "-l": None,
        "--log": None,
    }
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return opts, argv[i + 1 :]
        if not arg.startswith("-") or arg == "-":
            break
        name, eq, value = arg.partition("=")
        if name in takes_value:
            if not eq:
                if i + 1 >= len(argv):
                    raise ShellError(f"option '{name}' requires an argument. See --help.")
                i += 1
                value = argv[i]
            field = takes_value[name]
            if field == "uri":
                opts.uri = value
            elif field == "escape":
                opts.escape = value
            elif field == "debug":
                opts.debug = True
        elif arg in ("-q", "--quiet"):
            opts.quiet = True
        elif arg in ("-r", "--readonly"):
            opts.readonly = True
        elif arg in ("-h", "--help"):
            raise _Exit(USAGE, 0)
        elif arg in ("-v", "--version", "--version=short"):
            from nsvirt.driver import __version__

            raise _Exit(f"{__version__}\n", 0)
        elif arg in ("-V", "--version=long"):
            from nsvirt.driver import __version__

            raise _Exit(f"nsvirsh {__version__}, driver: lxc (nsvirt, no daemon)\n", 0)
        else:
            raise ShellError(f"unsupported option '{arg}'. See --help.")
        i += 1
    return opts, argv[i:]


class _Exit(Exception):
    def __init__(self, text: str, status: int) -> None:
        super().__init__(text)
        self.text = text
        self.status = status


def run_command(ctx: Context, words: list[str]) -> int:
    """Run one command (its words) and return its exit status; errors propagate."""
    name, *rest = words
    cmd = COMMANDS.get(name)
    if cmd is None:
        raise ShellError(f"unknown command: '{name}'")
    args = cmd.parser().parse_words(rest, intermixed=cmd.run is not None)
    if args.help:
        ctx.out.write(cmd.parser().format_help())
        return 0
    if cmd.run is None:
        raise ShellError(f"this function is not supported by the connection driver: {cmd.api}")
    return cmd.run(ctx, args)


def run_line(ctx: Context, commands: list[list[str]], err: TextIO, debug: bool) -> int:
    """Run commands in order, as virsh does: each one, a failure does not stop the
    next; the status is the last one's. virsh ends each command with an empty line,
    a failed one too, but not with -q."""
    out = ctx.out
    status = 0
    for words in commands:
        held = ctx.out = _Quiet(out) if ctx.quiet else out
        try:
            status = run_command(ctx, words)
        except BrokenPipeError:
            raise  # the reader of our output went away: main() ends quietly
        except Exception as e:
            status = report(e, err, debug)
            if not ctx.quiet:
                out.write("\n")
        finally:
            ctx.out = out
            if isinstance(held, _Quiet):
                held.finish()
    return status


class _Quiet:
    """stdout under -q: what a command writes goes through, but for the empty line
    that ends it (held back until more comes, and dropped if nothing does)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.held = False
        self.last = ""

    def write(self, text: str) -> int:
        if not text:
            return 0
        if self.held:
            self.out.write("\n")
            self.last = "\n"
        self.held = text.endswith("\n")
        body = text[:-1] if self.held else text
        if body:
            self.out.write(body)
            self.last = body[-1]
        return len(text)

    def finish(self) -> None:
        if self.held and self.last not in ("\n", ""):
            self.out.write("\n")  # the end of a line, not an empty one
        self.held = False

    def __getattr__(self, name: str) -> object:
        return getattr(self.out, name)


def _help(ctx: Context, words: list[str]) -> int:
    if len(words) > 1:
        return run_command(ctx, [words[1], "--help"])
    width = max(len(n) for n in COMMANDS)
    for name in sorted(COMMANDS):
        cmd = COMMANDS[name]
        note = "" if cmd.run else "  (not supported yet)"
        print(f"    {name:<{width}}  {cmd.summary}{note}", file=ctx.out)
    print(file=ctx.out)
    return 0


def main(
    argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    argv = sys.argv[1:] if argv is None else argv
    try:
        opts, words = parse_options(argv)
    except _Exit as e:
        out.write(e.text)
        return e.status
    except ShellError as e:
        return report(e, err)
    ctx = Context(opts.uri, out, err, quiet=opts.quiet, escape=opts.escape,
                  readonly=opts.readonly)  # fmt: skip
    try:
        if len(words) == 1 and any(c in words[0] for c in " \t\n;#'\"\\"):
            commands = parse.split_commands(words[0])
        else:
            commands = parse.split_argv(words)
    except parse.UnbalancedQuote as e:
        return report(ShellError(str(e)), err)
    if not commands:
        from nsvirt.shell.app import interactive  # cmd2 costs ~250 ms: only here

        return interactive(ctx, debug=opts.debug)
    try:
        if commands[0][0] == "help":
            status = _help(ctx, commands[0])
        else:
            status = run_line(ctx, commands, err, opts.debug)
        out.flush()
    except BrokenPipeError:
        # `nsvirsh list --name | head -1`: the reader has what it wanted. virsh stops
        # writing and exits quietly; so do we (no traceback when Python exits either).
        if out is sys.stdout:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return status


if __name__ == "__main__":
    sys.exit(main())
