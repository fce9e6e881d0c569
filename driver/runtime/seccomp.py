"""The container's seccomp filter: a classic-BPF program, built here with ctypes.

The plan names the calls to deny and the errno each returns (launch/containment.py);
this module only knows syscall numbers. The filter checks the architecture first
(a 64-bit host also runs 32-bit code, whose numbers differ), allows everything it
does not name, and, with `remount_guard`, refuses a mount(2) that remounts without
MS_RDONLY: the one way left (the new mount API is denied) to make a read-only mount
writable again. It is installed in init just before the domain's init is exec'd.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

from nsvirt.driver.runtime import syscalls as sc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

# linux/audit.h: the ELF machine, 64-bit and little-endian bits
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
AUDIT_ARCH_AARCH64 = 0xC00000B7
X32_SYSCALL_BIT = 0x40000000

# the numbers of the calls the filter may name (and of mount(2)), per architecture:
# asm/unistd_64.h, asm/unistd_32.h and asm-generic/unistd.h; calls added since 5.1
# have one number on every architecture
_UNIFIED = {
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
    "fspick": 433, "mount_setattr": 442,
}  # fmt: skip
_X86_64 = {
    "mount": 165, "swapon": 167, "swapoff": 168, "iopl": 172, "ioperm": 173,
    "init_module": 175, "delete_module": 176, "quotactl": 179, "acct": 163,
    "lookup_dcookie": 212, "kexec_load": 246, "add_key": 248, "request_key": 249,
    "keyctl": 250, "perf_event_open": 298, "open_by_handle_at": 304, "finit_module": 313,
    "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323, **_UNIFIED,
}  # fmt: skip
_I386 = {
    "mount": 21, "acct": 51, "ioperm": 101, "iopl": 110, "vm86old": 113, "swapon": 87,
    "swapoff": 115, "init_module": 128, "delete_module": 129, "quotactl": 131,
    "vm86": 166, "lookup_dcookie": 253, "kexec_load": 283, "add_key": 286,
    "request_key": 287, "keyctl": 288, "perf_event_open": 336, "open_by_handle_at": 342,
    "finit_module": 350, "bpf": 357, "userfaultfd": 374, **_UNIFIED,
}  # fmt: skip
_GENERIC = {
    "lookup_dcookie": 18, "mount": 40, "quotactl": 60, "acct": 89, "kexec_load": 104,
    "init_module": 105, "delete_module": 106, "add_key": 217, "request_key": 218,
    "keyctl": 219, "swapon": 224, "swapoff": 225, "perf_event_open": 241,
    "open_by_handle_at": 265, "finit_module": 273, "bpf": 280, "userfaultfd": 282,
    "kexec_file_load": 294, **_UNIFIED,
}  # fmt: skip
# each host architecture's ABIs: (audit arch, numbers, the x32 bit to refuse)
ABIS = {
    "x86_64": ((AUDIT_ARCH_X86_64, _X86_64, True), (AUDIT_ARCH_I386, _I386, False)),
    "aarch64": ((AUDIT_ARCH_AARCH64, _GENERIC, False),),
}

# linux/filter.h, linux/seccomp.h
_LD_W_ABS, _JEQ_K, _JGE_K, _AND_K, _RET_K = 0x20, 0x15, 0x35, 0x54, 0x06
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
_NR, _ARCH, _ARG3_LOW = 0, 4, 16 + 3 * 8  # offsets in struct seccomp_data (little-endian)
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2


class Program:
    """A growing list of sock_filter instructions, with jumps to labels resolved last."""

    def __init__(self) -> None:
        self.code: list[tuple[int, str | int, str | int, int]] = []
        self.labels: dict[str, int] = {}

    def op(self, code: int, k: int, jt: str | int = 0, jf: str | int = 0) -> None:
        self.code.append((code, jt, jf, k))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def assemble(self) -> bytes:
        out = bytearray()
        for at, (code, jt, jf, k) in enumerate(self.code):
            offsets = [self.labels[j] - at - 1 if isinstance(j, str) else j for j in (jt, jf)]
            if not all(0 <= o <= 255 for o in offsets):
                raise ValueError("seccomp program: jump out of range")
            out += struct.pack("=HBBI", code, offsets[0], offsets[1], k & 0xFFFFFFFF)
        return bytes(out)


def build(arch: str, deny: Sequence[tuple[str, str]], remount_guard: bool) -> bytes:
    """The filter for a host of `arch`: `deny` is (syscall, errno name) pairs."""
    abis = ABIS.get(arch)
    if abis is None:
        raise sc.SyscallError(f"no seccomp filter for the {arch} architecture",
                              errno.ENOSYS)  # fmt: skip
    p = Program()
    p.op(_LD_W_ABS, _ARCH)
    for n, (audit_arch, _, _) in enumerate(abis):
        p.op(_JEQ_K, audit_arch, f"abi{n}", 0)
    p.op(_RET_K, RET_ERRNO | errno.ENOSYS)  # an ABI the host does not run
    for n, (_, numbers, refuse_x32) in enumerate(abis):
        p.label(f"abi{n}")
        p.op(_LD_W_ABS, _NR)
        if refuse_x32:
            p.op(_JGE_K, X32_SYSCALL_BIT, "enosys", 0)
        for name, err in deny:
            if name in numbers:
                p.op(_JEQ_K, numbers[name], f"e{err}", 0)
        if remount_guard:
            p.op(_JEQ_K, numbers["mount"], "mount", 0)
        p.op(_RET_K, RET_ALLOW)
    if remount_guard:
        # MS_REMOUNT without MS_RDONLY: it would make a read-only mount writable
        p.label("mount")
        p.op(_LD_W_ABS, _ARG3_LOW)
        p.op(_AND_K, sc.MS_REMOUNT | sc.MS_RDONLY)
        p.op(_JEQ_K, sc.MS_REMOUNT, "eEPERM", 0)
        p.op(_RET_K, RET_ALLOW)
    p.label("enosys")
    p.op(_RET_K, RET_ERRNO | errno.ENOSYS)
    for err in sorted({e for _, e in deny} | ({"EPERM"} if remount_guard else set())):
        p.label(f"e{err}")
        p.op(_RET_K, RET_ERRNO | getattr(errno, err))
    return p.assemble()


# sysinfo(2) of each host's own ABI (a 32-bit program's struct differs: it gets the kernel's)
SYSINFO = {"x86_64": (AUDIT_ARCH_X86_64, 99), "aarch64": (AUDIT_ARCH_AARCH64, 179)}
RET_USER_NOTIF = 0x7FC00000
_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277}
_SET_MODE_FILTER, _FLAG_NEW_LISTENER = 1, 1 << 3


def sysinfo_filter(arch: str) -> bytes | None:
    """A filter that hands sysinfo(2) of the native ABI to a listener (the supervisor
    answers with the container's memory: procfs/sysinfo.py); None on other hosts."""
    if arch not in SYSINFO or arch not in _SYS_SECCOMP:
        return None
    audit_arch, number = SYSINFO[arch]
    p = Program()
    p.op(_LD_W_ABS, _ARCH)
    p.op(_JEQ_K, audit_arch, 0, "allow")
    p.op(_LD_W_ABS, _NR)
    p.op(_JEQ_K, number, 0, "allow")
    p.op(_RET_K, RET_USER_NOTIF)
    p.label("allow")
    p.op(_RET_K, RET_ALLOW)
    return p.assemble()


def install_listener(program: bytes, arch: str) -> int:
    """Load `program` (whose calls return RET_USER_NOTIF) and return its listener fd
    (seccomp_unotify(2)); needs what install() needs."""
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.addressof(buf))
    fd = sc.libc.syscall(ctypes.c_long(_SYS_SECCOMP[arch]), ctypes.c_uint(_SET_MODE_FILTER),
                         ctypes.c_uint(_FLAG_NEW_LISTENER), ctypes.byref(prog))  # fmt: skip
    if fd < 0:
        raise sc.SyscallError("cannot install the sysinfo listener", ctypes.get_errno())
    return fd


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(program: bytes) -> None:
    """Load the filter for this process and what it execs (needs CAP_SYS_ADMIN in
    its user namespace, or no_new_privs)."""
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.addressof(buf))
    sc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog),
             what="cannot install the seccomp filter")  # fmt: skip


def host_arch() -> str:
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(os.uname().machine, os.uname().machine)
