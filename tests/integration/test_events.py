"""Lifecycle events of real containers, seen by `nsvirsh event` and the Python API in
another process than the one driving them, with no daemon."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from nsvirt.driver.events import EventReader
from nsvirt.driver.state import events
from tests.integration.conftest import domain_xml

pytestmark = pytest.mark.v2


def nsvirsh(conn, *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nsvirt.shell", "-c", conn.uri, *words],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def reading(pid: int, path: str, timeout: float = 120) -> None:
    """Wait (a bound, not a delay) until process `pid` has `path` open: its reader is
    following the log, and sees every event from here on."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == path:
                    return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} never opened {path}")


def test_event_loop_sees_a_domains_life_in_order(conn, rootfs: Path) -> None:
    with EventReader(conn.paths.names) as reader:
        mark = reader.cursor()  # where this test's events begin
    # an init that stops on SIGTERM once its trap is set: a real shutdown
    polite = ("-c", "trap 'exit 0' TERM; echo > /dev/console; while :; do sleep 1 & wait; done")
    dom = conn.define_xml(domain_xml("life", rootfs, args=polite))
    watcher = subprocess.Popen([sys.executable, "-m", "nsvirt.shell", "-c", conn.uri, "event",
                                "--all", "--loop", "--timeout", "600", "--domain", "life"],
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        reading(watcher.pid, events.log_path(conn.paths.names))
        dom.create()
        dom.suspend()
        dom.resume()
        with dom.open_console() as console:  # the trap is set once it has spoken
            console.read()
        dom.shutdown()
        assert dom.wait_for_shutoff(60)
        dom.create()
        dom.destroy()
        dom.undefine()
        # an OOM kill of init: a crash (libvirt-lxc says Shutdown for every end)
        hog_init = ("-c", "exec dd if=/dev/zero of=/dev/null bs=64M count=1")
        no_swap = "<memtune><swap_hard_limit unit='MiB'>16</swap_hard_limit></memtune>"
        hog = domain_xml("hog", rootfs, memory_mib=16, args=hog_init, extra=no_swap)
        crashed = conn.create_xml(hog)
        assert crashed.wait_for_shutoff(60)
    finally:
        watcher.terminate()
    # lifecycle only: the hog's OOM may also come as a memory event, before its end
    out = nsvirsh(conn, "event", "--event", "lifecycle", "--loop", "--timeout", "1", "--since",
                  mark).stdout  # fmt: skip
    lines = [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("event '")]
    assert lines == [
        "Defined Added", "Started Booted", "Suspended Paused", "Resumed Unpaused",
        "Stopped Shutdown", "Started Booted", "Stopped Destroyed", "Undefined Removed",
        "Started Booted", "Stopped Crashed",
    ], out  # fmt: skip
    assert out.endswith(f"event loop timed out\nevents received: {len(lines)}\n")
    mine, _ = watcher.communicate(timeout=30)  # the live watcher saw life's, as they came
    assert [ln.split(": ", 1)[1] for ln in mine.splitlines() if ln.startswith("event '")] == (
        lines[1:8])  # fmt: skip  # (it began after the define)
    json_out = nsvirsh(conn, "event", "--event", "lifecycle", "--loop", "--timeout", "1",
                       "--json", "--since", mark).stdout  # fmt: skip
    import json

    records = [json.loads(line) for line in json_out.splitlines() if line.startswith("{")]
    assert records[-1] | {"time": 0, "cursor": ""} == {
        "time": 0, "cursor": "", "kind": "lifecycle", "domain": "hog", "uuid": crashed.uuid,
        "event": "stopped", "detail": "crashed", "reason": "crashed", "oom": True}  # fmt: skip
    # a reader that kept a cursor goes on exactly after it
    again = nsvirsh(conn, "event", "--event", "lifecycle", "--timeout", "1", "--since",
                    records[-2]["cursor"])  # fmt: skip
    assert again.stdout.splitlines()[0].endswith("'hog': Stopped Crashed")


def test_two_domains_changing_at_once_lose_nothing(conn, rootfs: Path) -> None:
    names = ("left", "right")
    doms = {n: conn.define_xml(domain_xml(n, rootfs)) for n in names}
    cycles = 5
    with EventReader(conn.paths.names) as reader:

        def churn(name: str) -> None:
            for _ in range(cycles):
                doms[name].create()
                doms[name].destroy()

        threads = [threading.Thread(target=churn, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        seen = []
        while len(seen) < 2 * cycles * len(names):
            got = reader.next(30)
            assert got, f"{len(seen)} events only"
            seen += got
    for name in names:
        words = [e.words for e in seen if e.domain == name]
        assert words == [("Started", "Booted"), ("Stopped", "Destroyed")] * cycles, words


def test_callbacks_as_libvirt_python_registers_them(conn, rootfs: Path) -> None:
    dom = conn.define_xml(domain_xml("called", rootfs))
    got: list[tuple] = []
    done = threading.Event()

    def callback(c, d, event, detail, opaque) -> None:
        got.append((c is conn, d.name, event, detail, opaque))
        if event == 5:
            done.set()

    ident = conn.domain_event_register_any(dom, 0, callback, "mine")
    dom.create()
    dom.destroy()
    assert done.wait(30)
    conn.domain_event_deregister_any(ident)
    assert got == [(True, "called", 2, 0, "mine"), (True, "called", 5, 1, "mine")]


@pytest.mark.parametrize(("words", "stderr"), [
    (["event"], "error: one of --list, --all, or --event <type> is required\n"),
    (["event", "--event", "bogus"], "error: unknown event type bogus\n"),
    (["event", "--all", "--event", "lifecycle"], "error: Options --all and --event are "
                                                 "mutually exclusive\n"),
    (["event", "--all", "--timeout", "0"], "error: Numeric value '0' for <timeout> option is "
                                           "malformed or out of range\n"),
    (["event", "--all", "--domain", "ghost"], "error: failed to get domain 'ghost'\n"),
])  # fmt: skip
def test_event_errors_as_virsh(conn, words: list[str], stderr: str) -> None:
    proc = nsvirsh(conn, *words)  # stdout: virsh's empty line after each command
    assert (proc.stdout, proc.stderr, proc.returncode) == ("\n", stderr, 1)


def test_no_event_before_the_timeout_exits_1(conn) -> None:
    proc = nsvirsh(conn, "event", "--event", "lifecycle", "--timeout", "1")
    assert (proc.stdout, proc.returncode) == ("event loop timed out\nevents received: 0\n", 1)
    listed = nsvirsh(conn, "event", "--list").stdout.split()
    assert listed[:2] == ["lifecycle", "reboot"] and len(listed) == 27


def test_an_oom_kill_inside_is_a_memory_event(conn, rootfs: Path, shell_of) -> None:
    no_swap = "<memtune><swap_hard_limit unit='MiB'>32</swap_hard_limit></memtune>"
    dom = conn.create_xml(domain_xml("tight", rootfs, memory_mib=32, extra=no_swap))
    sh = shell_of(dom)
    with EventReader(conn.paths.names) as reader:
        out = sh.run("dd if=/dev/zero of=/dev/null bs=64M count=1 2>&1; echo rc=$?")
        assert "Killed" in out or "rc=137" in out, out
        found = []  # memory.max may be reported first (v2); the kill follows within a second
        while not any("oom_kill" in e.extra["moved"] for e in found):
            got = reader.next(30)
            assert got, f"no OOM kill came as a memory event: {found}"
            found += [e for e in got if e.kind == "memory" and e.domain == "tight"]
    kill = next(e for e in found if "oom_kill" in e.extra["moved"])
    assert kill.extra["moved"]["oom_kill"] >= 1 and kill.extra["counts"]["oom_kill"] >= 1
    assert dom.is_active()  # only the hog died
