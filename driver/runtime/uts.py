"""The container's UTS namespace: its hostname."""

from __future__ import annotations

from nsvirt.driver.runtime import sockets
from nsvirt.driver.runtime.syscalls import SyscallError


def set_hostname(name: str) -> None:
    """Set the hostname of the calling process's UTS namespace."""
    try:
        sockets.sethostname(name)
    except OSError as e:
        raise SyscallError(f"cannot set the hostname to {name}", e.errno or 22) from None
