"""The cgroup v2 device whitelist: a BPF_PROG_TYPE_CGROUP_DEVICE program, built in
Python from the same rules the v1 backend writes to devices.allow, loaded and
attached with the raw bpf(2) syscall through ctypes.

The program sees `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`
(access_type = access << 16 | type) and returns 1 to allow, 0 to deny.
"""

from __future__ import annotations

import ctypes
import os
import struct

from nsvirt.driver.runtime import syscalls

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6

BPF_DEVCG_DEV_BLOCK = 1
BPF_DEVCG_DEV_CHAR = 2
BPF_DEVCG_ACC_MKNOD = 1
BPF_DEVCG_ACC_READ = 2
BPF_DEVCG_ACC_WRITE = 4
_TYPES = {"b": BPF_DEVCG_DEV_BLOCK, "c": BPF_DEVCG_DEV_CHAR}
_ACCESS = {"m": BPF_DEVCG_ACC_MKNOD, "r": BPF_DEVCG_ACC_READ, "w": BPF_DEVCG_ACC_WRITE}

# instruction opcodes (class | op | source)
LDX_MEM_W = 0x61  # dst = *(u32 *)(src + off)
ALU32_AND_K = 0x54
ALU32_RSH_K = 0x74
ALU32_MOV_K = 0xB4
ALU32_MOV_X = 0xBC
JMP_JNE_K = 0x55  # if dst != imm: pc += off
JMP_EXIT = 0x95

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361,
            "s390x": 351}.get(os.uname().machine, 321)  # fmt: skip
_libc = syscalls.libc


class BpfError(OSError):
    def __init__(self, what: str, err: int, log: str = "") -> None:
        super().__init__(err, os.strerror(err))
        self.what = what
        self.log = log

    def __str__(self) -> str:
        text = f"{self.what}: {self.strerror}"
        return f"{text}\nverifier log:\n{self.log}" if self.log else text


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One struct bpf_insn: opcode, registers (src << 4 | dst), offset, immediate."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _rule_block(rule: Any) -> list[bytes]:
    """Instructions that return 1 when the request matches `rule`, else fall through.

    Registers: r2 type, r3 access, r4 major, r5 minor; r1 is scratch."""
    block: list[list[bytes]] = []
    if rule.type != "a":
        block.append([insn(JMP_JNE_K, dst=2, imm=_TYPES[rule.type])])
    allowed = sum(_ACCESS[a] for a in rule.access)
    if allowed != 7:  # only a subset of r/w/m: the request must ask for nothing else
        block.append([insn(ALU32_MOV_X, dst=1, src=3),
                      insn(ALU32_AND_K, dst=1, imm=~allowed & 7),
                      insn(JMP_JNE_K, dst=1, imm=0)])  # fmt: skip
    if rule.type != "a" and rule.major is not None:
        block.append([insn(JMP_JNE_K, dst=4, imm=rule.major)])
    if rule.type != "a" and rule.minor is not None:
        block.append([insn(JMP_JNE_K, dst=5, imm=rule.minor)])
    tail = [insn(ALU32_MOV_K, dst=0, imm=1), insn(JMP_EXIT)]
    out: list[bytes] = []
    flat = [i for group in block for i in group]
    for n, ins in enumerate(flat):
        if ins[0] == JMP_JNE_K:  # jump over the rest of the block, to the next rule
            code, regs, _, imm = struct.unpack("<BBhi", ins)
            ins = struct.pack("<BBhi", code, regs, len(flat) - n - 1 + len(tail), imm)
        out.append(ins)
    return out + tail


def program(rules: Sequence[Any]) -> bytes:
    """The whole program for a rule list whose first rule denies everything (`a`)."""
    prologue = [
        insn(LDX_MEM_W, dst=2, src=1, off=0),  # access_type
        insn(ALU32_AND_K, dst=2, imm=0xFFFF),  # r2: type
        insn(LDX_MEM_W, dst=3, src=1, off=0),
        insn(ALU32_RSH_K, dst=3, imm=16),  # r3: access
        insn(LDX_MEM_W, dst=4, src=1, off=4),  # r4: major
        insn(LDX_MEM_W, dst=5, src=1, off=8),  # r5: minor
    ]
    # the list starts with the deny-all rule (v1's `devices.deny a`): the final "return 0"
    allows = rules[1:] if rules and rules[0].type == "a" else rules
    body = [i for rule in allows for i in _rule_block(rule)]
    deny = [insn(ALU32_MOV_K, dst=0, imm=0), insn(JMP_EXIT)]
    return b"".join(prologue + body + deny)


def _bpf(cmd: int, attr: ctypes.Array) -> int:
    return _libc.syscall(ctypes.c_long(_SYS_BPF), ctypes.c_int(cmd), attr,
                         ctypes.c_uint(ctypes.sizeof(attr)))  # fmt: skip


def load(code: bytes) -> int:
    """Load a device program; return its fd. The verifier's log is in the error."""
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(65536)
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("<IIQQIIQ", attr, 0, BPF_PROG_TYPE_CGROUP_DEVICE, len(code) // 8,
                     ctypes.addressof(insns), ctypes.addressof(license_), 1,
                     ctypes.sizeof(log), ctypes.addressof(log))  # fmt: skip
    struct.pack_into("<16s", attr, 48, b"nsvirt_devices")
    fd = _bpf(BPF_PROG_LOAD, attr)
    if fd < 0:
        err = ctypes.get_errno()
        raise BpfError("loading the device program (bpf BPF_PROG_LOAD)", err,
                       log.value.decode(errors="replace"))  # fmt: skip
    os.set_inheritable(fd, False)
    return fd


def attach(cgroup_dir: str, prog_fd: int) -> None:
    """Attach without flags: exclusive, as libvirt does (nothing else may attach below)."""
    _attach_cmd(BPF_PROG_ATTACH, cgroup_dir, prog_fd, "attaching the device program")


def detach(cgroup_dir: str, prog_fd: int) -> None:
    _attach_cmd(BPF_PROG_DETACH, cgroup_dir, prog_fd, "detaching the device program")


def _attach_cmd(cmd: int, cgroup_dir: str, prog_fd: int, what: str) -> None:
    cg = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        attr = ctypes.create_string_buffer(64)
        struct.pack_into("<IIII", attr, 0, cg, prog_fd, BPF_CGROUP_DEVICE, 0)
        if _bpf(cmd, attr) < 0:
            raise BpfError(f"{what} to {cgroup_dir}", ctypes.get_errno())
    finally:
        os.close(cg)


BPF_PROG_GET_NEXT_ID = 11
BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15


def loaded_programs() -> list[tuple[int, int, str]]:
    """(id, type, name) of every BPF program loaded on the host (needs CAP_SYS_ADMIN):
    how tests prove that no device program outlives its container."""
    out = []
    prog_id = 0
    while True:
        attr = ctypes.create_string_buffer(16)
        struct.pack_into("<I", attr, 0, prog_id)
        if _bpf(BPF_PROG_GET_NEXT_ID, attr) < 0:
            return out  # ENOENT: no more programs
        prog_id = struct.unpack_from("<I", attr, 4)[0]
        by_id = ctypes.create_string_buffer(16)  # only prog_id may be set here
        struct.pack_into("<I", by_id, 0, prog_id)
        fd = _bpf(BPF_PROG_GET_FD_BY_ID, by_id)
        if fd < 0:
            continue  # unloaded meanwhile
        try:
            info = ctypes.create_string_buffer(256)
            query = ctypes.create_string_buffer(16)
            struct.pack_into("<IIQ", query, 0, fd, ctypes.sizeof(info), ctypes.addressof(info))
            if _bpf(BPF_OBJ_GET_INFO_BY_FD, query) == 0:
                prog_type = struct.unpack_from("<I", info, 0)[0]
                name = struct.unpack_from("<16s", info, 64)[0].split(b"\0")[0].decode()
                out.append((prog_id, prog_type, name))
        finally:
            os.close(fd)
