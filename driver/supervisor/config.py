"""What the launcher hands a new supervisor, as JSON on stdin (or in a spawn request):
the one definition of that contract, used on both sides.

A supervisor may be forked from a running one of the same code, so the config
carries everything the client's environment would otherwise have told it.
"""

from __future__ import annotations

import os

from nsvirt.driver.state import idranges as idranges_table
from nsvirt.driver.state import jsonlite
from nsvirt.driver.state.names import Layout
from nsvirt.driver.supervisor import planview

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


CONFIG_FORMAT = 1
HANDSHAKE_TIMEOUT = 30.0  # a bound on each read of the start handshake, not a delay


class SupervisorConfig:
    """The launch plan (as plain views), the connection root and the start's settings."""

    __slots__ = ("_paths", "fault", "handshake_timeout", "idranges", "persistent", "plan",
                 "plan_json", "root")  # fmt: skip

    def __init__(self, plan_json: str, root: str, *, persistent: bool, fault: str = "",
                 handshake_timeout: float = HANDSHAKE_TIMEOUT,
                 idranges: str = idranges_table.TABLE) -> None:  # fmt: skip
        self.plan_json = plan_json
        self.plan: Any = planview.load(plan_json)
        self.root = root
        self._paths: Layout | None = None
        self.persistent = persistent
        self.fault = fault  # test hook: supervisor/faults.py
        self.handshake_timeout = handshake_timeout
        self.idranges = idranges  # the host id range table (state/idranges.py)

    @property
    def paths(self) -> Layout:
        """The root's layout, as strings (no pathlib in the supervisor)."""
        if self._paths is None:
            self._paths = Layout(self.root)
        return self._paths

    @classmethod
    def for_launch(cls, plan_json: str, root: str, *, persistent: bool) -> SupervisorConfig:
        """The config of a start from this client, with the settings of its environment
        ($NSVIRT_FAULT, $NSVIRT_HANDSHAKE_TIMEOUT, $NSVIRT_IDRANGES)."""
        timeout = float(os.environ.get("NSVIRT_HANDSHAKE_TIMEOUT") or HANDSHAKE_TIMEOUT)
        return cls(plan_json, root, persistent=persistent,
                   fault=os.environ.get("NSVIRT_FAULT", ""), handshake_timeout=timeout,
                   idranges=idranges_table.table_path())  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {"format": CONFIG_FORMAT, "plan": self.plan_json, "root": self.root,
                "persistent": self.persistent, "fault": self.fault,
                "handshake_timeout": self.handshake_timeout,
                "idranges": self.idranges}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SupervisorConfig:
        if d.get("format") != CONFIG_FORMAT:
            raise ValueError(f"supervisor config format {d.get('format')!r} is not "
                             f"{CONFIG_FORMAT}")  # fmt: skip
        return cls(d["plan"], d["root"], persistent=bool(d["persistent"]),
                   fault=d.get("fault") or "",
                   handshake_timeout=float(d["handshake_timeout"]),
                   idranges=d.get("idranges") or idranges_table.TABLE)  # fmt: skip

    def to_json(self) -> bytes:
        return jsonlite.dumps(self.to_dict()).encode()

    @classmethod
    def from_json(cls, data: bytes) -> SupervisorConfig:
        return cls.from_dict(jsonlite.loads(data))  # type: ignore[arg-type]
