"""Faults and hostile neighbours (issue 9): a stopped or killed supervisor at each
start stage and while running, lost and corrupt run files, a container that wedges
its console or makes cgroups of its own, a full disk, a held lock. After each: the
truth is reported, nothing is lost, nothing is left behind.

Not in the v2 lane (SIGSTOP and timing-bound cases), except where marked.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nsvirt.driver import connect
from nsvirt.driver.errors import InternalError, OperationInvalid, OperationTimeout
from nsvirt.driver.runtime import procstat
from nsvirt.driver.runtime.cgroups import CgroupBusy, make_leaf
from nsvirt.driver.state import files
from nsvirt.driver.state.states import DomainState
from nsvirt.driver.supervisor import protocol
from nsvirt.driver.supervisor.console import LOG_BACKUPS, LOG_MAX_BYTES
from nsvirt.driver.supervisor.faults import START_STAGES
from tests.integration.conftest import domain_xml, leftovers, processes_in, start

IDMAP = (
    "<idmap><uid start='0' target='310000' count='65536'/>"
    "<gid start='0' target='310000' count='65536'/></idmap>"
)


@pytest.fixture
def stopped() -> Iterator[list[int]]:
    """Pids the test SIGSTOPs: continued (and so able to die) whatever happens."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def alive(pid: int) -> bool:
    stat = procstat.read(pid)
    return stat is not None and stat.state != "Z"


def gone_within(pid: int, timeout: float) -> bool:
    return procstat.wait_gone(pid, timeout)


# ---------------------------------------------------------------- a stopped supervisor


@pytest.mark.parametrize("stage", START_STAGES)
def test_supervisor_stopped_at_each_start_stage(
    conn, rootfs: Path, stage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dom = conn.define_xml(domain_xml("frozen", rootfs, extra=IDMAP))
    monkeypatch.setenv("NSVIRT_FAULT", f"stop:{stage}")
    monkeypatch.setenv("NSVIRT_START_TIMEOUT", "1")
    with pytest.raises(InternalError, match="died or stopped answering during start"):
        dom.create()
    monkeypatch.delenv("NSVIRT_FAULT")
    assert dom.state()[0] == DomainState.SHUTOFF
    assert not leftovers(conn)  # the stopped supervisor was killed, its container too
    dom.create()
    assert dom.is_active()


def test_destroy_of_a_stopped_supervisor(conn, rootfs: Path, stopped: list[int]) -> None:
    dom = start(conn, domain_xml("halted", rootfs))
    sup, init = dom.id, dom.init_pid()
    os.kill(sup, signal.SIGSTOP)
    stopped.append(sup)
    assert dom.state() == (DomainState.RUNNING, 1)  # stopped is not dead
    dom.destroy()
    assert not alive(sup) and not alive(init)
    assert dom.state() == (DomainState.SHUTOFF, 2)
    assert not leftovers(conn)


def test_destroy_of_a_supervisor_that_stops_answering(
    conn, rootfs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NSVIRT_FAULT", "stop:request")  # it stops when a request comes
    dom = start(conn, domain_xml("mute", rootfs))
    sup = dom.id
    monkeypatch.setenv("NSVIRT_ANSWER_TIMEOUT", "0.5")
    dom.destroy()
    assert not alive(sup)
    assert dom.state() == (DomainState.SHUTOFF, 2)
    assert not leftovers(conn)


def test_destroy_removes_what_a_killed_supervisor_was_writing(
    conn, rootfs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a supervisor killed while it writes its state (a destroy that raced with its own
    # teardown) leaves write_atomic's temp file: the destroy that killed it removes it
    monkeypatch.setenv("NSVIRT_FAULT", "stop:request")
    dom = start(conn, domain_xml("midwrite", rootfs))
    sup = dom.id
    half = conn.paths.run_dir / f".midwrite.json.{sup}.tmp"
    half.write_bytes(b"")  # as open(O_TRUNC) left it before the kill
    monkeypatch.setenv("NSVIRT_ANSWER_TIMEOUT", "0.5")
    dom.destroy()
    assert not alive(sup)
    assert not half.exists() and not list(conn.paths.run_dir.glob(".*.tmp"))
    assert not leftovers(conn)


def test_a_stopped_donor_is_passed_over(conn, rootfs: Path, stopped: list[int]) -> None:
    donor = start(conn, domain_xml("donor", rootfs))
    os.kill(donor.id, signal.SIGSTOP)
    stopped.append(donor.id)
    # the signal lands asynchronously: the test is about a donor that *is* stopped
    deadline = time.monotonic() + 10
    while procstat.read(donor.id).state not in ("T", "t") and time.monotonic() < deadline:
        time.sleep(0.005)
    other = start(conn, domain_xml("other", rootfs))
    assert procstat.read(other.id).ppid != donor.id  # started fresh, not by the donor
    os.kill(donor.id, signal.SIGCONT)
    protocol.call(conn.paths.socket("donor"), {"op": "state"}, timeout=10)  # it caught up
    # a spawn request sent to it while stopped would have been dropped, and logged
    assert "dropped a request 'spawn'" not in conn.paths.log("donor").read_text()
    assert donor.is_active() and other.is_active()
    assert processes_in(conn.tag)  # both containers still there


def test_a_late_spawn_request_is_dropped(conn, rootfs: Path) -> None:
    donor = start(conn, domain_xml("donor2", rootfs))
    ours, theirs = socket.socketpair()
    log = os.open(os.devnull, os.O_WRONLY)
    request = {"op": "spawn", "config": {}, "deadline": time.monotonic() - 1}
    with protocol.connect(conn.paths.socket("donor2")) as sock:
        socket.send_fds(sock, [protocol.encode(request)], [theirs.fileno(), log])
        reply = protocol.decode(protocol.read_line(sock, 10))
    theirs.close()
    os.close(log)
    assert reply["ok"] is False and "after its deadline" in reply["error"]
    assert "dropped a request 'spawn'" in conn.paths.log("donor2").read_text()
    assert protocol.read_line(ours, 10) == b""  # the passed fd was closed: nothing runs
    ours.close()
    assert donor.is_active()


def test_a_spawn_given_up_on_starts_nothing(conn, rootfs: Path) -> None:
    # the new supervisor says hello, then waits for go; a launcher that gave up has
    # closed its end, so a late fork (a donor that was stopped a while) starts nothing
    from nsvirt.driver.launch import hostfacts, plan
    from nsvirt.driver.supervisor.config import SupervisorConfig

    donor = start(conn, domain_xml("donor3", rootfs))
    late = conn.define_xml(domain_xml("late", rootfs))
    definition = late.definition()
    launch_plan = plan.build(definition, hostfacts.detect(),
                             partition=conn.partition_for(definition))  # fmt: skip
    config = SupervisorConfig(launch_plan.to_json(), str(conn.paths.root), persistent=True)
    ours, theirs = socket.socketpair()
    log = os.open(os.devnull, os.O_WRONLY)
    with protocol.connect(conn.paths.socket("donor3")) as sock:
        socket.send_fds(sock, [protocol.encode({"op": "spawn", "config": config.to_dict()})],
                        [theirs.fileno(), log])  # fmt: skip
        reply = protocol.decode(protocol.read_line(sock, 10))
    theirs.close()
    os.close(log)
    assert reply["ok"]
    assert protocol.read_line(ours, 10).startswith(b"hello ")
    ours.close()  # give up: no go
    assert gone_within(reply["pid"], 10)
    assert not late.is_active() and not conn.paths.state("late").exists()
    assert donor.is_active()


# ---------------------------------------------------------------- lost and corrupt run files


@pytest.mark.parametrize(
    "content",
    [b"", b'{"format": 1, "name":', b"[]", b'{"format": 99, "state": "running"}', None],
    ids=["empty", "truncated", "not-an-object", "foreign", "deleted"],
)
def test_a_running_container_is_never_forgotten(conn, rootfs: Path, content: bytes | None) -> None:
    dom = start(conn, domain_xml("kept", rootfs))
    sup, init = dom.id, dom.init_pid()
    state_file = conn.paths.state("kept")
    if content is None:
        state_file.unlink()
    else:
        state_file.write_bytes(content)
    assert dom.state() == (DomainState.RUNNING, 1)  # recovered from the supervisor
    assert dom.id == sup
    with pytest.raises(OperationInvalid, match="already running"):
        dom.create()  # never a second start into its cgroup (which killed it once)
    assert alive(init)
    assert b'"running"' in state_file.read_bytes()  # and the file is whole again
    dom.undefine()  # a running domain goes on, transient, as in libvirt
    assert dom.is_active() and alive(init)
    dom.destroy()
    assert not alive(init)
    assert not leftovers(conn)


def test_corrupt_state_and_a_stopped_supervisor(conn, rootfs: Path, stopped: list[int]) -> None:
    dom = start(conn, domain_xml("both", rootfs))
    sup, init = dom.id, dom.init_pid()
    conn.paths.state("both").write_bytes(b"garbage")
    os.kill(sup, signal.SIGSTOP)
    stopped.append(sup)
    state = dom.run_state()  # from the socket's owner (SO_PEERCRED) and the cgroup
    assert state is not None and state.live
    assert (state.supervisor_pid, state.init_pid) == (sup, init)
    dom.destroy()
    assert not alive(sup) and not alive(init)
    assert not leftovers(conn)


def test_corrupt_state_of_a_dead_supervisor(conn, rootfs: Path) -> None:
    dom = start(conn, domain_xml("dead", rootfs))
    sup = dom.id
    conn.paths.state("dead").write_bytes(b"garbage")
    os.kill(sup, signal.SIGKILL)
    assert gone_within(sup, 10)
    assert dom.state() == (DomainState.SHUTOFF, 0)  # shut off (unknown): no record of why
    assert not leftovers(conn)
    dom.create()
    assert dom.is_active()


def test_another_containers_cgroup_is_refused_and_left_alone(
    conn, rootfs: Path, tmp_path: Path
) -> None:
    owner = start(conn, domain_xml("twin", rootfs))
    init = owner.init_pid()
    other = connect(f"lxc:///embed?root={tmp_path / 'other'}")
    other.partition_for = conn.partition_for  # as if both roots had one partition
    twin = other.define_xml(domain_xml("twin", rootfs))
    with pytest.raises(InternalError, match="already has processes"):
        twin.create()
    assert alive(init) and owner.is_active()
    assert not twin.is_active()


def test_make_leaf_refuses_a_cgroup_with_processes_and_reuses_an_empty_one(conn, rootfs) -> None:
    dom = start(conn, domain_xml("leafy", rootfs))
    leaf = Path(next(iter(dom.cgroup_dirs().values())))
    with pytest.raises(CgroupBusy):
        make_leaf(leaf)
    assert alive(dom.init_pid())
    dom.destroy()
    empty = Path(f"{leaf.parent}/leftover.nsvirt-lxc")
    os.makedirs(empty)
    make_leaf(empty)  # an empty leftover of ours: made afresh
    os.rmdir(empty)
    os.rmdir(empty.parent)


def test_partition_tag_is_per_directory_not_per_path(tmp_path: Path) -> None:
    from nsvirt.driver.state.layout import Paths

    root = tmp_path / "root"
    root.mkdir()
    before = Paths(root).tag()
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the same path, another mount namespace, another directory
        from nsvirt.driver.runtime import syscalls as sc

        tag = b"?"
        try:
            sc.unshare(sc.CLONE_NEWNS)
            sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
            sc.mount("tmpfs", str(root), "tmpfs")
            tag = Paths(root).tag().encode()
        finally:
            os.write(writer, tag)
            os._exit(0)
    os.close(writer)
    inside = os.read(reader, 64).decode()
    os.close(reader)
    os.waitpid(pid, 0)
    assert len(inside) == 8 and inside != before


# ---------------------------------------------------------------- hostile containers


def test_a_console_nobody_reads_cannot_wedge_the_supervisor(conn, rootfs: Path) -> None:
    # the container never reads its console; a client types megabytes at it
    dom = start(conn, domain_xml("deaf", rootfs, args=("-c", "stty raw -echo; exec sleep 1000")))
    with dom.open_console() as console:
        console.sock.settimeout(30)
        for _ in range(160):
            console.write(b"x" * 65536)  # 10 MiB: far beyond what the pty buffers
        reply = protocol.call(conn.paths.socket("deaf"), {"op": "state"}, timeout=5)
    assert reply["ok"]  # it answered in time: nothing blocked
    log = conn.paths.log("deaf").read_text()
    assert "the container does not read its input; dropping" in log
    dom.destroy()
    assert not leftovers(conn)


def test_console_flood_is_rotated_not_kept(conn, rootfs: Path) -> None:
    dom = start(conn, domain_xml("loud", rootfs, args=("-c", "exec yes flood")))
    seen = 0
    with dom.open_console() as console:
        while seen < (LOG_BACKUPS + 2) * LOG_MAX_BYTES:
            assert select.select([console], [], [], 30)[0]
            seen += len(console.read())
        dom.destroy()
    log = conn.paths.log("loud")
    rotated = [log.with_name(f"{log.name}.{i}") for i in range(1, LOG_BACKUPS + 1)]
    assert all(p.exists() for p in rotated)
    assert not log.with_name(f"{log.name}.{LOG_BACKUPS + 1}").exists()
    for path in (log, *rotated):
        assert path.stat().st_size <= LOG_MAX_BYTES + 65536  # one read past the mark
    assert not leftovers(conn)


@pytest.mark.v2
def test_cgroups_the_container_made_go_with_it(conn, rootfs: Path, shell_of) -> None:
    dom = start(conn, domain_xml("nester", rootfs))
    sh = shell_of(dom)
    sh.run("sleep 1000 & echo started")
    pid = next(p for p in procstat.children(dom.init_pid()) if alive(p))
    for leaf in {Path(d) for d in dom.cgroup_dirs().values()}:
        # as a container that remounted its cgroup read-write would
        inner = leaf / "mine" / "deeper"
        inner.mkdir(parents=True)
        for level in (inner.parent, inner):  # a v1 cpuset level takes no task until filled
            for name in ("cpuset.cpus", "cpuset.mems"):
                if (level / name).exists():
                    (level / name).write_text((level.parent / name).read_text())
        (inner / "cgroup.procs").write_text(str(pid))
    dom.destroy()
    assert not alive(pid)
    assert not leftovers(conn)
    dom.create()  # and it starts again at once
    assert dom.is_active()


# ---------------------------------------------------------------- a full disk, a held lock


@pytest.fixture
def small_root(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs as the connection root: filled, it is a full state directory."""
    from nsvirt.driver.runtime import syscalls as sc

    root = tmp_path / "small"
    root.mkdir()
    sc.mount("tmpfs", str(root), "tmpfs", 0, "size=4m")
    yield root
    sc.umount2(str(root), sc.MNT_DETACH)


def fill(root: Path) -> Path:
    filler = root / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:  # ENOSPC: full
        pass
    finally:
        os.close(fd)
    return filler


def test_a_full_state_directory(small_root: Path, rootfs: Path) -> None:
    conn = connect(f"lxc:///embed?root={small_root / 'root'}")
    dom = conn.define_xml(domain_xml("full", rootfs))
    stored = conn.paths.config("full").read_bytes()
    filler = fill(small_root)
    with pytest.raises(InternalError, match="No space left on device"):
        dom.create()  # refused, and nothing runs
    assert dom.state()[0] == DomainState.SHUTOFF
    assert not leftovers(conn)
    with pytest.raises(OSError, match="No space left"):
        conn.define_xml(domain_xml("full", rootfs, memory_mib=128))
    assert conn.paths.config("full").read_bytes() == stored  # the definition is intact
    filler.unlink()
    dom.create()
    fill(small_root)
    dom.destroy()  # the truth: destroyed, even with no room to record why
    assert not dom.is_active()
    assert not leftovers(conn)


def test_a_held_lock_is_waited_for_a_bounded_time(conn, rootfs: Path) -> None:
    dom = conn.define_xml(domain_xml("locked", rootfs))
    env = {**os.environ, "NSVIRT_LOCK_TIMEOUT": "0.3"}
    with files.locked(conn.paths.lock("locked")):
        proc = subprocess.run(
            [sys.executable, "-m", "nsvirt.shell", "-c", conn.uri, "start", "locked"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1].startswith(
        "error: Timed out during operation: cannot acquire state change lock on domain "
        f"'locked' (held by pid {os.getpid()}: "
    )
    with files.locked(conn.paths.define_lock), pytest.raises(OperationTimeout):
        os.environ["NSVIRT_LOCK_TIMEOUT"] = "0.3"
        try:
            conn.define_xml(domain_xml("another", rootfs))
        finally:
            del os.environ["NSVIRT_LOCK_TIMEOUT"]
    assert not dom.is_active()


def test_lock_files_of_undefined_domains_are_removed(conn, rootfs: Path) -> None:
    dom = conn.define_xml(domain_xml("fleeting", rootfs))
    assert conn.paths.lock("fleeting").exists()
    dom.undefine()
    assert not conn.paths.lock("fleeting").exists()
    transient = conn.create_xml(domain_xml("passing", rootfs))
    transient.destroy()
    assert not conn.paths.lock("passing").exists()
