"""Fault injection for tests: `NSVIRT_FAULT=<stage>` SIGKILLs the supervisor there.

Stages, in start order: cgroup, forked, mapped, init, continue, running.
"""

from __future__ import annotations

import os
import signal

STAGES = ("cgroup", "forked", "mapped", "init", "continue", "running")


def point(stage: str) -> None:
    if os.environ.get("NSVIRT_FAULT") == stage:
        os.kill(os.getpid(), signal.SIGKILL)
