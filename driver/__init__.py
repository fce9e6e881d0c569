"""nsvirt.driver: domain XML, persistent state and the container runtime.

The public API mirrors libvirt-python's, in PEP 8 names:

    from nsvirt.driver import connect
    conn = connect("lxc:///embed?root=/tmp/demo")
    dom = conn.define_xml(open("web.xml").read())
    print(dom.xml_desc())
"""

from nsvirt.driver.connection import Connection, Domain, connect
from nsvirt.driver.errors import DriverError

__version__ = "0.1.0"
__all__ = ["Connection", "Domain", "DriverError", "__version__", "connect"]
