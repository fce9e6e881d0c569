"""Where a connection keeps its files, and how they are written: atomically, under locks.

<root>/etc/nsvirt/lxc/NAME.xml             persistent definition
<root>/etc/nsvirt/lxc/autostart/NAME.xml   symlink: autostart enabled
<root>/run/nsvirt/lxc/NAME.{xml,json,sock} live definition, runtime state, control socket
<root>/run/nsvirt/lxc/NAME.lock            held while the domain's state changes
<root>/var/log/nsvirt/lxc/NAME.log         supervisor log and console history
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from nsvirt.driver.fileio import fsync_dir, remove, write_atomic

__all__ = ["STATE_FORMAT", "Paths", "fsync_dir", "locked", "remove", "write_atomic"]

# The names of every JSON file written here carry this format version.
STATE_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Paths:
    """The file layout under one connection root (`/` for lxc:///system)."""

    root: Path

    @property
    def config_dir(self) -> Path:
        return self.root / "etc/nsvirt/lxc"

    @property
    def autostart_dir(self) -> Path:
        return self.config_dir / "autostart"

    @property
    def run_dir(self) -> Path:
        return self.root / "run/nsvirt/lxc"

    @property
    def log_dir(self) -> Path:
        return self.root / "var/log/nsvirt/lxc"

    def config(self, name: str) -> Path:
        return self.config_dir / f"{name}.xml"

    def autostart_link(self, name: str) -> Path:
        return self.autostart_dir / f"{name}.xml"

    def live_xml(self, name: str) -> Path:
        return self.run_dir / f"{name}.xml"

    def state(self, name: str) -> Path:
        return self.run_dir / f"{name}.json"

    def socket(self, name: str) -> Path:
        return self.run_dir / f"{name}.sock"

    def lock(self, name: str) -> Path:
        return self.run_dir / f"{name}.lock"

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def ensure(self) -> None:
        """Create the directories (private: definitions may hold secrets)."""
        for d in (self.config_dir, self.autostart_dir, self.run_dir, self.log_dir):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)

    def persistent_names(self) -> list[str]:
        """Names with a persistent definition, sorted."""
        try:
            entries = os.listdir(self.config_dir)
        except FileNotFoundError:
            return []
        return sorted(e[:-4] for e in entries if e.endswith(".xml") and not e.startswith("."))

    def running_names(self) -> list[str]:
        """Names with a runtime state file, sorted."""
        try:
            entries = os.listdir(self.run_dir)
        except FileNotFoundError:
            return []
        return sorted(e[:-5] for e in entries if e.endswith(".json") and not e.startswith("."))


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if missing) for the block."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock
