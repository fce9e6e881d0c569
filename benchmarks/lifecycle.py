"""Container lifecycle timings: nsvirt next to its peers.

    sudo .venv/bin/python benchmarks/lifecycle.py [--runs N] [--rootfs DIR]

Measures, as medians over N runs (default 20), in a throw-away
lxc:///embed?root= connection:
  start→running   Domain.create() until the supervisor reports running
  destroy         Domain.destroy() until everything is torn down
  /bin/true       a full lifecycle: create_xml (transient) with init /bin/true,
                  until the domain is shut off and cleaned up
and the same /bin/true lifecycle with `unshare … chroot`, and with crun,
lxc-execute and virsh -c lxc:/// where they are installed. Peers get the same
busybox rootfs. Targets (issue 4): lifecycle ≤ 2× crun's; destroy ≤ 1/10 of
libvirt-lxc's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nsvirt.driver import connect
from nsvirt.driver.connection import Connection

REPO = Path(__file__).resolve().parent.parent


def timed(
    fn: Callable[[], object],
    runs: int,
    before: Callable[[], object] | None = None,
    after: Callable[[], object] | None = None,
) -> list[float]:
    out = []
    for _ in range(runs):
        if before:
            before()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
        if after:
            after()
    return out


PRIVILEGED = (
    "<metadata><nsvirt:config xmlns:nsvirt='https://nsvirt.dev/xmlns/domain/1.0'>"
    "<nsvirt:privileged/></nsvirt:config></metadata>"
)
MODE = {"extra": ""}  # --privileged: nsvirt's domains opt out of the user namespace


def xml(name: str, rootfs: Path, init: str, args: tuple[str, ...] = ()) -> str:
    argxml = "".join(f"<initarg>{a}</initarg>" for a in args)
    return (
        f"<domain type='lxc'><name>{name}</name>{MODE['extra']}<memory unit='MiB'>64</memory>"
        f"<os><type>exe</type><init>{init}</init>{argxml}</os><devices>"
        f"<filesystem type='mount'><source dir='{rootfs}'/><target dir='/'/></filesystem>"
        "<console type='pty'/></devices></domain>"
    )


def nsvirt_runs(conn: Connection, rootfs: Path, runs: int) -> dict[str, list[float]]:
    dom = conn.define_xml(xml("bench", rootfs, "/bin/sleep", ("1000",)))
    start = timed(dom.create, runs, after=dom.destroy)
    destroy = timed(dom.destroy, runs, before=dom.create)
    dom.undefine()

    def true_lifecycle() -> None:
        d = conn.create_xml(xml("benchtrue", rootfs, "/bin/true"))
        if not d.wait_for_shutoff(30):
            raise SystemExit("/bin/true did not stop")

    lifecycle = timed(true_lifecycle, runs)
    return {"start→running": start, "destroy": destroy, "/bin/true lifecycle": lifecycle}


def unshare_runs(rootfs: Path, runs: int) -> list[float]:
    cmd = [
        "unshare",
        "--fork",
        "--pid",
        "--mount",
        "--uts",
        "--ipc",
        "--mount-proc",
        "chroot",
        str(rootfs),
        "/bin/true",
    ]
    return timed(lambda: subprocess.run(cmd, check=True), runs)


def crun_runs(rootfs: Path, runs: int, workdir: Path) -> list[float] | None:
    crun = shutil.which("crun")
    if not crun:
        return None
    bundle = workdir / "crun-bundle"
    bundle.mkdir()
    subprocess.run([crun, "spec"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["root"] = {"path": str(rootfs), "readonly": True}
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/bin/true"]
    # crun's own cgroup, never one of the caller's
    spec["linux"]["cgroupsPath"] = "/nsvirt-bench-crun/run"
    (bundle / "config.json").write_text(json.dumps(spec))
    prefix: list[str] = []
    helper = None
    if Path("/sys/fs/cgroup/unified").is_mount():
        # crun refuses hybrid hosts: run it in a mount namespace without the
        # (controller-less) cgroup2 mount, as the libvirt transcripts did
        helper = subprocess.Popen(
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                "umount /sys/fs/cgroup/unified && echo ready && exec cat",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert helper.stdout is not None
        if helper.stdout.readline().strip() != b"ready":
            raise SystemExit("could not prepare a mount namespace for crun")
        prefix = ["nsenter", "-m", "-t", str(helper.pid)]
    counter = iter(range(10**6))
    cmd = [*prefix, crun, "--cgroup-manager=cgroupfs", "run", "--bundle", str(bundle)]
    try:
        return timed(
            lambda: subprocess.run(
                [*cmd, f"nsvirt-bench-{next(counter)}"], check=True, stdin=subprocess.DEVNULL
            ),
            runs,
        )
    finally:
        if helper is not None:
            helper.kill()
            helper.wait()
        for ctrl in Path("/sys/fs/cgroup").iterdir():
            for d in (ctrl / "nsvirt-bench-crun/run", ctrl / "nsvirt-bench-crun"):
                if d.is_dir():
                    d.rmdir()


def virsh_runs(rootfs: Path, runs: int, workdir: Path) -> dict[str, list[float]] | None:
    virsh = shutil.which("virsh")
    if (
        not virsh
        or subprocess.run([virsh, "-c", "lxc:///", "uri"], capture_output=True).returncode != 0
    ):
        return None
    path = workdir / "virsh-true.xml"
    path.write_text(xml("nsvirt-bench-virsh", rootfs, "/bin/true"))

    def lifecycle() -> None:
        subprocess.run(
            [virsh, "-c", "lxc:///", "create", str(path)], check=True, capture_output=True
        )
        while (
            subprocess.run(
                [virsh, "-c", "lxc:///", "domstate", "nsvirt-bench-virsh"], capture_output=True
            ).returncode
            == 0
        ):
            time.sleep(0.005)

    sleeper = workdir / "virsh-sleep.xml"
    sleeper.write_text(xml("nsvirt-bench-virsh", rootfs, "/bin/sleep", ("1000",)))
    start = [virsh, "-c", "lxc:///", "create", str(sleeper)]
    stop = [virsh, "-c", "lxc:///", "destroy", "nsvirt-bench-virsh"]
    return {
        "/bin/true lifecycle": timed(lifecycle, runs),
        "destroy": timed(
            lambda: subprocess.run(stop, check=True, capture_output=True),
            runs,
            before=lambda: subprocess.run(start, check=True, capture_output=True),
        ),
    }


def lxc_runs(rootfs: Path, runs: int) -> list[float] | None:
    lxc = shutil.which("lxc-execute")
    if not lxc:
        return None
    cmd = [lxc, "-n", "nsvirt-bench", "-s", f"lxc.rootfs.path=dir:{rootfs}", "--", "/bin/true"]
    return timed(lambda: subprocess.run(cmd, check=True, capture_output=True), runs)


def report(rows: list[tuple[str, str, list[float] | None]]) -> None:
    print(f"{'tool':10} {'what':29} {'median':>10} {'p90':>10} {'min':>10}")
    for tool, what, times in rows:
        if times is None:
            print(f"{tool:10} {what:29} {'not installed':>10}")
            continue
        s = sorted(times)
        p90 = s[min(len(s) - 1, int(len(s) * 0.9))]
        print(
            f"{tool:10} {what:29} {statistics.median(s) * 1e3:8.1f}ms {p90 * 1e3:8.1f}ms "
            f"{s[0] * 1e3:8.1f}ms"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--rootfs", type=Path, default=None)
    ap.add_argument(
        "--privileged",
        action="store_true",
        help="nsvirt's domains opt out of the user namespace (<nsvirt:privileged/>)",
    )
    args = ap.parse_args()
    MODE["extra"] = PRIVILEGED if args.privileged else ""
    with tempfile.TemporaryDirectory(prefix="nsvirt-bench-") as tmp:
        work = Path(tmp)
        rootfs = args.rootfs or work / "rootfs"
        if args.rootfs is None:
            subprocess.run(
                [str(REPO / "examples/make-busybox-rootfs.sh"), str(rootfs)],
                check=True,
                capture_output=True,
            )
        conn = connect(f"lxc:///embed?root={work / 'root'}")
        ours = nsvirt_runs(conn, rootfs, args.runs)
        # with another container of the root running, new supervisors are forked from
        # its supervisor instead of starting an interpreter (DESIGN.md §8)
        donor = conn.create_xml(xml("donor", rootfs, "/bin/sleep", ("1000",)))
        try:
            warm = nsvirt_runs(conn, rootfs, args.runs)
        finally:
            donor.destroy()
        virsh = virsh_runs(rootfs, args.runs, work)
        rows = [("nsvirt", what, times) for what, times in ours.items()]
        rows += [("nsvirt", f"{what} (fork)", times) for what, times in warm.items()]
        rows += [
            ("unshare", "/bin/true lifecycle", unshare_runs(rootfs, args.runs)),
            ("crun", "/bin/true lifecycle", crun_runs(rootfs, args.runs, work)),
            ("lxc", "/bin/true lifecycle", lxc_runs(rootfs, args.runs)),
            ("virsh", "/bin/true lifecycle", virsh and virsh["/bin/true lifecycle"]),
            ("virsh", "destroy", virsh and virsh["destroy"]),
        ]
        mode = "privileged" if args.privileged else "default (unprivileged)"
        print(f"runs: {args.runs}; nsvirt domains: {mode}")
        report(rows)
        crun = next((t for tool, _, t in rows if tool == "crun"), None)
        if crun:
            for label, runs in (("cold", ours), ("fork", warm)):
                ratio = statistics.median(runs["/bin/true lifecycle"]) / statistics.median(crun)
                print(f"nsvirt/crun lifecycle ({label}): {ratio:.2f}x (target <= 2x)")
        if virsh:
            ratio = statistics.median(ours["destroy"]) / statistics.median(virsh["destroy"])
            print(f"nsvirt/libvirt destroy: {ratio:.3f}x (target <= 0.1x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
