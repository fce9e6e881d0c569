"""send-process-signal: a signal to a process of a running container, named by its
pid inside the container (libvirt's LXC driver signals pid 1 only), with virsh's
signal names and numbers (virDomainProcessSignal)."""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING

from nsvirt.driver.errors import InvalidArgument, OperationFailed, OperationInvalid

if TYPE_CHECKING:
    from nsvirt.driver.domain import Domain

# virDomainProcessSignal's names, in its numbering (0: nop … 31: sys, then rt0 … rt32)
NAMES = ("nop", "hup", "int", "quit", "ill", "trap", "abrt", "bus", "fpe", "kill", "usr1",
         "segv", "usr2", "pipe", "alrm", "term", "stkflt", "chld", "cont", "stop", "tstp",
         "ttin", "ttou", "urg", "xcpu", "xfsz", "vtalrm", "prof", "winch", "poll", "pwr",
         "sys", *(f"rt{n}" for n in range(33)))  # fmt: skip
_HOST = {"stkflt": 16, "poll": signal.SIGIO, "pwr": signal.SIGPWR}


def parse(name: str) -> int:
    """virsh's signame (a number, or a name: any case, `sig`/`sig_` prefix) → its
    virDomainProcessSignal number."""
    text = name.strip().lower()
    if text.isdigit():
        number = int(text)
        if number < len(NAMES):
            return number
    else:
        for prefix in ("sig_", "sig"):
            if text.startswith(prefix) and text.removeprefix(prefix) in NAMES:
                text = text.removeprefix(prefix)
                break
        if text in NAMES:
            return NAMES.index(text)
    raise InvalidArgument(f"malformed signal name: {name}")


def host_signal(number: int) -> int:
    """The host's signal for a virDomainProcessSignal number (0: none, only a check)."""
    name = NAMES[number]
    if name.startswith("rt"):
        host = signal.SIGRTMIN + int(name[2:])
        if host > signal.SIGRTMAX:
            raise InvalidArgument(f"signal {name} is not available on this host")
        return host
    if name in _HOST:
        return int(_HOST[name])
    return 0 if name == "nop" else int(getattr(signal, f"SIG{name.upper()}"))


def send(dom: Domain, pid: int, number: int) -> None:
    """Send signal `number` (virsh's numbering) to the process `pid` inside `dom`."""
    from nsvirt.driver.state import runstate

    dom.conn.require_writable("virDomainSendProcessSignal")
    if pid < 1:
        raise InvalidArgument(f"expected a positive value for pid, not {pid}")
    if not 0 <= number < len(NAMES):
        raise InvalidArgument(f"signum value {number} is out of range")
    state = dom.run_state()
    if not runstate.is_live(state):
        raise OperationInvalid("domain is not running")
    assert state is not None
    sig = host_signal(number)
    host_pid = _host_pid(state.init_pid, pid)
    from nsvirt.driver.runtime import procstat

    fd = procstat.open_pidfd(host_pid)  # the process found is the one signalled
    if fd is None:
        raise OperationFailed(f"no process {pid} in the domain")
    try:
        if _host_pid(state.init_pid, pid) != host_pid:  # the pid was reused meanwhile
            raise OperationFailed(f"no process {pid} in the domain")
        signal.pidfd_send_signal(fd, sig)
    except ProcessLookupError:
        raise OperationFailed(f"no process {pid} in the domain") from None
    finally:
        os.close(fd)


def _host_pid(init_pid: int, inside: int) -> int:
    """The host pid of the process the container's pid namespace numbers `inside`."""
    ns = os.stat(f"/proc/{init_pid}/ns/pid").st_ino
    level = len(_nspids(init_pid)) - 1
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pids = _nspids(int(entry))
        if len(pids) > level and pids[level] == inside:
            try:
                if os.stat(f"/proc/{entry}/ns/pid").st_ino == ns:
                    return int(entry)
            except OSError:
                continue
    raise OperationFailed(f"no process {inside} in the domain")


def _nspids(pid: int) -> list[int]:
    """The pids of `pid` from the host's namespace inward; none for one that has
    exited (a zombie: nothing to signal)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("State:") and line.split()[1] in ("Z", "X"):
                    return []
                if line.startswith("NSpid:"):
                    return [int(x) for x in line.split()[1:]]
    except (OSError, ValueError, IndexError):
        pass
    return []
