"""Which code a supervisor runs: a new supervisor may be forked from a running one
only if both would run the very same code (supervisors outlive package upgrades)."""

from __future__ import annotations

import hashlib
import os

_DRIVER = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the modules a supervisor runs: any change to them makes a running one a bad donor
_FILES = ("fileio.py", "supervisor/__main__.py", "supervisor/child.py",
          "supervisor/protocol.py", "supervisor/planview.py", "supervisor/faults.py",
          "runtime/syscalls.py", "runtime/mounts.py", "runtime/caps.py",
          "runtime/cgroups/__init__.py", "runtime/cgroups/v1.py", "runtime/cgroups/v2.py",
          "runtime/cgroups/bpf_devices.py")  # fmt: skip


def code_signature() -> str:
    """A short hash of the supervisor's source files' identity (path, size, mtime)."""
    h = hashlib.sha256()
    for name in _FILES:
        try:
            st = os.stat(os.path.join(_DRIVER, name))
            h.update(f"{name}:{st.st_size}:{st.st_mtime_ns};".encode())
        except OSError:
            h.update(f"{name}:missing;".encode())
    return h.hexdigest()[:16]
