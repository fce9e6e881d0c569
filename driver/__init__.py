"""nsvirt.driver: domain XML, persistent state and the container runtime.

The public API mirrors libvirt-python's, in PEP 8 names:

    from nsvirt.driver import connect
    conn = connect("lxc:///embed?root=/tmp/demo")
    dom = conn.define_xml(open("web.xml").read())
    print(dom.xml_desc())

Names are imported on first use, so that the supervisor (which imports
`nsvirt.driver.supervisor`) and the one-shot path (shell/quick.py) do not pay for
the client's modules; not even typing (~9 ms) is imported here.
"""

from __future__ import annotations

TYPE_CHECKING = False

__version__ = "0.1.0"
__all__ = ["Connection", "Domain", "DriverError", "__version__", "connect"]

if TYPE_CHECKING:
    from typing import Any

    from nsvirt.driver.connection import Connection, connect
    from nsvirt.driver.domain import Domain
    from nsvirt.driver.errors import DriverError


def __getattr__(name: str) -> Any:
    if name in ("Connection", "connect"):
        from nsvirt.driver import connection

        return getattr(connection, name)
    if name == "Domain":
        from nsvirt.driver.domain import Domain

        return Domain
    if name == "DriverError":
        from nsvirt.driver.errors import DriverError

        return DriverError
    raise AttributeError(f"module 'nsvirt.driver' has no attribute {name!r}")
