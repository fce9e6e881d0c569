"""rtnetlink through pyroute2's message classes, on a socket of our own.

pyroute2's `import pyroute2` loads every module it has (~90-140 ms here, asyncio
included) and its IPRoute runs each request through an event loop (~2 ms a
request); a container start sends a dozen. This module imports only the message
classes it needs (~20 ms: ifinfmsg, ifaddrmsg, rtmsg), encodes and decodes with
them, and talks over a plain NETLINK_ROUTE socket (~0.1 ms a request). A socket
made while the thread is in another network namespace stays bound to it: that is
how the container's side is configured from here.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import struct
import sys
import types
from collections.abc import Iterator
from typing import Any

NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE = 24
IFF_UP = 0x1
IFA_F_NODAD = 0x02  # an address usable at once (no duplicate address detection)
CLONE_NEWNET = 0x40000000
_HEADER = struct.Struct("=IHHII")  # struct nlmsghdr


def _message_classes() -> tuple[Any, Any, Any]:
    """ifinfmsg, ifaddrmsg, rtmsg, without running pyroute2/__init__ (which imports
    everything): a package stub whose first other use loads the real package."""
    if "pyroute2" not in sys.modules:
        spec = importlib.util.find_spec("pyroute2")
        if spec is None or spec.submodule_search_locations is None:
            raise ImportError("pyroute2 is not installed")
        stub = types.ModuleType("pyroute2")
        stub.__path__ = list(spec.submodule_search_locations)
        stub.__spec__ = spec

        def load_all(name: str) -> object:
            # `from pyroute2 import config`: a submodule, imported alone; any other name
            # (`from pyroute2 import IPRoute` elsewhere) runs the real package once
            try:
                return importlib.import_module(f"pyroute2.{name}")
            except ModuleNotFoundError:
                pass
            if spec.loader is None or stub.__dict__.get("_nsvirt_loaded"):
                raise AttributeError(name)
            stub.__dict__["_nsvirt_loaded"] = True
            spec.loader.exec_module(stub)
            return stub.__dict__[name]

        stub.__getattr__ = load_all  # type: ignore[method-assign]
        sys.modules["pyroute2"] = stub
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    return ifinfmsg, ifaddrmsg, rtmsg


ifinfmsg, ifaddrmsg, rtmsg = _message_classes()


class NetlinkError(OSError):
    """A request the kernel refused: errno, and what was asked."""

    def __init__(self, err: int, what: str) -> None:
        super().__init__(err, os.strerror(err))
        self.what = what

    def __str__(self) -> str:
        return f"{self.what}: {self.strerror}"


class Rtnl:
    """One NETLINK_ROUTE socket, in the network namespace it was made in."""

    def __init__(self, netns: str | None = None) -> None:
        if netns is None:
            self.sock = _socket()
        else:  # made inside that namespace, then this thread comes back
            home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            target = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(target)
                try:
                    self.sock = _socket()
                finally:
                    _setns(home)
            finally:
                os.close(target)
                os.close(home)
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ transport

    def _send(self, msg: Any, kind: int, flags: int) -> int:
        self.seq += 1
        msg["header"]["type"] = kind
        msg["header"]["flags"] = flags | NLM_F_REQUEST
        msg["header"]["sequence_number"] = self.seq
        msg.encode()
        self.sock.send(msg.data)
        return self.seq

    def _replies(self, seq: int, what: str) -> Iterator[tuple[int, bytes]]:
        """(type, bytes) of each reply to request `seq`, until the ack or the dump's end."""
        while True:
            data = self.sock.recv(1 << 16)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, kind, _, number, _ = _HEADER.unpack_from(data, offset)
                chunk = data[offset : offset + length]
                offset += (length + 3) & ~3
                if number != seq:
                    continue
                if kind == NLMSG_ERROR:
                    code = struct.unpack_from("=i", chunk, _HEADER.size)[0]
                    if code:
                        raise NetlinkError(-code, what)
                    return
                if kind == NLMSG_DONE:
                    return
                yield kind, chunk

    def request(self, msg: Any, kind: int, flags: int = 0, what: str = "netlink") -> None:
        """Send a change and wait for the kernel's acknowledgement (or its error)."""
        for _ in self._replies(self._send(msg, kind, flags | NLM_F_ACK), what):
            pass

    def query(
        self, msg: Any, kind: int, cls: Any, dump: bool = False, what: str = "netlink"
    ) -> list[Any]:
        """Send a get request; return the decoded replies."""
        out = []
        # a dump ends with NLMSG_DONE; a single get with the ack it is asked for
        flags = NLM_F_DUMP if dump else NLM_F_ACK
        for _, chunk in self._replies(self._send(msg, kind, flags), what):
            reply = cls(chunk)
            reply.decode()
            out.append(reply)
        return out

    # ------------------------------------------------------------ links

    def link(self, name: str) -> Any:
        """The link called `name` in this namespace, decoded (ENODEV if none)."""
        msg = ifinfmsg()
        msg["attrs"] = [("IFLA_IFNAME", name)]
        (link,) = self.query(msg, RTM_GETLINK, ifinfmsg, what=f"cannot find device {name}")
        return link

    def index(self, name: str) -> int:
        """The index of the link called `name` in this namespace (ENODEV if none)."""
        return int(self.link(name)["index"])

    def links(self) -> list[Any]:
        return self.query(ifinfmsg(), RTM_GETLINK, ifinfmsg, dump=True, what="listing devices")

    def add_link(
        self,
        name: str,
        kind: str,
        what: str,
        *,
        data: list | None = None,
        attrs: list | None = None,
    ) -> None:
        """Create a link of `kind` (veth, macvlan, bridge), refusing an existing name."""
        info: list = [("IFLA_INFO_KIND", kind)]
        if data:
            info.append(("IFLA_INFO_DATA", {"attrs": data}))
        msg = ifinfmsg()
        msg["attrs"] = [("IFLA_IFNAME", name), ("IFLA_LINKINFO", {"attrs": info}), *(attrs or [])]
        self.request(msg, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, what)

    def set_link(
        self, index: int, what: str, *, up: bool | None = None, attrs: list | None = None
    ) -> None:
        """Change a link: its attributes (name, MAC, MTU, master, namespace), up or down."""
        msg = ifinfmsg()
        msg["index"] = index
        if up is not None:
            msg["flags"] = IFF_UP if up else 0
            msg["change"] = IFF_UP
        msg["attrs"] = list(attrs or [])
        self.request(msg, RTM_NEWLINK, 0, what)

    def delete_link(self, index: int, what: str) -> None:
        msg = ifinfmsg()
        msg["index"] = index
        self.request(msg, RTM_DELLINK, 0, what)

    # ------------------------------------------------------------ addresses, routes

    def add_address(
        self, index: int, address: str, prefix: int, what: str, peer: str | None = None
    ) -> None:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        msg = ifaddrmsg()
        msg["family"], msg["prefixlen"], msg["index"] = family, prefix, index
        # IFA_LOCAL is this end; IFA_ADDRESS the peer of a point-to-point address
        msg["attrs"] = [("IFA_LOCAL", address), ("IFA_ADDRESS", peer or address)]
        if family == socket.AF_INET6:
            msg["attrs"].append(("IFA_FLAGS", IFA_F_NODAD))
        self.request(msg, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, what)

    def addresses(self) -> list[Any]:
        return self.query(ifaddrmsg(), RTM_GETADDR, ifaddrmsg, dump=True, what="listing addresses")

    def add_route(
        self, dst: str, prefix: int, gateway: str, index: int, what: str, metric: int | None = None
    ) -> None:
        family = socket.AF_INET6 if ":" in gateway else socket.AF_INET
        msg = rtmsg()
        msg["family"], msg["dst_len"] = family, prefix
        msg["table"], msg["proto"], msg["scope"], msg["type"] = (
            254,
            4,
            0,
            1,
        )  # main, static, universe, unicast
        msg["attrs"] = [("RTA_GATEWAY", gateway), ("RTA_OIF", index)]
        if prefix:
            msg["attrs"].append(("RTA_DST", dst))
        if metric is not None:
            msg["attrs"].append(("RTA_PRIORITY", metric))
        self.request(msg, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, what)


def _socket() -> socket.socket:
    sock = socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE
    )
    sock.bind((0, 0))
    return sock


def _setns(fd: int) -> None:
    from nsvirt.driver.runtime import syscalls as sc

    sc.setns(fd, CLONE_NEWNET, "cannot enter the container's network namespace")


def netns_of(pid: int) -> str:
    return f"/proc/{pid}/ns/net"
