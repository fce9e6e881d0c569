"""The v2 device program, checked without root: decoded and run by a tiny interpreter
of the instructions it uses, against every rule shape."""

from __future__ import annotations

import struct

import pytest

from nsvirt.driver.launch import plan
from nsvirt.driver.launch.plan import DeviceRule
from nsvirt.driver.runtime.cgroups import bpf_devices as b

CHAR, BLOCK = b.BPF_DEVCG_DEV_CHAR, b.BPF_DEVCG_DEV_BLOCK
M, R, W = b.BPF_DEVCG_ACC_MKNOD, b.BPF_DEVCG_ACC_READ, b.BPF_DEVCG_ACC_WRITE


def run(code: bytes, dev_type: int, access: int, major: int, minor: int) -> int:
    """Interpret the program for one request, as the kernel would."""
    ctx = (access << 16 | dev_type, major, minor)
    regs = [0] * 11
    insns = [struct.unpack("<BBhi", code[i : i + 8]) for i in range(0, len(code), 8)]
    pc = 0
    for _ in range(10_000):
        op, r, off, imm = insns[pc]
        dst, src = r & 0xF, r >> 4
        pc += 1
        if op == b.LDX_MEM_W:
            assert src == 1 and off in (0, 4, 8)
            regs[dst] = ctx[off // 4]
        elif op == b.ALU32_AND_K:
            regs[dst] = regs[dst] & (imm & 0xFFFFFFFF)
        elif op == b.ALU32_RSH_K:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif op == b.ALU32_MOV_K:
            regs[dst] = imm & 0xFFFFFFFF
        elif op == b.ALU32_MOV_X:
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif op == b.JMP_JNE_K:
            if regs[dst] != (imm & 0xFFFFFFFF):
                pc += off
        elif op == b.JMP_EXIT:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {op:#x}")
    raise AssertionError("no exit")


DENY_ALL = DeviceRule("a", None, None, "rwm")


def prog(*rules: DeviceRule) -> bytes:
    return b.program((DENY_ALL, *rules))


def test_deny_all_denies_everything() -> None:
    code = prog()
    assert run(code, CHAR, R, 1, 3) == 0
    assert run(code, BLOCK, R | W, 8, 0) == 0


def test_exact_rule() -> None:
    code = prog(DeviceRule("c", 1, 3, "rwm"))
    assert run(code, CHAR, R | W, 1, 3) == 1
    assert run(code, CHAR, M, 1, 3) == 1
    assert run(code, CHAR, R, 1, 5) == 0  # other minor
    assert run(code, BLOCK, R, 1, 3) == 0  # other type
    assert run(code, CHAR, R, 10, 200) == 0


def test_wildcard_minor_and_major() -> None:
    pts = prog(DeviceRule("c", 136, None, "rwm"))
    assert run(pts, CHAR, R | W, 136, 0) == 1
    assert run(pts, CHAR, R | W, 136, 4242) == 1
    assert run(pts, CHAR, R, 137, 0) == 0
    anychar = prog(DeviceRule("c", None, None, "m"))
    assert run(anychar, CHAR, M, 254, 7) == 1
    assert run(anychar, BLOCK, M, 8, 0) == 0


def test_access_subset() -> None:
    code = prog(DeviceRule("c", None, None, "m"), DeviceRule("b", 8, None, "r"))
    assert run(code, CHAR, M, 10, 200) == 1  # mknod allowed
    assert run(code, CHAR, R, 10, 200) == 0  # opening is not
    assert run(code, CHAR, R | M, 10, 200) == 0  # a request beyond the rule
    assert run(code, BLOCK, R, 8, 1) == 1
    assert run(code, BLOCK, W, 8, 1) == 0


def test_all_rule_allows_everything() -> None:
    code = prog(DeviceRule("a", None, None, "rwm"))
    assert run(code, BLOCK, R | W | M, 8, 0) == 1


@pytest.mark.parametrize(("dev", "allowed"), [
    ((1, 3), True), ((1, 5), True), ((1, 7), True), ((1, 8), True), ((1, 9), True),
    ((5, 0), True), ((5, 2), True), ((10, 229), True), ((136, 3), True),
    ((10, 200), False), ((1, 1), False), ((4, 1), False), ((5, 1), False),
])  # fmt: skip
def test_libvirt_default_list(dev: tuple[int, int], allowed: bool) -> None:
    code = b.program(plan.device_rules(("chown",)))
    assert run(code, CHAR, R | W, *dev) == int(allowed)
    assert run(code, BLOCK, R, *dev) == 0


def test_program_is_well_formed() -> None:
    code = b.program(plan.device_rules(("mknod",)))
    assert len(code) % 8 == 0
    last = struct.unpack("<BBhi", code[-8:])
    assert last[0] == b.JMP_EXIT
