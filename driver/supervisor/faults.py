"""Fault injection for tests: `NSVIRT_FAULT=<stage>` SIGKILLs the supervisor there.

Stages, in start order: cgroup, forked, mapped, init, continue, running. The
client passes the setting in the supervisor's configuration (a supervisor
forked from a running one does not see the client's environment).
"""

from __future__ import annotations

import os
import signal

STAGES = ("cgroup", "forked", "mapped", "init", "continue", "running")
_stage: list[str] = [""]


def configure(stage: str | None) -> None:
    _stage[0] = stage or ""


def point(stage: str) -> None:
    if _stage[0] == stage:
        os.kill(os.getpid(), signal.SIGKILL)
