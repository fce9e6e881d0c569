#!/usr/bin/env bash
# Build a minimal root filesystem from Debian's busybox-static, where the
# examples expect it (default /var/lib/nsvirt/rootfs/busybox). Idempotent.
#   examples/make-busybox-rootfs.sh [DIR]
set -euo pipefail
dir=${1:-/var/lib/nsvirt/rootfs/busybox}
busybox=/bin/busybox
# ldd fails on a static binary; a dynamic busybox would not run inside the rootfs
if [ ! -x "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then
  echo "error: $busybox is not a static busybox (apt-get install busybox-static)" >&2
  exit 1
fi
mkdir -p "$dir"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,run,var/log,home}
chmod 1777 "$dir/tmp"
install -m 0755 "$busybox" "$dir/bin/busybox"
for applet in $("$dir/bin/busybox" --list-full); do
  [ -e "$dir/$applet" ] || ln -s /bin/busybox "$dir/$applet"
done
cat > "$dir/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
tester:x:1000:1000:tester:/home/tester:/bin/sh
nobody:x:65534:65534:nobody:/:/bin/false
PASSWD
cat > "$dir/etc/group" <<'GROUP'
root:x:0:
tty:x:5:
tester:x:1000:
nogroup:x:65534:
GROUP
mkdir -p "$dir/home/tester"
echo "busybox rootfs ready in $dir"
