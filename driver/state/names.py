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
MOUNT_POINTS = "/run/nsvirt/roots"  # app containers' roots, host-wide (Layout.mountpoint)


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

    def procfs(self) -> str:
        """The root's /proc server's directory (procfs/service.py)."""
        return f"{self.prefix}/{RUN_DIR}/procfs"

    def log(self, name: str) -> str:
        return f"{self.prefix}/{LOG_DIR}/{name}.log"

    def mountpoint(self, name: str) -> str:
        """Where an app container (sharing the host's root) gets that root bound: in one
        host-wide directory every id can pass through (root in a user namespace must
        reach it, and a connection root may be private)."""
        return f"{MOUNT_POINTS}/{self.tag() or 'system'}-{name}"

    @staticmethod
    def make_mountpoint(path: str) -> None:
        import os

        os.makedirs(MOUNT_POINTS, mode=0o711, exist_ok=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass

    def ensure(self) -> None:
        """Create the directories (private: definitions may hold secrets)."""
        import os

        for d in (CONFIG_DIR, AUTOSTART_DIR, RUN_DIR, LOG_DIR, f"{CACHE_DIR}/config",
                  f"{CACHE_DIR}/live"):  # fmt: skip
            os.makedirs(self.under(d), mode=0o700, exist_ok=True)

    def running_names(self) -> list[str]:
        """Names with a runtime state file, sorted."""
        return entries(self.under(RUN_DIR), ".json")

    def tag(self) -> str:
        """8 hex digits naming this root on the host (cgroup partitions, link names);
        "" for the system root. From the root directory's device and inode, not its
        path: two roots of the same path in different mount namespaces (or one removed
        and made again) never share a tag. The root must exist."""
        if not self.prefix:
            return ""
        import os

        try:  # the C module behind hashlib.sha256, without OpenSSL's load (~2 ms)
            from _sha256 import sha256  # Python 3.11
        except ImportError:  # pragma: no cover
            from hashlib import sha256
        st = os.stat(self.root)
        return sha256(f"{st.st_dev}:{st.st_ino}".encode()).hexdigest()[:8]


def uri_from_environment() -> str | None:
    """$NSVIRT_DEFAULT_URI, else $LIBVIRT_DEFAULT_URI if it is an lxc: URI (a libvirt
    user's setting carries over; one for another driver is not ours); None: neither."""
    import os

    ours = os.environ.get("NSVIRT_DEFAULT_URI")
    if ours:
        return ours
    theirs = os.environ.get("LIBVIRT_DEFAULT_URI", "")
    return theirs if theirs.startswith("lxc:") else None


def root_uri(root: str) -> str:
    """The canonical connection URI of a root directory (what connection.parse_uri
    returns for it)."""
    return "lxc:///system" if root == "/" else f"lxc:///embed?root={root}"


def entries(directory: str, suffix: str) -> list[str]:
    """The names of a directory's NAME<suffix> files, sorted (hidden ones left out)."""
    import os

    try:
        found = os.listdir(directory)
    except FileNotFoundError:
        return []
    cut = len(suffix)
    return sorted(e[:-cut] for e in found if e.endswith(suffix) and not e.startswith("."))
