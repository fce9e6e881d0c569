"""seccomp user notification (seccomp_unotify(2)): take a call a filter handed to us,
write its answer into the caller's memory, let it return.

The listener is non-blocking and the answer is written with process_vm_writev(2),
which never waits on the caller; a caller whose memory the write cannot reach gets
EFAULT, as the kernel would give it.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import struct

from nsvirt.driver.runtime import syscalls as sc

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


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def write_memory(pid: int, address: int, data: bytes) -> bool:
    """Write `data` at `address` in process `pid`; False if not all of it could be."""
    buf = ctypes.create_string_buffer(data, len(data))
    local = _Iovec(ctypes.addressof(buf), len(data))
    remote = _Iovec(address, len(data))
    done = sc.libc.process_vm_writev(ctypes.c_int(pid), ctypes.byref(local), ctypes.c_ulong(1),
                                     ctypes.byref(remote), ctypes.c_ulong(1),
                                     ctypes.c_ulong(0))  # fmt: skip
    return done == len(data)
