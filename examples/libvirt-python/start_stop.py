#!/usr/bin/env python3
"""Start or stop a domain by name, as libvirt-python's examples do. Written for
`import libvirt`; for nsvirt only the import changes.

    start_stop.py URI NAME start|shutdown|destroy
"""

import sys

from nsvirt.driver import libvirt  # was: import libvirt

uri, name, action = sys.argv[1:4]
conn = libvirt.open(uri)
try:
    dom = conn.lookupByName(name)
except libvirt.libvirtError as e:
    if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
        print(f"no domain {name}", file=sys.stderr)
        sys.exit(2)
    raise
try:
    if action == "start":
        dom.create()
    elif action == "shutdown":
        dom.shutdown()
    else:
        dom.destroy()
except libvirt.libvirtError as e:
    print(f"{action} failed ({e.get_error_code()}): {e}", file=sys.stderr)
    sys.exit(1)
print(f"{name}: active={dom.isActive()} state={dom.state()}")
conn.close()
