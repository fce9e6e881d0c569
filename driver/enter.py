"""lxc-enter-namespace: run a command inside a running container (runtime/enter.py),
with what its init has: namespaces, cgroup, root, environment, capability bounds,
seccomp filter and no_new_privs, all derived from its live definition."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

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
                         plan.keep_caps(definition), program, contained.no_new_privs)  # fmt: skip
    except (enter.EnterError, OSError) as e:
        raise InternalError(str(e)) from None
