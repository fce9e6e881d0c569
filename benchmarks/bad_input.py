"""How fast hostile and malformed domain XML is refused.

    .venv/bin/python benchmarks/bad_input.py [--runs N]

Parses each bad-input case of tests/unit/test_bad_input.py N times in-process
(after the schema is built once, as in a long-lived shell) and prints the median
and worst time and the peak memory growth. Fails if any case takes 1 s or more:
"refused in well under a second". Where libvirt's virt-xml-validate is installed,
times it on the same files for comparison (it is a separate process per file).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nsvirt.driver import domxml
from nsvirt.driver.domxml import parser
from nsvirt.driver.errors import XMLError
from tests.unit.test_bad_input import CASES

LIMIT_S = 1.0


def time_case(data: bytes, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        try:
            domxml.load(data, source="bench.xml")
        except XMLError:
            pass
        else:
            raise SystemExit("a bad input was accepted")
        times.append(time.perf_counter() - t0)
    return times


def time_peer(tool: str, data: bytes, runs: int) -> float:
    with tempfile.NamedTemporaryFile(suffix=".xml") as f:
        f.write(data)
        f.flush()
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run([tool, f.name, "domain"], capture_output=True, timeout=60)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    t0 = time.perf_counter()
    parser.schema()
    print(f"schema build (once per process): {(time.perf_counter() - t0) * 1e3:.0f} ms")
    peer = shutil.which("virt-xml-validate")
    print(f"{'case':26} {'median':>9} {'worst':>9}  {'virt-xml-validate' if peer else ''}")
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    slow = []
    for name, (data, _line, _words) in CASES.items():
        times = time_case(data, args.runs)
        med, worst = statistics.median(times), max(times)
        extra = f"  {time_peer(peer, data, 3) * 1e3:8.1f} ms" if peer else ""
        print(f"{name:26} {med * 1e3:7.2f} ms {worst * 1e3:7.2f} ms{extra}")
        if worst >= LIMIT_S:
            slow.append(name)
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    print(f"peak RSS growth over all cases: {grown:.1f} MiB")
    if slow:
        print(f"FAIL: {', '.join(slow)} took {LIMIT_S} s or more")
        return 1
    print(f"all {len(CASES)} cases refused in under {LIMIT_S} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
