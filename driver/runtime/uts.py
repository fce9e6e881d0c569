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


def hostname_of(pid: int) -> str:
    """The hostname of `pid`'s UTS namespace: read by a thread that joins it (setns of
    a UTS namespace moves the calling thread alone), so nothing forks and this
    process's own namespace stays as it is."""
    import os
    import threading

    from nsvirt.driver.runtime import syscalls

    fd = os.open(f"/proc/{pid}/ns/uts", os.O_RDONLY | os.O_CLOEXEC)
    found: list[str | BaseException] = []

    def look() -> None:
        try:
            syscalls.setns(fd, syscalls.CLONE_NEWUTS, "cannot enter the UTS namespace")
            found.append(os.uname().nodename)
        except BaseException as e:  # handed to the caller
            found.append(e)

    try:
        reader = threading.Thread(target=look, name="uts-reader")
        reader.start()
        reader.join()
    finally:
        os.close(fd)
    if isinstance(found[0], BaseException):
        raise found[0]
    return found[0]
