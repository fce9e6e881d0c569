"""The launch plan as the supervisor reads it: plain attribute views over the JSON.

The client builds plans from frozen dataclasses (nsvirt.driver.launch.plan); the
supervisor only reads them, and importing dataclasses and the model would cost
it tens of milliseconds and megabytes per container. Same field names, so the
runtime code serves both.
"""

from __future__ import annotations

from types import SimpleNamespace

from nsvirt.driver.state import jsonlite

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PLAN_FORMAT = 6  # must equal nsvirt.driver.launch.plan.PLAN_FORMAT (a unit test checks)
_RAW = ("facts",)  # kept as dicts: written back into state files as they are


def _view(value: Any, key: str = "") -> Any:
    if key in _RAW:
        return value
    if isinstance(value, dict):
        return SimpleNamespace(**{k: _view(v, k) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_view(v) for v in value)
    return value


def load(text: str) -> Any:
    """Parse a plan; refuse one of another format (a newer client, an older supervisor)."""
    data = jsonlite.loads(text)
    if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
        raise ValueError(f"launch plan format {data.get('format')} is not {PLAN_FORMAT}")
    return _view(data)
