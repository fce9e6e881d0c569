#!/usr/bin/env python3
"""Change a running domain's memory live and show its memory tunables and statistics,
as libvirt-python's examples do. Written for `import libvirt`; for nsvirt only the
import changes.

    set_memory.py URI NAME KIB
"""

import sys

from nsvirt.driver import libvirt  # was: import libvirt

uri, name, kib = sys.argv[1], sys.argv[2], int(sys.argv[3])
conn = libvirt.open(uri)
dom = conn.lookupByName(name)
if not dom.isActive():
    print(f"{name} is not running", file=sys.stderr)
    sys.exit(1)
dom.setMemoryFlags(kib, libvirt.VIR_DOMAIN_AFFECT_LIVE)
print(f"memory: {dom.info()[2]} KiB in use of {dom.info()[1]} KiB")
for key, value in sorted(dom.memoryParameters(libvirt.VIR_DOMAIN_AFFECT_LIVE).items()):
    print(f"  {key}: {value}")
stats = dom.memoryStats()
print(f"  actual: {stats.get('actual')} KiB, rss: {stats.get('rss')} KiB")
print(f"  cpu: {dom.getCPUStats(True)[0]['cpu_time']} ns")
conn.close()
