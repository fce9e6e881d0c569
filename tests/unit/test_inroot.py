"""Paths inside a container's tree never resolve out of it (runtime/inroot.py).

No root needed: openat2(2) is an ordinary syscall. Each test plants the symlinks a
hostile container would and checks that nothing outside the tree is opened,
created or written.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from nsvirt.driver.runtime import inroot
from nsvirt.driver.runtime.syscalls import SyscallError


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[tuple[Path, Path, int]]:
    """(the container's root, a host directory beside it, an O_PATH fd of the root)."""
    root, host = tmp_path / "root", tmp_path / "host"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("inside\n")
    host.mkdir()
    (host / "secret").write_text("host secret\n")
    fd = inroot.open_root(str(root))
    yield root, host, fd
    os.close(fd)


def test_absolute_symlink_stays_inside(tree) -> None:
    root, host, fd = tree
    (root / "link").symlink_to("/etc/passwd")
    (root / "out").symlink_to(host / "secret")
    opened = inroot.open_in(fd, "/link", os.O_RDONLY)
    with os.fdopen(opened) as f:
        assert f.read() == "inside\n"  # the container's own /etc/passwd
    with pytest.raises(FileNotFoundError):  # <root>/<host>/secret does not exist
        inroot.open_in(fd, "/out", os.O_RDONLY)


def test_dotdot_stops_at_the_root(tree) -> None:
    root, host, fd = tree
    depth = len(root.parts)
    (root / "up").symlink_to("../" * depth + str(host.relative_to("/")) + "/secret")
    with pytest.raises(FileNotFoundError):
        inroot.open_in(fd, "/up", os.O_RDONLY)
    with pytest.raises(FileNotFoundError):
        inroot.open_in(fd, "/../../" + str(host.relative_to("/")) + "/secret", os.O_RDONLY)


def test_magic_links_are_not_followed() -> None:
    # /proc/PID/root, /proc/PID/fd/N jump anywhere, whatever the root: refused (ELOOP)
    fd = inroot.open_root("/")
    try:
        with pytest.raises(OSError) as e:
            inroot.open_in(fd, "/proc/self/root/etc/passwd", os.O_RDONLY)
        assert e.value.errno == errno.ELOOP
    finally:
        os.close(fd)


def test_make_dirs_never_creates_outside(tree) -> None:
    root, host, fd = tree
    (root / "data").symlink_to(host / "made-by-container")
    with pytest.raises(FileNotFoundError):
        inroot.make_dirs(fd, "/data/sub")
    assert not (host / "made-by-container").exists()
    made = inroot.make_dirs(fd, "/srv/www/html")
    os.close(made)
    assert (root / "srv/www/html").is_dir()


def test_make_file_refuses_a_dangling_symlink(tree) -> None:
    root, host, fd = tree
    (root / "etc/resolv.conf").symlink_to(host / "created")
    with pytest.raises(FileNotFoundError):
        inroot.make_file(fd, "/etc/resolv.conf")
    assert not (host / "created").exists()
    os.close(inroot.make_file(fd, "/etc/hosts"))
    assert (root / "etc/hosts").is_file()


def test_fifo_is_opened_only_if_it_is_a_fifo(tree) -> None:
    root, host, fd = tree
    (root / "dev").mkdir()
    (root / "dev/initctl").symlink_to("/etc/passwd")  # a regular file of the container
    with pytest.raises(SyscallError, match="not a FIFO"):
        inroot.reopen_fifo_for_writing(fd, "/dev/initctl")
    assert (root / "etc/passwd").read_text() == "inside\n"
    (root / "dev/initctl").unlink()
    os.mkfifo(root / "run-initctl")
    (root / "dev/initctl").symlink_to("/run-initctl")  # sysvinit's own layout: followed
    reader = os.open(root / "run-initctl", os.O_RDONLY | os.O_NONBLOCK)
    writer = inroot.reopen_fifo_for_writing(fd, "/dev/initctl")
    os.write(writer, b"hello")
    assert os.read(reader, 5) == b"hello"
    os.close(writer)
    os.close(reader)
    assert (host / "secret").read_text() == "host secret\n"
