"""Built XSD 1.1 schemas kept between processes.

xmlschema takes ~200 ms to build nsvirt's schema and ~20 ms to load it pickled, on
every define, create and validation. A pickle runs code when it is loaded, so a
cached schema is read only from a directory and a file that nobody but this user
can write (owned by the effective uid, no group or other write, not symlinks).
The file name carries a hash of every schema file's bytes and where they are,
xmlschema's and elementpath's versions and the interpreter's: any change builds the schema anew.
A cache that cannot be read or written only costs the build.

Where: $NSVIRT_SCHEMA_CACHE (`off` for none); as root /var/cache/nsvirt/schemas,
else $XDG_CACHE_HOME (or ~/.cache)/nsvirt/schemas.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def cache_dir() -> str | None:
    chosen = os.environ.get("NSVIRT_SCHEMA_CACHE")
    if chosen:
        return None if chosen == "off" else chosen
    if os.geteuid() == 0:
        return "/var/cache/nsvirt/schemas"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "nsvirt", "schemas")


def key(schema_dir: str) -> str:
    """What the built schema depends on, hashed."""
    import elementpath
    import xmlschema

    h = hashlib.sha256(f"{xmlschema.__version__}:{elementpath.__version__}:"
                       f"{sys.version}:{os.path.realpath(schema_dir)}".encode())  # fmt: skip
    for name in sorted(os.listdir(schema_dir)):
        if name.endswith(".xsd"):
            with open(os.path.join(schema_dir, name), "rb") as f:
                h.update(name.encode() + b"\0" + f.read() + b"\0")
    return h.hexdigest()[:24]


def _private(st: os.stat_result) -> bool:
    return st.st_uid == os.geteuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def load(schema_dir: str, name: str, build: Callable[[], Any]) -> Any:
    """The schema `name` of `schema_dir`: from the cache, or built (and cached)."""
    directory = cache_dir()
    if directory is None:
        return build()
    path = os.path.join(directory, f"{name}-{key(schema_dir)}.pickle")
    found = _read(directory, path)
    if found is not None:
        return found
    built = build()
    _write(directory, path, built)
    return built


def _read(directory: str, path: str) -> Any:
    try:
        if not _private(os.lstat(directory)) or not stat.S_ISDIR(os.lstat(directory).st_mode):
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or not _private(st):
            return None
        try:
            return pickle.load(f)
        except Exception:  # corrupt or truncated: build it again
            return None


def _write(directory: str, path: str, schema: Any) -> None:
    from nsvirt.driver.state import files

    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if not _private(os.lstat(directory)):
            return
        data = pickle.dumps(schema, protocol=pickle.HIGHEST_PROTOCOL)
        files.write_atomic(path, data, mode=0o600, durable=False)
        prefix, mine = os.path.basename(path).split("-")[0] + "-", os.path.basename(path)
        for old in os.listdir(directory):  # schemas of other versions: never used again
            if old.startswith(prefix) and old.endswith(".pickle") and old != mine:
                files.remove(os.path.join(directory, old), durable=False)
    except (OSError, pickle.PicklingError, TypeError, AttributeError, RecursionError):
        pass
