"""Which code a supervisor runs: a new supervisor may be forked from a running one
only if both would run the very same code (supervisors outlive package upgrades).

The signature covers every Python file of nsvirt.driver (the supervisor's whole
possible import closure, with no list to keep up to date) and the interpreter.
"""

from __future__ import annotations

import os
import sys

try:  # the C module behind hashlib.sha256, without OpenSSL's load (~2 ms)
    from _sha256 import sha256  # Python 3.11
except ImportError:  # pragma: no cover
    try:
        from _sha2 import sha256  # 3.12 and later
    except ImportError:
        from hashlib import sha256

_DRIVER = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


_LOADED: list[str] = []  # this process's signature, computed once: the code it loaded


def running_signature() -> str:
    """The signature of the code this process runs: taken when it first asks (a
    supervisor asks at its start, before it could fork), never read from disk again,
    so a forked supervisor reports the code it really runs, its donor's."""
    if not _LOADED:
        _LOADED.append(code_signature())
    return _LOADED[0]


def adopt(signature: str) -> None:
    """Take the signature the launcher computed for this fork of itself, right after
    the fork (the same code on disk at the same moment): the one-shot start computes
    it while the new supervisor loads, instead of after (~1.5 ms of its critical path)."""
    if not _LOADED:
        _LOADED.append(signature)


def code_signature() -> str:
    """A short hash of the interpreter and of each driver source file's identity
    (path, size, mtime), as they are on disk now."""
    # the interpreter itself: python and python3 (and a venv's link) are the same one
    h = sha256(f"{os.path.realpath(sys.executable)}:{sys.version}".encode())
    for top, dirs, names in os.walk(_DRIVER):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(n for n in names if n.endswith(".py")):
            path = os.path.join(top, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            rel = os.path.relpath(path, _DRIVER)
            h.update(f"{rel}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]
