"""fork(2) with the child born in a cgroup: clone3(CLONE_INTO_CGROUP) (Linux 5.7,
cgroup v2).

Nobody then writes the child's pid to cgroup.procs, whose first write waits an
RCU grace period for the kernel's threadgroup lock (5–16 ms). Python 3.11 has no
clone3: the call goes through libc's syscall(2), bracketed as os.fork brackets
fork(2) (PyOS_BeforeFork, PyOS_AfterFork_Child or _Parent), and made with the GIL
held (ctypes.PyDLL), as os.fork is. Only for a single-threaded caller (the
supervisor): libc's own fork handlers do not run.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

SYS_CLONE3 = 435  # the same number on every architecture that has it
CLONE_INTO_CGROUP = 0x200000000
SIGCHLD = 17
# struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal, stack,
# stack_size, tls, set_tid, set_tid_size, cgroup (CLONE_ARGS_SIZE_VER2)
_ARGS = struct.Struct("11Q")

_libc = ctypes.PyDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_api = ctypes.pythonapi


def fork_into(cgroup_fd: int) -> int | None:
    """Fork into the cgroup `cgroup_fd` (an open cgroup v2 directory): the child's pid
    in the parent, 0 in the child; None if the kernel has no clone3 or refuses the
    cgroup (nothing was forked: fork and join it the old way)."""
    args = ctypes.create_string_buffer(
        _ARGS.pack(CLONE_INTO_CGROUP, 0, 0, 0, SIGCHLD, 0, 0, 0, 0, 0, cgroup_fd), _ARGS.size
    )
    _api.PyOS_BeforeFork()
    pid = _libc.syscall(ctypes.c_long(SYS_CLONE3), args, ctypes.c_size_t(_ARGS.size))
    if pid == 0:
        _api.PyOS_AfterFork_Child()
        return 0
    err = ctypes.get_errno()
    _api.PyOS_AfterFork_Parent()
    if pid > 0:
        return int(pid)
    if err in (errno.ENOSYS, errno.EINVAL, errno.E2BIG, errno.EOPNOTSUPP, errno.EBADF):
        return None
    raise OSError(err, f"clone3 into a cgroup: {os.strerror(err)}")
