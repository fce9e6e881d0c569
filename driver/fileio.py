"""Durable file writes: temp file, fsync, rename, fsync the directory.

Kept apart from store.py (and free of dataclasses) so that the supervisor,
which must stay small, can import it.
"""

from __future__ import annotations

import os


def fsync_dir(path: str | os.PathLike[str]) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike[str], data: bytes, mode: int = 0o600,
                 durable: bool = True) -> None:  # fmt: skip
    """Replace `path` with `data` all at once: temp file, fsync, rename, fsync the dir.

    durable=False skips the fsyncs but keeps the rename (readers still see the old or
    the new file, never a torn one): for runtime state under /run, which a reboot
    empties anyway, so there is nothing to make survive a crash."""
    path = os.fspath(path)
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)  # rename(2) is atomic within one filesystem
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if durable:
        fsync_dir(directory or ".")


def remove(path: str | os.PathLike[str], durable: bool = True) -> bool:
    """Remove a file if it exists (and make that durable); say whether it existed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    if durable:
        fsync_dir(os.path.dirname(os.fspath(path)) or ".")
    return True
