"""In a chroot, `/` is not a mount point and cannot be made private: the start says
what is wrong and what to do (issue 9, item 16), instead of a bare EINVAL."""

from __future__ import annotations

import os
from pathlib import Path

from nsvirt.driver.runtime import mounts
from nsvirt.driver.runtime import syscalls as sc


def test_making_root_private_in_a_chroot_explains_itself(tmp_path: Path) -> None:
    jail = tmp_path / "jail"
    (jail / "proc").mkdir(parents=True)
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the chroot lives in a child with a mount namespace of its own
        os.close(reader)
        message = b"no error"
        try:
            sc.unshare(sc.CLONE_NEWNS)
            sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
            os.chroot(jail)
            os.chdir("/")
            sc.mount("proc", "/proc", "proc")  # what init has: /proc, but / no mount point
            mounts.make_root_private()
        except OSError as e:
            message = str(e).encode()
        finally:
            os.write(writer, message)
            os._exit(0)
    os.close(writer)
    message = os.read(reader, 4096).decode()
    os.close(reader)
    os.waitpid(pid, 0)
    assert message.startswith("failed to make / private: / is not a mount point, as in a chroot")
    assert "mount --bind DIR DIR" in message
