"""A definition's launch, made ahead of time for the one-shot start (shell/quick.py):
the launch plan for this host and connection root, and the live XML's template
(launch/livexml.py). Kept in the definition's compiled form (state/compiled.py),
so it is made again whenever that is: the XML or nsvirt changed.

Only for domains whose plan needs nothing of the moment of start: none that
joins another's namespaces, has interfaces (bridges and networks are looked up
when it starts) or passes host devices or images in (what they are is). The
one-shot start uses it only while the host is the one it was made for
(hostprobe.probe() equals the plan's facts) and the connection root is the same
directory (its tag names the cgroup partition); else the driver starts.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from nsvirt.driver.connection import Connection
    from nsvirt.driver.domxml import model as m


def prepare(conn: Connection, dom: m.DomainDef) -> dict[str, Any] | None:
    """The prepared launch of `dom`, or None (the driver's start then does it all)."""
    from nsvirt.driver.errors import DriverError
    from nsvirt.driver.launch import devices, hostfacts, livexml, plan

    dev = dom.devices
    if dom.shared_namespaces or dev.interfaces or dev.hostdevs or devices.wanted(dom):
        return None

    try:
        built = plan.build(dom, hostfacts.detect(), partition=conn.partition_for(dom))
        st = os.stat(conn.paths.root)
    except (DriverError, OSError):
        return None  # the driver's start says why
    return {
        "plan": built.to_json(),
        "root": [st.st_dev, st.st_ino],
        "live": livexml.template(dom, built.consoles, built.auto_ids > 0),
    }


def usable(launch: dict[str, Any], root: str, facts: dict[str, object]) -> bool:
    """Is the prepared launch still right for this host and root?"""
    from nsvirt.driver.state import jsonlite

    try:
        st = os.stat(root)
        plan = jsonlite.loads(launch["plan"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    from nsvirt.driver.supervisor.planview import PLAN_FORMAT

    return (
        launch.get("root") == [st.st_dev, st.st_ino]
        and isinstance(plan, dict)
        and plan.get("format") == PLAN_FORMAT
        and plan.get("facts") == facts
    )
