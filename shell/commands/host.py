"""Host and connection commands: uri, version, hostname."""

from __future__ import annotations

import argparse
import os
import socket

from nsvirt.shell.commands import Context, command


def _none(p: argparse.ArgumentParser) -> None:
    pass


@command("uri", "print the hypervisor canonical URI", _none)
def uri(ctx: Context, args: argparse.Namespace) -> int:
    print(ctx.conn.uri + "\n", file=ctx.out)
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
