"""Fault injection for tests: `NSVIRT_FAULT=<stage>` SIGKILLs the supervisor at that
stage, `NSVIRT_FAULT=stop:<stage>` SIGSTOPs it there.

Stages, in start order: cgroup, forked, mapped, init, (network,) continue,
running; and `request`: when a control request arrives. The client passes the setting in the
supervisor's config (a supervisor forked from a running one does not see the
client's environment).
"""

from __future__ import annotations

import _signal as signal  # signal.py without its enums (enum: ~3 ms a start)
import os

START_STAGES = ("cgroup", "forked", "mapped", "init", "continue", "running")
# with an <interface>: after the interfaces are made, before init goes on
NETWORK_STAGE = "network"
STAGES = (*START_STAGES, NETWORK_STAGE, "request")


class Faults:
    __slots__ = ("signal", "stage")

    def __init__(self, spec: str = "") -> None:
        how, _, stage = spec.rpartition(":")
        self.stage = stage
        self.signal = signal.SIGSTOP if how == "stop" else signal.SIGKILL

    def point(self, stage: str) -> None:
        """Called at each stage: the configured fault strikes here."""
        if self.stage == stage:
            os.kill(os.getpid(), self.signal)
