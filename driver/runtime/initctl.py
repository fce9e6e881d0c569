"""Ask a sysvinit-style init to change runlevel through its /dev/initctl FIFO.

The FIFO is looked up inside the container's root (runtime/inroot.py): a
container that makes /dev/initctl a symlink to a host file gets its own file
refused, and the host's is never reached.
"""

from __future__ import annotations

import os

from nsvirt.driver.runtime import inroot
from nsvirt.driver.runtime.syscalls import SyscallError

INIT_MAGIC = 0x03091969
INIT_CMD_RUNLVL = 1
REQUEST_SIZE = 384  # sizeof(struct init_request)


class NoInitctl(LookupError):
    """The container has no initctl FIFO (or something else in its place)."""


def request(runlevel: str) -> bytes:
    """struct init_request: magic, cmd, runlevel, sleeptime, then zeros."""
    req = bytearray(REQUEST_SIZE)
    req[0:4] = INIT_MAGIC.to_bytes(4, "little")
    req[4:8] = INIT_CMD_RUNLVL.to_bytes(4, "little")
    req[8:12] = ord(runlevel).to_bytes(4, "little")
    return bytes(req)


def set_runlevel(init_pid: int, runlevel: str) -> None:
    """Send the request; raises NoInitctl, or OSError (ENXIO: nobody reads the FIFO)."""
    root = inroot.open_root(f"/proc/{init_pid}/root")
    try:
        try:
            fd = inroot.reopen_fifo_for_writing(root, "/dev/initctl")
        except (FileNotFoundError, SyscallError):
            raise NoInitctl("Container does not provide an initctl pipe") from None
    finally:
        os.close(root)
    try:
        os.write(fd, request(runlevel))  # under PIPE_BUF: all or nothing, never blocks
    finally:
        os.close(fd)
