#!/usr/bin/env bash
# nsvirt's main job, end to end, in a throw-away connection root that is removed
# afterwards: set up, validate every example, define them, list them and show
# the canonical XML nsvirt stored for each.
set -euo pipefail
cd "$(dirname "$0")/.."
.ci/setup >&2

root=$(mktemp -d /tmp/nsvirt-demo.XXXXXX)
trap 'rm -rf "$root"' EXIT
export NSVIRT_DEFAULT_URI="lxc:///embed?root=$root"
nsvirsh=.venv/bin/nsvirsh

echo "== nsvirt-xml-validate examples/*.xml"
.venv/bin/nsvirt-xml-validate examples/*.xml
echo
echo "== nsvirsh define (into $NSVIRT_DEFAULT_URI)"
for f in examples/*.xml; do
  $nsvirsh define "$f"
done
echo "== nsvirsh list --all --title"
$nsvirsh list --all --title
for name in $($nsvirsh list --all --name); do
  echo "== nsvirsh dumpxml $name"
  $nsvirsh dumpxml "$name"
done
