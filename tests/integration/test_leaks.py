"""Nothing leaks: not after many cycles, not when the supervisor is killed mid-start."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nsvirt.driver.errors import InternalError
from nsvirt.driver.state.states import DomainState
from nsvirt.driver.supervisor.faults import START_STAGES
from tests.integration.conftest import domain_xml, leftovers


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.v2
def test_fifty_start_destroy_cycles_leak_nothing(conn, rootfs: Path) -> None:
    dom = conn.define_xml(domain_xml("cycle", rootfs))
    dom.create()
    dom.destroy()  # the first cycle opens whatever is opened once (imports, caches)
    fds = open_fds()
    for _ in range(50):
        dom.create()
        assert dom.is_active()
        dom.destroy()
    assert open_fds() == fds
    assert dom.state() == (DomainState.SHUTOFF, 2)
    assert not leftovers(conn)


@pytest.mark.v2
@pytest.mark.parametrize("stage", START_STAGES)
def test_supervisor_killed_at_each_start_stage(
    conn, rootfs: Path, stage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    idmap = (
        "<idmap><uid start='0' target='300000' count='65536'/>"
        "<gid start='0' target='300000' count='65536'/></idmap>"
    )
    dom = conn.define_xml(domain_xml("faulty", rootfs, extra=idmap))
    monkeypatch.setenv("NSVIRT_FAULT", stage)
    with pytest.raises(InternalError, match="died or stopped answering during start"):
        dom.create()  # at "running", after it wrote its state file: a failed start too
    monkeypatch.delenv("NSVIRT_FAULT")
    assert dom.state()[0] == DomainState.SHUTOFF
    assert not leftovers(conn)
    dom.create()  # and it starts cleanly afterwards
    assert dom.is_active()
