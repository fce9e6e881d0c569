"""The supervisor's core: bring the container up, keep its state, apply the domain's
policy when init stops, and tear everything down (DESIGN.md §5).

Requests (supervisor/requests.py) call the lifecycle methods; the event loop
(supervisor/loop.py) delivers signals, the deadline and the fds' readiness.
"""

from __future__ import annotations

import _signal as signal  # signal.py without its enums (enum: ~3 ms a start)
import errno
import gc
import os
import time
from types import SimpleNamespace

from nsvirt.driver.runtime import cgusage, idmap, initctl, netdev, procstat, seccomp, sockets
from nsvirt.driver.runtime.cgroups import CgroupError
from nsvirt.driver.state import events, idranges, jsonlite, runstate
from nsvirt.driver.state.runstate import PAUSED, RUNNING, RunState
from nsvirt.driver.supervisor import child, early, protocol, startup
from nsvirt.driver.supervisor.console import Console, DomainLog, log
from nsvirt.driver.supervisor.faults import Faults
from nsvirt.driver.supervisor.loop import EventLoop
from nsvirt.driver.supervisor.requests import ControlServer, RequestError
from nsvirt.driver.supervisor.signature import running_signature

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from nsvirt.driver.supervisor.config import SupervisorConfig
    from nsvirt.driver.supervisor.early import Begun
    from nsvirt.driver.supervisor.requests import Client

RESTART_ACTIONS = ("restart", "rename-restart", "coredump-restart")
MEMORY_COUNTERS = ("high", "max", "oom", "oom_kill")  # memory.events' that a limit bit
MEMORY_EVENT_INTERVAL = 1.0  # seconds: a memory event at most this often


class Intent:
    """What the next stop of init means (what was asked of it)."""

    NONE = "none"  # nothing: init's exit says what happened (poweroff, crash)
    DESTROY = "destroy"
    SHUTDOWN = "shutdown"
    REBOOT = "reboot"


class Controller:
    def __init__(self, config: SupervisorConfig, handshake: sockets.Socket, begun: Begun) -> None:
        self.plan = config.plan
        self.paths = config.paths
        self.name: str = self.plan.name
        self.persistent = config.persistent
        self.faults = Faults(config.fault)
        self.handshake_timeout = config.handshake_timeout
        self.handshake: sockets.Socket | None = handshake
        self.loop = EventLoop()
        self.domain_log = DomainLog(str(self.paths.log(self.name)))
        self.cgroup = begun.cgroup  # made (or not: begun.error) before our imports
        self.begun: Begun | None = begun
        self.loop_fds = begun.loop_fds  # the image disks' loop devices (supervisor/early.py)
        self.netns_fd = -1  # init's network namespace, held while it holds a host device
        self.nbd_devices: list[str] = []  # the images served for this run (runtime/nbd.py)
        self.nbd_disks = begun.nbd_disks  # (disk, device, pid): image disks nbd serves
        self.consoles: list[Console] = []
        self.server: ControlServer | None = None
        self.init_pid = 0
        self.state, self.reason = RUNNING, "booted"
        self.intent = Intent.NONE
        self.oom = False  # init's end was an OOM kill (the STOPPED event says so)
        self.memory_fds: list[int] = []  # the memory-events watch (cgroups' memory_watch)
        self.memory_seen: dict[str, int] = {}  # the counters the last event reported
        self.memory_sent = 0.0  # when it was sent (time.monotonic())
        self.memory_later = False  # a read is due once the interval has passed
        self.waiters: list[Client] = []  # replied to when init has stopped or restarted
        self.interfaces: list[dict[str, Any]] = []  # as network/attach.py made them
        self.plan_json = config.plan_json
        self.idranges = config.idranges
        self.auto_ids = -1  # the first host id of the range this run holds (-1: none)
        self.maps: tuple[tuple[Any, ...], tuple[Any, ...]] = (self.plan.uid_map,
                                                              self.plan.gid_map)  # fmt: skip
        self.seccomp = b""
        self.made_mountpoint = False  # by this start (a failed one removes it)
        # the container's /proc files (procfs/): "on", "off" (the domain says host), or
        # "failed: why" (it reads the kernel's); the server's pidfd tells us it ended
        self.procfs = "off"
        self.procfs_pidfd = -1
        self.sysinfo_fd = -1  # the seccomp listener init hands sysinfo(2) calls to
        self.sysinfo: Any = None  # procfs/sysinfo.Answerer of this boot
        self.entered: list[int] = []  # listeners of commands run by lxc-enter-namespace
        self.boot_offset = 0  # host boot time (s) at which the container's clock began
        self.started_at = time.time()
        self.start_ticks = procstat.start_time(os.getpid())  # with the pid: who we are

    # ------------------------------------------------------------ start

    def run(self) -> int:
        """Start the container, answer the launcher, then serve until it stops."""
        try:
            self._boot()
        except Exception as e:
            log(f"start failed: {e}")
            self._teardown(final_reason=None)
            self._answer(f"error: {e}")
            return 1
        log(f"started {self.name}: init pid {self.init_pid}")
        self._event(events.STARTED, events.BOOTED)
        self.faults.point("running")
        ttys = [c.tty for c in self.consoles]
        word = {"pid": os.getpid(), "init_pid": self.init_pid, "consoles": ttys,
                "interfaces": self.interfaces, "containment": self.containment()}  # fmt: skip
        self._answer("running " + jsonlite.dumps(word))
        self._watch_memory()  # after the answer: not on the start's critical path
        self._serve()
        return 0

    def _boot(self) -> None:
        self._procfs_warm()  # a server forked now gets ready while the start goes on
        if self.plan.auto_ids:
            self._take_ids()
        if self.plan.seccomp or self.plan.remount_guard:
            self.seccomp = seccomp.build(self.plan.facts["arch"], self.plan.seccomp,
                                         self.plan.remount_guard)  # fmt: skip
        if self.begun is not None and self.begun.error is not None:
            raise self.begun.error
        self.faults.point("cgroup")
        owner = None
        if self.maps[0]:  # the container's root must be able to open its console
            owner = (idmap.host_id(self.maps[0]), idmap.host_id(self.maps[1]))
        self.consoles = [Console.open(self.loop, self.domain_log, owner)
                         for _ in range(self.plan.consoles)]  # fmt: skip
        self._serve_images()
        if self.plan.root == "/" or self.plan.detached_mounts or self.plan.root_mount:
            point = self.paths.mountpoint(self.name)
            self.made_mountpoint = not os.path.exists(point)
            self.paths.make_mountpoint(point)
        self._start_init()
        self.server = ControlServer(self.loop, self, protocol.bind(self.paths.socket(self.name)))
        try:
            self.write_state()
        except OSError as e:  # a full disk, say: a run nobody could see must not go on
            path = self.paths.state(self.name)
            raise child.StartError(f"cannot write the runtime state {path}: {e.strerror}") from None

    def _take_ids(self) -> None:
        """A range of host ids nobody else holds, for the user namespace (a default,
        unprivileged domain); given back at teardown."""
        count = self.plan.auto_ids
        first = idranges.allocate(self.idranges, pid=os.getpid(), pid_start=self.start_ticks,
                                  root=str(self.paths.root), name=self.name,
                                  uuid=self.plan.uuid)  # fmt: skip
        self.auto_ids = first
        one = (SimpleNamespace(start=0, target=first, count=count),)
        self.maps = (one, one)
        log(f"user namespace: ids 0-{count - 1} are host ids {first}-{first + count - 1}")

    def _give_back_ids(self) -> None:
        if self.auto_ids >= 0:
            try:
                idranges.release(self.idranges, self.auto_ids, os.getpid())
            except Exception as e:
                log(f"cannot give back the host id range: {e}")
            self.auto_ids = -1

    def containment(self) -> dict[str, Any]:
        """For the run state: the mode, and the host ids of root inside."""
        uid = idmap.host_id(self.maps[0]) if self.maps[0] else None
        gid = idmap.host_id(self.maps[1]) if self.maps[1] else None
        count = sum(m.count for m in self.maps[0])
        return {"mode": self.plan.containment, "uid": uid, "gid": gid, "count": count,
                "table": self.idranges if self.auto_ids >= 0 else None}  # fmt: skip

    def _start_init(self) -> None:
        mountpoint = str(self.paths.mountpoint(self.name))
        ttys = [c.tty for c in self.consoles]
        # the container's clock starts now: chosen here, so the /proc server can be told
        # before init exists (a time namespace where the kernel has them)
        container = self.plan.proc_view == "container"
        self.boot_offset = int(time.clock_gettime(time.CLOCK_BOOTTIME))
        context = child.InitContext(mountpoint, ttys, self.cgroup.payload_dirs(), self.seccomp,
                                    self.boot_offset if container else 0)  # fmt: skip
        intermediate = self._take_intermediate()
        how = "born in" if intermediate.joined else "joined"
        log(f"the container's first process {how} its cgroup")
        self.init_pid = startup.start_init(self.plan, self.maps, intermediate, context,
                                           self.faults, self.handshake_timeout,
                                           self._net_setup, self._procfs_setup)  # fmt: skip

    def _take_intermediate(self) -> early.Intermediate:
        """The one begin() forked for the first start; a restart forks its own."""
        begun, self.begun = self.begun, None
        if begun is not None and begun.intermediate is not None:
            return begun.intermediate
        intermediate = early.fork_intermediate(self.plan, self.cgroup, into=True)
        intermediate.join_cgroup()
        return intermediate

    def _net_setup(self, init_pid: int) -> None:
        """Make the interfaces in init's network namespace: by the launcher, which waits
        for this start and has pyroute2 at hand, or for a restart by a helper process
        (the supervisor never imports pyroute2). A namespace given a host device is
        held open: the device goes back to the host from it, after init (and whatever
        else was in it) has gone."""
        if any(i.type == "hostdev" for i in self.plan.interfaces):
            self.netns_fd = os.open(f"/proc/{init_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        if self.handshake is not None:
            self.interfaces = self._net_by_launcher(init_pid)
        else:
            self.interfaces = self._net_by_helper(init_pid)
        made = ", ".join(f"{i['guest']} ({i['host'] or i['type']})" for i in self.interfaces)
        log(f"interfaces: {made}")

    def _procfs_setup(self) -> tuple[list[int], list[str], Any]:
        """The root's /proc server's files for this container, where they go, and
        who takes its sysinfo(2) listener; none where the domain keeps the kernel's
        or the server cannot serve (the container starts anyway, with the kernel's
        files: the run state says why)."""
        self._procfs_release()
        if self.plan.proc_view != "container":
            self.procfs = "off"
            return [], [], None
        from nsvirt.driver.procfs import service, sysinfo

        denied = {name for name, _ in self.plan.seccomp}
        fuse = any(n.name == "fuse" for n in self.plan.dev_nodes)
        on_listener = self._take_sysinfo if sysinfo.answerable(denied, fuse) else None
        uid = idmap.host_id(self.maps[0]) if self.maps[0] else 0
        gid = idmap.host_id(self.maps[1]) if self.maps[1] else 0
        try:  # what earlier boots of this cgroup used: /proc/stat counts this boot's
            base = list(cgusage.cpu_split_ns(self.cgroup.describe()))
        except (OSError, ValueError, KeyError):
            base = [0, 0]
        entry = {"cgroup": self.cgroup.describe(), "boot_offset": self.boot_offset,
                 "cpu_base": base, "uid": uid, "gid": gid,
                 "owner": [os.getpid(), self.start_ticks]}  # fmt: skip
        try:
            pid, fds = service.attach(self.paths.procfs(), self.name, entry)
        except (OSError, ValueError) as e:
            self.procfs = f"failed: {e}"
            log(f"/proc: the kernel's: {e}")
            return [], [], on_listener
        pidfd = procstat.open_pidfd(pid)
        if pidfd is None:
            for fd in fds:
                os.close(fd)
            self.procfs = f"failed: the /proc server (pid {pid}) ended"
            log(f"/proc: the kernel's: the server (pid {pid}) ended")
            return [], [], on_listener
        self.procfs, self.procfs_pidfd = "on", pidfd
        self.loop.on_read(pidfd, lambda: self._procfs_gone(pid))
        return fds, [dest for _, dest in service.FILES], on_listener

    def _procfs_warm(self) -> None:
        if self.plan.proc_view != "container":
            return
        from nsvirt.driver.procfs import service

        try:
            service.warm(self.paths.procfs())
        except OSError as e:
            log(f"/proc: cannot start the server yet: {e}")  # attach tries again

    def _take_sysinfo(self, fd: int) -> None:
        """init's sysinfo listener: its calls (and its descendants') are answered here."""
        from nsvirt.driver.procfs import sysinfo

        self.sysinfo = sysinfo.Answerer(self.cgroup.describe(), self.boot_offset)
        self.sysinfo_fd = fd
        self.loop.on_read(fd, lambda: self.sysinfo.serve(fd) if self.sysinfo else None)

    def take_entered_listener(self, fd: int) -> None:
        """The sysinfo listener of a command entered with lxc-enter-namespace, which its
        client hands over: answered here as init's are, until its last process ends."""
        from nsvirt.driver.runtime import unotify

        if self.sysinfo is None:
            os.close(fd)  # this run answers none (the domain keeps the kernel's /proc)
            raise OSError(errno.ENOTSUP, "this run does not answer sysinfo")
        self.entered.append(fd)

        def call() -> None:
            if unotify.hung_up(fd):  # its processes are gone
                self.loop.forget(fd)
                os.close(fd)
                self.entered.remove(fd)
            elif self.sysinfo is not None:
                self.sysinfo.serve(fd)

        self.loop.on_read(fd, call)

    def _procfs_gone(self, pid: int) -> None:
        """The /proc server ended under a running container: its files there answer
        nothing now, so the kernel's go back (in a bounded helper inside)."""
        from nsvirt.driver.procfs import service

        self.loop.forget(self.procfs_pidfd)
        os.close(self.procfs_pidfd)
        self.procfs_pidfd = -1
        try:
            service.clear_dead(self.paths.procfs())
        except OSError as e:
            log(f"/proc: cannot clear the dead server's mount: {e}")
        if not self.init_pid:
            return
        why = f"the /proc server (pid {pid}) ended"
        try:
            service.detach(self.init_pid)
        except OSError as e:
            why += f"; its files could not be unmounted: {e}"
        self.procfs = f"failed: {why}"
        if self.sysinfo is not None:  # sysinfo agrees with the files it reads now
            self.sysinfo.kernel_only = True
        log(f"/proc: {why}: the container reads the kernel's")
        try:
            self.write_state()
        except OSError as e:
            log(f"cannot record it: {e.strerror}")

    def _procfs_release(self) -> None:
        for fd in self.entered:
            self.loop.forget(fd)
            os.close(fd)
        self.entered, self.sysinfo = [], None
        for attr in ("procfs_pidfd", "sysinfo_fd"):
            fd = getattr(self, attr)
            if fd >= 0:
                self.loop.forget(fd)
                os.close(fd)
                setattr(self, attr, -1)

    def _net_by_launcher(self, init_pid: int) -> list[dict[str, Any]]:
        assert self.handshake is not None
        self.handshake.sendall(f"net {jsonlite.dumps({'init_pid': init_pid})}\n".encode())
        try:
            line = protocol.read_line(self.handshake, self.handshake_timeout).decode().strip()
        except (OSError, TimeoutError, protocol.ProtocolError) as e:
            raise child.StartError(f"no answer about the network: {e}") from None
        if line.startswith("net-ok "):
            return jsonlite.loads(line.removeprefix("net-ok "))
        raise child.StartError(line.removeprefix("net-error: ") or "the network was not set up")

    def _net_by_helper(self, init_pid: int) -> list[dict[str, Any]]:
        import subprocess
        import sys

        request = {"plan": self.plan_json, "init_pid": init_pid, "tag": self.paths.tag()}
        try:
            proc = subprocess.run(
                [sys.executable, "-I", "-m", "nsvirt.driver.network.helper"],
                input=jsonlite.dumps(request).encode(), capture_output=True, cwd="/",
                timeout=self.handshake_timeout,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise child.StartError("the network helper did not finish in time") from None
        if proc.returncode != 0:
            lines = proc.stderr.decode(errors="replace").strip().splitlines()
            raise child.StartError(lines[-1] if lines else "the network helper failed")
        return jsonlite.loads(proc.stdout)

    def _serve_images(self) -> None:
        """Serve each image of another format than raw on an nbd device (its server in
        the container's cgroup: it ends with the container), which then mounts as a
        block device does."""
        ops = [op for op in (self.plan.root_mount, *self.plan.mounts)
               if op is not None and op.kind == "block" and op.nbd]  # fmt: skip
        if not ops:
            return
        from nsvirt.driver.runtime import nbd

        for op in ops:
            op.image = getattr(op, "image", op.source)  # a restart serves it again
            device, server = nbd.connect(op.image, op.nbd, op.readonly)
            self.nbd_devices.append(device)
            self.cgroup.attach(server)
            op.source = device
            log(f"{op.image} served on {device} (qemu-nbd {server})")

    def _serve_disks_again(self) -> None:
        """After a restart's kill (their servers were in the cgroup): each image disk on
        its own device again, whose numbers its node inside has."""
        if not self.nbd_disks:
            return
        from nsvirt.driver.runtime import nbd

        again = []
        for disk, device, _ in self.nbd_disks:
            nbd.disconnect(device)
            device, server = nbd.connect(disk.source, disk.nbd, disk.readonly, device)
            self.cgroup.attach(server)
            again.append((disk, device, server))
        self.nbd_disks = again

    def _release_images(self, disks: bool = False) -> None:
        devices = self.nbd_devices + ([d for _, d, _ in self.nbd_disks] if disks else [])
        if devices:
            from nsvirt.driver.runtime import nbd

            for device in devices:
                try:
                    nbd.disconnect(device)
                except OSError as e:
                    log(f"cannot disconnect {device}: {e}")
            self.nbd_devices = []
            if disks:
                self.nbd_disks = []

    def _give_back_devices(self) -> None:
        """Move the network hostdevs back to the host, from the namespace held since
        the start (the kernel would delete a virtual one with the namespace, and move a
        physical one to the first namespace, not necessarily ours)."""
        if self.netns_fd < 0:
            return
        links = [(int(i["index"]), str(i["guest"])) for i in self.interfaces
                 if i.get("type") == "hostdev" and "index" in i]  # fmt: skip
        try:
            for failure in netdev.move_home(self.netns_fd, links):
                log(f"cannot give back the host device {failure}")
        except OSError as e:
            log(f"cannot give back the host devices {', '.join(n for _, n in links)}: {e}")
        os.close(self.netns_fd)
        self.netns_fd = -1

    def _answer(self, text: str) -> None:
        if self.handshake is not None:
            try:
                self.handshake.sendall(text.encode() + b"\n")
            except OSError:
                pass  # the client went away; the run files tell the story
            self.handshake.close()
            self.handshake = None

    def _serve(self) -> None:
        self.loop.on_signals((signal.SIGCHLD, signal.SIGTERM), self._signals)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self.loop.on_deadline = self._deadline_passed
        self._reap()  # init may have died before the handler was in place
        # what exists now stays put: supervisors forked from this one share it (COW)
        gc.freeze()
        self.loop.run()

    # ------------------------------------------------------------ state

    def run_state(self) -> RunState:
        return RunState(
            name=self.name, uuid=self.plan.uuid, state=self.state, reason=self.reason,
            supervisor_pid=os.getpid(), supervisor_start=self.start_ticks,
            init_pid=self.init_pid, consoles=[c.tty for c in self.consoles],
            cgroup=self.cgroup.describe(), cgroup_partition=self.plan.cgroup_partition,
            cgroup_name=self.plan.cgroup_name, facts=self.plan.facts,
            persistent=self.persistent, started_at=self.started_at,
            protocol=protocol.VERSION, code=running_signature(), interfaces=self.interfaces,
            containment=self.containment(), procfs=self.procfs,
        )  # fmt: skip

    def write_state(self) -> None:
        runstate.write(self.paths, self.run_state())

    # ------------------------------------------------------------ lifecycle (requests)

    def destroy(self) -> None:
        """Kill every process of the container at once; _init_exited finishes."""
        self.intent = Intent.DESTROY
        self.cgroup.kill_all()

    def ask_init_to_stop(self, op: str, mode: str, timeout: float | None) -> None:
        """shutdown/reboot: ask init politely; with a timeout, kill it when that passes."""
        if self.state == PAUSED:
            self.cgroup.thaw()  # a frozen init cannot react
        if mode == "initctl":
            try:
                initctl.set_runlevel(self.init_pid, "0" if op == "shutdown" else "6")
            except initctl.NoInitctl as e:
                raise RequestError(str(e)) from None
            except OSError as e:  # ENXIO: nobody reads the pipe
                raise RequestError(f"cannot write to the container's initctl pipe: "
                                   f"{e.strerror}") from None  # fmt: skip
        else:
            os.kill(self.init_pid, _signal_number(self.plan.shutdown_signal))
        self.intent = Intent.SHUTDOWN if op == "shutdown" else Intent.REBOOT
        if timeout is not None and timeout >= 0:
            self.loop.deadline = time.monotonic() + timeout
            log(f"{op}: asked init ({mode}); destroying it if it has not stopped in {timeout:g} s")
        else:
            log(f"{op}: asked init ({mode}); no timeout: it stops when it chooses to")

    def suspend(self) -> None:
        self.cgroup.freeze()
        self._record(PAUSED, "user", undo=self.cgroup.thaw)
        self._event(events.SUSPENDED, events.PAUSED)

    def resume(self) -> None:
        self.cgroup.thaw()
        self._record(RUNNING, "unpaused", undo=self.cgroup.freeze)
        self._event(events.RESUMED, events.UNPAUSED)

    def _event(self, event: int, detail: int, kind: str = "lifecycle", **extra: object) -> None:
        events.emit(self.paths, self.name, self.plan.uuid, event, detail, kind, **extra)

    # ------------------------------------------------------------ memory events

    def _watch_memory(self) -> None:
        """nsvirt's memory events (beyond libvirt): when the container's memory limits
        bite (an OOM kill inside; on v2 also memory.high and memory.max reached)."""
        try:
            self.memory_fds = self.cgroup.memory_watch()
            self.memory_seen = cgusage.memory_events(self.cgroup.describe())
        except (CgroupError, OSError, ValueError, KeyError) as e:
            log(f"no memory events: {e}")
            return
        self.loop.on_read(self.memory_fds[0], self._memory_changed)

    def _memory_changed(self) -> None:
        """The counters moved: one event with what changed, at most one a second (a
        container at its memory.high moves them all the time); what is held back comes
        when the second is over."""
        try:
            while os.read(self.memory_fds[0], 4096):
                pass
        except BlockingIOError:
            pass
        self._memory_check()

    def _memory_check(self) -> None:
        if not self.memory_fds:
            return  # torn down meanwhile
        next_one = self.memory_sent + MEMORY_EVENT_INTERVAL
        if time.monotonic() < next_one:  # held back: read again when it may be sent
            if not self.memory_later:
                self.memory_later = True
                self.loop.call_at(next_one, self._memory_again)
            return
        try:
            now = cgusage.memory_events(self.cgroup.describe())
        except (OSError, ValueError, KeyError):
            return  # going away
        moved = {k: v - self.memory_seen.get(k, 0) for k, v in now.items()
                 if k in MEMORY_COUNTERS and v > self.memory_seen.get(k, 0)}  # fmt: skip
        if moved:
            self.memory_seen, self.memory_sent = now, time.monotonic()
            self._event(0, 0, kind="memory", moved=moved, counts=now)

    def _memory_again(self) -> None:
        self.memory_later = False
        self._memory_check()

    def _unwatch_memory(self) -> None:
        if self.memory_fds:
            self.loop.forget(self.memory_fds[0])
        for fd in self.memory_fds:
            os.close(fd)
        self.memory_fds = []

    def _record(self, state: str, reason: str, undo: Any) -> None:
        """Write the new state; if it cannot be written (a full disk), undo the change:
        what the state file says stays true."""
        before = self.state, self.reason
        self.state, self.reason = state, reason
        try:
            self.write_state()
        except OSError as e:
            self.state, self.reason = before
            undo()
            raise RequestError(f"cannot record the new state: {e.strerror}") from None

    def set_interfaces(self, interfaces: list[dict[str, Any]]) -> None:
        before = self.interfaces
        self.interfaces = interfaces
        try:
            self.write_state()
        except OSError as e:
            self.interfaces = before
            raise RequestError(f"cannot record the interfaces: {e.strerror}") from None

    def change_devices(self, rules: list[dict[str, Any]], nodes: list[dict[str, Any]],
                       allow: bool) -> None:  # fmt: skip
        """attach-device (or detach-device) of a running container: the rules, and the
        nodes the /dev of a restart has."""
        for rule in rules:
            self.change_device(rule, allow)
        names = {n["name"] for n in nodes}
        kept = tuple(n for n in self.plan.dev_nodes if n.name not in names)
        self.plan.dev_nodes = kept + (tuple(SimpleNamespace(**n) for n in nodes) if allow else ())

    def change_device(self, rule: dict[str, Any], allow: bool) -> None:
        """A device attached (or detached) while the container runs: the plan's rules
        are the cgroup's, the same device possibly listed twice (a default and a
        hostdev): its rule goes only with the last of them."""
        new = SimpleNamespace(**rule)
        key = (new.type, new.major, new.minor)
        rules = list(self.plan.device_rules)
        same = [
            i for i, r in enumerate(rules) if r.type != "a" and (r.type, r.major, r.minor) == key
        ]
        if allow:
            rules.append(new)
        elif same:
            del rules[same[-1]]
            if len(same) > 1:  # still listed: the cgroup keeps allowing it
                self.plan.device_rules = tuple(rules)
                return
        else:
            return
        try:
            self.cgroup.change_device(new, allow, tuple(rules))
        except (CgroupError, OSError) as e:
            raise RequestError(f"cannot change the device rules: {e}") from None
        self.plan.device_rules = tuple(rules)
        log(f"device {'allowed' if allow else 'denied'}: {new.type} {new.major}:{new.minor} "
            f"{new.access}")  # fmt: skip

    def wait_for_stop(self, client: Client) -> None:
        self.waiters.append(client)

    def autodestroy_client_gone(self) -> None:
        if self.intent != Intent.DESTROY:
            log("the autodestroy client went away: destroying the container")
            self.destroy()

    def _signals(self, seen: set[int]) -> None:
        if signal.SIGTERM in seen and self.intent != Intent.DESTROY:
            log("SIGTERM: destroying the container")
            self.destroy()
        self._reap()

    def _deadline_passed(self) -> None:
        """A shutdown or reboot was not honoured in time: kill the whole container."""
        log(f"{self.intent} timed out: killing the container")
        if self.intent == Intent.SHUTDOWN:
            self.intent = Intent.DESTROY
        self.cgroup.kill_all()

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
        self.oom = oom
        action, reason = self._policy(status, oom)
        if action in RESTART_ACTIONS:
            self.restart()
        else:
            self.finish(reason)

    def _policy(self, status: int, oom: bool) -> tuple[str, str]:
        """(the domain's action, the stop's reason) for how init stopped and why."""
        plan = self.plan
        if self.intent == Intent.DESTROY:
            return "destroy", "destroyed"
        if self.intent == Intent.REBOOT:
            return "restart", "shutdown"
        if oom:
            return plan.on_crash, "crashed"
        if not os.WIFSIGNALED(status):
            return plan.on_poweroff, "shutdown"
        sig = os.WTERMSIG(status)
        if sig == signal.SIGHUP:  # reboot(2) inside the container
            return plan.on_reboot, "shutdown"
        if sig == signal.SIGINT or self.intent == Intent.SHUTDOWN:  # halt, poweroff
            return plan.on_poweroff, "shutdown"
        return plan.on_crash, "crashed"

    def _oom_killed(self) -> bool:
        try:
            return self.cgroup.oom_kills() > 0
        except (OSError, ValueError):
            return False

    def restart(self) -> None:
        """Start the container again in the same supervisor, cgroup and consoles."""
        log("restarting the container")
        self.intent = Intent.NONE
        self.loop.deadline = None
        self.cgroup.kill_all()
        self._give_back_devices()  # from the old namespace, to move into the new one
        try:
            self._release_images()  # their servers were in the cgroup
            self._serve_images()
            self._serve_disks_again()
            self._start_init()
        except Exception as e:
            log(f"restart failed: {e}")
            return self.finish("failed")
        self.state, self.reason = RUNNING, "booted"
        try:
            self.write_state()
        except OSError as e:
            log(f"cannot record the restart: {e.strerror}")
        self._event(0, 0, kind="reboot")
        self._reply_waiters({"ok": True, "init_pid": self.init_pid})

    def finish(self, reason: str) -> None:
        """The container has stopped for good: tear down, answer, end the loop."""
        log(f"stopping: {reason}")
        self._teardown(final_reason=reason)
        self._reply_waiters({"ok": True})
        self.loop.stop()

    def _reply_waiters(self, reply: dict[str, Any]) -> None:
        waiters, self.waiters = self.waiters, []
        for client in waiters:
            client.reply(reply)

    def _teardown(self, final_reason: str | None) -> None:
        """Everything this supervisor holds: init, consoles, the socket; then the run's
        files and cgroup (runstate.teardown). Only a cgroup this start made is touched."""
        if self.begun is not None and self.begun.intermediate is not None:
            self.begun.intermediate.discard()  # the start failed before it was used
        self.begun = None
        cgroup = self.cgroup if self.cgroup.owned else None
        if cgroup is not None:
            try:
                cgroup.kill_all()
            except (CgroupError, OSError) as e:
                log(f"kill: {e}")
        if self.init_pid:
            startup.reap(self.init_pid)
            self.init_pid = 0
        self._give_back_devices()
        self._release_images(disks=True)
        self._unwatch_memory()
        self._procfs_release()
        if self.procfs != "off":
            from nsvirt.driver.procfs import service

            service.unregister(self.paths.procfs(), self.name)
        for console in self.consoles:
            console.close()
        self.consoles = []
        if self.loop_fds:  # no process of the container holds them now: detached
            from nsvirt.driver.runtime import loopdev

            for fd in self.loop_fds:
                loopdev.release(fd)
            self.loop_fds = []
        bound = self.server is not None  # the run files are ours only once we serve
        if self.server is not None:
            self.server.close()
            self.server = None
        runstate.teardown(self.paths, self.name, cgroup, final_reason=final_reason,
                          persistent=self.persistent, run_files=bound, oom=self.oom)  # fmt: skip
        if self.made_mountpoint and not bound:
            try:
                os.rmdir(self.paths.mountpoint(self.name))
            except OSError:
                pass
        self._give_back_ids()  # last: no process of the container is left


def _signal_number(name: str) -> int:
    """SIGTERM, or SIGRTMIN+N (systemd's poweroff is SIGRTMIN+4)."""
    if name.startswith("SIGRTMIN"):
        return signal.SIGRTMIN + int(name.partition("+")[2] or 0)
    return int(getattr(signal, name))
