"""Device nodes a user namespace's init cannot make: the host devices a domain passes
in, for a default (unprivileged) domain.

mknod needs CAP_MKNOD over the host, and the host's own node (root:disk 0660, say)
is shut to a root inside that is an unprivileged host uid. So the supervisor, as
host root, makes the nodes on a small tmpfs of its own (detached, never seen on
the host), owned by the container's root, with the host nodes' modes, and hands
it to init, which mounts it on its /dev for a moment and binds each node into
place (runtime/mounts.py's populate_dev). The tmpfs is made in the host's user
namespace, so its nodes open (the device cgroup decides which); it lives as
long as those binds.
"""

from __future__ import annotations

import os
import stat

from nsvirt.driver.runtime import fsmount

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any


def holder(nodes: Sequence[Any], uid: int, gid: int) -> int:
    """A detached tmpfs holding a node per DevNode (named 0, 1, … in their order) of
    its numbers and mode, owned by uid:gid; the caller owns the returned fd."""
    fd = fsmount.new_tmpfs("the host devices' nodes", uid, gid)
    umask = os.umask(0)  # the host node's mode, as it is
    try:
        for i, node in enumerate(nodes):
            kind = stat.S_IFCHR if node.type == "c" else stat.S_IFBLK
            os.mknod(str(i), node.mode | kind, os.makedev(node.major, node.minor), dir_fd=fd)
            os.chown(str(i), uid, gid, dir_fd=fd, follow_symlinks=False)
    except BaseException:
        os.close(fd)
        raise
    finally:
        os.umask(umask)
    return fd
