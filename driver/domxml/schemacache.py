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

import os
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
    import hashlib

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
    import pickle  # only here: the fast pre-check's table is JSON (fastcheck.py)

    if cache_dir() is None:
        return build()
    file = f"{name}-{key(schema_dir)}.pickle"
    found = read_private(file)
    if found is not None:
        try:
            return pickle.loads(found)
        except Exception:  # corrupt or truncated: build it again
            pass
    built = build()
    try:
        data = pickle.dumps(built, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError):
        return built
    write_private(file, data)
    return built


def read_private(file: str) -> bytes | None:
    """A cache file's bytes, if the cache directory and the file are private (this
    user's, nobody else may write them, no symlinks); else None."""
    directory = cache_dir()
    if directory is None:
        return None
    try:
        st = os.lstat(directory)
        if not _private(st) or not stat.S_ISDIR(st.st_mode):
            return None
        fd = os.open(os.path.join(directory, file), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or not _private(st):
            return None
        try:
            return f.read()
        except OSError:
            return None


def write_private(file: str, data: bytes) -> None:
    """Write a cache file (best effort), and remove the cache's other files of the
    same kind (`kind-KEY.ext`: older keys are never used again)."""
    from nsvirt.driver.state import files

    directory = cache_dir()
    if directory is None:
        return
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if not _private(os.lstat(directory)):
            return
        files.write_atomic(os.path.join(directory, file), data, mode=0o600, durable=False)
        prefix, suffix = file.rsplit("-", 1)[0] + "-", os.path.splitext(file)[1]
        for old in os.listdir(directory):
            if old.startswith(prefix) and old.endswith(suffix) and old != file:
                files.remove(os.path.join(directory, old), durable=False)
    except OSError:
        pass
