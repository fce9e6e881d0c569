"""One-shot nsvirsh timings, next to virsh -c lxc:/// where it is installed.

    sudo .venv/bin/python benchmarks/nsvirsh.py [--runs N]

`nsvirsh list --all` with 1, 100 and 1000 defined domains, `dominfo`, `start`
and `destroy`, each a fresh process as a user's script would run it; medians
over N runs (default 20). Targets (issue 6): list --all no slower than
virsh's with 100 domains; 1000 domains at most 2x one domain.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nsvirt.driver import connect

REPO = Path(__file__).resolve().parent.parent
NSVIRSH = [sys.executable, "-m", "nsvirt.shell"]


def median_ms(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def define_many(uri: str, count: int, rootfs: Path) -> None:
    conn = connect(uri)
    have = len(conn.list_all())
    for i in range(have, count):
        conn.define_xml(
            f"<domain type='lxc'><name>d{i:04d}</name><memory unit='MiB'>32</memory>"
            "<os><type>exe</type><init>/bin/sleep</init><initarg>1000</initarg></os>"
            f"<devices><filesystem><source dir='{rootfs}'/><target dir='/'/>"
            "</filesystem></devices></domain>"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    virsh = shutil.which("virsh")
    with tempfile.TemporaryDirectory(prefix="nsvirt-bench-shell-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(
            [str(REPO / "examples/make-busybox-rootfs.sh"), str(rootfs)],
            check=True,
            capture_output=True,
        )
        uri = f"lxc:///embed?root={tmp}/root"
        shell = [*NSVIRSH, "-c", uri]
        rows = []
        lists = {}
        for count in (1, 100, 1000):
            define_many(uri, count, rootfs)
            lists[count] = median_ms([*shell, "list", "--all"], args.runs)
            rows.append((f"list --all ({count} domains)", lists[count]))
        rows.append(("dominfo", median_ms([*shell, "dominfo", "d0000"], args.runs)))
        start, destroy = [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            subprocess.run([*shell, "start", "d0000"], check=True, stdout=subprocess.DEVNULL)
            t1 = time.perf_counter()
            subprocess.run([*shell, "destroy", "d0000"], check=True, stdout=subprocess.DEVNULL)
            start.append(t1 - t0)
            destroy.append(time.perf_counter() - t1)
        rows.append(("start", statistics.median(start) * 1e3))
        rows.append(("destroy", statistics.median(destroy) * 1e3))
        print(f"runs: {args.runs}")
        print(f"{'nsvirsh one-shot':32} {'median':>9}   {'virsh -c lxc:///':>16}")
        for what, ms in rows:
            peer = "not installed"
            if virsh and what.startswith("list"):
                peer = f"{median_ms([virsh, '-c', 'lxc:///', 'list', '--all'], args.runs):.1f} ms"
            print(f"{what:32} {ms:7.1f} ms   {peer:>16}")
        print(f"list --all, 1000 vs 1 domain: {lists[1000] / lists[1]:.2f}x (target <= 2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
