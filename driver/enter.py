"""lxc-enter-namespace: run a command inside a running container (runtime/enter.py),
with what its init has: namespaces, cgroup, root, environment, capability bounds,
seccomp filter and no_new_privs, all derived from its live definition."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from nsvirt.driver.errors import InternalError, OperationInvalid

if TYPE_CHECKING:
    from nsvirt.driver.domain import Domain


def enter_namespace(dom: Domain, argv: list[str]) -> int:
    """Run `argv` (a path inside the container) there; its exit status."""
    from nsvirt.driver.launch import containment, plan
    from nsvirt.driver.runtime import enter, seccomp
    from nsvirt.driver.runtime.cgroups import PAYLOAD
    from nsvirt.driver.state import runstate

    dom.conn.require_writable("virDomainLxcEnterNamespace")
    if not argv:
        raise InternalError("a command to run is needed")
    state = dom.run_state()
    if not runstate.is_live(state):
        raise OperationInvalid("domain is not running")
    assert state is not None
    definition = dom.definition()
    contained = containment.decide(definition)
    program = b""
    if contained.seccomp or contained.remount_guard:
        program = seccomp.build(seccomp.host_arch(), contained.seccomp, contained.remount_guard)
    procs = sorted({os.path.join(d, PAYLOAD, "cgroup.procs") for d in state.cgroup.values()})
    try:
        return enter.run(state.init_pid, argv, dict(plan.environment(definition)), procs,
                         plan.keep_caps(definition), program, contained.no_new_privs,
                         _sysinfo(dom, definition, contained, state))  # fmt: skip
    except (enter.EnterError, OSError) as e:
        raise InternalError(str(e)) from None


def _sysinfo(dom: Domain, definition: Any, contained: Any, state: Any) -> Any:
    """The command's sysinfo(2), answered by this process as the supervisor answers
    init's (driver/procfs/sysinfo.py), unless the domain keeps the kernel's /proc."""
    from nsvirt.driver.procfs import sysinfo
    from nsvirt.driver.runtime import seccomp

    if definition.proc_view != "container":
        return None
    fuse = "fuse" in definition.containment.device_presets or any(
        h.source == "/dev/fuse" for h in definition.devices.hostdevs)  # fmt: skip
    program = seccomp.sysinfo_filter(seccomp.host_arch())
    if program is None or not sysinfo.answerable({n for n, _ in contained.seccomp}, fuse):
        return None
    answerer = sysinfo.Answerer(state.cgroup, sysinfo.boot_offset(state.init_pid))
    return program, lambda listener: _hand_over(dom, listener), answerer.serve


def _hand_over(dom: Domain, listener: int) -> bool:
    """Give the command's sysinfo listener to the domain's supervisor, which answers
    init's too and outlives the command's background processes; False if it cannot
    (this process then answers until the command ends)."""
    from nsvirt.driver.runtime import sockets
    from nsvirt.driver.supervisor import protocol

    try:
        with protocol.connect(dom.conn.paths.names.socket(dom.name), timeout=5.0) as sock:
            sockets.send_fds(sock, [protocol.encode({"op": "sysinfo"})], [listener])
            reply = protocol.decode(protocol.read_line(sock, 5.0) or b"{}")
    except (OSError, TimeoutError, ValueError):
        return False
    return reply.get("ok") is True
