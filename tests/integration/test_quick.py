"""The one-shot fast path (shell/quick.py) against real containers: it answers the
daily commands byte for byte as the full shell does, and the installed `nsvirsh`
imports nothing heavy while doing it (docs/performance.md)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nsvirt.driver.connection import Connection
from nsvirt.shell import oneshot, quick
from tests.conftest import REPO
from tests.integration.conftest import domain_xml

# what the issue names, and the standard library modules that would cost the most
HEAVY = {"lxml", "xmlschema", "cmd2", "pyroute2", "dataclasses"}
SLOW_STDLIB = {"argparse", "contextlib", "enum", "json", "pathlib", "re", "typing", "uuid"}

# The installed script, run as pip installs it but without site: nsvirt comes from a
# directory laid out as site-packages (links to this checkout), so that nothing the
# editable install's finder imports at start-up hides what nsvirsh itself imports.
RUNNER = """
import atexit, sys
sys.path.insert(0, {site!r})
def dump():
    with open({out!r}, "w") as f:
        f.write("\\n".join(sys.modules))
atexit.register(dump)
sys.argv = ["nsvirsh", *{argv!r}]
exec(compile(open({script!r}).read(), {script!r}, "exec"))
"""


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    (site / "nsvirt").mkdir(parents=True)
    for top, name in (("driver", "driver"), ("shell", "shell"), ("schemas", "schemas")):
        (site / "nsvirt" / name).symlink_to(REPO / top)
    return site


def run_installed(site: Path, conn: Connection, *words: str) -> tuple[int, str, set[str]]:
    """(exit status, stdout, modules imported) of `nsvirsh -c URI WORDS`; stderr
    must be empty unless it failed."""
    out = site.parent / "modules.txt"
    code = RUNNER.format(site=str(site), out=str(out), script=str(REPO / "shell/bin/nsvirsh"),
                         argv=["-c", conn.uri, *words])  # fmt: skip
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert proc.returncode or proc.stderr == ""
    return proc.returncode, proc.stdout, set(out.read_text().split("\n"))


def top_level(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules} | modules


@pytest.fixture
def two(conn: Connection, rootfs: Path) -> Connection:
    """web (running) and db (shut off)."""
    conn.define_xml(domain_xml("db", rootfs))
    conn.define_xml(domain_xml("web", rootfs)).create()
    return conn


DAILY = [
    ["list"], ["list", "--all"], ["list", "--inactive"], ["list", "--all", "--name"],
    ["list", "--uuid"], ["list", "--all", "--id"], ["list", "--all", "--uuid", "--name", "--id"],
    ["-q", "list", "--all"],
    ["dominfo", "web"], ["dominfo", "db"], ["domstate", "web"], ["domstate", "db", "--reason"],
    ["domid", "web"], ["domid", "db"], ["domuuid", "web"], ["domname", "--domain", "db"],
    ["dumpxml", "web"], ["dumpxml", "web", "--inactive"], ["dumpxml", "db"],
    ["dommemstat", "web"], ["domblkstat", "web"], ["cpu-stats", "web"],
    ["cpu-stats", "web", "--total"], ["memtune", "web"], ["schedinfo", "web"],
]  # fmt: skip


@pytest.mark.v2
def test_the_fast_path_answers_as_the_full_shell(two: Connection) -> None:
    for words in DAILY:
        argv = ["-c", two.uri, *words]
        fast = quick.run(argv)
        assert fast is not None, f"the fast path stepped aside: {words}"
        out, err = io.StringIO(), io.StringIO()
        assert oneshot.main(argv, out, err) == 0
        assert (steady(fast), err.getvalue()) == (steady(out.getvalue()), ""), words
        assert fast.count("\n") == out.getvalue().count("\n"), words


def steady(text: str) -> str:
    """The output without what changes between two reads of a running domain."""
    text = re.sub(r"(?m)^(CPU time|Used memory): .*$", r"\1: …", text)
    return re.sub(r"(?m)^(rss|\t\w+_time) .*$", r"\1 …", text)  # dommemstat, cpu-stats


@pytest.mark.v2
def test_the_daily_commands_import_nothing_heavy(two: Connection, installed: Path) -> None:
    """Each daily command, run to its end through the installed script: exit 0, the
    fast path answered (the full shell was never imported), and none of lxml,
    xmlschema, cmd2, pyroute2, dataclasses, nor the slow standard modules."""
    web = two.lookup_by_name("web")
    steps = [
        (w, None) for w in DAILY
    ] + [  # then the ones that change something, in an order that makes each succeed
        (["suspend", "web"], "Domain 'web' suspended\n\n"),
        (["domstate", "web"], "paused\n\n"),
        (["resume", "web"], "Domain 'web' resumed\n\n"),
        (["shutdown", "web"], "Domain 'web' is being shutdown\n\n"),
        (["destroy", "web"], "Domain 'web' destroyed\n\n"),
        (["start", "web"], "Domain 'web' started\n\n"),  # cold: the CLI forks the supervisor
        (["start", "db"], "Domain 'db' started\n\n"),  # warm: web's supervisor forks it
        (["destroy", "db"], "Domain 'db' destroyed\n\n"),
        (["destroy", "web"], "Domain 'web' destroyed\n\n"),
        (["undefine", "db"], "Domain 'db' has been undefined\n\n"),
        (["list", "--all", "--name"], "web\n\n"),
    ]
    for words, expected in steps:
        if words == ["destroy", "web"]:
            assert web.is_active()  # shutdown only asks: init (sh) may still run
        status, stdout, modules = run_installed(installed, two, *words)
        assert status == 0, words
        if expected is not None:
            assert stdout == expected, words
        assert "nsvirt.shell.quick" in modules and "nsvirt.shell.oneshot" not in modules, words
        # start runs the launcher (json, socket, pathlib: the supervisor needs them anyway)
        slow = set() if words[0] == "start" else SLOW_STDLIB
        assert top_level(modules) & (HEAVY | slow) == set(), words
    assert not web.is_active()
    assert [d.name for d in two.list_all()] == ["web"]


def test_what_it_does_not_know_goes_to_the_full_shell(two: Connection, installed: Path) -> None:
    """An unknown option, a uuid, a stale compiled file, an error: the full shell
    answers (and a broken definition is still one error line in `list`)."""
    uuid = two.lookup_by_name("db").uuid
    for words in (["list", "--all", "--title"], ["dominfo", uuid], ["dominfo", "nosuch"],
                  ["suspend", "db"], ["list", "--json"]):  # fmt: skip
        assert quick.run(["-c", two.uri, *words]) is None, words
    status, _, modules = run_installed(installed, two, "dominfo", "nosuch")
    assert status == 1 and "nsvirt.shell.oneshot" in modules
    Path(two.paths.config("db")).write_text("<domain type='lxc'><name>db</name>")
    assert quick.run(["-c", two.uri, "list", "--all"]) is None
    proc = subprocess.run([sys.executable, "-m", "nsvirt.shell", "-c", two.uri, "list", "--all"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0 and " web " in proc.stdout
    assert proc.stderr.startswith("error: ") and "db.xml" in proc.stderr
    os.unlink(two.paths.config("db"))


@pytest.mark.v2
def test_start_from_the_prepared_launch(two: Connection, monkeypatch) -> None:
    """The fast start writes the live XML the driver would, its supervisor holds none
    of the CLI's files (the domain lock above all), and a host that changed since
    the launch was prepared sends the start to the driver."""
    from nsvirt.driver import domxml
    from nsvirt.driver.launch import hostprobe, livexml
    from nsvirt.driver.state import files
    from nsvirt.driver.supervisor import signature

    db = two.lookup_by_name("db")
    web = two.lookup_by_name("web")
    web.destroy()  # nothing runs: the CLI forks db's supervisor itself
    assert quick.run(["-c", two.uri, "start", "db"]) == "Domain 'db' started\n\n"
    state = db.run_state()
    assert state is not None and state.live
    assert state.code == signature.code_signature()  # sent with `go`: a donor from now on
    web.create()
    expected = livexml.live_definition(db.definition(inactive=True), state.supervisor_pid,
                                       state.consoles, [], state.containment)  # fmt: skip
    assert Path(two.paths.live_xml("db")).read_text() == domxml.format(expected)
    assert "<nsvirt:userns uid=" in Path(two.paths.live_xml("db")).read_text()
    monkeypatch.setenv("NSVIRT_LOCK_TIMEOUT", "1")
    with files.locked(two.paths.lock("db")):
        pass  # not held by the supervisor the CLI forked
    db.destroy()
    real = hostprobe.probe()
    monkeypatch.setattr(hostprobe, "probe", lambda: {**real, "kernel": "another"})
    assert quick.run(["-c", two.uri, "start", "db"]) is None  # the driver's start, then
    assert quick.run(["-c", two.uri, "start", "web"]) is None  # already running: the driver says


def _processes_running(marker: str) -> list[int]:
    """Pids whose command line contains `marker` (a test's own temporary path), but
    the root's /proc server (driver/procfs/: its own life, not a command's)."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                line = f.read()
            with open(f"/proc/{pid}/comm", "rb") as f:
                server = f.read().strip() == b"nsvirt-procfs"  # a fork: its parent's line
            if marker.encode() in line and not server:
                found.append(int(pid))
        except (OSError, ValueError):
            pass
    return found


def _gone(marker: str) -> bool:
    """Whether every process with `marker` ends (each waited on through a pidfd, 5 s at
    most): the command has exited, so no new one can appear."""
    from nsvirt.driver.runtime import procstat

    return all(procstat.wait_gone(pid, 5.0) for pid in _processes_running(marker))


def _nsvirsh(conn: Connection, *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nsvirt.shell", "-c", conn.uri, *words],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_define_and_create_from_a_file(conn: Connection, rootfs: Path, tmp_path: Path) -> None:
    """`define FILE` and `create FILE` on the fast path print what the full shell prints,
    errors included; create's spare supervisor (launch/spare.py) becomes the domain's
    supervisor, and is gone when the start fails or nothing was started."""
    good = tmp_path / "spare-good.xml"
    good.write_text(domain_xml("spare", rootfs))
    bad = tmp_path / "spare-bad.xml"
    bad.write_text(domain_xml("spare", rootfs).replace("<memory", "<nomemory", 1))
    broken = tmp_path / "spare-broken.xml"
    broken.write_text(domain_xml("spare", rootfs, init="/no/such/init"))
    for verb in ("define", "create"):
        fast, full = _nsvirsh(conn, verb, str(bad)), _nsvirsh(conn, f"{verb} {bad}")
        assert fast.returncode == full.returncode == 1
        assert fast.stderr == full.stderr
        assert fast.stderr.startswith(f"error: Failed to {verb} domain from {bad}\nerror: ")
    marker = str(tmp_path)  # in the spare's command line: the one nsvirsh was run with
    proc = _nsvirsh(conn, "create", str(broken))
    assert proc.returncode == 1 and "/no/such/init" in proc.stderr, proc.stderr
    assert _gone(marker)  # the unused spare exits once it sees the command's end
    proc = _nsvirsh(conn, "create", str(good))
    assert proc.stdout == f"Domain 'spare' created from {good}\n\n", proc.stderr
    dom = conn.lookup_by_name("spare")
    assert _processes_running(marker) == [dom.id]  # the spare is the supervisor
    dom.destroy()
    assert _gone(marker)  # the supervisor exits after it has answered
    proc = _nsvirsh(conn, "define", str(good))
    assert proc.stdout == f"Domain 'spare' defined from {good}\n\n", proc.stderr
    assert _processes_running(marker) == []  # define forks no spare
    # a start that the fast path hands to the full shell after forking its spare (the
    # compiled form is unreadable): the driver starts it, and the spare is gone
    assert marker in conn.uri  # in this start's command line too
    Path(conn.paths.names.compiled("spare", live=False)).write_bytes(b"not json")
    proc = _nsvirsh(conn, "start", "spare")
    assert proc.stdout == "Domain 'spare' started\n\n", proc.stderr
    assert _gone(marker)
    dom = conn.lookup_by_name("spare")
    dom.destroy()
    dom.undefine()
