"""nsvirsh against real containers: one-shot layouts and error lines of the virsh
transcripts, and an interactive session in a real terminal (pexpect)."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from tests.integration.conftest import domain_xml, start

UUID = "05621346-d353-4bab-acc3-5004556ddd1a"


def nsvirsh(conn, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nsvirt.shell", "-c", conn.uri, *args],
                          capture_output=True, text=True, timeout=120, input=stdin)  # fmt: skip


@pytest.fixture
def pair(conn, rootfs: Path, tmp_path: Path):
    """bench-run (running) and bench-off (shut off), as in the transcripts."""
    run_xml = tmp_path / "bench-run.xml"
    run_xml.write_text(domain_xml("bench-run", rootfs).replace(
        "<name>bench-run</name>", f"<name>bench-run</name><uuid>{UUID}</uuid>"))  # fmt: skip
    off_xml = tmp_path / "bench-off.xml"
    off_xml.write_text(domain_xml("bench-off", rootfs))
    for xml in (run_xml, off_xml):
        assert nsvirsh(conn, "define", str(xml)).returncode == 0
    proc = nsvirsh(conn, "start", "bench-run")
    assert (proc.returncode, proc.stdout) == (0, "Domain 'bench-run' started\n\n")
    return conn.lookup_by_name("bench-run"), conn.lookup_by_name("bench-off")


def test_list_mixed_states(conn, pair) -> None:
    run, _ = pair
    out = nsvirsh(conn, "list", "--all").stdout
    pid = str(run.id)
    width = max(2, len(pid))
    assert out == (f" {'Id':<{width}}   Name        State\n"
                   f"{'-' * (width + 26)}\n"
                   f" {pid:<{width}}   bench-run   running\n"
                   f" {'-':<{width}}   bench-off   shut off\n\n")  # fmt: skip
    assert nsvirsh(conn, "list").stdout.count("\n") == 4  # header, rule, one row, blank
    assert nsvirsh(conn, "list", "--inactive", "--name").stdout == "bench-off\n\n"
    assert nsvirsh(conn, "list", "--state-running", "--uuid").stdout == f"{UUID}\n\n"


def test_start_and_destroy_import_no_heavy_library(conn, pair) -> None:
    from tests.shell.test_oneshot import heavy_imports

    assert heavy_imports(conn.paths.root, ["destroy", "bench-run"]) == (0, [])
    assert heavy_imports(conn.paths.root, ["start", "bench-run"]) == (0, [])
    assert conn.lookup_by_name("bench-run").is_active()


def test_json_of_a_running_domain(conn, pair) -> None:
    import json

    run, _ = pair
    info = json.loads(nsvirsh(conn, "dominfo", "bench-run", "--json").stdout)
    assert (info["id"], info["state"], info["reason"]) == (run.id, "running", "booted")
    assert isinstance(info["cpu_time_ns"], int) and info["cpu_time_ns"] > 0
    assert isinstance(info["used_memory_kib"], int) and 0 < info["used_memory_kib"] <= 65536
    listed = json.loads(nsvirsh(conn, "list", "--json").stdout)
    assert [(d["id"], d["persistent"]) for d in listed] == [(run.id, True)]


def test_dominfo_running_layout(conn, pair) -> None:
    run, _ = pair
    out = nsvirsh(conn, "dominfo", "bench-run").stdout.splitlines()
    assert out[0] == f"Id:             {run.id}"
    assert out[4] == "State:          running"
    assert re.fullmatch(r"CPU time:       \d+\.\ds", out[6])
    assert out[7] == "Max memory:     65536 KiB"
    assert re.fullmatch(r"Used memory:    \d+ KiB", out[8])
    assert out[-3:] == ["Security model: none", "Security DOI:   0", ""]
    assert nsvirsh(conn, "domstate", "--reason", "bench-run").stdout == "running (booted)\n\n"
    assert nsvirsh(conn, "domid", "bench-run").stdout == f"{run.id}\n\n"
    assert "<console type='pty' tty='/dev/pts/" in nsvirsh(conn, "dumpxml", "bench-run").stdout


@pytest.mark.parametrize(("args", "stderr"), [
    (["start", "bench-run"], "error: Domain is already active\n"),
    (["destroy", "bench-off"], "error: Failed to destroy domain 'bench-off'\n"
                               "error: Requested operation is not valid: domain is not running\n"),
    (["shutdown", "bench-off"], "error: Failed to shutdown domain 'bench-off'\n"
                                "error: Requested operation is not valid: domain is not "
                                "running\n"),
    (["console", "bench-off"], "error: The domain is not running\n"),
    (["console", "bench-run"], "error: Cannot run interactive console without a controlling "
                               "TTY\n"),
    (["start", "no-such-domain"], "error: failed to get domain 'no-such-domain'\n"),
    # libvirt's virFileReadAll says it alone, with no "Failed to define" line
    (["define", "/nonexistent/x.xml"], "error: Failed to open file '/nonexistent/x.xml': "
                                       "No such file or directory\n"),
])  # fmt: skip
def test_error_lines_and_exit_status(conn, pair, args: list[str], stderr: str) -> None:
    proc = nsvirsh(conn, *args)  # and virsh's empty line after each command, a failed one too
    assert (proc.stdout, proc.stderr, proc.returncode) == ("\n", stderr, 1)


def test_suspend_resume_destroy_messages(conn, pair) -> None:
    assert nsvirsh(conn, "suspend", "bench-run").stdout == "Domain 'bench-run' suspended\n\n"
    assert nsvirsh(conn, "domstate", "--reason", "bench-run").stdout == "paused (user)\n\n"
    assert nsvirsh(conn, "resume", "bench-run").stdout == "Domain 'bench-run' resumed\n\n"
    assert nsvirsh(conn, "domstate", "--reason", "bench-run").stdout == "running (unpaused)\n\n"
    assert nsvirsh(conn, "destroy", "bench-run").stdout == "Domain 'bench-run' destroyed\n\n"
    assert nsvirsh(conn, "domstate", "--reason", "bench-run").stdout == "shut off (destroyed)\n\n"


def test_shutdown_message_and_reason(conn, rootfs: Path, tmp_path: Path) -> None:
    xml = tmp_path / "polite.xml"  # an init that stops on SIGTERM once its trap is set
    polite = "trap 'exit 0' TERM; echo trap-ready; while :; do sleep 1 & wait; done"
    xml.write_text(domain_xml("polite", rootfs, args=("-c", polite)))
    assert nsvirsh(conn, "define", str(xml)).returncode == 0
    assert nsvirsh(conn, "start", "polite").returncode == 0
    dom = conn.lookup_by_name("polite")
    with dom.open_console() as console:  # a signal before the trap exists is lost
        buf = b""
        while b"trap-ready" not in buf:
            assert select.select([console], [], [], 30)[0]
            buf += console.read()
    assert nsvirsh(conn, "shutdown", "polite").stdout == "Domain 'polite' is being shutdown\n\n"
    assert dom.wait_for_shutoff(30)
    assert nsvirsh(conn, "domstate", "--reason", "polite").stdout == "shut off (shutdown)\n\n"


def test_undefine_running_keeps_it_as_transient(conn, pair) -> None:
    proc = nsvirsh(conn, "undefine", "bench-run")
    assert proc.stdout == "Domain 'bench-run' has been undefined\n\n"
    assert "Persistent:     no" in nsvirsh(conn, "dominfo", "bench-run").stdout
    nsvirsh(conn, "destroy", "bench-run")
    proc = nsvirsh(conn, "domstate", "bench-run")
    assert (proc.stderr, proc.returncode) == ("error: failed to get domain 'bench-run'\n", 1)


def test_create_autodestroy_ends_with_nsvirsh(conn, rootfs: Path, tmp_path: Path) -> None:
    xml = tmp_path / "ephemeral.xml"
    xml.write_text(domain_xml("ephemeral", rootfs))
    proc = nsvirsh(conn, "create", "--autodestroy", str(xml))
    assert proc.stdout == f"Domain 'ephemeral' created from {xml}\n\n"
    dom = conn.lookup_by_name("ephemeral") if conn.list_all() else None
    assert dom is None or dom.wait_for_shutoff(30)
    assert conn.list_all() == []


def test_desc_and_metadata(conn, pair) -> None:
    assert nsvirsh(conn, "desc", "bench-off").stdout == "No description for domain: bench-off\n"
    assert (
        nsvirsh(conn, "desc", "bench-off", "--new-desc", "a box").stdout
        == "Domain description updated successfully\n"
    )
    assert nsvirsh(conn, "desc", "bench-off").stdout == "a box\n"
    assert nsvirsh(conn, "desc", "--title", "bench-run", "--live", "running box").returncode == 0
    assert "<title>running box</title>" in nsvirsh(conn, "dumpxml", "bench-run").stdout
    proc = nsvirsh(conn, "metadata", "bench-off", "http://example.com/app", "--key", "app",
                   "--set", "<owner team='web'/>", "--config")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = nsvirsh(conn, "metadata", "bench-off", "http://example.com/app").stdout
    assert got == '<app:owner xmlns:app="http://example.com/app" team="web"/>\n\n'


def test_edit_with_editor(conn, pair, tmp_path: Path) -> None:
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/65536/131072/' \"$1\"\n")
    editor.chmod(0o755)
    env_run = subprocess.run([sys.executable, "-m", "nsvirt.shell", "-c", conn.uri, "edit",
                              "bench-off"], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "EDITOR": str(editor)})  # fmt: skip
    assert env_run.stdout == "Domain 'bench-off' XML configuration edited.\n\n"
    assert "131072" in nsvirsh(conn, "dumpxml", "bench-off").stdout
    unchanged = subprocess.run([sys.executable, "-m", "nsvirt.shell", "-c", conn.uri, "edit",
                                "bench-off"], capture_output=True, text=True, timeout=60,
                               env={**os.environ, "EDITOR": "true"})  # fmt: skip
    assert unchanged.stdout == "Domain 'bench-off' XML configuration not changed.\n\n"


def test_edit_invalid_offers_try_again(conn, pair, tmp_path: Path) -> None:
    editor = tmp_path / "breaker.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/<os>/<frob\\/><os>/' \"$1\"\n")
    editor.chmod(0o755)
    proc = subprocess.run([sys.executable, "-m", "nsvirt.shell", "-c", conn.uri, "edit",
                           "bench-off"], capture_output=True, text=True, timeout=60, input="n\n",
                          env={**os.environ, "EDITOR": str(editor)})  # fmt: skip
    assert "unknown element <frob>" in proc.stderr
    assert "Failed. Try again? [y,n,i,f,?]:" in proc.stdout
    assert proc.returncode == 1
    assert "<frob" not in nsvirsh(conn, "dumpxml", "bench-off").stdout


def test_interactive_session_in_a_real_terminal(conn, pair, tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "TERM": "xterm"}
    shell = pexpect.spawn("/bin/bash", ["--norc", "--noprofile"], env=env, encoding="utf-8",
                          timeout=60, dimensions=(30, 120))  # fmt: skip
    try:
        shell.sendline("PS1='host$ '")
        shell.expect_exact("host$ ")
        shell.sendline(f"{sys.executable} -m nsvirt.shell -c '{conn.uri}'")
        shell.expect_exact("nsvirsh #")  # prompt_toolkit draws the space
        shell.send("dominfo bench-r\t")  # tab completes the domain name
        shell.expect_exact("bench-run")
        shell.send("\r")
        shell.expect(r"State:\s+running")
        shell.expect_exact("nsvirsh #")  # prompt_toolkit draws the space
        shell.sendline("console bench-run")
        shell.expect_exact("Escape character is ^] (Ctrl + ])")
        shell.sendline("echo hello-from-$((40+2))")
        shell.expect_exact("hello-from-42")
        shell.send("\x1d")  # ^]
        shell.expect_exact("nsvirsh #")  # prompt_toolkit draws the space
        shell.sendline("list --all; quit")
        shell.expect(r"bench-off\s+shut off")
        shell.expect_exact("host$ ")
        shell.sendline("stty -a")
        shell.expect_exact("host$ ")
        settings = shell.before
        assert " icanon" in settings and " echo " in settings  # the terminal is sane again
        assert (tmp_path / "nsvirsh/history").exists()
    finally:
        shell.close(force=True)


def test_nodememstats_and_ttyconsole_print_virshs_layouts(conn, rootfs) -> None:
    mem = nsvirsh(conn, "nodememstats")
    assert mem.returncode == 0, mem.stderr
    lines = mem.stdout.splitlines()
    assert [ln.split(":")[0] for ln in lines[:4]] == ["total  ", "free   ", "buffers", "cached "]
    total = int(Path("/proc/meminfo").read_text().split()[1])
    assert lines[0] == f"total  : {total:20} KiB" and lines[4] == ""
    assert nsvirsh(conn, "nodememstats", "3").returncode == 1
    dom = start(conn, domain_xml("tty", rootfs))
    tty = nsvirsh(conn, "ttyconsole", "tty")
    assert tty.returncode == 0 and tty.stdout == f"{dom.run_state().consoles[0]}\n\n"
    assert tty.stdout.startswith("/dev/pts/")
    dom.destroy()
    gone = nsvirsh(conn, "ttyconsole", "tty")
    assert gone.returncode == 1 and gone.stderr.startswith("error: ")
