"""nsvirt-autostart [URI]: start every network, then every domain, marked autostart
(run it at boot).

Prints `Network NAME started`, `Domain 'NAME' started` or `error: ...` for each; exits 1
if any failed.
A systemd unit for it:  ExecStart=/usr/bin/nsvirt-autostart lxc:///system
"""

from __future__ import annotations

import sys

from nsvirt.driver import DriverError, connect


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        conn = connect(args[0] if args else None)
        started_networks = _networks(conn)
        results = conn.autostart_all()
    except DriverError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    status = 0
    for name, err in started_networks:
        if err is None:
            print(f"Network {name} started")
        else:
            print(f"error: Failed to autostart network {name}\nerror: {err}", file=sys.stderr)
            status = 1
    for name, err in results:
        if err is None:
            print(f"Domain '{name}' started")
        else:
            print(f"error: Failed to autostart domain '{name}'\nerror: {err}", file=sys.stderr)
            status = 1
    return status


def _networks(conn: object) -> list[tuple[str, DriverError | None]]:
    from nsvirt.driver.network import networks

    return networks.autostart_all(conn)  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
