"""Thin ctypes wrappers for the syscalls Python 3.11's os module lacks.

Each raises SyscallError naming the call, its object and errno's text, so a
failed start reports e.g. "failed to mount /srv/data on /data: No such file or directory".
"""

from __future__ import annotations

import ctypes
import os

libc = ctypes.CDLL(None, use_errno=True)

CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACE_FLAGS = {
    "mnt": CLONE_NEWNS,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "user": CLONE_NEWUSER,
    "pid": CLONE_NEWPID,
    "net": CLONE_NEWNET,
    "cgroup": CLONE_NEWCGROUP,
}

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_RELATIME = 1 << 21
MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}.get(
    os.uname().machine, 155
)
_SYS_CAPSET = {"x86_64": 126, "aarch64": 91, "riscv64": 91, "ppc64le": 184, "s390x": 185}.get(
    os.uname().machine, 126
)


class SyscallError(OSError):
    """errno + the call and object it concerns; str() is the user-facing reason."""

    def __init__(self, what: str, err: int) -> None:
        super().__init__(err, os.strerror(err))
        self.what = what

    def __str__(self) -> str:
        return f"{self.what}: {self.strerror}"


def _check(ret: int, what: str) -> int:
    if ret < 0:
        raise SyscallError(what, ctypes.get_errno())
    return ret


def close_fds_except(*keep: int) -> None:
    """Close every fd above 2 but `keep` (what a fresh process must not inherit)."""
    for fd in [int(n) for n in os.listdir("/proc/self/fd")]:
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the listing's own fd, closed already


def unshare(flags: int, what: str = "unshare") -> None:
    _check(libc.unshare(ctypes.c_int(flags)), what)


def setns(fd: int, nstype: int, what: str) -> None:
    _check(libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), what)


def mount(
    source: str | None,
    target: str,
    fstype: str | None,
    flags: int = 0,
    data: str | None = None,
    what: str | None = None,
) -> None:
    def enc(s: str | None) -> bytes | None:
        return None if s is None else os.fsencode(s)

    ret = libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data))
    _check(ret, what or f"failed to mount {source or fstype} on {target}")


def umount2(target: str, flags: int = 0) -> None:
    _check(libc.umount2(os.fsencode(target), ctypes.c_int(flags)), f"failed to unmount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    ret = libc.syscall(ctypes.c_long(_SYS_PIVOT_ROOT), os.fsencode(new_root), os.fsencode(put_old))
    _check(ret, f"pivot_root to {new_root}")


def prctl(option: int, arg2: int = 0, arg3: int = 0, what: str = "prctl") -> int:
    return _check(
        libc.prctl(
            ctypes.c_int(option),
            ctypes.c_ulong(arg2),
            ctypes.c_ulong(arg3),
            ctypes.c_ulong(0),
            ctypes.c_ulong(0),
        ),
        what,
    )


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set the calling thread's capability sets (64-bit masks, version 3 ABI)."""
    header = _CapHeader(0x20080522, 0)
    data = (_CapData * 2)()
    for i, shift in enumerate((0, 32)):
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    ret = libc.syscall(ctypes.c_long(_SYS_CAPSET), ctypes.byref(header), data)
    _check(ret, "capset")
