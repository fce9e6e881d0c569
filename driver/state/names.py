"""The files of a connection root, as plain strings (DESIGN.md §4).

One home for the layout: layout.Paths (pathlib, for the driver) is built on this,
and the one-shot path (shell/quick.py), for which pathlib alone costs ~9 ms, uses
it as it is.
"""

from __future__ import annotations

CONFIG_DIR = "etc/nsvirt/lxc"  # NAME.xml: persistent definitions
AUTOSTART_DIR = "etc/nsvirt/lxc/autostart"  # NAME.xml → ../NAME.xml
RUN_DIR = "run/nsvirt/lxc"  # NAME.{xml,json,sock,lock}: live XML, state, socket, lock
LOG_DIR = "var/log/nsvirt/lxc"  # NAME.log
CACHE_DIR = "var/cache/nsvirt/lxc"  # {config,live}/NAME.json: compiled definitions
NETWORK_CONFIG_DIR = "etc/nsvirt/network"
NETWORK_RUN_DIR = "run/nsvirt/network"


class Layout:
    """Where one connection root (`/` for lxc:///system) keeps each file."""

    __slots__ = ("prefix", "root")

    def __init__(self, root: str) -> None:
        self.root = root
        self.prefix = "" if root == "/" else root.rstrip("/")

    def under(self, relative: str) -> str:
        return f"{self.prefix}/{relative}"

    def config(self, name: str) -> str:
        return f"{self.prefix}/{CONFIG_DIR}/{name}.xml"

    def autostart_link(self, name: str) -> str:
        return f"{self.prefix}/{AUTOSTART_DIR}/{name}.xml"

    def live_xml(self, name: str) -> str:
        return f"{self.prefix}/{RUN_DIR}/{name}.xml"

    def state(self, name: str) -> str:
        return f"{self.prefix}/{RUN_DIR}/{name}.json"

    def socket(self, name: str) -> str:
        return f"{self.prefix}/{RUN_DIR}/{name}.sock"

    def lock(self, name: str) -> str:
        return f"{self.prefix}/{RUN_DIR}/{name}.lock"

    def define_lock(self) -> str:
        return f"{self.prefix}/{RUN_DIR}/.define.lock"

    def compiled(self, name: str, live: bool) -> str:
        """The compiled form of NAME's persistent (or live) XML (state/compiled.py)."""
        return f"{self.prefix}/{CACHE_DIR}/{'live' if live else 'config'}/{name}.json"


def entries(directory: str, suffix: str) -> list[str]:
    """The names of a directory's NAME<suffix> files, sorted (hidden ones left out)."""
    import os

    try:
        found = os.listdir(directory)
    except FileNotFoundError:
        return []
    cut = len(suffix)
    return sorted(e[:-cut] for e in found if e.endswith(suffix) and not e.startswith("."))
