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
