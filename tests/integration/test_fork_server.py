"""New supervisors are forked from a running one (same code) — and nothing about the
container they run depends on the one they were forked from."""

from __future__ import annotations

import os
import select
from pathlib import Path

import pytest

from nsvirt.driver.errors import InternalError
from nsvirt.driver.state.states import DomainState
from nsvirt.driver.supervisor import signature
from nsvirt.driver.supervisor.faults import START_STAGES
from tests.integration.conftest import domain_xml, leftovers, start


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


@pytest.mark.v2
def test_second_supervisor_is_forked_from_the_first(conn, rootfs: Path, shell_of) -> None:
    first = start(conn, domain_xml("donor", rootfs))
    second = start(conn, domain_xml("forked", rootfs))
    assert parent_of(second.id) == first.id
    # its own container, console and cgroup: nothing of the donor's
    sh = shell_of(second)
    assert sh.run("hostname").strip() == "forked"
    fds = {os.readlink(f"/proc/{second.id}/fd/{fd}") for fd in os.listdir(f"/proc/{second.id}/fd")}
    assert not any("donor" in target for target in fds), fds
    assert first.cgroup_dirs() != second.cgroup_dirs()
    # the donor can go: the forked supervisor and its container stay
    first.destroy()
    assert second.is_active()
    assert sh.run("echo still-here").strip() == "still-here"


def test_killing_the_donor_leaves_the_forked_one_running(conn, rootfs: Path) -> None:
    first = start(conn, domain_xml("donor2", rootfs))
    second = start(conn, domain_xml("forked2", rootfs))
    init = first.init_pid()
    pidfd = os.pidfd_open(init)
    os.kill(first.id, 9)
    assert select.select([pidfd], [], [], 30)[0]
    os.close(pidfd)
    assert first.state() == (DomainState.SHUTOFF, 3)  # crashed, and cleaned up
    assert second.is_active()
    assert Path(f"/proc/{second.init_pid()}").exists()


def test_a_donor_running_other_code_is_not_used(
    conn, rootfs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = start(conn, domain_xml("old", rootfs))
    monkeypatch.setattr(signature, "code_signature", lambda: "another-version")
    second = start(conn, domain_xml("new", rootfs))
    assert parent_of(second.id) != first.id
    assert second.is_active()


@pytest.mark.parametrize("stage", START_STAGES)
def test_forked_supervisor_killed_at_each_stage(
    conn, rootfs: Path, stage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    donor = start(conn, domain_xml("donor3", rootfs))
    idmap = (
        "<idmap><uid start='0' target='300000' count='65536'/>"
        "<gid start='0' target='300000' count='65536'/></idmap>"
    )  # for the "mapped" stage
    dom = conn.define_xml(domain_xml("victim", rootfs, extra=idmap))
    monkeypatch.setenv("NSVIRT_FAULT", stage)
    with pytest.raises(InternalError, match="died or stopped answering during start"):
        dom.create()
    monkeypatch.delenv("NSVIRT_FAULT")
    assert dom.state()[0] == DomainState.SHUTOFF
    assert donor.is_active()  # the donor is untouched by its fork's death
    donor.destroy()
    assert not leftovers(conn)
