"""What an interface costs a start: start→running with one bridged interface next to
none, in a network namespace of the benchmark's own (its bridge, veths and
addresses go with it).

    sudo .venv/bin/python benchmarks/network.py [--runs N]

Rows (medians of N, default 20): Domain.create() of a plain and of a bridged domain,
with a fresh supervisor (nothing else runs) and forked from a running one; the first
networked start of a process, which imports pyroute2's message classes; and one-shot
`nsvirsh start` (a new process each time, so it pays that import every time).
Target (issue 11): a networked start within 1.5x a plain one. Back to back, a start
waits for the kernel to finish tearing down the last run's network namespace: the
"spaced" rows leave it SETTLE seconds, as starts in real use are.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nsvirt.driver import connect
from nsvirt.driver.runtime import netdev
from nsvirt.driver.runtime import syscalls as sc

REPO = Path(__file__).resolve().parent.parent


def xml(name: str, rootfs: Path, nic: bool) -> str:
    iface = ("<interface type='bridge'><source bridge='benchbr'/>"
             "<ip address='192.0.2.2' prefix='24'/></interface>") if nic else ""  # fmt: skip
    return (f"<domain type='lxc'><name>{name}</name><memory unit='MiB'>64</memory>"
            "<os><type>exe</type><init>/bin/sleep</init><initarg>1000</initarg></os><devices>"
            f"<filesystem type='mount'><source dir='{rootfs}'/><target dir='/'/></filesystem>"
            f"{iface}<console type='pty'/></devices></domain>")  # fmt: skip


SETTLE = 0.2  # s between runs: the kernel tears a dead network namespace down in the
# background (RCU grace periods under the rtnl lock), and a start right after would
# wait for it: that is the previous run's cost, not this one's


def timed_starts(dom: object, runs: int, settle: float = 0.0) -> list[float]:
    out = []
    for _ in range(runs):
        time.sleep(settle)
        t0 = time.perf_counter()
        dom.create()  # type: ignore[attr-defined]
        out.append(time.perf_counter() - t0)
        dom.destroy()  # type: ignore[attr-defined]
    return out


def oneshot(uri: str, name: str, runs: int) -> list[float]:
    nsvirsh = [sys.executable, "-m", "nsvirt.shell", "-c", uri]
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([*nsvirsh, "start", name], check=True, stdout=subprocess.DEVNULL)
        out.append(time.perf_counter() - t0)
        subprocess.run([*nsvirsh, "destroy", name], check=True, stdout=subprocess.DEVNULL)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    sc.unshare(sc.CLONE_NEWNET)  # this process's own network: nothing leaves it
    netdev.loopback_up()
    subprocess.run("ip link add benchbr type bridge && ip addr add 192.0.2.1/24 dev benchbr"
                   " && ip link set benchbr up", shell=True, check=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="nsvirt-bench-net-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run([str(REPO / "examples/make-busybox-rootfs.sh"), str(rootfs)], check=True,
                       capture_output=True)  # fmt: skip
        os.chmod(tmp, 0o755)
        conn = connect(f"lxc:///embed?root={tmp}/root")
        plain = conn.define_xml(xml("plain", rootfs, nic=False))
        bridged = conn.define_xml(xml("bridged", rootfs, nic=True))
        t0 = time.perf_counter()
        bridged.create()  # the process's first: imports pyroute2's message classes
        first = time.perf_counter() - t0
        bridged.destroy()
        rows = {"plain (fresh supervisor)": timed_starts(plain, args.runs),
                "bridged (fresh supervisor)": timed_starts(bridged, args.runs)}  # fmt: skip
        donor = conn.create_xml(xml("donor", rootfs, nic=False))
        rows["plain (forked supervisor)"] = timed_starts(plain, args.runs)
        rows["bridged (forked supervisor)"] = timed_starts(bridged, args.runs)
        rows["plain (forked, spaced)"] = timed_starts(plain, args.runs, SETTLE)
        rows["bridged (forked, spaced)"] = timed_starts(bridged, args.runs, SETTLE)
        donor.destroy()
        rows["nsvirsh start, plain"] = oneshot(conn.uri, "plain", max(5, args.runs // 4))
        rows["nsvirsh start, bridged"] = oneshot(conn.uri, "bridged", max(5, args.runs // 4))
    med = {k: statistics.median(v) * 1e3 for k, v in rows.items()}
    print(f"runs: {args.runs}  (first networked start of a process: {first * 1e3:.1f} ms)")
    for what, ms in med.items():
        print(f"  {what:32} {ms:8.1f} ms")
    for kind in ("fresh supervisor", "forked supervisor", "forked, spaced"):
        ratio = med[f"bridged ({kind})"] / med[f"plain ({kind})"]
        print(f"bridged/plain, {kind}: {ratio:.2f}x (target <= 1.5x)")
    ratio = med["nsvirsh start, bridged"] / med["nsvirsh start, plain"]
    print(f"bridged/plain, one-shot nsvirsh start: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
