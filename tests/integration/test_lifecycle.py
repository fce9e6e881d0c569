"""Lifecycle on real containers: start, console, shutdown, destroy, suspend, reboot,
transient create, errors with nothing left behind."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from pathlib import Path

import pytest

from nsvirt.driver.errors import InternalError, NoDomainError, OperationFailed, OperationInvalid
from nsvirt.driver.state.states import DomainState
from tests.integration.conftest import cg_value, domain_xml, is_v2, leftovers, start

# an init that stops cleanly on SIGTERM (it installs a handler, so the signal
# reaches pid 1 of the container from outside)
POLITE = ("-c", "trap 'exit 0' TERM; echo trap-ready; while :; do sleep 1 & wait; done")


def wait_trap_ready(dom, shell_of):
    """A signal that reaches pid 1 before its handler exists is dropped: wait for it."""
    console = shell_of(dom, shell=False)
    console.read_until("trap-ready")
    return console


@pytest.mark.v2
def test_start_console_destroy(conn, rootfs: Path, shell_of) -> None:
    dom = start(conn, domain_xml("life", rootfs))
    assert dom.state() == (DomainState.RUNNING, 1)  # running (booted)
    assert dom.id > 0 and dom.id != dom.init_pid()
    assert f"id='{dom.id}'" in dom.xml_desc()
    assert "<alias name='console0'/>" in dom.xml_desc()
    assert "id=" not in dom.xml_desc(inactive=True)
    sh = shell_of(dom)
    assert sh.run("echo hello; hostname").split() == ["hello", "life"]
    env = dict(line.split("=", 1) for line in sh.run("env").splitlines() if "=" in line)
    assert env["container"] == "lxc-libvirt"
    assert env["LIBVIRT_LXC_NAME"] == "life"
    assert env["LIBVIRT_LXC_UUID"] == env["container_uuid"] == dom.uuid
    init = dom.init_pid()
    dom.destroy()
    assert dom.state() == (DomainState.SHUTOFF, 2)  # shut off (destroyed)
    assert not Path(f"/proc/{init}").exists()
    assert dom.id == -1
    assert not leftovers(conn)


def test_start_of_running_domain_is_refused(conn, rootfs: Path) -> None:
    dom = start(conn, domain_xml("twice", rootfs))
    with pytest.raises(OperationInvalid, match="domain is already running"):
        dom.create()
    assert dom.is_active()


def test_unknown_domain(conn) -> None:
    with pytest.raises(NoDomainError):
        conn.lookup_by_name("no-such-domain")


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("missing-rootfs", "failed to mount /nonexistent/rootfs on /: No such file or directory"),
        ("missing-init", "cannot execute /sbin/no-such-init: No such file or directory"),
        ("missing-bind", "failed to mount /nonexistent/data on "),
    ],
)
def test_failed_start_reports_reason_and_leaves_nothing(
    conn, rootfs: Path, case: str, words: str
) -> None:
    if case == "missing-rootfs":
        xml = domain_xml("bad", Path("/nonexistent/rootfs"))
    elif case == "missing-init":
        xml = domain_xml("bad", rootfs, init="/sbin/no-such-init")
    else:
        xml = domain_xml(
            "bad",
            rootfs,
            devices="<filesystem><source dir='/nonexistent/data'/>"
            "<target dir='/data'/></filesystem>",
        )
    dom = conn.define_xml(xml)
    with pytest.raises(InternalError) as e:
        dom.create()
    assert str(e.value).startswith("internal error: ")
    assert words in str(e.value)
    assert dom.state()[0] == DomainState.SHUTOFF
    assert not leftovers(conn)


def test_unsupported_devices_are_refused_before_anything_starts(conn, rootfs: Path) -> None:
    template = "<filesystem type='template'><source name='base'/><target dir='/data'/></filesystem>"
    dom = conn.define_xml(domain_xml("dev", rootfs, devices=template))
    with pytest.raises(
        Exception, match="unsupported configuration: Cannot mount filesystem type template"
    ):
        dom.create()
    assert not leftovers(conn)


def test_shutdown_of_init_that_handles_sigterm(conn, rootfs: Path, shell_of) -> None:
    dom = start(conn, domain_xml("polite", rootfs, args=POLITE))
    wait_trap_ready(dom, shell_of)
    dom.shutdown(timeout=30)
    assert dom.wait_for_shutoff(30)
    assert dom.state() == (DomainState.SHUTOFF, 1)  # shut off (shutdown)


def test_shutdown_timeout_destroys_init_that_ignores_it(conn, rootfs: Path) -> None:
    # busybox sh as pid 1 has no SIGTERM handler, so the signal never reaches it
    dom = start(conn, domain_xml("stubborn", rootfs))
    dom.shutdown(timeout=0.5, wait=True)
    assert dom.state() == (DomainState.SHUTOFF, 2)  # shut off (destroyed)


def test_shutdown_only_asks_by_default(conn, rootfs: Path) -> None:
    # as virsh's shutdown: an init that ignores SIGTERM (a database taking its time)
    # is asked, never destroyed behind the caller's back
    dom = start(conn, domain_xml("patient", rootfs))
    init = os.pidfd_open(dom.init_pid())
    dom.shutdown()
    log = conn.paths.log("patient").read_text()
    assert "shutdown: asked init (signal); no timeout: it stops when it chooses to" in log
    assert not select.select([init], [], [], 1.0)[0]  # a bound on a wait, not a sleep
    os.close(init)
    assert dom.state() == (DomainState.RUNNING, 1)


def test_nsvirsh_shutdown_timeout_escalates(conn, rootfs: Path) -> None:
    dom = start(conn, domain_xml("deadline", rootfs))
    proc = subprocess.run([sys.executable, "-m", "nsvirt.shell", "-c", conn.uri, "shutdown",
                           "deadline", "--timeout", "0.5"], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert (proc.returncode, proc.stdout) == (0, "Domain 'deadline' is being shutdown\n\n")
    assert dom.wait_for_shutoff(30)
    assert dom.state() == (DomainState.SHUTOFF, 2)  # destroyed when the timeout passed


def test_shutdown_of_shut_off_domain(conn, rootfs: Path) -> None:
    dom = conn.define_xml(domain_xml("off", rootfs))
    with pytest.raises(OperationInvalid, match="domain is not running"):
        dom.shutdown()
    with pytest.raises(OperationInvalid, match="domain is not running"):
        dom.destroy()


def test_init_exit_is_a_shutdown(conn, rootfs: Path) -> None:
    dom = start(conn, domain_xml("brief", rootfs, args=("-c", "read line; exit 3")))
    with dom.open_console() as console:
        console.write(b"go\n")
        assert dom.wait_for_shutoff(30)
    assert dom.state() == (DomainState.SHUTOFF, 1)


@pytest.mark.v2
@pytest.mark.parametrize("transient", [False, True], ids=["defined", "transient"])
def test_init_that_exits_at_once(conn, rootfs: Path, transient: bool) -> None:
    # init may be gone before the supervisor's loop runs: it must still stop
    xml = domain_xml("instant", rootfs, init="/bin/true")
    dom = conn.create_xml(xml) if transient else start(conn, xml)
    assert dom.wait_for_shutoff(30)
    assert not leftovers(conn)  # no supervisor lingering either
    if not transient:
        assert dom.state() == (DomainState.SHUTOFF, 1)


@pytest.mark.v2
def test_suspend_freezes_and_resume_thaws(conn, rootfs: Path, shell_of) -> None:
    dom = start(conn, domain_xml("freeze", rootfs))
    sh = shell_of(dom)
    sh.run("true")
    init = dom.init_pid()
    dom.suspend()
    assert dom.state() == (DomainState.PAUSED, 1)  # paused (user)

    def frozen() -> bool:
        if is_v2(dom):
            return "frozen 1" in cg_value(dom, ("", ""), "cgroup.events")
        return cg_value(dom, ("freezer", "freezer.state"), "") == "FROZEN"

    assert frozen()
    # a frozen task sleeps in the freezer: D (v1) or S (v2's signal-stop)
    assert Path(f"/proc/{init}/status").read_text().split("State:")[1].split()[0] in ("D", "S")
    with pytest.raises(OperationInvalid, match="already paused"):
        dom.suspend()
    dom.resume()
    assert dom.state() == (DomainState.RUNNING, 5)  # running (unpaused)
    assert not frozen()
    assert sh.run("echo alive").strip() == "alive"


def test_reboot_starts_a_new_init_with_the_same_config(conn, rootfs: Path, shell_of) -> None:
    dom = start(conn, domain_xml("reboot", rootfs, args=POLITE))
    console = wait_trap_ready(dom, shell_of)
    first_init, first_id = dom.init_pid(), dom.id
    dom.reboot(wait=True)
    assert dom.state() == (DomainState.RUNNING, 1)
    assert dom.init_pid() != first_init
    assert dom.id == first_id  # the same supervisor keeps the domain
    assert not Path(f"/proc/{first_init}").exists()
    console.read_until("trap-ready")  # printed by the new init, on the same console


def test_transient_create(conn, rootfs: Path) -> None:
    dom = conn.create_xml(domain_xml("transient", rootfs))
    assert dom.is_active() and not dom.is_persistent()
    assert [d.name for d in conn.list_all()] == ["transient"]
    with pytest.raises(OperationFailed, match="already exists with uuid"):
        conn.create_xml(domain_xml("transient", rootfs))
    dom.destroy()
    assert conn.list_all() == []
    with pytest.raises(NoDomainError):
        conn.lookup_by_name("transient")


def test_undefine_running_domain_makes_it_transient(conn, rootfs: Path) -> None:
    dom = start(conn, domain_xml("undef", rootfs))
    dom.undefine()
    assert dom.is_active() and not dom.is_persistent()
    assert conn.lookup_by_name("undef").is_active()
    dom.destroy()
    with pytest.raises(NoDomainError):
        conn.lookup_by_name("undef")


def test_domain_outlives_the_process_that_started_it(conn, rootfs: Path) -> None:
    dom = conn.define_xml(domain_xml("detached", rootfs))
    code = (
        f"from nsvirt.driver import connect; "
        f"connect({conn.uri!r}).lookup_by_name('detached').create()"
    )
    starter = subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert starter.returncode == 0
    assert dom.is_active()  # the starter has exited; the domain runs on
    # detached: the supervisor leads a session of its own, so neither the starter's
    # session nor its terminal's hangup reaches it
    assert os.getsid(dom.id) == dom.id
    assert os.getsid(dom.id) != os.getsid(0)


def test_killed_supervisor_takes_container_down_and_is_cleaned(conn, rootfs: Path) -> None:
    dom = start(conn, domain_xml("orphan", rootfs))
    init, sup = dom.init_pid(), dom.id
    pidfd = os.pidfd_open(init)
    os.kill(sup, 9)
    import select

    assert select.select([pidfd], [], [], 30)[0], "init outlived its supervisor"
    os.close(pidfd)
    assert dom.state() == (DomainState.SHUTOFF, 3)  # shut off (crashed)
    assert not leftovers(conn)
    dom.create()  # and it starts again cleanly
    assert dom.is_active()


def test_on_poweroff_restart(conn, rootfs: Path, shell_of) -> None:
    xml = domain_xml("phoenix", rootfs, args=("-c", "echo booted; read x; exit 0"))
    xml = xml.replace("</os>", "</os><on_poweroff>restart</on_poweroff>")
    dom = start(conn, xml)
    first = dom.init_pid()
    sh = shell_of(dom, shell=False)  # the console stays attached across the restart
    sh.read_until("booted")
    sh.stream.write(b"x\n")
    sh.read_until("booted")  # printed by the new init
    assert dom.state() == (DomainState.RUNNING, 1)
    assert dom.init_pid() != first


def test_two_roots_same_name_do_not_disturb_each_other(conn, rootfs: Path, tmp_path: Path) -> None:
    from nsvirt.driver import connect

    other = connect(f"lxc:///embed?root={tmp_path / 'other'}")
    a = start(conn, domain_xml("same", rootfs))
    b = start(other, domain_xml("same", rootfs))
    try:
        assert a.cgroup_dirs() != b.cgroup_dirs()
        a.destroy()
        assert b.is_active()
        assert Path(f"/proc/{b.init_pid()}").exists()
    finally:
        b.destroy()
    assert not leftovers(other)


def test_autostart_all(conn, rootfs: Path) -> None:
    dom = conn.define_xml(domain_xml("auto", rootfs))
    dom.set_autostart(True)
    assert dom.autostart()
    proc = subprocess.run(
        [sys.executable, "-m", "nsvirt.driver.cli.autostart", conn.uri],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (proc.returncode, proc.stdout) == (0, "Domain 'auto' started\n")
    assert dom.is_active()
    assert conn.autostart_all() == [("auto", None)]  # already running: left alone
    dom.set_autostart(False)
    assert not dom.autostart()
