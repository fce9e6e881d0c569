"""What the host side opens inside a container's tree never follows the container's
symlinks out of it (issue 9, item 1): initctl, mount points, files made for binds.

Every test plants the symlink a hostile container would (from inside, or left in
its rootfs by an earlier run) and checks the host file or directory it aims at.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from nsvirt.driver.errors import InternalError, OperationFailed
from nsvirt.driver.state.states import DomainState
from tests.integration.conftest import domain_xml, leftovers, start

IDMAP = (
    "<idmap><uid start='0' target='210000' count='65536'/>"
    "<gid start='0' target='210000' count='65536'/></idmap>"
)


@pytest.fixture
def victim() -> Iterator[Path]:
    """A host directory outside every rootfs, with a root-only file in it."""
    d = Path(tempfile.mkdtemp(prefix="nsvirt-victim-"))
    (d / "secret").write_text("host secret\n")
    (d / "secret").chmod(0o600)
    yield d
    shutil.rmtree(d)


@pytest.fixture
def own_rootfs(rootfs: Path, tmp_path: Path) -> Path:
    """A copy of the busybox rootfs that this test may plant symlinks in."""
    copy = tmp_path / "rootfs"
    shutil.copytree(rootfs, copy, symlinks=True, ignore=shutil.ignore_patterns("testdev"))
    return copy


@pytest.mark.parametrize("mode", ["default", "privileged", "idmap"])
def test_initctl_symlink_to_a_host_file_is_not_followed(
    conn, rootfs: Path, victim: Path, shell_of, mode: str
) -> None:
    xml = domain_xml("sysvtrap", rootfs, extra=IDMAP if mode == "idmap" else "",
                     privileged=mode == "privileged")  # fmt: skip
    dom = start(conn, xml)
    secret = victim / "secret"
    before = secret.read_bytes(), secret.stat().st_mtime_ns
    shell_of(dom).run(f"ln -sf {secret} /dev/initctl")
    with pytest.raises(OperationFailed, match="does not provide an initctl pipe"):
        dom.shutdown(mode="initctl")
    assert (secret.read_bytes(), secret.stat().st_mtime_ns) == before
    assert dom.is_active()


def test_initctl_symlink_to_a_container_file_is_refused(conn, rootfs: Path, shell_of) -> None:
    dom = start(conn, domain_xml("sysvfile", rootfs))
    sh = shell_of(dom)
    sh.run("echo keep > /dev/victim; ln -sf /dev/victim /dev/initctl")
    with pytest.raises(OperationFailed, match="does not provide an initctl pipe"):
        dom.shutdown(mode="initctl")
    assert sh.run("cat /dev/victim").strip() == "keep"  # not overwritten with a request


def test_initctl_symlink_inside_the_root_is_followed(conn, rootfs: Path, shell_of) -> None:
    # sysvinit's own layout: /dev/initctl -> /run/initctl (a FIFO)
    script = (
        "mkfifo /dev/.run-initctl; ln -s /dev/.run-initctl /dev/initctl; "
        "exec 3<>/dev/.run-initctl; echo ready; head -c 384 <&3 >/dev/null; exit 0"
    )
    dom = start(conn, domain_xml("sysvlink", rootfs, args=("-c", script)))
    shell_of(dom, shell=False).read_until("ready")
    dom.shutdown(mode="initctl")
    assert dom.wait_for_shutoff(30)
    assert dom.state() == (DomainState.SHUTOFF, 1)


@pytest.mark.parametrize("mode", ["privileged", "default"])
def test_file_mount_point_symlink_creates_no_host_file(
    conn, own_rootfs: Path, victim: Path, tmp_path: Path, mode: str
) -> None:
    source = tmp_path / "resolv.conf"
    source.write_text("nameserver 192.0.2.53\n")
    (own_rootfs / "etc/resolv.conf").symlink_to(victim / "created-by-container")
    bind = f"<filesystem><source dir='{source}'/><target dir='/etc/resolv.conf'/></filesystem>"
    xml = domain_xml("filetrap", own_rootfs, devices=bind, privileged=mode == "privileged")
    dom = conn.define_xml(xml)
    with pytest.raises(InternalError, match=r"cannot create mount point /etc/resolv\.conf"):
        dom.create()
    assert not (victim / "created-by-container").exists()
    assert not leftovers(conn)


@pytest.mark.parametrize("mode", ["privileged", "default"])
@pytest.mark.parametrize("link", ["absolute", "dotdot"])
def test_directory_mount_point_symlink_creates_no_host_directory(
    conn, own_rootfs: Path, victim: Path, tmp_path: Path, link: str, mode: str
) -> None:
    aim = victim / "made-by-container"
    if link == "absolute":
        (own_rootfs / "data").symlink_to(aim)
    else:
        (own_rootfs / "data").symlink_to("../" * 40 + str(aim).lstrip("/"))
    source = tmp_path / "data"
    source.mkdir()
    bind = f"<filesystem><source dir='{source}'/><target dir='/data/www'/></filesystem>"
    xml = domain_xml("dirtrap", own_rootfs, devices=bind, privileged=mode == "privileged")
    dom = conn.define_xml(xml)
    with pytest.raises(InternalError, match="cannot create mount point /data/www"):
        dom.create()
    assert not aim.exists()
    assert sorted(os.listdir(victim)) == ["secret"]
    assert not leftovers(conn)


def test_symlinked_mount_point_inside_the_root_is_followed(
    conn, own_rootfs: Path, tmp_path: Path, shell_of
) -> None:
    (own_rootfs / "srv").mkdir()
    (own_rootfs / "data").symlink_to("/srv")  # resolved as the container would see it
    source = tmp_path / "data"
    source.mkdir()
    (source / "marker").write_text("from the host\n")
    bind = f"<filesystem><source dir='{source}'/><target dir='/data'/></filesystem>"
    dom = start(conn, domain_xml("dirlink", own_rootfs, devices=bind))
    assert shell_of(dom).run("cat /srv/marker").strip() == "from the host"
