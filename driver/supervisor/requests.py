"""The control socket: connections, and the table of request handlers.

Each connection is non-blocking with its own output buffer, so a client that
stops reading costs memory up to a bound, never the supervisor's attention. A
request that cannot be honoured — unknown, malformed, late, or failing — gets an
error reply; the container keeps running whatever a client sends.
"""

from __future__ import annotations

import time

from nsvirt.driver.runtime import sockets
from nsvirt.driver.runtime.cgroups import CgroupError
from nsvirt.driver.supervisor import protocol
from nsvirt.driver.supervisor.console import CLIENT_BUFFER, Console, log
from nsvirt.driver.supervisor.loop import EventLoop

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from nsvirt.driver.supervisor.controller import Controller

    Handler = Callable[["Controller", "Client", dict[str, Any]], "dict[str, Any] | str"]

MAX_PASSED_FDS = 4


class RequestError(Exception):
    """A request that cannot be honoured; str() is the reply's error."""


class Outcome:
    """What a handler did with its connection, when it did not reply at once."""

    LATER = "later"  # the controller replies when init has stopped (or restarted)
    STREAM = "stream"  # the connection now carries a console
    HOLD = "hold"  # the connection stays open; its end is the message (autodestroy)


class Client:
    """One connection to the control socket."""

    def __init__(self, server: ControlServer, sock: sockets.Socket) -> None:
        self.server = server
        self.sock = sock
        sock.setblocking(False)
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.fds: list[int] = []  # passed with a request (spawn: handshake and log)
        self.console: Console | None = None
        self.autodestroy = False  # destroy the container when this client goes away
        self.closing = False  # close once the output buffer is empty
        self.closed = False
        server.loop.on_read(sock.fileno(), self._readable)

    # ------------------------------------------------------------ output

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        self.outbuf += data
        self._writable()

    def reply(self, msg: dict[str, Any], close: bool = True) -> None:
        self.send(protocol.encode(msg))
        if close:
            self.close_when_sent()

    def backlog(self) -> int:
        return len(self.outbuf)

    def close_when_sent(self) -> None:
        self.closing = True
        self.server.loop.on_read(self.sock.fileno(), None)
        if not self.outbuf:
            self.close()

    def _writable(self) -> None:
        if self.closed:
            return
        try:
            sent = self.sock.send(self.outbuf) if self.outbuf else 0
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:  # the client went away
            return self.close()
        del self.outbuf[:sent]
        self.server.loop.on_write(self.sock.fileno(), self._writable if self.outbuf else None)
        if self.console is not None and len(self.outbuf) < CLIENT_BUFFER // 2:
            self.console.caught_up()
        if self.closing and not self.outbuf:
            self.close()

    # ------------------------------------------------------------ input

    def _readable(self) -> None:
        try:
            data, fds, _, _ = sockets.recv_fds(self.sock, 65536, MAX_PASSED_FDS)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, fds = b"", []
        self.fds += fds
        if not data:
            return self.server.gone(self)
        self.inbuf += data
        if self.console is not None:
            return self._console_input()
        if b"\n" not in self.inbuf:
            if len(self.inbuf) > protocol.MAX_LINE:
                self.reply({"ok": False, "error": "request line too long"})
            return
        line, _, rest = bytes(self.inbuf).partition(b"\n")
        self.inbuf = bytearray(rest)
        self.server.dispatch(self, line)

    def _console_input(self) -> None:
        assert self.console is not None
        try:
            frames = protocol.split_frames(self.inbuf)
        except protocol.ProtocolError:
            return self.close()
        for kind, payload in frames:
            try:
                if kind == protocol.FRAME_DATA:
                    self.console.feed(payload)
                elif kind == protocol.FRAME_WINSIZE:
                    rows, cols = protocol.decode_winsize(payload)
                    self.console.resize(rows, cols)
            except (ValueError, OSError) as e:  # a bad frame ends the session, not us
                log(f"console frame refused: {e}")
                return self.close()

    # ------------------------------------------------------------ end

    def detach_console(self) -> None:
        """Another client took the console over (--force): this session ends."""
        self.console = None
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.console is not None:
            self.console.detach(self)
            self.console = None
        self.server.loop.forget(self.sock.fileno())
        self.sock.close()
        self.server.clients.discard(self)
        for fd in self.fds:
            try:
                sockets.close(fd)
            except OSError:
                pass
        self.fds = []

    def take_fds(self) -> list[int]:
        fds, self.fds = self.fds, []
        return fds


class ControlServer:
    """Accepts connections on the control socket and dispatches their requests."""

    def __init__(self, loop: EventLoop, controller: Controller, listener: sockets.Socket) -> None:
        self.loop = loop
        self.controller = controller
        self.listener = listener
        listener.setblocking(False)
        self.clients: set[Client] = set()
        loop.on_read(listener.fileno(), self._accept)

    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        self.clients.add(Client(self, sock))

    def close(self) -> None:
        self.loop.forget(self.listener.fileno())
        self.listener.close()

    def gone(self, client: Client) -> None:
        """The client closed its end."""
        if client.autodestroy:
            self.controller.autodestroy_client_gone()
        client.close()

    def dispatch(self, client: Client, line: bytes) -> None:
        self.controller.faults.point("request")
        try:
            msg = protocol.decode(line)
            op = msg.get("op")
            handler = HANDLERS.get(op) if isinstance(op, str) else None
            if handler is None:
                raise RequestError(f"this supervisor does not know the request '{op}'")
            deadline = msg.get("deadline")
            if deadline is not None and time.monotonic() > _number(msg, "deadline"):
                log(f"dropped a request '{op}' that came after its deadline")
                raise RequestError(f"the request '{op}' arrived after its deadline: dropped")
            outcome = handler(self.controller, client, msg)
        except (protocol.ProtocolError, RequestError, CgroupError) as e:
            outcome = {"ok": False, "error": str(e)}
        except (KeyError, TypeError, ValueError) as e:
            outcome = {"ok": False, "error": f"malformed request: {e}"}
        except OSError as e:
            outcome = {"ok": False, "error": e.strerror or str(e)}
        if isinstance(outcome, dict):
            client.reply(outcome)


# ---------------------------------------------------------------- fields


def _number(msg: dict[str, Any], name: str, default: float | None = None) -> float:
    value = msg.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(f"malformed request: '{name}' must be a number")
    return float(value)


def _optional_number(msg: dict[str, Any], name: str) -> float | None:
    return None if msg.get(name) is None else _number(msg, name)


def _flag(msg: dict[str, Any], name: str) -> bool:
    value = msg.get(name, False)
    if not isinstance(value, bool):
        raise RequestError(f"malformed request: '{name}' must be true or false")
    return value


def _text(msg: dict[str, Any], name: str, default: str) -> str:
    value = msg.get(name) or default
    if not isinstance(value, str):
        raise RequestError(f"malformed request: '{name}' must be a string")
    return value


# ---------------------------------------------------------------- handlers


def _state(ctl: Controller, client: Client, msg: dict[str, Any]) -> dict[str, Any]:
    """The supervisor's run state: how a client recovers a lost or corrupt state file."""
    return {"ok": True, "state": ctl.run_state().to_dict()}


def _destroy(ctl: Controller, client: Client, msg: dict[str, Any]) -> str:
    ctl.wait_for_stop(client)
    ctl.destroy()
    return Outcome.LATER


def _shutdown(ctl: Controller, client: Client, msg: dict[str, Any]) -> dict[str, Any] | str:
    op = msg["op"]
    mode = _text(msg, "mode", "signal")
    timeout = _optional_number(msg, "timeout")
    if mode not in ("signal", "initctl"):
        raise RequestError(f"unsupported shutdown mode '{mode}'")
    ctl.ask_init_to_stop(op, mode, timeout)
    if _flag(msg, "wait"):
        ctl.wait_for_stop(client)
        return Outcome.LATER
    return {"ok": True}


def _suspend(ctl: Controller, client: Client, msg: dict[str, Any]) -> dict[str, Any]:
    ctl.suspend()
    return {"ok": True}


def _resume(ctl: Controller, client: Client, msg: dict[str, Any]) -> dict[str, Any]:
    ctl.resume()
    return {"ok": True}


def _console(ctl: Controller, client: Client, msg: dict[str, Any]) -> dict[str, Any] | str:
    port = int(_number(msg, "port", 0))
    if not 0 <= port < len(ctl.consoles):
        return {"ok": False, "error": f"internal error: cannot find console device '{port}'"}
    console = ctl.consoles[port]
    if console.viewer is not None and not _flag(msg, "force"):
        busy = "operation failed: Active console session exists for this domain"
        return {"ok": False, "error": busy}
    client.reply({"ok": True, "tty": console.tty}, close=False)
    client.console = console
    console.attach(client)
    return Outcome.STREAM


def _spawn(ctl: Controller, client: Client, msg: dict[str, Any]) -> dict[str, Any]:
    from nsvirt.driver.supervisor import forkserver

    fds = client.take_fds()
    try:
        if len(fds) != 2:
            raise RequestError("spawn needs a handshake fd and a log fd")
        if not isinstance(msg.get("config"), dict):
            raise RequestError("malformed request: 'config' must be an object")
        pid = forkserver.spawn(msg["config"], handshake=fds[0], log_fd=fds[1])
    finally:
        for fd in fds:
            sockets.close(fd)
    return {"ok": True, "pid": pid}


def _sysinfo(ctl: Controller, client: Client, msg: dict[str, Any]) -> dict[str, Any]:
    """An entered command's sysinfo listener (runtime/enter.py), to be answered here."""
    fds = client.take_fds()
    if len(fds) != 1:
        for fd in fds:
            sockets.close(fd)
        raise RequestError("sysinfo needs the listener's fd")
    ctl.take_entered_listener(fds[0])
    return {"ok": True}


def _interfaces(ctl: Controller, client: Client, msg: dict[str, Any]) -> dict[str, Any]:
    """A client plugged or unplugged an interface: what the run holds now."""
    found = msg.get("interfaces")
    if not isinstance(found, list) or not all(isinstance(i, dict) for i in found):
        raise RequestError("malformed request: 'interfaces' must be a list of objects")
    ctl.set_interfaces(found)
    return {"ok": True}


def _device(ctl: Controller, client: Client, msg: dict[str, Any]) -> dict[str, Any]:
    """A client attaches (or detaches) a device: its rules in (or out of) the cgroup's,
    its nodes in (or out of) those a restart makes."""
    rules, nodes = msg.get("rules"), msg.get("nodes")
    if not isinstance(msg.get("allow"), bool) or not isinstance(rules, list) or not (
            isinstance(nodes, list)):  # fmt: skip
        raise RequestError("malformed request: 'allow', 'rules' and 'nodes' are needed")
    for rule in rules:
        _check(rule, {"type": str, "major": int, "minor": int, "access": str})
        if not set(rule["access"]) <= set("rwm"):
            raise RequestError("malformed request: a rule's access is of r, w and m")
    for node in nodes:
        _check(node, {"name": str, "type": str, "major": int, "minor": int, "mode": int,
                      "source": str})  # fmt: skip
        if ".." in node["name"].split("/") or node["name"].startswith("/"):
            raise RequestError("malformed request: a node's name is a path under /dev")
    ctl.change_devices(rules, nodes, msg["allow"])
    return {"ok": True}


def _check(item: object, fields: dict[str, type]) -> None:
    shaped = isinstance(item, dict) and set(item) == set(fields)
    if not shaped or not all(isinstance(item[k], t) for k, t in fields.items()) or (
            item["type"] not in ("b", "c")):  # fmt: skip
        raise RequestError(f"malformed request: expected {', '.join(fields)} of a device")


def _autodestroy(ctl: Controller, client: Client, msg: dict[str, Any]) -> str:
    client.autodestroy = True
    client.reply({"ok": True}, close=False)
    return Outcome.HOLD


HANDLERS: dict[str, Handler] = {
    "state": _state,
    "destroy": _destroy,
    "shutdown": _shutdown,
    "reboot": _shutdown,
    "suspend": _suspend,
    "resume": _resume,
    "console": _console,
    "spawn": _spawn,
    "autodestroy": _autodestroy,
    "interfaces": _interfaces,
    "sysinfo": _sysinfo,
    "device": _device,
}
