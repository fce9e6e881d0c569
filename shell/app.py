"""The interactive nsvirsh: a cmd2 adapter over the same command table as one-shot mode.

cmd2 reads lines (history, editing, completion); every line is then split by
nsvirsh's own virsh-compatible parser, so `list --all; dominfo web` runs both
commands (cmd2's own `;` terminator would silently drop the second).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import cmd2
from cmd2 import Completions

from nsvirt.shell import parse
from nsvirt.shell.commands import Command, Context, load_commands
from nsvirt.shell.report import ShellError, report

PROMPT = "nsvirsh # "
# cmd2 built-ins that mean nothing to a virsh user, or would shadow virsh's commands
_HIDDEN = ("alias", "macro", "run_pyscript", "run_script", "shell", "shortcuts", "set",
           "_relative_run_script")  # fmt: skip


def history_file() -> str:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nsvirsh"
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError:
        return ""
    return str(base / "history")


class NsvirshApp(cmd2.Cmd):
    """virsh's interactive shell, on cmd2."""

    def __init__(self, ctx: Context, *, debug: bool = False, stdin: TextIO | None = None,
                 stdout: TextIO | None = None, history: str | None = None) -> None:  # fmt: skip
        super().__init__(
            stdin=stdin,
            stdout=stdout,
            allow_cli_args=False,
            allow_redirection=False,
            shortcuts={},
            terminators=[],  # `;` is ours to split (parse.split_commands)
            persistent_history_file=history_file() if history is None else history,
            auto_suggest=False,
        )
        self.ctx = ctx
        ctx.interactive = True
        self.debug = debug
        self.prompt = PROMPT
        self.last_status = 0
        self.hidden_commands += [c for c in _HIDDEN if c not in self.hidden_commands]

    def run_line(self, line: str) -> bool:
        """Run every command of a line, virsh-style; return True to leave the shell."""
        try:
            commands = parse.split_commands(line)
        except parse.UnbalancedQuote as e:
            self.last_status = report(ShellError(str(e)), self.ctx.err)
            return False
        from nsvirt.shell.oneshot import run_command

        for words in commands:
            if words[0] in ("quit", "exit"):
                return True
            if words[0] == "help":
                self.last_status = help_text(self.ctx, words)
                continue
            try:
                self.last_status = run_command(self.ctx, words)
            except Exception as e:
                self.last_status = report(e, self.ctx.err, self.debug)
                break
        return False

    def default(self, statement: cmd2.Statement) -> bool | None:
        # an unknown first word: still ours to report, in virsh's words
        return self.run_line(statement.raw)

    def do_help(self, statement: cmd2.Statement) -> bool | None:  # type: ignore[override]
        """print help"""
        return self.run_line(statement.raw)

    def do_quit(self, statement: cmd2.Statement) -> bool | None:  # type: ignore[override]
        """quit this interactive terminal"""
        return True

    do_exit = do_quit


def help_text(ctx: Context, words: list[str]) -> int:
    from nsvirt.shell.oneshot import _help

    return _help(ctx, words)


def _runner(name: str) -> Callable[[NsvirshApp, cmd2.Statement], bool | None]:
    def run(self: NsvirshApp, statement: cmd2.Statement) -> bool | None:
        return self.run_line(statement.raw)

    run.__doc__ = COMMANDS[name].summary
    run.__name__ = f"do_{name}"
    return run


def _completer(cmd: Command) -> Callable[..., Completions]:
    def complete(self: NsvirshApp, text: str, line: str, begidx: int, endidx: int) -> Completions:
        return self.basic_complete(text, line, begidx, endidx, candidates(self.ctx, cmd, text))

    return complete


FILE_COMMANDS = ("define", "create")


def candidates(ctx: Context, cmd: Command, text: str) -> list[str]:
    """What may come next for `cmd`: its options, or domain names of the right state."""
    if text.startswith("-"):
        actions = cmd.parser()._option_string_actions
        shown = (o for o, a in actions.items() if a.help != "==SUPPRESS==")
        return sorted(o for o in shown if o.startswith("--") and o != "--help")
    if cmd.name in FILE_COMMANDS:
        return _paths(text)
    if not cmd.domains:
        return []
    try:
        doms = ctx.conn.list_all()
    except Exception:
        return []
    if cmd.domains == "active":
        return [d.name for d in doms if d.is_active()]
    if cmd.domains == "inactive":
        return [d.name for d in doms if not d.is_active()]
    return [d.name for d in doms]


def _paths(text: str) -> list[str]:
    directory, _, prefix = text.rpartition("/")
    base = directory or "."
    try:
        names = os.listdir(base if not text.startswith("/") or directory else "/")
    except OSError:
        return []
    lead = f"{directory}/" if directory or text.startswith("/") else ""
    out = []
    for n in names:
        if n.startswith(prefix):
            full = f"{lead}{n}"
            out.append(full + "/" if os.path.isdir(os.path.join(base, n)) else full)
    return out


COMMANDS = load_commands()


def _install_commands() -> None:
    """A do_NAME and complete_NAME for every command of the table (names may hold '-')."""
    for name, cmd in COMMANDS.items():
        setattr(NsvirshApp, f"do_{name}", _runner(name))
        setattr(NsvirshApp, f"complete_{name}", _completer(cmd))


_install_commands()


def interactive(ctx: Context, debug: bool = False, **kw: Any) -> int:
    """Run the interactive shell until quit/exit/EOF."""
    app = NsvirshApp(ctx, debug=debug, **kw)
    if sys.stdin.isatty():
        print("Welcome to nsvirsh, the virtualization interactive terminal.\n\n"
              "Type:  'help' for help with commands\n"
              "       'quit' to quit\n", file=ctx.out)  # fmt: skip
    app.cmdloop()
    return 0
