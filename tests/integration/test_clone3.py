"""runtime/clone3.py: a child born in a cgroup v2 directory (what a v2 start's
intermediate is), without anybody writing cgroup.procs."""

from __future__ import annotations

import os

import pytest

from nsvirt.driver.launch import hostfacts
from nsvirt.driver.runtime import clone3
from tests.integration.conftest import domain_xml, is_v2, start


@pytest.mark.v2
def test_the_child_is_born_in_the_cgroup() -> None:
    mount = hostfacts.detect().cgroup2_mount
    if not mount:
        pytest.skip("no cgroup2 hierarchy is mounted")
    here = os.path.join(mount, f"nsvirt-test-clone3-{os.getpid()}")  # ours alone
    os.mkdir(here)
    try:
        fd = os.open(here, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            r, w = os.pipe()
            pid = clone3.fork_into(fd)
            if pid == 0:  # the child: where does the kernel say it is, and is Python fine?
                with open("/proc/self/cgroup") as f:
                    own = [ln for ln in f if ln.startswith("0::")]
                os.write(w, f"{own[0].strip()} {os.getpid()}".encode())
                os._exit(0)
            assert pid is not None and pid > 0
            os.close(w)
            answer = os.read(r, 4096).decode()
            os.close(r)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            cgroup_line, child_pid = answer.split()
            assert cgroup_line.endswith("/" + os.path.basename(here)) and int(child_pid) == pid
            with open(os.path.join(here, "cgroup.procs")) as f:
                assert f.read() == ""  # gone with the child: nothing else was moved there
            assert clone3.fork_into(65535) is None  # not an open fd: refused, nothing forked
        finally:
            os.close(fd)
    finally:
        os.rmdir(here)


@pytest.mark.v2
def test_a_v2_start_is_born_in_its_cgroup_and_a_v1_start_joins(conn, rootfs) -> None:
    dom = start(conn, domain_xml("born", rootfs))
    try:
        log = conn.paths.log("born").read_text()
        how = "born in" if is_v2(dom) else "joined"
        assert f"the container's first process {how} its cgroup" in log
    finally:
        dom.destroy()
