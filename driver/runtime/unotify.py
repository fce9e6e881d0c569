"""seccomp user notification (seccomp_unotify(2)): take a call a filter handed to us,
write its answer into the caller's memory, let it return.

The answer goes through /proc/PID/mem, opened before the call is checked (so it is
the caller's), and only into plain private memory: a page a file backs could make
the write wait on whoever serves that file (the container, say).
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct

# struct seccomp_notif: id, pid, flags, then seccomp_data: nr, arch, ip, args[6]
NOTIF = struct.Struct("=QIIiIQ6Q")
RESP = struct.Struct("=QqiI")  # id, val, error, flags
_RECV = 0xC0502100  # SECCOMP_IOCTL_NOTIF_RECV: _IOWR('!', 0, struct seccomp_notif)
_SEND = 0xC0182101  # SECCOMP_IOCTL_NOTIF_SEND
_ID_VALID = 0x40082102  # SECCOMP_IOCTL_NOTIF_ID_VALID: _IOW('!', 2, __u64)
FLAG_CONTINUE = 1  # SECCOMP_USER_NOTIF_FLAG_CONTINUE: let the kernel run the call after all


class Call:
    __slots__ = ("args", "id", "nr", "pid")

    def __init__(self, raw: bytes) -> None:
        self.id, self.pid, _, self.nr, _, _, *args = NOTIF.unpack(raw)
        self.args = tuple(args)


def receive(fd: int) -> Call | None:
    """The next call, or None (none waiting; or its caller went away meanwhile)."""
    buf = bytearray(NOTIF.size)  # the kernel wants it zeroed
    try:
        fcntl.ioctl(fd, _RECV, buf)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.ENOENT, errno.EINTR):
            return None
        raise
    return Call(bytes(buf))


def hung_up(fd: int) -> bool:
    """Has every process the listener's filter was for ended? (It then polls as
    hung up, not readable.)"""
    import select

    p = select.poll()
    p.register(fd, select.POLLIN)
    return any(ev & select.POLLHUP and not ev & select.POLLIN for _, ev in p.poll(0))


def still_waiting(fd: int, call: Call) -> bool:
    """Is the caller still in that call (its pid not reused since)?"""
    try:
        fcntl.ioctl(fd, _ID_VALID, struct.pack("=Q", call.id))
    except OSError:
        return False
    return True


def answer(fd: int, call: Call, value: int = 0, error: int = 0, kernel: bool = False) -> None:
    """Return `value`, or -`error`, from the call; or (kernel) let the kernel run it."""
    flags = FLAG_CONTINUE if kernel else 0
    try:
        fcntl.ioctl(fd, _SEND, RESP.pack(call.id, 0 if kernel else value, -error, flags))
    except OSError as e:
        if e.errno != errno.ENOENT:  # the caller was killed meanwhile
            raise


KERNEL = "kernel"  # write_into: the target is no plain memory of the caller's: let the kernel


def write_into(listener: int, call: Call, address: int, data: bytes) -> bool | str | None:
    """Write `data` at `address` in the caller of `call`: True once written, False if
    that is no writable memory of the caller's (EFAULT, as the kernel says), KERNEL
    if it is memory a write could wait on (a file's pages, which the container may
    serve itself: let the kernel answer in the caller's own time), None if the
    caller is gone. The caller's files are opened first, then the call checked
    still waiting, so they are the caller's and not a process that took its pid."""
    try:
        mem = os.open(f"/proc/{call.pid}/mem", os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            maps = os.open(f"/proc/{call.pid}/maps", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            if not still_waiting(listener, call):
                return None
            kind = _mapping(maps, address, len(data))
        finally:
            os.close(maps)
        if kind != "anonymous":
            return KERNEL if kind == "file" else False
        try:
            return os.pwrite(mem, data, address) == len(data)
        except OSError:
            return False
    finally:
        os.close(mem)


def _mapping(maps: int, address: int, size: int) -> str:
    """What holds [address, address+size) in a process's /proc/PID/maps: "anonymous"
    (writable, private, no file: its stack, heap, anonymous mmap), "file" (backed
    by a file, or shared), or "none" (not mapped, or not writable)."""
    end = address + size
    rest = b""
    while True:
        chunk = os.read(maps, 65536)
        if not chunk:
            return "none"
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        for line in lines:
            fields = line.split(None, 5)
            lo, _, hi = fields[0].partition(b"-")
            start, stop = int(lo, 16), int(hi, 16)
            if stop <= address:
                continue
            if start > address or stop < end:
                return "none"  # a gap, or the range runs into the next mapping
            perms = fields[1]
            path = fields[5].strip() if len(fields) > 5 else b""
            if not perms.startswith(b"rw"):
                return "none"
            if (perms[3:4] == b"p" and path in (b"", b"[stack]", b"[heap]")) or path.startswith(
                    b"[stack:"):  # fmt: skip
                return "anonymous"
            return "file"
