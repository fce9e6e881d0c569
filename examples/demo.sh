#!/usr/bin/env bash
# nsvirt's main job, end to end, in a throw-away connection root that is
# removed afterwards: set up, validate the examples, then define and start the
# busybox example and show from inside that it is isolated (hostname, pid 1,
# its own processes and mounts, its memory limit, root inside being an
# unprivileged host uid), then stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
.ci/setup >&2
examples/prepare.sh >&2  # /var/lib/nsvirt/rootfs/busybox and /var/lib/nsvirt/data

root=$(mktemp -d /tmp/nsvirt-demo.XXXXXX)
export NSVIRT_DEFAULT_URI="lxc:///embed?root=$root"
nsvirsh=.venv/bin/nsvirsh
cleanup() {
  $nsvirsh destroy busybox >/dev/null 2>&1 || true
  rm -rf "$root"
}
trap cleanup EXIT

echo "== nsvirt-xml-validate examples/*.xml; --explain examples/busybox.xml"
.venv/bin/nsvirt-xml-validate examples/*.xml
.venv/bin/nsvirt-xml-validate --explain examples/busybox.xml
echo
echo "== nsvirsh define examples/busybox.xml; start busybox  ($NSVIRT_DEFAULT_URI)"
$nsvirsh define examples/busybox.xml
$nsvirsh start busybox
$nsvirsh list --all
echo "== inside the container, through its console"
.venv/bin/python examples/console-run.py busybox \
  'hostname' 'echo "my pid: $$"' 'ps' 'cat /proc/mounts | cut -d" " -f2 | head -5' \
  'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max' \
  'id -u; cat /proc/self/uid_map'
echo
echo "== from the host"
$nsvirsh dominfo busybox
$nsvirsh destroy busybox
$nsvirsh domstate --reason busybox
