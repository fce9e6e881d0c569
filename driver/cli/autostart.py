"""nsvirt-autostart [URI]: start every domain marked autostart (run it at boot).

Prints `Domain 'NAME' started` or `error: ...` per domain; exits 1 if any failed.
A systemd unit for it:  ExecStart=/usr/bin/nsvirt-autostart lxc:///system
"""

from __future__ import annotations

import sys

from nsvirt.driver import DriverError, connect


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        results = connect(args[0] if args else None).autostart_all()
    except DriverError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    status = 0
    for name, err in results:
        if err is None:
            print(f"Domain '{name}' started")
        else:
            print(f"error: Failed to autostart domain '{name}'\nerror: {err}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
