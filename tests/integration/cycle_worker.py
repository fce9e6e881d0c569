"""One worker of the concurrency test: N cycles of define, start, destroy, undefine.

    python -m tests.integration.cycle_worker URI NAME UUID ROOTFS CYCLES

Prints one JSON object: the driver errors it met (their text) and any other
exception (a traceback: a bug).
"""

from __future__ import annotations

import json
import sys
import traceback

from nsvirt.driver import DriverError, connect
from tests.integration.conftest import domain_xml


def main(uri: str, name: str, uuid: str, rootfs: str, cycles: int) -> None:
    conn = connect(uri)
    xml = domain_xml(name, None).replace(f"<name>{name}</name>",
                                         f"<name>{name}</name><uuid>{uuid}</uuid>")  # fmt: skip
    xml = xml.replace("<devices>", f"<devices><filesystem type='mount'><source dir='{rootfs}'/>"
                                   "<target dir='/'/></filesystem>")  # fmt: skip
    errors: list[str] = []
    bugs: list[str] = []
    for _ in range(cycles):
        for step in ("define", "start", "destroy", "undefine"):
            try:
                if step == "define":
                    conn.define_xml(xml)
                else:
                    dom = conn.lookup_by_name(name)
                    {"start": dom.create, "destroy": dom.destroy, "undefine": dom.undefine}[step]()
            except DriverError as e:
                errors.append(f"{step}: {e}")
            except Exception:
                bugs.append(f"{step}: {traceback.format_exc()}")
    print(json.dumps({"errors": errors, "bugs": bugs}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
