"""Make a container's interfaces for a supervisor that restarts it (no client is
there to do it): `python -I -m nsvirt.driver.network.helper`, a JSON request on stdin
({"plan": the launch plan, "init_pid", "tag"}), what was made as JSON on stdout, or
the reason on stderr and exit status 1. Short-lived: pyroute2 never enters the
supervisor."""

from __future__ import annotations

import json
import sys


def main() -> int:
    from nsvirt.driver.network.attach import attach
    from nsvirt.driver.supervisor import planview

    request = json.loads(sys.stdin.buffer.read())
    plan = planview.load(request["plan"])
    try:
        made = attach(plan.interfaces, int(request["init_pid"]), str(request["tag"]))
    except OSError as e:
        print(str(e), file=sys.stderr)
        return 1
    print(json.dumps(made))
    return 0


if __name__ == "__main__":
    sys.exit(main())
