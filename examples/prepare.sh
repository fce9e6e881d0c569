#!/usr/bin/env bash
# Make what the examples use, where they expect it (idempotent; run as root):
#   /var/lib/nsvirt/rootfs/busybox   the busybox root filesystem (make-busybox-rootfs.sh)
#   /var/lib/nsvirt/data             bind-mounts.xml's writable data directory
# Both sit under directories of mode 0700: root inside a default domain writes its
# rootfs and binds as host root (idmapped mounts), so no other host user may reach
# what it makes there (a setuid binary, say). nsvirt needs no more than that.
set -euo pipefail
here=$(dirname "$0")
install -d -m 0700 /var/lib/nsvirt/rootfs
"$here/make-busybox-rootfs.sh" /var/lib/nsvirt/rootfs/busybox
install -d -m 0700 /var/lib/nsvirt/data
echo "examples ready: /var/lib/nsvirt/rootfs/busybox, /var/lib/nsvirt/data"
