"""How state files are written and guarded: atomic replacement (temp file, fsync,
rename, fsync the directory) and flock(2) locks with a bounded wait.

Free of dataclasses, so that the supervisor, which must stay small, can use it.
"""

from __future__ import annotations

import fcntl
import os
import time

from nsvirt.driver.errors import OperationTimeout

# A bound on waiting for a lock another process holds (a start holds its domain's
# for up to the supervisor's handshake bound), not a guess at a delay.
LOCK_TIMEOUT = 90.0


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


def remove_temp_of(path: str | os.PathLike[str], pid: int) -> None:
    """Remove the temp file write_atomic(path) of process `pid` left: a writer that
    was SIGKILLed between its open and its rename (whoever killed it calls this)."""
    directory, name = os.path.split(os.fspath(path))
    try:
        os.unlink(os.path.join(directory, f".{name}.{pid}.tmp"))
    except FileNotFoundError:
        pass


def remove(path: str | os.PathLike[str], durable: bool = True) -> bool:
    """Remove a file if it exists (and make that durable); say whether it existed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    if durable:
        fsync_dir(os.path.dirname(os.fspath(path)) or ".")
    return True


class locked:  # a context manager used as a function: `with locked(path):`
    """Hold an exclusive flock on `path` (created if missing) for the block.

    Waits at most $NSVIRT_LOCK_TIMEOUT (default LOCK_TIMEOUT) seconds, then raises
    OperationTimeout naming the process that holds it. A lock file may be removed by
    its holder (lock files of undefined domains are not kept): after locking, the
    path must still be the file we locked, else we lock the new one. A class, not
    contextlib's decorator: the one-shot path locks too, and contextlib costs ~3 ms."""

    def __init__(self, path: str | os.PathLike[str], what: str = "") -> None:
        self.path = path
        self.what = what
        self.fd = -1

    def __enter__(self) -> None:
        timeout = float(os.environ.get("NSVIRT_LOCK_TIMEOUT") or LOCK_TIMEOUT)
        deadline = time.monotonic() + timeout
        pause = 0.001
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            what = self.what and f" on {self.what}"
                            raise OperationTimeout(
                                f"cannot acquire state change lock{what} "
                                f"(held by {lock_holder(fd)}) after {timeout:g} s"
                            ) from None
                        time.sleep(pause)  # flock has no timed wait; back off up to 50 ms
                        pause = min(pause * 2, 0.05)
                if _same_file(fd, self.path):
                    break
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # it was removed (or replaced) while we waited: lock the new one
        self.fd = fd

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing drops the lock
        self.fd = -1


def remove_lock(path: str | os.PathLike[str]) -> None:
    """Remove a lock file whose lock the caller holds (see `locked`)."""
    remove(path, durable=False)


def remove_unheld_lock(path: str | os.PathLike[str]) -> None:
    """Remove a lock file if nobody holds its lock now (a holder keeps it)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if _same_file(fd, path):
            remove(path, durable=False)
    except BlockingIOError:
        pass
    finally:
        os.close(fd)


def _same_file(fd: int, path: str | os.PathLike[str]) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def lock_holder(fd: int) -> str:
    """Who holds the flock on the file `fd` refers to: "pid N: its command line"."""
    st = os.fstat(fd)
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == dev:
            pid = fields[4]
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                cmd = ""
            return f"pid {pid}: {cmd}" if cmd else f"pid {pid}"
    return "another process"
