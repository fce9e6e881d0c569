"""Where a connection keeps its files (DESIGN.md §4).

<root>/etc/nsvirt/lxc/NAME.xml             persistent definition
<root>/etc/nsvirt/lxc/autostart/NAME.xml   symlink: autostart enabled
<root>/run/nsvirt/lxc/NAME.{xml,json,sock} live definition, runtime state, control socket
<root>/run/nsvirt/lxc/NAME.lock            held while the domain's state changes
<root>/run/nsvirt/lxc/NAME.root            an app container's root (the host's, bound)
<root>/var/log/nsvirt/lxc/NAME.log         supervisor log and console history
<root>/var/cache/nsvirt/lxc/{config,live}/NAME.json   compiled definitions

The directory names live in state/names.py (strings, for the one-shot path); this
wraps them in pathlib for the driver. A plain class (no dataclasses): the
supervisor uses it too, and stays small.
"""

from __future__ import annotations

import os
from pathlib import Path

from nsvirt.driver.state import names


class Paths:
    """The file layout under one connection root (`/` for lxc:///system)."""

    __slots__ = ("names", "root")

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.names = names.Layout(str(self.root))

    def __repr__(self) -> str:
        return f"Paths({str(self.root)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Paths) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    @property
    def config_dir(self) -> Path:
        return self.root / names.CONFIG_DIR

    @property
    def autostart_dir(self) -> Path:
        return self.root / names.AUTOSTART_DIR

    @property
    def run_dir(self) -> Path:
        return self.root / names.RUN_DIR

    @property
    def log_dir(self) -> Path:
        return self.root / names.LOG_DIR

    @property
    def network_config_dir(self) -> Path:
        return self.root / names.NETWORK_CONFIG_DIR

    @property
    def network_run_dir(self) -> Path:
        return self.root / names.NETWORK_RUN_DIR

    def network_config(self, name: str) -> Path:
        return self.network_config_dir / f"{name}.xml"

    def network_autostart(self, name: str) -> Path:
        return self.network_config_dir / "autostart" / f"{name}.xml"

    def network_state(self, name: str) -> Path:
        return self.network_run_dir / f"{name}.json"

    def network_lock(self, name: str) -> Path:
        return self.network_run_dir / f"{name}.lock"

    def network_files(self, name: str) -> Path:
        """The network's DHCP server's files (config, pid, leases, log)."""
        return self.network_run_dir / f"{name}.d"

    def ensure_network_dirs(self) -> None:
        for d in (self.network_config_dir, self.network_config_dir / "autostart",
                  self.network_run_dir):  # fmt: skip
            d.mkdir(mode=0o700, parents=True, exist_ok=True)

    def network_names(self) -> list[str]:
        return names.entries(str(self.network_config_dir), ".xml")

    def active_network_names(self) -> list[str]:
        return names.entries(str(self.network_run_dir), ".json")

    @property
    def define_lock(self) -> Path:
        """Held by define, create and undefine: names and uuids stay unique."""
        return Path(self.names.define_lock())

    def config(self, name: str) -> Path:
        return Path(self.names.config(name))

    def autostart_link(self, name: str) -> Path:
        return Path(self.names.autostart_link(name))

    def live_xml(self, name: str) -> Path:
        return Path(self.names.live_xml(name))

    def state(self, name: str) -> Path:
        return Path(self.names.state(name))

    def socket(self, name: str) -> Path:
        return Path(self.names.socket(name))

    def lock(self, name: str) -> Path:
        return Path(self.names.lock(name))

    def compiled(self, name: str, live: bool) -> Path:
        return Path(self.names.compiled(name, live))

    @property
    def cache_dir(self) -> Path:
        return self.root / names.CACHE_DIR

    def log(self, name: str) -> Path:
        return Path(self.names.log(name))

    def mountpoint(self, name: str) -> Path:
        """names.Layout.mountpoint: where an app container gets the host's root bound."""
        return Path(self.names.mountpoint(name))

    @staticmethod
    def make_mountpoint(path: str | os.PathLike[str]) -> None:
        names.Layout.make_mountpoint(os.fspath(path))

    def ensure(self) -> None:
        """Create the directories (private: definitions may hold secrets)."""
        self.names.ensure()

    def tag(self) -> str:
        """names.Layout.tag: 8 hex digits naming this root on the host."""
        return self.names.tag()

    def persistent_names(self) -> list[str]:
        """Names with a persistent definition, sorted."""
        return names.entries(str(self.config_dir), ".xml")

    def running_names(self) -> list[str]:
        """Names with a runtime state file, sorted."""
        return self.names.running_names()
