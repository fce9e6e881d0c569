#!/usr/bin/env python3
"""List every domain with its state and memory, as libvirt-python's examples do.
Written for `import libvirt`; for nsvirt only the import changes.

    list_domains.py [URI]
"""

import sys

from nsvirt.driver import libvirt  # was: import libvirt

STATES = {
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTOFF: "shut off",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
}

uri = sys.argv[1] if len(sys.argv) > 1 else "lxc:///"
try:
    conn = libvirt.openReadOnly(uri)
except libvirt.libvirtError as e:
    print(f"Failed to open connection to {uri}: {e}", file=sys.stderr)
    sys.exit(1)

for dom in conn.listAllDomains(0):
    state, max_mem, mem, vcpus, cpu_time = dom.info()
    print(
        f"{dom.name():<12} {STATES.get(state, 'other'):<9} id={dom.ID():<7} "
        f"max={max_mem} KiB mem={mem} KiB vcpus={vcpus} persistent={dom.isPersistent()}"
    )
print(f"active: {conn.listDomainsID()}; defined: {conn.listDefinedDomains()}")
conn.close()
