#!/usr/bin/env bash
# The cgroup v2 lane's test run, inside ../shared/v2lane's VM (Debian's 6.1 kernel):
# the tests marked v2, with every temporary directory (the test rootfs, bind
# sources, pytest's tmp_path) on an ext4 loop image. The VM's own filesystems
# (a RAM overlay, 9p, tmpfs) cannot be idmapped on 6.1 (tmpfs can from 6.3), and
# default domains show their rootfs and binds through idmapped mounts.
#   tests/v2lane.sh [PYTEST ARGS]
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d /tmp/nsvirt-v2lane.XXXXXX)
cleanup() {
  umount "$scratch/mnt" 2>/dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT
truncate -s 512M "$scratch/ext4.img"
mkfs.ext4 -q -F "$scratch/ext4.img"
mkdir "$scratch/mnt"
mount -o loop "$scratch/ext4.img" "$scratch/mnt"
chmod 755 "$scratch/mnt"
export TMPDIR="$scratch/mnt"
# nbd devices for the qcow2 test (Debian's kernel has the module; this VM is thrown away)
modprobe nbd nbds_max=4 2>/dev/null || echo "v2lane: no nbd module: the qcow2 test checks the refusal"
modprobe bfq 2>/dev/null || echo "v2lane: no bfq module: the device weight test skips"
modprobe fuse 2>/dev/null || echo "v2lane: no fuse module: containers read the kernel's /proc"
PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 .venv/bin/python -m pytest -q -p no:cacheprovider \
  -m v2 tests/integration "$@"
