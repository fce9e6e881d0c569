"""Network devices without a netlink library: what init needs before exec."""

from __future__ import annotations

import fcntl
import struct

from nsvirt.driver.runtime import sockets
from nsvirt.driver.runtime.syscalls import SyscallError

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
_IFREQ = struct.Struct("16sH22x")  # struct ifreq: name, then ifr_flags


def loopback_up() -> None:
    """Bring `lo` up in the calling process's (new) network namespace."""
    try:
        with sockets.Socket(sockets.AF_INET, sockets.SOCK_DGRAM) as s:
            flags = _IFREQ.unpack(fcntl.ioctl(s, SIOCGIFFLAGS, _IFREQ.pack(b"lo", 0)))[1]
            fcntl.ioctl(s, SIOCSIFFLAGS, _IFREQ.pack(b"lo", flags | IFF_UP))
    except OSError as e:
        raise SyscallError("cannot bring up the loopback device lo", e.errno or 5) from None
