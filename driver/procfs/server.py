"""The /proc server of one connection root: a FUSE filesystem (runtime/fuse.py) at
/run/nsvirt/procfs/DEV-INO (procfs/service.mount_point), a directory per registered
running domain, each holding the files its container sees over the kernel's
(procfs/service.FILES).

One process serves every container of the root (docs/architecture.md: what one per
container would cost). procfs/service.py starts it for the first container that
needs it; it exits a moment after the last one's registration is gone. Each file's
text is made when it is opened, from the host's file and the container's cgroup
(procfs/views.py); anything that cannot be read makes the host's file the answer.
Single-threaded; every request is answered at once, and nothing it reads is the
container's.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import math
import os
import select
import stat
import time

from nsvirt.driver.procfs import sample, service, views
from nsvirt.driver.runtime import fuse, inotify, procstat
from nsvirt.driver.runtime import syscalls as sc
from nsvirt.driver.state import jsonlite

# seconds with no domain registered before the server goes (a stop and a start soon
# after share it); $NSVIRT_PROCFS_LINGER sets another
IDLE_EXIT = float(os.environ.get("NSVIRT_PROCFS_LINGER") or 2.0)
FIRST_WAIT = 1.0
PRUNE_EVERY = 30.0  # seconds between looks for registrations whose supervisor is gone
LOAD_EVERY = 5.0  # the kernel's load average sampling period
LOAD_INTEREST = 600.0  # a container's load is sampled while its loadavg was read this recently
HANDLES = 65536  # open files kept (each refers to its node's text); the oldest go first
FRESH = 0.1  # seconds a node's text answers every open (a flood of reads costs no renders)
HOST_FILES = {"meminfo": "/proc/meminfo", "cpuinfo": "/proc/cpuinfo", "stat": "/proc/stat",
              "uptime": "/proc/uptime", "loadavg": "/proc/loadavg", "swaps": "/proc/swaps",
              "online": "/sys/devices/system/cpu/online"}  # fmt: skip
_DECAY = tuple(math.exp(-LOAD_EVERY / m) for m in (60.0, 300.0, 900.0))


class Server:
    def __init__(self, base: str) -> None:
        self.base = base
        self.domains = f"{base}/domains"
        self.mnt = service.mount_point(base)
        self.fd = fuse.mount(self.mnt, "nsvirt")
        os.set_blocking(self.fd, False)
        self.watch = inotify.watch(self.domains, inotify.IN_CREATE | inotify.IN_MOVED_TO
                                   | inotify.IN_MOVED_FROM | _IN_DELETE)  # fmt: skip
        self.slots: dict[str, int] = {}  # domain name → its directory's slot
        self.entries: dict[str, tuple[tuple[int, int, int], dict]] = {}  # name → (stat, entry)
        self.names: dict[int, str] = {}
        self.texts: dict[int, tuple[int, bytes]] = {}  # fh → (node, text); insertion order
        self.latest: dict[int, tuple[float, bytes]] = {}  # node → (made at, its last text)
        self.next_fh = 1
        # name → [1, 5, 15 min, running, tasks, read at, CPU ns then, sampled at]
        self.loads: dict[str, list[float]] = {}
        self.idle_since: float | None = None
        # a new server waits this long for its first registration (its starter's, which
        # may have warmed it up before parsing the definition; one too late forks anew)
        self.first_by: float | None = time.monotonic() + max(IDLE_EXIT, FIRST_WAIT)
        self.pruned = time.monotonic()
        self.sampled = time.monotonic()
        self.started = int(time.time())

    # ------------------------------------------------------------ the loop

    def serve(self) -> None:
        timeout = 1.0
        while True:
            readable, _, _ = select.select([self.fd, self.watch], [], [], timeout)
            if self.watch in readable:
                inotify.drain(self.watch)  # a registration came or went
            if self.fd in readable:
                self._requests()
            now = time.monotonic()
            if now - self.pruned >= PRUNE_EVERY:
                self._prune()
            if now - self.sampled >= LOAD_EVERY:
                self._sample_loads(now)
            timeout = 1.0
            if self._registered():
                self.idle_since = self.first_by = None
                continue
            if self.first_by is not None and now < self.first_by:
                continue
            if self.idle_since is None:
                self.idle_since = now
            if now - self.idle_since >= IDLE_EXIT and self._leave():
                return
            timeout = max(0.01, min(1.0, self.idle_since + IDLE_EXIT - now))

    def _requests(self) -> None:
        for _ in range(256):  # then look at the rest of the loop
            try:
                request = fuse.receive(self.fd)
            except OSError as e:
                if e.errno == errno.ENODEV:  # unmounted under us: nothing to serve
                    raise SystemExit(0) from None
                raise
            if request is None:
                return
            try:
                payload = self._answer(request)
            except OSError as e:
                fuse.reply(self.fd, request, error=e.errno or errno.EIO)
            else:
                fuse.reply(self.fd, request, payload)

    # ------------------------------------------------------------ requests

    def _answer(self, r: fuse.Request) -> bytes:
        op = r.opcode
        if op == fuse.INIT:
            return fuse.init_reply(r)
        if op == fuse.LOOKUP:
            return self._lookup(r.nodeid, r.body.split(b"\0", 1)[0].decode(errors="replace"))
        if op == fuse.GETATTR:
            return fuse.attr_out(self._attr(r.nodeid), files=bool(r.nodeid & 15))
        if op == fuse.OPEN:
            return self._open(r)
        if op == fuse.READ:
            fh, offset, size = fuse.READ_IN.unpack_from(r.body)
            return self._text(fh, r.nodeid)[offset : offset + size]
        if op == fuse.RELEASE:
            self.texts.pop(fuse.RELEASE_IN.unpack_from(r.body)[0], None)
            return b""
        if op in (fuse.OPENDIR, fuse.RELEASEDIR):
            return fuse.OPEN_OUT.pack(0, 0, 0) if op == fuse.OPENDIR else b""
        if op == fuse.READDIR:
            _, offset, size = fuse.READ_IN.unpack_from(r.body)
            return fuse.dirents(self._listing(r.nodeid), offset, size)
        if op == fuse.STATFS:
            return fuse.statfs_out()
        if op in fuse.NO_REPLY:
            return b""
        if op == fuse.DESTROY:
            raise SystemExit(0)
        raise OSError(errno.ENOSYS, "not served")

    def _lookup(self, parent: int, name: str) -> bytes:
        if parent == fuse.ROOT_ID:
            if not self._entry_of(name):
                raise OSError(errno.ENOENT, name)
            node = self._slot(name) << 4
        else:
            if parent & 15 or name not in service.FILE_NAMES or parent >> 4 not in self.names:
                raise OSError(errno.ENOENT, name)
            node = parent + 1 + service.FILE_NAMES.index(name)
        # a file's size is asked again (GETATTR) when it matters: none is made here
        return fuse.entry(node, self._attr(node, sized=False), files=bool(node & 15))

    def _attr(self, node: int, sized: bool = True) -> bytes:
        if node == fuse.ROOT_ID:
            return fuse.attr(node, stat.S_IFDIR | 0o555, when=self.started)
        name = self.names.get(node >> 4)
        if name is None or (node & 15) > len(service.FILE_NAMES):
            raise OSError(errno.ENOENT, "no such node")
        entry = self._entry_of(name) or {}
        uid, gid = int(entry.get("uid", 0)), int(entry.get("gid", 0))  # root inside, on the host
        if node & 15 == 0:
            return fuse.attr(node, stat.S_IFDIR | 0o555, uid, gid, self.started)
        # its text's length: a stat between an open and a sendfile must not make the
        # page cache's size (what the open stored) 0 again
        size = len(self._fresh(node)) if sized else 0
        return fuse.attr(node, stat.S_IFREG | 0o444, uid, gid, self.started, size)

    def _open(self, r: fuse.Request) -> bytes:
        if not r.nodeid & 15 or r.nodeid >> 4 not in self.names:
            raise OSError(errno.EISDIR if r.nodeid == fuse.ROOT_ID else errno.ENOENT, "open")
        if fuse.OPEN_IN.unpack_from(r.body)[0] & os.O_ACCMODE != os.O_RDONLY:
            raise OSError(errno.EACCES, "read-only")
        fh, self.next_fh = self.next_fh, self.next_fh + 1
        text = self._fresh(r.nodeid)
        self.texts[fh] = (r.nodeid, text)
        fuse.store(self.fd, r.nodeid, text)  # the size a sendfile of it reads up to
        while len(self.texts) > HANDLES:
            del self.texts[next(iter(self.texts))]
        return fuse.open_out(fh)

    def _text(self, fh: int, node: int) -> bytes:
        kept = self.texts.get(fh)
        if kept is not None and kept[0] == node:
            return kept[1]
        return self._fresh(node)  # dropped: the node's latest

    def _listing(self, node: int) -> list[tuple[int, str, int]]:
        if node == fuse.ROOT_ID:
            names = sorted(os.listdir(self.domains))
            return [(self._slot(n) << 4, n, fuse.DT_DIR) for n in names if not n.startswith(".")]
        return [(node + 1 + i, f, fuse.DT_REG) for i, f in enumerate(service.FILE_NAMES)]

    # ------------------------------------------------------------ the files

    def _fresh(self, node: int) -> bytes:
        """The node's text, made at most FRESH s ago."""
        now = time.monotonic()
        made = self.latest.get(node)
        if made is None or now - made[0] > FRESH:
            made = (now, self._render(node))
            self.latest[node] = made
        return made[1]

    def _render(self, node: int) -> bytes:
        name = self.names[node >> 4]
        file = service.FILE_NAMES[(node & 15) - 1]
        try:
            return self._view(name, file).encode()
        except (OSError, ValueError, KeyError, TypeError) as e:
            _log(f"{name}: {file}: the host's file instead ({e})")
            with open(HOST_FILES[file], "rb") as f:
                return f.read()

    def _view(self, name: str, file: str) -> str:
        entry = self._entry_of(name)
        if entry is None:
            raise KeyError("not registered")
        dirs = entry["cgroup"]
        host = _read(HOST_FILES[file]) if file not in ("uptime", "loadavg") else ""
        if file == "meminfo":
            return views.meminfo(host, sample.take(dirs))
        if file == "swaps":
            s = sample.take(dirs)
            kib = views.kib_lines(_read("/proc/meminfo")).get("SwapTotal", 0) * 1024
            total = kib if s.swap_limit is None else min(kib, s.swap_limit)
            return views.swaps(host, total, s.swap_usage)
        cpus = sample.visible_cpus(dirs, _read(HOST_FILES["online"]))
        if file == "cpuinfo":
            return views.cpuinfo(host, cpus)
        if file == "online":
            return views.online(cpus)
        if file == "loadavg":
            load = self.loads.setdefault(name, [0.0, 0.0, 0.0, 0, 0, 0.0, -1, 0.0])
            load[5] = time.monotonic()
            return views.loadavg(load[:3], int(load[3]), int(load[4]))
        user, system = sample.cpu_split_ns(dirs)
        base = entry.get("cpu_base") or (0, 0)  # what earlier boots of this cgroup used
        user, system = max(0, user - int(base[0])), max(0, system - int(base[1]))
        up = max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - float(entry["boot_offset"]))
        if file == "uptime":
            return views.uptime(cpus, user, system, up)
        return views.stat(host, cpus, user, system, up, int(entry["boot_offset"]))

    # ------------------------------------------------------------ registrations

    def _entry_of(self, name: str) -> dict | None:
        """The domain's registration; read again only when its file changed."""
        if "/" in name or name.startswith("."):
            return None
        path = f"{self.domains}/{name}"
        try:
            st = os.stat(path)
        except OSError:
            return None
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        kept = self.entries.get(name)
        if kept is not None and kept[0] == key:
            return kept[1]
        try:
            with open(path, "rb") as f:
                entry = jsonlite.loads(f.read())
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or not isinstance(entry.get("cgroup"), dict):
            return None
        self.entries[name] = (key, entry)
        return entry

    def _slot(self, name: str) -> int:
        if name not in self.slots:
            slot = len(self.slots) + 1
            self.slots[name], self.names[slot] = slot, name
        return self.slots[name]

    def _registered(self) -> bool:
        return any(not n.startswith(".") for n in os.listdir(self.domains))

    def _prune(self) -> None:
        """Drop registrations whose supervisor is gone (killed before its teardown;
        the client that cleans up after it drops them too)."""
        self.pruned = time.monotonic()
        for name in os.listdir(self.domains):
            entry = self._entry_of(name)
            if entry is None:
                continue
            pid, start = entry.get("owner", (0, 0))
            stat_ = procstat.read(int(pid))
            if stat_ is None or stat_.start_time != int(start):
                _log(f"{name}: its supervisor {pid} is gone: registration dropped")
                service.unregister(self.base, name)

    def _sample_loads(self, now: float) -> None:
        """Each read container's load average, every LOAD_EVERY s, decayed as the
        kernel's: from the CPU time its cgroup used since the last sample (CPUs'
        worth), so a sample costs two small reads however many tasks it has."""
        self.sampled = now
        for name, load in list(self.loads.items()):
            entry = self._entry_of(name)
            if entry is None or now - load[5] > LOAD_INTEREST:
                del self.loads[name]
                continue
            dirs = entry["cgroup"]
            try:
                used = sum(sample.cpu_split_ns(dirs))
                tasks = sample.tasks(dirs)
            except (OSError, ValueError, KeyError):
                continue
            if load[6] >= 0 and now > load[7]:
                busy = max(0.0, (used - load[6]) / 1e9 / (now - load[7]))
                for i, decay in enumerate(_DECAY):
                    load[i] = load[i] * decay + busy * (1 - decay)
                load[3] = min(tasks, round(busy))
            load[4], load[6], load[7] = tasks, used, now

    def _leave(self) -> bool:
        """Go, if still nothing is registered: under the service's lock, so a start
        either sees this server gone or registers before it looks."""
        fd = os.open(f"{self.base}/lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # a start is at work: look again later
            if self._registered():
                return False
            service.forget_server(self.base, os.getpid())  # under the lock: no start sees us
            try:
                sc.umount2(self.mnt, sc.MNT_DETACH)
                os.rmdir(self.mnt)
            except OSError:
                pass
            return True
        finally:
            os.close(fd)


_IN_DELETE = 0x200


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _log(text: str) -> None:
    try:
        os.write(2, f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n".encode(errors="replace"))
    except OSError:
        pass  # a full disk: serving matters more than saying so


def main(base: str) -> None:
    """Mount, record this server as serving, serve until the last domain is gone;
    whatever ends it, the mount goes with it (a dead one would answer ENOTCONN)."""
    import _signal as signal

    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    with open("/proc/self/comm", "w") as f:  # what ps -e and top call it
        f.write("nsvirt-procfs")
    try:
        server = Server(base)
    except BaseException as e:
        _log(f"cannot serve {base}: {e}")
        raise SystemExit(1) from None
    try:
        fd = service.lock(base)
        try:
            service.record(base, "server", os.getpid())
            with contextlib.suppress(OSError):
                os.unlink(f"{base}/starting")
        finally:
            os.close(fd)
        _log(f"serving {base} at {server.mnt}")
        server.serve()
        _log("no domain left: exiting")
    except BaseException as e:
        if not isinstance(e, SystemExit):
            _log(f"failed: {e!r}")
        with contextlib.suppress(OSError):
            service.forget_server(base, os.getpid())
            sc.umount2(server.mnt, sc.MNT_DETACH)
            os.rmdir(server.mnt)
        raise
