"""nsvirt next to the peers a libvirt-lxc user would pick instead, in one run.

    sudo .venv/bin/python benchmarks/run.py [--runs 9] [--no-peers] [--density 1,50,300]

One-shot rows run `nsvirsh` as pip installs it (a wheel of this checkout in a
scratch virtualenv, /var/tmp/nsvirt-bench-venv: not the editable install, whose
finder alone costs ~16 ms a process) beside `virsh -c lxc:///` on the same
busybox domain, interleaved (one of each, then again), medians and min/max. Peers
come from ../shared/peers (installed, libvirtd started with its work-arounds)
where that exists; elsewhere only nsvirt's rows print. API rows (`/bin/true`
lifecycle, density) use this checkout in-process. The goals of issue 13 are
checked here, not in tests: each row says whether its ratio holds. Writes the
figures as JSON (--json) and, with matplotlib (the `benchmark` extra), a plot of
start time and supervisor PSS against the number running (--plot).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PEERS = REPO.parent / "shared" / "peers"
VENV = Path("/var/tmp/nsvirt-bench-venv")
sys.path.insert(0, str(REPO / "benchmarks"))

# init for the benchmark domain: exits on SIGTERM, as a real init does (libvirt's
# destroy then does not wait out its SIGTERM escalation)
INIT_ARGS = ("-c", "trap 'exit 0' TERM; sleep 100000 & wait")

# row → goal: nsvirt's median over the peer's must be at most this
GOALS = {
    "list --all": 1.0, "dominfo": 1.0, "domstate": 1.0, "domid": 1.0, "domuuid": 1.0,
    "dumpxml": 1.0, "dommemstat": 1.0, "cpu-stats --total": 1.0, "memtune": 1.0,
    "schedinfo": 1.0, "suspend": 1.0, "resume": 1.0, "shutdown": 1.0, "undefine": 1.0,
    "start (none other running)": 0.6, "start (one other running)": 0.6,
    "destroy": 0.2, "destroy vs crun delete -f": 2.0,
    "create FILE": 1.5, "define FILE": 2.0, "validate 1 file": 2.0,
    "validate 100 files": 0.2,
}  # fmt: skip


def domain_xml(name: str, rootfs: Path, *, init: str = "/bin/sh",
               args: tuple[str, ...] = INIT_ARGS, note: str = "") -> str:  # fmt: skip
    """The same busybox domain for nsvirt and libvirt (no <emulator>: libvirt finds its own)."""
    initargs = "".join(f"<initarg>{a.replace('&', '&amp;')}</initarg>" for a in args)
    desc = f"<description>{note}</description>" if note else ""
    return (
        f"<domain type='lxc'><name>{name}</name>{desc}<memory unit='MiB'>64</memory>"
        f"<os><type>exe</type><init>{init}</init>{initargs}</os>"
        f"<devices><filesystem type='mount'><source dir='{rootfs}'/><target dir='/'/>"
        "</filesystem><console type='pty'/></devices></domain>\n"
    )


# ---------------------------------------------------------------- set-up


def install_nsvirt() -> Path:
    """A scratch virtualenv with a wheel of this checkout (and the benchmark extra)."""
    python = VENV / "bin/python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    with tempfile.TemporaryDirectory(prefix="nsvirt-wheel-") as tmp:
        subprocess.run([str(python), "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", tmp,
                        str(REPO)], check=True, capture_output=True)  # fmt: skip
        (wheel,) = Path(tmp).glob("nsvirt-*.whl")
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--force-reinstall",
                        "--no-deps", str(wheel)], check=True, capture_output=True)  # fmt: skip
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"{wheel}[benchmark]"],
                       check=True, capture_output=True)  # fmt: skip
    shutil.rmtree(REPO / "build", ignore_errors=True)  # setuptools' leftovers
    return VENV / "bin"


def start_peers() -> dict[str, bool]:
    """Install the peers and start libvirtd through ../shared/peers; what works here."""
    have = {"virsh": False, "crun": False, "lxc": False, "virt-xml-validate": False}
    if not PEERS.is_dir() or os.geteuid() != 0:
        return have
    subprocess.run(["sh", str(PEERS / "install.sh")], check=True, capture_output=True)
    subprocess.run(["sh", str(PEERS / "libvirtd-ctl.sh"), "start"], check=True,
                   capture_output=True)  # fmt: skip
    virsh = subprocess.run(["virsh", "-c", "lxc:///", "uri"], capture_output=True)
    have["virsh"] = virsh.returncode == 0
    have["crun"] = shutil.which("crun") is not None
    have["lxc"] = shutil.which("lxc-start") is not None
    have["virt-xml-validate"] = shutil.which("virt-xml-validate") is not None
    return have


# ---------------------------------------------------------------- measuring


class Samples:
    """Timings (ms) of each tool for each row, in the order they were taken."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, list[float]]] = {}

    def add(self, row: str, tool: str, ms: float) -> None:
        self.rows.setdefault(row, {}).setdefault(tool, []).append(ms)


def timed(cmd: list[str], check: bool = True) -> float:
    """The command's wall time in ms. Its stderr goes to a file, not a pipe: a
    container a peer leaves running (`crun run -d`) would hold a pipe open."""
    with tempfile.TemporaryFile() as errors:
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=errors,
                              stdin=subprocess.DEVNULL)  # fmt: skip
        ms = (time.perf_counter() - t0) * 1e3
        if check and proc.returncode != 0:
            errors.seek(0)
            why = errors.read().decode(errors="replace").strip()
            raise SystemExit(f"benchmark: {' '.join(cmd)} failed: {why}")
    return ms


def progress(what: str) -> None:
    print(f"benchmark: {what}", file=sys.stderr, flush=True)


def quiet(cmd: list[str]) -> None:
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def wait_shut_off(state_cmd: list[str], timeout: float = 2.0) -> bool:
    """Poll (a bound, not a delay) until the domain reads as shut off."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(state_cmd, capture_output=True, text=True).stdout
        if "shut off" in out:
            return True
        time.sleep(0.01)
    return False


class Tool:
    """One side of the one-shot rows: how to run a command of nsvirsh or virsh."""

    def __init__(self, name: str, argv: list[str], validate: list[str] | None) -> None:
        self.name = name
        self.argv = argv
        self.validate = validate

    def cmd(self, *words: str) -> list[str]:
        return [*self.argv, *words]


def one_round(s: Samples, tools: list[Tool], work: Path, rootfs: Path, i: int) -> None:
    """Every one-shot row once for each tool, the tools taking turns within each row."""
    for t in tools:  # the cold path: nothing else of this tool runs
        quiet(t.cmd("destroy", "other"))
    for t in tools:
        s.add("start (none other running)", t.name, timed(t.cmd("start", "bench")))
    for row in ("list --all", "dominfo", "domstate", "domid", "domuuid", "dumpxml",
                "dommemstat", "cpu-stats --total", "memtune", "schedinfo"):  # fmt: skip
        command, *flags = row.split()
        words = row.split() if row == "list --all" else [command, "bench", *flags]
        for t in tools:
            s.add(row, t.name, timed(t.cmd(*words)))
    for op in ("suspend", "resume"):
        for t in tools:
            s.add(op, t.name, timed(t.cmd(op, "bench")))
    for t in tools:
        s.add("shutdown", t.name, timed(t.cmd("shutdown", "bench")))
    for t in tools:  # libvirt 9's shutdown leaves this init running: destroy it then
        if not wait_shut_off(t.cmd("domstate", "bench")):
            quiet(t.cmd("destroy", "bench"))
        timed(t.cmd("start", "other"))
    for t in tools:
        s.add("start (one other running)", t.name, timed(t.cmd("start", "bench")))
    for t in tools:
        s.add("destroy", t.name, timed(t.cmd("destroy", "bench")))
    # define and undefine a file neither has seen before (a new uuid each time)
    fresh = work / f"fresh-{i}.xml"
    fresh.write_text(domain_xml("fresh", rootfs).replace(
        "<name>fresh</name>", f"<name>fresh</name><uuid>{uuid.uuid4()}</uuid>"))  # fmt: skip
    for t in tools:
        s.add("define FILE", t.name, timed(t.cmd("define", str(fresh))))
    for t in tools:
        s.add("undefine", t.name, timed(t.cmd("undefine", "fresh")))
    for t in tools:
        s.add("create FILE", t.name, timed(t.cmd("create", str(fresh))))
    for t in tools:
        quiet(t.cmd("destroy", "fresh"))
    for t in tools:
        if t.validate:
            s.add("validate 1 file", t.name, timed([*t.validate, str(fresh)]))


def validate_many(s: Samples, tools: list[Tool], work: Path, rootfs: Path, runs: int) -> None:
    """100 files never seen before: one nsvirt-xml-validate call; virt-xml-validate
    takes one file per call, so a loop of 100."""
    for r in range(runs):
        batch = work / f"batch-{r}"
        batch.mkdir()
        paths = []
        for k in range(100):
            p = batch / f"d{k}.xml"
            p.write_text(domain_xml(f"d{k}", rootfs, note=f"{uuid.uuid4()}"))
            paths.append(str(p))
        for t in tools:
            if not t.validate:
                continue
            t0 = time.perf_counter()
            if t.name == "nsvirt":
                timed([*t.validate, *paths])
            else:
                for p in paths:
                    timed([*t.validate, p])
            s.add("validate 100 files", t.name, (time.perf_counter() - t0) * 1e3)


def crun_destroy(s: Samples, rootfs: Path, work: Path, runs: int) -> None:
    """`crun run -d` then `crun delete -f` (through v1view.sh: crun refuses the
    hybrid layout), next to nsvirsh's destroy."""
    bundle = work / "crun-bundle"
    bundle.mkdir()
    subprocess.run(["crun", "spec"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["root"] = {"path": str(rootfs), "readonly": True}
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/bin/sleep", "100000"]
    spec["linux"]["cgroupsPath"] = "/nsvirt-bench-crun/run"
    (bundle / "config.json").write_text(json.dumps(spec))
    view = ["sh", str(PEERS / "v1view.sh"), "crun", "--cgroup-manager=cgroupfs"]
    for r in range(runs):
        name = f"nsvirt-bench-{os.getpid()}-{r}"
        s.add("start (none other running) vs crun run -d", "crun",
              timed([*view, "run", "-d", "-b", str(bundle), name]))  # fmt: skip
        s.add("destroy vs crun delete -f", "crun", timed([*view, "delete", "-f", name]))
    for ctrl in Path("/sys/fs/cgroup").iterdir():
        for d in (ctrl / "nsvirt-bench-crun/run", ctrl / "nsvirt-bench-crun"):
            if d.is_dir():
                try:
                    d.rmdir()
                except OSError:
                    pass


def lxc_rows(s: Samples, rootfs: Path, work: Path, runs: int) -> None:
    """`lxc-start -d` and `lxc-stop -k` of the same rootfs (no lxcfs hooks)."""
    conf = work / "lxc.conf"
    conf.write_text(f"lxc.rootfs.path = dir:{rootfs}\nlxc.uts.name = bench\n"
                    "lxc.init.cmd = /bin/sleep 100000\nlxc.net.0.type = empty\n"
                    "lxc.apparmor.profile = unconfined\n")  # fmt: skip
    lxcpath = work / "lxcpath"
    lxcpath.mkdir()
    base = ["-P", str(lxcpath), "-n", "nsvirt-bench"]
    for _ in range(runs):
        s.add("start (none other running) vs lxc-start -d", "lxc",
              timed(["lxc-start", *base, "-f", str(conf), "-d"]))  # fmt: skip
        timed(["lxc-wait", *base, "-s", "RUNNING", "-t", "10"])
        s.add("destroy vs lxc-stop -k", "lxc", timed(["lxc-stop", *base, "-k"]))
    execute = work / "lxc-execute.conf"
    execute.write_text(conf.read_text().replace("lxc.init.cmd = /bin/sleep 100000\n", ""))
    for _ in range(runs):
        s.add("API /bin/true lifecycle vs lxc-execute", "lxc-execute",
              timed(["lxc-execute", *base, "-f", str(execute), "--", "/bin/true"]))  # fmt: skip


def api_rows(s: Samples, rootfs: Path, work: Path, runs: int, have: dict[str, bool]) -> None:
    """`/bin/true` lifecycle through the API, and the peers' (benchmarks/lifecycle.py)."""
    import lifecycle

    from nsvirt.driver import connect

    conn = connect(f"lxc:///embed?root={work}/api")
    for label, times in lifecycle.nsvirt_runs(conn, rootfs, runs).items():
        for sec in times:
            s.add(f"API {label}", "nsvirt (API)", sec * 1e3)
    peers = {"unshare": lifecycle.unshare_runs(rootfs, runs)}
    if have.get("virsh"):
        found = lifecycle.virsh_runs(rootfs, runs, work)
        peers["virsh create + wait"] = found["/bin/true lifecycle"] if found else None
    for name, times in peers.items():
        for sec in times or []:  # lifecycle.py times in seconds
            s.add(f"API /bin/true lifecycle vs {name}", name, sec * 1e3)


def density(counts: list[int], rootfs: Path, work: Path) -> list[dict[str, float]]:
    """Start containers one after another through the API, up to each count: the
    start time of each and the supervisors' PSS at each count."""
    import density as dens

    from nsvirt.driver import connect

    conn = connect(f"lxc:///embed?root={work}/density")
    doms: list = []
    out = []
    times: list[float] = []
    try:
        for count in counts:
            while len(doms) < count:
                xml = domain_xml(f"n{len(doms)}", rootfs, init="/bin/sleep", args=("100000",))
                t0 = time.perf_counter()
                doms.append(conn.create_xml(xml))
                times.append((time.perf_counter() - t0) * 1e3)
            pss = [dens.pss_kib(d.id) for d in doms]
            tenth = max(1, count // 10)
            out.append({
                "running": count,
                "pss_mib": statistics.mean(pss) / 1024,
                "start_ms": statistics.mean(times[:count]),
                "first_tenth_ms": statistics.mean(times[:tenth]),
                "last_tenth_ms": statistics.mean(times[count - tenth : count]),
                "each_start_ms": [round(t, 2) for t in times[:count]],
            })  # fmt: skip
    finally:
        for d in doms:
            d.destroy()
    return out


# ---------------------------------------------------------------- report


def summary(times: list[float]) -> dict[str, float]:
    return {"median": statistics.median(times), "min": min(times), "max": max(times),
            "n": len(times)}  # fmt: skip


def sides(s: Samples, row: str) -> tuple[str, list[float] | None, str | None, list[float] | None]:
    """(our tool, our times, the peer, its times) of a row. "X vs PEER" rows hold only
    the peer's times: ours are row X's."""
    by_tool = s.rows[row]
    base = row.split(" vs ")[0] if " vs " in row else row
    ours_name = "nsvirt" if "nsvirt" in s.rows.get(base, {}) else "nsvirt (API)"
    ours = s.rows.get(base, {}).get(ours_name)
    peer = next((t for t in by_tool if not t.startswith("nsvirt")), None)
    return ours_name, ours, peer, by_tool.get(peer) if peer else None


def report(s: Samples, dens: list[dict[str, float]]) -> tuple[list[dict], bool]:
    rows = []
    all_ok = True
    print(f"{'row':<44} {'nsvirt ms (min–max)':>22} {'peer ms (min–max)':>24} "
          f"{'ratio':>6} {'goal':>6}")  # fmt: skip
    for row in s.rows:
        ours_name, ours, peer_name, peer = sides(s, row)
        entry: dict = {"row": row, "peer": peer_name}
        cells = []
        for name, times in ((ours_name, ours), (peer_name, peer)):
            if times and name:
                st = summary(times)
                entry[name] = st
                cells.append(f"{st['median']:6.1f} ({st['min']:.1f}–{st['max']:.1f})")
            else:
                cells.append("—")
        goal = GOALS.get(row)
        ratio = statistics.median(ours) / statistics.median(peer) if ours and peer else None
        ok = None if goal is None or ratio is None else ratio <= goal
        all_ok = all_ok and ok is not False
        entry.update(ratio=ratio, goal=goal, ok=ok)
        rows.append(entry)
        verdict = {True: "ok", False: "MISSED", None: ""}[ok]
        shown = f"{ratio:.2f}×" if ratio else ""
        print(f"{row:<44} {cells[0]:>22} {cells[1]:>24} {shown:>6} "
              f"{f'≤{goal}' if goal else '':>6} {verdict}")  # fmt: skip
    if dens:
        print(
            "\ndensity (API, one after another): running, supervisor PSS, start ms "
            "(mean; first tenth, last tenth)"
        )
        for d in dens:
            ok = d["pss_mib"] <= 1.0 and d["start_ms"] <= 15.0
            ok = ok and d["last_tenth_ms"] <= 1.2 * d["first_tenth_ms"]
            all_ok = all_ok and (ok or d["running"] < 300)
            goal = "  goal ≤1 MiB, ≤15 ms, last ≤1.2× first " + ("ok" if ok else "MISSED")
            print(f"  {d['running']:>4}  {d['pss_mib']:.2f} MiB  {d['start_ms']:.1f} ms "
                  f"({d['first_tenth_ms']:.1f}; {d['last_tenth_ms']:.1f})"
                  f"{goal if d['running'] >= 300 else ''}")  # fmt: skip
    return rows, all_ok


def plot(results: Path, png: Path) -> None:
    code = f"""
import json, matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
d = json.load(open({str(results)!r}))["density"]
n = [x["running"] for x in d]
each = d[-1]["each_start_ms"]
fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2))
a.plot(range(len(each)), each, ".", ms=3, label="nsvirt (API), each start")
a.axhline(15, ls=":", c="gray", label="goal: 15 ms")
a.set_xlabel("containers already running"); a.set_ylabel("start → running, ms")
a.legend(fontsize=7)
b.plot(n, [x["pss_mib"] for x in d], "o-", label="nsvirt supervisor")
b.axhline(0.38, ls="--", c="tab:green", label="LXC monitor (0.38 MB)")
b.axhline(2.3, ls="--", c="tab:red", label="libvirt_lxc (2.3 MB)")
b.set_xlabel("containers running"); b.set_ylabel("host memory per container, MiB (PSS)")
b.legend(fontsize=7); fig.tight_layout(); fig.savefig({str(png)!r}, dpi=80)
"""
    subprocess.run([str(VENV / "bin/python"), "-c", code], check=True)


def procfs_servers_gone(work: Path) -> None:
    """Wait for the /proc servers of the benchmark's roots to leave, with their
    mounts, before the scratch directory goes."""
    from nsvirt.driver.procfs import service

    for base in work.glob("**/run/nsvirt/lxc/procfs"):
        service.wait_gone(str(base))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--no-peers", action="store_true", help="nsvirt's rows only")
    ap.add_argument("--density", default="1,50,300", help="running counts ('' to skip)")
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks/results/latest.json")
    ap.add_argument("--plot", type=Path, default=REPO / "docs/performance.png")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("benchmark: run as root (containers start for real)")
    # a root's /proc server leaves with its last domain, not 2 s later: a start with
    # none running then pays for starting it, every time (the worst case)
    os.environ["NSVIRT_PROCFS_LINGER"] = "0"
    bindir = install_nsvirt()
    have = {} if args.no_peers else start_peers()
    s = Samples()
    with tempfile.TemporaryDirectory(prefix="nsvirt-bench-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)  # the rootfs must be reachable by the containers' root
        rootfs = work / "rootfs"
        subprocess.run([str(REPO / "examples/make-busybox-rootfs.sh"), str(rootfs)],
                       check=True, capture_output=True)  # fmt: skip
        uri = f"lxc:///embed?root={work}/root"
        tools = [Tool("nsvirt", [str(bindir / "nsvirsh"), "-c", uri],
                      [str(bindir / "nsvirt-xml-validate")])]  # fmt: skip
        if have.get("virsh"):
            tools.append(
                Tool(
                    "virsh",
                    ["virsh", "-c", "lxc:///"],
                    ["virt-xml-validate"] if have.get("virt-xml-validate") else None,
                )
            )
        for t in tools:
            for name in ("bench", "other"):
                quiet(t.cmd("destroy", name))
                quiet(t.cmd("undefine", name))
                path = work / f"{t.name}-{name}.xml"
                path.write_text(domain_xml(name, rootfs))
                timed(t.cmd("define", str(path)))
        try:
            for t in tools:  # warm the page cache and the compiled forms
                timed(t.cmd("dominfo", "bench"))
            for i in range(args.runs):
                progress(f"one-shot round {i + 1}/{args.runs}")
                one_round(s, tools, work, rootfs, i)
            progress("validating 100 files")
            validate_many(s, tools, work, rootfs, max(3, args.runs // 3))
            for peer, rows_of in (("crun", crun_destroy), ("lxc", lxc_rows)):
                if have.get(peer):
                    progress(peer)
                    try:
                        rows_of(s, rootfs, work, args.runs)
                    except (SystemExit, subprocess.CalledProcessError, OSError) as e:
                        print(f"benchmark: {peer} rows left out: {e}", file=sys.stderr)
            progress("API lifecycles")
            api_rows(s, rootfs, work, args.runs, have)
            counts = [int(c) for c in args.density.split(",") if c]
            progress(f"density at {counts}")
            dens = density(counts, rootfs, work) if counts else []
        finally:
            for t in tools:
                for name in ("bench", "other", "fresh"):
                    quiet(t.cmd("destroy", name))
                    quiet(t.cmd("undefine", name))
            procfs_servers_gone(work)
    rows, ok = report(s, dens)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    results = {"when": time.strftime("%Y-%m-%d %H:%M"), "runs": args.runs,
               "machine": {"cpus": os.cpu_count(), "kernel": os.uname().release},
               "rows": rows, "density": dens}  # fmt: skip
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nfigures: {args.json}")
    if dens and len(dens) > 1:
        plot(args.json, args.plot)
        print(f"plot: {args.plot}")
    print("goals: all met" if ok else "goals: some MISSED (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
