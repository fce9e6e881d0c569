"""virsh's own commands, which no driver answers: echo, cd, pwd."""

from __future__ import annotations

import argparse
import os

from nsvirt.shell.commands import Context, command
from nsvirt.shell.report import ShellError


def _echo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shell", action="store_true", help="escape for shell use")
    p.add_argument("--xml", action="store_true", help="escape for XML use")
    p.add_argument(
        "--split", action="store_true", help="split each argument on ','; ',,' is an escape"
    )
    p.add_argument("string", nargs="*", help="arguments to echo")


@command("echo", "echo arguments", _echo_args)
def echo(ctx: Context, args: argparse.Namespace) -> int:
    words = args.string
    if args.split:
        words = [
            part.replace("\0", ",") for w in words for part in w.replace(",,", "\0").split(",")
        ]
    if args.xml:
        words = [w.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                 .replace('"', "&quot;").replace("'", "&apos;") for w in words]  # fmt: skip
    if args.shell:
        words = [w if w and all(c.isalnum() or c in "-_./=:," for c in w)
                 else "'" + w.replace("'", "'\\''") + "'" for w in words]  # fmt: skip
    print(" ".join(words) + "\n", file=ctx.out)
    return 0


def _cd_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", nargs="?", help="directory to switch to (default: home or else root)")


@command("cd", "change the current directory", _cd_args)
def cd(ctx: Context, args: argparse.Namespace) -> int:
    if not ctx.interactive:
        raise ShellError("cd: command valid only in interactive mode")
    target = args.dir or os.environ.get("HOME") or "/"
    try:
        os.chdir(target)
    except OSError as e:
        raise ShellError(f"cd: {e.strerror}: {target}") from None
    print(file=ctx.out)
    return 0


@command("pwd", "print the current directory", lambda p: None)
def pwd(ctx: Context, args: argparse.Namespace) -> int:
    print(os.getcwd() + "\n", file=ctx.out)
    return 0
