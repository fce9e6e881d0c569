"""<lxc:namespace> sharing, resolved to the namespace files init will join."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from nsvirt.driver.errors import Unsupported

if TYPE_CHECKING:
    from nsvirt.driver.connection import Connection
    from nsvirt.driver.domxml import model as m


def namespaces_to_join(conn: Connection, dom: m.DomainDef) -> tuple[tuple[str, str], ...]:
    """(kind, path) for each shared namespace, checking that the path exists."""
    out = []
    for share in dom.shared_namespaces:
        if share.type == "netns":
            path = f"/run/netns/{share.value}"
        elif share.type == "pid":
            path = f"/proc/{share.value}/ns/{share.kind}"
        else:  # another container of this connection, by name
            other = conn.lookup_by_name(share.value)
            path = f"/proc/{other.init_pid()}/ns/{share.kind}"
        if not os.path.exists(path):
            raise Unsupported(f"cannot share the {share.kind} namespace: {path} does not exist")
        out.append((share.kind, path))
    return tuple(out)
