"""Drop capabilities from every set, bounding set included, before exec'ing init."""

from __future__ import annotations

from collections.abc import Sequence

from nsvirt.driver.runtime import syscalls

# kernel capability numbers, by libvirt's names
CAP_NUMBERS = {
    "chown": 0, "dac_override": 1, "dac_read_search": 2, "fowner": 3, "fsetid": 4,
    "kill": 5, "setgid": 6, "setuid": 7, "setpcap": 8, "linux_immutable": 9,
    "net_bind_service": 10, "net_broadcast": 11, "net_admin": 12, "net_raw": 13,
    "ipc_lock": 14, "ipc_owner": 15, "sys_module": 16, "sys_rawio": 17, "sys_chroot": 18,
    "sys_ptrace": 19, "sys_pacct": 20, "sys_admin": 21, "sys_boot": 22, "sys_nice": 23,
    "sys_resource": 24, "sys_time": 25, "sys_tty_config": 26, "mknod": 27, "lease": 28,
    "audit_write": 29, "audit_control": 30, "setfcap": 31, "mac_override": 32,
    "mac_admin": 33, "syslog": 34, "wake_alarm": 35, "block_suspend": 36, "audit_read": 37,
    "perfmon": 38, "bpf": 39, "checkpoint_restore": 40,
}  # fmt: skip


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return max(CAP_NUMBERS.values())


def drop_capabilities(keep: Sequence[str]) -> None:
    """Keep only `keep`: bounding set first (needs CAP_SETPCAP), then the other sets."""
    kept = {CAP_NUMBERS[name] for name in keep}
    for cap in range(last_cap() + 1):
        if cap not in kept:
            syscalls.prctl(syscalls.PR_CAPBSET_DROP, cap, what=f"dropping capability {cap}")
    syscalls.prctl(
        syscalls.PR_CAP_AMBIENT,
        syscalls.PR_CAP_AMBIENT_CLEAR_ALL,
        what="clearing ambient capabilities",
    )
    # the host may already lack some (a sandbox without CAP_SYS_RESOURCE, say)
    mask = sum(1 << c for c in kept) & _permitted()
    syscalls.capset(mask, mask, 0)


def _permitted() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapPrm:"):
                return int(line.split()[1], 16)
    return (1 << (last_cap() + 1)) - 1
