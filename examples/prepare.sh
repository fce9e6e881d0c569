#!/usr/bin/env bash
# Make what the examples use, where they expect it (idempotent; run as root):
#   /var/lib/nsvirt/rootfs/busybox   the busybox root filesystem (make-busybox-rootfs.sh)
#   /var/lib/nsvirt/data             bind-mounts.xml's writable data directory
set -euo pipefail
here=$(dirname "$0")
"$here/make-busybox-rootfs.sh" /var/lib/nsvirt/rootfs/busybox
install -d -m 0755 /var/lib/nsvirt/data
echo "examples ready: /var/lib/nsvirt/rootfs/busybox, /var/lib/nsvirt/data"
