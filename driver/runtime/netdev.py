"""Network devices without a netlink library: what init needs before exec, and
what the supervisor gives back at the end (it never imports pyroute2)."""

from __future__ import annotations

import errno
import fcntl
import os
import struct

from nsvirt.driver.runtime import sockets
from nsvirt.driver.runtime import syscalls as sc
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


_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, seq, pid
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_RTA = struct.Struct("=HH")
_NLMSGERR = struct.Struct("=i")
_RTM_NEWLINK, _NLMSG_ERROR = 16, 2
_NLM_F_REQUEST, _NLM_F_ACK = 0x1, 0x4
_IFLA_IFNAME, _IFLA_NET_NS_FD = 3, 28
_NETLINK_ROUTE = 0


def _attr(kind: int, data: bytes) -> bytes:
    padded = data + b"\0" * (-len(data) % 4)
    return _RTA.pack(_RTA.size + len(data), kind) + padded


def move_home(netns_fd: int, links: list[tuple[int, str]]) -> list[str]:
    """Move the links (index, name) from the network namespace `netns_fd` into this
    process's own (where they came from), by index and with their own names again;
    return what could not be moved, and why."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        sc.setns(netns_fd, sc.CLONE_NEWNET, "cannot enter the container's network namespace")
        try:  # a netlink socket stays in the namespace it was made in
            sock = sockets.Socket(16, 3, _NETLINK_ROUTE)  # AF_NETLINK, SOCK_RAW
        finally:
            sc.setns(home, sc.CLONE_NEWNET, "cannot return to the host's network namespace")
        failed = []
        with sock:
            for seq, (index, name) in enumerate(links, 1):
                body = _IFINFOMSG.pack(0, 0, index, 0, 0)
                body += _attr(_IFLA_IFNAME, name.encode() + b"\0")
                body += _attr(_IFLA_NET_NS_FD, struct.pack("=I", home))
                flags = _NLM_F_REQUEST | _NLM_F_ACK
                head = _NLMSGHDR.pack(_NLMSGHDR.size + len(body), _RTM_NEWLINK, flags, seq, 0)
                sock.sendall(head + body)
                err = _ack(sock)
                if err:
                    failed.append(f"{name}: {os.strerror(err)}")
        return failed
    finally:
        os.close(home)


def _ack(sock: sockets.Socket) -> int:
    """The errno of the kernel's answer to the last request (0: done)."""
    sock.settimeout(5.0)  # the kernel answers at once; never wait on it for long
    try:
        reply = sock.recv(65536)
    except OSError as e:
        return e.errno or errno.EIO
    if len(reply) >= _NLMSGHDR.size + _NLMSGERR.size:
        _, kind, _, _, _ = _NLMSGHDR.unpack_from(reply)
        if kind == _NLMSG_ERROR:
            return -_NLMSGERR.unpack_from(reply, _NLMSGHDR.size)[0]
    return 0
