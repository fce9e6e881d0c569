"""The per-container supervisor: `python -m nsvirt.driver.supervisor --handshake-fd N`.

Reads its configuration (the launch plan and the run paths) as JSON on stdin,
starts the container, answers `running {...}` or `error: reason` on the
handshake fd, then owns the container: it serves the control socket, relays
the console, reaps init and tears everything down when the container stops.
Its pid is the domain's id.
"""

from __future__ import annotations

import gc
import json
import os
import select
import selectors
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from nsvirt.driver import fileio
from nsvirt.driver.runtime import inroot
from nsvirt.driver.runtime import syscalls as sc
from nsvirt.driver.runtime.cgroups import CgroupError, backend_for
from nsvirt.driver.supervisor import child, faults, planview, protocol
from nsvirt.driver.supervisor.signature import code_signature

STATE_FORMAT = 1  # as nsvirt.driver.STATE_FORMAT

START_TIMEOUT = 30.0  # a bound on each handshake read, not a delay
REPLAY_BYTES = 16384  # console output kept for the next client to attach


def log(msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} supervisor[{os.getpid()}]: {msg}", flush=True)


class RequestError(Exception):
    """A control request that cannot be honoured; str() is the reply's error."""


class Console:
    def __init__(self, master: int, slave: int, tty: str) -> None:
        self.master = master
        self.slave = slave
        self.tty = tty
        self.client: socket.socket | None = None
        self.pending = bytearray()  # output nobody has seen yet


class Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.console: Console | None = None
        self.autodestroy = False  # destroy the container when this client goes away
        self.fds: list[int] = []  # passed with a request (spawn: handshake and log)


class Supervisor:
    def __init__(self, plan: Any, config: dict, handshake: socket.socket) -> None:
        self.plan = plan
        self.config = config
        self.handshake: socket.socket | None = handshake
        self.paths = {k: Path(v) for k, v in config["paths"].items()}
        self.cgroup = backend_for(plan.facts, plan.cgroup_partition, plan.cgroup_name)
        self.consoles: list[Console] = []
        self.init_pid = 0
        self.state = "running"
        self.reason = "booted"
        self.intent = ""  # destroy | shutdown | reboot: what a stop of init means
        self.deadline: float | None = None
        self.waiting: list[socket.socket] = []  # clients that get a reply when init stops
        self.sel = selectors.DefaultSelector()
        self.clients: dict[int, Client] = {}
        self.started_at = time.time()
        faults.configure(config.get("fault"))

    # ------------------------------------------------------------ start

    def start(self) -> None:
        """Bring the container up; raise with the reason on any failure."""
        if not self.consoles:  # a restart reuses the cgroup and the consoles
            self.cgroup.create(self.plan.limits, self.plan.device_rules)
        faults.point("cgroup")
        if not self.consoles:
            for _ in range(self.plan.consoles):
                master, slave = os.openpty()
                os.set_blocking(master, False)
                tty = os.ttyname(slave)
                if self.plan.uid_map:  # the container's root must be able to open it
                    os.fchown(
                        slave, self._host_id(self.plan.uid_map), self._host_id(self.plan.gid_map)
                    )
                self.consoles.append(Console(master, slave, tty))
        if self.plan.root == "/":
            os.makedirs(self.paths["mountpoint"], mode=0o700, exist_ok=True)
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1, what="becoming a subreaper")
        ours, theirs = socket.socketpair()  # both CLOEXEC: init's exec closes its end
        init_args = (
            str(self.paths["mountpoint"]),
            [c.tty for c in self.consoles],
            self.cgroup.describe(),
        )
        pid = os.fork()
        if pid == 0:
            ours.close()
            child.intermediate(self.plan, theirs, self.cgroup, init_args)
        theirs.close()
        try:
            self._handshake_with_child(ours, pid)
        finally:
            ours.close()

    @staticmethod
    def _host_id(maps: tuple) -> int:
        return next(m.target for m in maps if m.start == 0)

    def _handshake_with_child(self, sock: socket.socket, intermediate: int) -> None:
        faults.point("forked")
        line = self._read(sock)
        if line == "userns":
            self._write_id_maps(intermediate)
            faults.point("mapped")
            sock.sendall(b"mapped\n")
            line = self._read(sock)
        try:
            os.waitpid(intermediate, 0)
        except ChildProcessError:
            pass
        if not line.startswith("init "):
            raise child.StartError(
                line.removeprefix("error: ") or "the container's namespaces could not be set up"
            )
        self.init_pid = int(line.split()[1])
        faults.point("init")
        sock.sendall(b"continue\n")
        faults.point("continue")
        line = self._read(sock)  # EOF: init's exec closed its end, so init is running
        if line:
            self._reap_init_after_failure()
            raise child.StartError(line.removeprefix("error: "))

    def _read(self, sock: socket.socket) -> str:
        return protocol.read_line(sock, START_TIMEOUT).decode(errors="replace").strip()

    def _write_id_maps(self, pid: int) -> None:
        for name, maps in (("uid_map", self.plan.uid_map), ("gid_map", self.plan.gid_map)):
            text = "".join(f"{m.start} {m.target} {m.count}\n" for m in maps)
            try:
                with open(f"/proc/{pid}/{name}", "w") as f:
                    f.write(text)
            except OSError as e:
                raise child.StartError(f"cannot write {name}: {e.strerror}") from None

    def _reap_init_after_failure(self) -> None:
        try:
            os.waitpid(self.init_pid, 0)
        except ChildProcessError:
            pass
        self.init_pid = 0

    # ------------------------------------------------------------ state file

    def write_state(self) -> None:
        state = {
            "format": STATE_FORMAT,
            "name": self.plan.name,
            "uuid": self.plan.uuid,
            "state": self.state,
            "reason": self.reason,
            "supervisor_pid": os.getpid(),
            "supervisor_start": _start_time(os.getpid()),
            "init_pid": self.init_pid,
            "consoles": [c.tty for c in self.consoles],
            "cgroup": self.cgroup.describe(),
            "cgroup_partition": self.plan.cgroup_partition,
            "cgroup_name": self.plan.cgroup_name,
            "facts": self.plan.facts,
            "persistent": self.config.get("persistent", True),
            "started_at": self.started_at,
            "protocol": protocol.VERSION,
            "code": code_signature(),  # who may be asked to fork a new supervisor
        }
        fileio.write_atomic(
            self.paths["state"], json.dumps(state, indent=1).encode(), durable=False
        )

    # ------------------------------------------------------------ main

    def run(self) -> int:
        try:
            self.start()
            self.write_state()
            self.listener = protocol.bind(self.paths["socket"])
        except Exception as e:
            log(f"start failed: {e}")
            self.teardown(final_reason=None)
            self._answer_handshake(f"error: {e}")
            return 1
        log(f"started {self.plan.name}: init pid {self.init_pid}")
        faults.point("running")
        self._answer_handshake(
            "running "
            + json.dumps(
                {
                    "pid": os.getpid(),
                    "init_pid": self.init_pid,
                    "consoles": [c.tty for c in self.consoles],
                }
            )
        )
        return self.loop()

    def _answer_handshake(self, text: str) -> None:
        if self.handshake is not None:
            try:
                self.handshake.sendall(text.encode() + b"\n")
            except OSError:
                pass  # the client went away; the run files tell the story
            self.handshake.close()
            self.handshake = None

    def loop(self) -> int:
        rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wfd)
        for sig in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(sig, lambda *_: None)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self.sel.register(rfd, selectors.EVENT_READ, "signal")
        self.sel.register(self.listener, selectors.EVENT_READ, "accept")
        for c in self.consoles:
            self.sel.register(c.master, selectors.EVENT_READ, c)
        self._reap()  # init may have died before the handler was in place
        # what exists now stays put: supervisors forked from this one share it (COW)
        gc.freeze()
        while True:
            timeout = None if self.deadline is None else max(0.0, self.deadline - time.monotonic())
            events = self.sel.select(timeout)
            if not events and self.deadline is not None and time.monotonic() >= self.deadline:
                self._deadline_passed()
            for key, _ in events:
                if key.data == "signal":
                    if signal.SIGTERM in self._drain(rfd) and self.intent != "destroy":
                        log("SIGTERM: destroying the container")
                        self.intent = "destroy"
                        self.cgroup.kill_all()
                    self._reap()
                elif key.data == "accept":
                    self._accept()
                elif isinstance(key.data, Console):
                    self._console_output(key.data)
                elif isinstance(key.data, Client):
                    self._client_input(key.data)

    @staticmethod
    def _drain(fd: int) -> set[int]:
        """Empty the signal wakeup pipe; return the signal numbers it carried."""
        seen: set[int] = set()
        try:
            while chunk := os.read(fd, 512):
                seen.update(chunk)
        except BlockingIOError:
            pass
        return seen

    # ------------------------------------------------------------ init's end

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.init_pid:
                self._init_exited(status)

    def _init_exited(self, status: int) -> None:
        oom = self._oom_killed()
        if os.WIFSIGNALED(status):
            how = f"killed by signal {os.WTERMSIG(status)}"
        else:
            how = f"exited with status {os.WEXITSTATUS(status)}"
        log(f"init {self.init_pid} {how}{' (OOM kill)' if oom else ''}")
        self.init_pid = 0
        if self.intent == "destroy":
            return self.stop("destroyed")
        if self.intent == "reboot":
            return self.restart()
        if oom:
            return self._act(self.plan.on_crash, "crashed")
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if sig == signal.SIGHUP:  # reboot(2) inside the container: restart
                return self._act(self.plan.on_reboot, "shutdown")
            if sig == signal.SIGINT:  # reboot(2) with halt or poweroff
                return self._act(self.plan.on_poweroff, "shutdown")
            if self.intent == "shutdown":
                return self._act(self.plan.on_poweroff, "shutdown")
            return self._act(self.plan.on_crash, "crashed")
        return self._act(self.plan.on_poweroff, "shutdown")

    def _oom_killed(self) -> bool:
        try:
            return self.cgroup.oom_kills() > 0
        except (OSError, ValueError):
            return False

    def _act(self, action: str, reason: str) -> None:
        """Apply on_poweroff / on_reboot / on_crash: restart, or stop for good."""
        if action in ("restart", "rename-restart", "coredump-restart"):
            return self.restart()
        return self.stop(reason)

    def restart(self) -> None:
        """Start the container again in the same supervisor, cgroup and consoles."""
        log("restarting the container")
        self.intent = ""
        self.deadline = None
        self.cgroup.kill_all()
        try:
            self.start()
        except Exception as e:
            log(f"restart failed: {e}")
            return self.stop("failed")
        self.state, self.reason = "running", "booted"
        self.write_state()
        self._reply_waiting({"ok": True, "init_pid": self.init_pid})

    def stop(self, reason: str) -> None:
        log(f"stopping: {reason}")
        self.teardown(final_reason=reason)
        self._reply_waiting({"ok": True})
        sys.exit(0)

    def _reply_waiting(self, reply: dict) -> None:
        for sock in self.waiting:
            try:
                sock.sendall(protocol.encode(reply))
                sock.close()
            except OSError:
                pass
        self.waiting = []

    def teardown(self, final_reason: str | None) -> None:
        """Remove every trace of the running container. Idempotent."""
        try:
            self.cgroup.kill_all()
        except (CgroupError, OSError) as e:
            log(f"kill: {e}")
        if self.init_pid:
            self._reap_init_after_failure()
        try:
            self.cgroup.destroy()
        except (CgroupError, OSError) as e:
            log(f"cgroup removal: {e}")
        for c in self.consoles:
            for fd in (c.master, c.slave):
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.consoles = []
        for key in ("socket", "live_xml"):
            fileio.remove(self.paths[key], durable=False)
        try:
            os.rmdir(self.paths["mountpoint"])
        except OSError:
            pass
        if final_reason is None:
            return
        if self.config.get("persistent", True):
            final = {
                "format": STATE_FORMAT,
                "name": self.plan.name,
                "state": "shutoff",
                "reason": final_reason,
            }
            fileio.write_atomic(self.paths["state"], json.dumps(final).encode(), durable=False)
        else:
            fileio.remove(self.paths["state"], durable=False)

    def _deadline_passed(self) -> None:
        """A shutdown or reboot was not honoured in time: kill the whole container."""
        log(f"{self.intent} timed out: killing the container")
        self.deadline = None
        if self.intent == "shutdown":
            self.intent = "destroy"
        self.cgroup.kill_all()

    # ------------------------------------------------------------ control socket

    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        sock.setblocking(False)
        c = Client(sock)
        self.clients[sock.fileno()] = c
        self.sel.register(sock, selectors.EVENT_READ, c)

    def _drop(self, c: Client) -> None:
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        self.clients.pop(c.sock.fileno(), None)
        if c.console is not None and c.console.client is c.sock:
            c.console.client = None
        if c.sock not in self.waiting:
            c.sock.close()
        for fd in c.fds:
            os.close(fd)
        c.fds = []

    def _client_input(self, c: Client) -> None:
        try:
            data, fds, _, _ = socket.recv_fds(c.sock, 65536, 4)
        except BlockingIOError:
            return
        except OSError:
            data, fds = b"", []
        c.fds += fds
        if not data:
            if c.autodestroy and self.intent != "destroy":
                log("the autodestroy client went away: destroying the container")
                self.intent = "destroy"
                self.cgroup.kill_all()
            return self._drop(c)
        c.buf += data
        if c.console is not None:
            return self._console_input(c)
        if b"\n" not in c.buf:
            if len(c.buf) > protocol.MAX_LINE:
                self._drop(c)
            return
        line, _, rest = bytes(c.buf).partition(b"\n")
        c.buf = bytearray(rest)
        try:
            reply = self._handle(protocol.decode(line), c)
        except (protocol.ProtocolError, CgroupError, RequestError) as e:
            reply = {"ok": False, "error": str(e)}
        except OSError as e:
            reply = {"ok": False, "error": e.strerror or str(e)}
        if reply is None:  # answered later (when init stops) or switched to console
            return
        self._send(c.sock, protocol.encode(reply))
        if c.console is None:
            self._drop(c)

    def _send(self, sock: socket.socket, data: bytes) -> None:
        sock.setblocking(True)
        sock.settimeout(5.0)  # a client that stops reading loses its session, not us
        try:
            sock.sendall(data)
        except OSError:
            pass
        finally:
            sock.setblocking(False)

    def _handle(self, msg: dict, c: Client) -> dict | None:
        op = msg.get("op")
        if op == "ping":
            return {"ok": True, "state": self.state, "init_pid": self.init_pid}
        if op == "destroy":
            self.intent = "destroy"
            self._wait_for_stop(c)
            self.cgroup.kill_all()
            return None
        if op in ("shutdown", "reboot"):
            return self._shutdown(op, msg, c)
        if op == "suspend":
            self.cgroup.freeze()
            self.state, self.reason = "paused", "user"
            self.write_state()
            return {"ok": True}
        if op == "resume":
            self.cgroup.thaw()
            self.state, self.reason = "running", "unpaused"
            self.write_state()
            return {"ok": True}
        if op == "console":
            return self._attach_console(msg, c)
        if op == "spawn":
            return self._spawn(msg, c)
        if op == "autodestroy":
            c.autodestroy = True
            self._send(c.sock, protocol.encode({"ok": True}))
            return None  # the connection stays open; its end is the signal
        return {"ok": False, "error": f"this supervisor does not know the request '{op}'"}

    def _spawn(self, msg: dict, c: Client) -> dict:
        """Fork a supervisor for another container: no interpreter to start, and the
        pages of this one are shared until written (DESIGN.md §8)."""
        if len(c.fds) != 2:
            return {"ok": False, "error": "spawn needs a handshake fd and a log fd"}
        handshake, log_fd = c.fds
        c.fds = []
        pid = os.fork()
        if pid == 0:
            _become_new_supervisor(msg["config"], handshake, log_fd)
        os.close(handshake)
        os.close(log_fd)
        return {"ok": True, "pid": pid}

    def _wait_for_stop(self, c: Client) -> None:
        self.sel.unregister(c.sock)
        self.clients.pop(c.sock.fileno(), None)
        c.sock.setblocking(True)
        self.waiting.append(c.sock)

    def _shutdown(self, op: str, msg: dict, c: Client) -> dict | None:
        mode = msg.get("mode") or "signal"
        if self.state == "paused":
            self.cgroup.thaw()  # a frozen init cannot react
        if mode == "initctl":
            self._initctl(0 if op == "shutdown" else 6)
        elif mode == "signal":
            sig = getattr(signal, self.plan.shutdown_signal, None) or _rtmin_plus(
                self.plan.shutdown_signal
            )
            os.kill(self.init_pid, sig)
        else:
            return {"ok": False, "error": f"unsupported shutdown mode '{mode}'"}
        self.intent = op
        timeout = msg.get("timeout")
        if timeout is not None and timeout >= 0:
            self.deadline = time.monotonic() + float(timeout)
        if msg.get("wait"):
            self._wait_for_stop(c)
            return None
        return {"ok": True}

    def _initctl(self, runlevel: int) -> None:
        """Ask a sysvinit-style init through its /dev/initctl fifo."""
        request = bytearray(384)  # struct init_request: magic, cmd=1 (runlevel), runlevel
        request[0:4] = (0x03091969).to_bytes(4, "little")
        request[4:8] = (1).to_bytes(4, "little")
        request[8:12] = (ord(str(runlevel))).to_bytes(4, "little")
        # resolved inside the container's root: its symlinks never lead out of it
        try:
            root = inroot.open_root(f"/proc/{self.init_pid}/root")
        except OSError as e:
            raise RequestError(f"cannot reach the container's root: {e.strerror}") from None
        try:
            fd = inroot.reopen_fifo_for_writing(root, "/dev/initctl")
        except (FileNotFoundError, sc.SyscallError):
            raise RequestError("Container does not provide an initctl pipe") from None
        except OSError as e:  # ENXIO: nobody reads the pipe; ELOOP: a symlink loop
            raise RequestError(f"cannot write to the container's initctl pipe: "
                               f"{e.strerror}") from None  # fmt: skip
        finally:
            os.close(root)
        try:
            os.write(fd, bytes(request))  # under PIPE_BUF: all or nothing, never blocks
        finally:
            os.close(fd)

    # ------------------------------------------------------------ console relay

    def _attach_console(self, msg: dict, c: Client) -> dict | None:
        port = int(msg.get("port") or 0)
        if not 0 <= port < len(self.consoles):
            return {"ok": False, "error": f"internal error: cannot find console device '{port}'"}
        console = self.consoles[port]
        if console.client is not None and not msg.get("force"):
            return {
                "ok": False,
                "error": "operation failed: Active console session exists for this domain",
            }
        if console.client is not None:  # --force takes the console over
            old = self.clients.get(console.client.fileno())
            if old is not None:
                self._drop(old)
        console.client = c.sock
        c.console = console
        self._send(c.sock, protocol.encode({"ok": True, "tty": console.tty}))
        if console.pending:
            self._send(c.sock, bytes(console.pending))
            console.pending.clear()
        return None

    def _console_output(self, console: Console) -> None:
        try:
            data = os.read(console.master, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            return
        try:
            os.write(1, data)  # console history in the domain log
        except OSError:
            pass
        if console.client is not None:
            self._send(console.client, data)
        else:
            console.pending += data
            del console.pending[:-REPLAY_BYTES]

    def _console_input(self, c: Client) -> None:
        try:
            frames = protocol.split_frames(c.buf)
        except protocol.ProtocolError:
            return self._drop(c)
        console = c.console
        assert console is not None
        for kind, payload in frames:
            if kind == protocol.FRAME_DATA:
                _write_all(console.master, payload)
            elif kind == protocol.FRAME_WINSIZE:
                size = json.loads(payload)
                _set_winsize(console.slave, int(size["rows"]), int(size["cols"]))


def _become_new_supervisor(config: dict, handshake: int, log_fd: int) -> None:
    """In a fork of a running supervisor: shed everything of the old container,
    then run as the supervisor of the new one. Never returns."""
    status = 1
    try:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        sc.close_fds_except(handshake)  # the old container's ptys, sockets, BPF program
        os.setsid()
        plan = planview.load(config["plan"])
        status = Supervisor(plan, config, socket.socket(fileno=handshake)).run()
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else 0
    except BaseException as e:  # report in the log, and never fall back into the old loop
        log(f"forked supervisor failed: {e!r}")
    finally:
        os._exit(status)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            n = os.write(fd, data)
        except BlockingIOError:  # the pty's buffer is full: wait until init reads
            select.select([], [fd], [], 5.0)
            continue
        data = data[n:]


def _set_winsize(fd: int, rows: int, cols: int) -> None:
    import fcntl
    import struct
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _rtmin_plus(name: str) -> int:
    return signal.SIGRTMIN + int(name.partition("+")[2] or 0)


def _start_time(pid: int) -> int:
    """The process start time in clock ticks (field 22 of /proc/PID/stat): pid + this
    identify a process across pid reuse."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rpartition(")")[2].split()[19])


def main(argv: list[str]) -> int:
    # argv: [--detach] --handshake-fd N (no argparse: the supervisor stays small)
    if "--detach" in argv:
        if os.fork() != 0:
            os._exit(0)  # the starter is reaped at once; the supervisor is the grandchild
        os.setsid()  # a session of its own, as a supervisor forked from a running one has
    handshake_fd = int(argv[argv.index("--handshake-fd") + 1])
    handshake = socket.socket(fileno=handshake_fd)
    config = json.loads(sys.stdin.buffer.read())
    sys.stdin.close()
    plan = planview.load(config["plan"])
    return Supervisor(plan, config, handshake).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
