"""console: attach the terminal to a domain's console, as virsh does.

Raw terminal mode; the escape character (^] unless -e says otherwise) ends the
session; the terminal is restored whatever happens; the window size follows
SIGWINCH.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import signal
import struct
import sys
import termios
import tty
from collections.abc import Iterator

from nsvirt.driver.runtime import sockets
from nsvirt.shell.commands import Context, command, domain_arg, domain_of
from nsvirt.shell.report import ShellError


def _console_args(p: argparse.ArgumentParser) -> None:
    domain_arg(p)
    p.add_argument("--devname", help="character device name (console0, console1, ...)")
    p.add_argument("--force", action="store_true", help="take over an existing session")
    p.add_argument("--safe", action="store_true", help="only connect if safe console "
                   "handling is supported (always, with nsvirt)")  # fmt: skip


def escape_byte(spec: str) -> int:
    """virsh's -e: `^]` is Ctrl+], a single character stands for itself."""
    if len(spec) == 2 and spec[0] == "^":
        return ord(spec[1].upper()) ^ 0x40
    if len(spec) == 1:
        return ord(spec)
    raise ShellError(f"Invalid escape character sequence '{spec}'")


def _port(devname: str | None) -> int:
    if devname is None:
        return 0
    digits = devname.removeprefix("console")
    if not digits.isdigit():
        raise ShellError(f"internal error: cannot find console device '{devname}'")
    return int(digits)


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """Raw mode for the session; the old settings come back even on errors."""
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, saved)


def window_size(fd: int) -> tuple[int, int]:
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    return rows, cols


def attach(ctx: Context, name: str, *, force: bool = False, devname: str | None = None,
           escape: str = "^]") -> int:  # fmt: skip
    """Connect this terminal to the console of domain `name` until the escape character."""
    dom = ctx.lookup(name)
    ctx.conn.require_writable("virDomainOpenConsole")
    if not dom.is_active():
        raise ShellError("The domain is not running")
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    if not (os.isatty(stdin) and os.isatty(stdout)):
        raise ShellError("Cannot run interactive console without a controlling TTY")
    esc = escape_byte(escape)
    stream = dom.open_console(force=force, port=_port(devname))
    hint = f" (Ctrl + {escape[1:]})" if escape.startswith("^") else ""
    ctx.out.write(f"Connected to domain '{dom.name}'\nEscape character is {escape}{hint}\n")
    ctx.out.flush()
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    old_handler = signal.signal(signal.SIGWINCH, lambda *_: os.write(wake_w, b"w"))
    try:
        with raw_terminal(stdin):
            stream.resize(*window_size(stdout))
            _relay(stream, stdin, stdout, wake_r, esc)
    finally:
        signal.signal(signal.SIGWINCH, old_handler)
        stream.close()
        os.close(wake_r)
        os.close(wake_w)
    ctx.out.write("\n")
    return 0


def _relay(stream: object, stdin: int, stdout: int, wake: int, esc: int) -> None:
    from nsvirt.driver.consolestream import ConsoleStream

    assert isinstance(stream, ConsoleStream)
    while True:
        ready = sockets.wait_readable([stdin, stream, wake], None)
        if wake in ready:
            os.read(wake, 64)
            stream.resize(*window_size(stdout))
        if stream in ready:
            data = stream.read()
            if not data:  # the domain stopped, or another session took over
                return
            os.write(stdout, data)
        if stdin in ready:
            data = os.read(stdin, 1024)
            if not data:
                return
            if esc in data:
                before = data[: data.index(esc)]
                if before:
                    stream.write(before)
                return
            stream.write(data)


@command("console", "connect to the guest console", _console_args, domains="active")
def console(ctx: Context, args: argparse.Namespace) -> int:
    return attach(ctx, domain_of(args, "console"), force=args.force, devname=args.devname,
                  escape=ctx.escape)  # fmt: skip


@command("ttyconsole", "tty console", domain_arg, domains="active")
def ttyconsole(ctx: Context, args: argparse.Namespace) -> int:
    """The host pty of the domain's first console, as virsh prints it."""
    from nsvirt.driver.state import runstate

    dom = ctx.lookup(domain_of(args, "ttyconsole"))
    state = dom.run_state()
    if not runstate.is_live(state) or state is None or not state.consoles:
        raise ShellError("failed to get console")  # virsh's words for a domain without one
    ctx.out.write(f"{state.consoles[0]}\n\n")
    return 0
