"""lxc-enter-namespace (issue 15): a command run inside a running container sees what
its init sees, is held by what holds init, and its exit status comes back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nsvirt.driver.errors import OperationInvalid
from tests.integration.conftest import MARKER, domain_xml, start

pytestmark = pytest.mark.v2
MODES = pytest.mark.parametrize("privileged", [False, True], ids=["unprivileged", "privileged"])


def inside(dom, script: str, tmp_path: Path) -> tuple[int, str]:
    """Run `script` with the container's sh; what it wrote to stdout, through a file."""
    out = tmp_path / f"out-{os.getpid()}"
    with open(out, "wb") as f:
        saved = os.dup(1)
        os.dup2(f.fileno(), 1)  # the command gets the caller's stdio
        try:
            status = dom.lxc_enter_namespace(["/bin/sh", "-c", script])
        finally:
            os.dup2(saved, 1)
            os.close(saved)
    return status, out.read_text()


@MODES
def test_it_sees_what_init_sees_and_is_held_as_init_is(conn, rootfs, tmp_path, privileged) -> None:
    dom = start(conn, domain_xml("entered", rootfs, init="/bin/sleep", args=("1000",),
                                 extra="<features><privnet/></features>",
                                 privileged=privileged))  # fmt: skip
    caps = "grep -E '^(CapBnd|CapEff|Seccomp):'"
    script = (
        "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; cat /etc/" + MARKER +
        "; ip -o link | wc -l; echo @cg; cat /proc/self/cgroup;"
        " echo @initcg; cat /proc/1/cgroup;"
        f" echo @caps; {caps} /proc/self/status; echo @initcaps; {caps} /proc/1/status"
    )  # fmt: skip
    status, out = inside(dom, script, tmp_path)
    assert status == 0, out
    lines = out.splitlines()
    assert lines[0] == "entered"  # its UTS namespace
    assert lines[1].strip() == "/bin/sleep 1000"  # its pid namespace: pid 1 is its init
    assert lines[2] == "the domain's own rootfs"  # its mounts
    assert lines[3].strip() == "1"  # its network namespace: lo alone
    ours_cg, init_cg = out.split("@cg\n")[1].split("@caps\n")[0].split("@initcg\n")
    assert ours_cg == init_cg  # the same cgroups as init (its payload)
    ours, init = out.split("@caps\n")[1].split("@initcaps\n")
    assert ours == init  # no capability init has not, the same seccomp filter


@MODES
def test_exit_codes_pass_through_and_a_stopped_domain_is_refused(
    conn, rootfs, tmp_path, privileged
) -> None:
    dom = start(conn, domain_xml("codes", rootfs, init="/bin/sleep", args=("1000",),
                                 privileged=privileged))  # fmt: skip
    assert inside(dom, "exit 7", tmp_path)[0] == 7
    assert inside(dom, "kill -9 $$", tmp_path)[0] == 128 + 9
    nsvirsh = [sys.executable, "-m", "nsvirt.shell", "-c", conn.uri]
    run = subprocess.run([*nsvirsh, "lxc-enter-namespace", "codes", "--", "/bin/sh", "-c",
                          "echo from inside; exit 3"], capture_output=True, text=True)  # fmt: skip
    assert (run.returncode, run.stdout.strip()) == (3, "from inside")
    bad = subprocess.run([*nsvirsh, "lxc-enter-namespace", "codes", "/no/such"],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 1 and "cannot execute /no/such" in bad.stderr
    dom.destroy()
    with pytest.raises(OperationInvalid, match="domain is not running"):
        dom.lxc_enter_namespace(["/bin/true"])


@MODES
def test_send_process_signal_reaches_the_process_the_domain_numbers(
    conn, rootfs, tmp_path, privileged
) -> None:
    from nsvirt.driver import signals
    from nsvirt.driver.runtime.procstat import wait_gone

    init = ("-c", "sleep 1000 & sleep 2000")
    dom = start(conn, domain_xml("sig", rootfs, init="/bin/sh", args=init, privileged=privileged))
    find = "for p in $(pidof sleep); do grep -q 1000 /proc/$p/cmdline && echo $p; done"
    sleeper = int(inside(dom, find, tmp_path)[1].split()[0])  # its pid inside, not the host's
    host = signals._host_pid(dom.init_pid(), sleeper)
    assert host != sleeper and Path(f"/proc/{host}/cmdline").read_bytes() == b"sleep\x001000\x00"
    dom.send_process_signal(sleeper, signals.parse("SIG_TERM"))
    assert wait_gone(host, 10) and dom.is_active()  # that sleep, and only it
    nsvirsh = [sys.executable, "-m", "nsvirt.shell", "-c", conn.uri]
    cases = (((str(sleeper), "term"), "no process"), (("1", "bogus"), "malformed signal name"),
             (("x", "term"), "Numeric value 'x'"))  # fmt: skip
    for args, words in cases:
        run = subprocess.run([*nsvirsh, "send-process-signal", "sig", *args],
                             capture_output=True, text=True)  # fmt: skip
        assert run.returncode == 1 and words in run.stderr, run.stderr
    init_pid = dom.init_pid()
    run = subprocess.run([*nsvirsh, "send-process-signal", "sig", "1", "kill"],
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert wait_gone(init_pid, 10)
    assert dom.wait_for_shutoff(30)  # init's end ends the domain


def test_virsh_signal_names_and_numbers() -> None:
    from nsvirt.driver import signals

    assert [signals.parse(n) for n in ("15", "term", "SIGTERM", "sig_term", "Term")] == [15] * 5
    assert signals.host_signal(signals.parse("kill")) == 9
    assert signals.host_signal(signals.parse("nop")) == 0
    assert signals.host_signal(signals.parse("rt0")) == __import__("signal").SIGRTMIN
    with pytest.raises(Exception, match="malformed signal name: 99"):
        signals.parse("99")
