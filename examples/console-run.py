#!/usr/bin/env python3
"""Type commands into a running domain's console shell and print what they print.

    console-run.py [-c URI] NAME 'command' ['command' ...]

An example of nsvirt's Python API (Domain.open_console): the domain's init
must be a shell on its console, as in examples/busybox.xml.
"""

from __future__ import annotations

import argparse
import re
import select
import sys

from nsvirt.driver import DriverError, connect


def run(console, command: str, n: int, timeout: float = 30.0) -> str:
    end = f"__end{n}__"
    # split the marker in the typed line, so the terminal's echo never matches it
    console.write(f"{command}; echo '{end[:4]}''{end[4:]}'\n".encode())
    buf = b""
    while (m := re.search(re.escape(end).encode() + rb"\r?\n", buf)) is None:
        if not select.select([console], [], [], timeout)[0]:
            raise SystemExit(f"error: no answer from the console to {command!r}")
        chunk = console.read()
        if not chunk:
            raise SystemExit("error: the console closed")
        buf += chunk
    text = buf[: m.start()].decode(errors="replace").replace("\r\n", "\n")
    typed = text.rfind(f"'{end[:4]}'")
    return text[text.index("\n", typed) + 1 :] if typed >= 0 else text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-c", "--connect", default=None)
    ap.add_argument("name")
    ap.add_argument("commands", nargs="+")
    args = ap.parse_args()
    try:
        dom = connect(args.connect).lookup_by_name(args.name)
        with dom.open_console() as console:
            for n, command in enumerate(args.commands):
                print(f"{args.name}# {command}")
                sys.stdout.write(run(console, command, n))
    except DriverError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
