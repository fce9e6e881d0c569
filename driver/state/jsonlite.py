"""JSON reading for the one-shot path.

`import json` costs ~6 ms here (it brings in re and enum); parsing needs only the
C scanner behind it. `loads` is json.loads for what nsvirt writes, stricter:
NaN and Infinity are refused, as is anything after the value but whitespace.
"""

from __future__ import annotations

_WHITESPACE = " \t\n\r"


def _no_constants(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


class _Options:
    """The attributes the C scanner reads from a json.JSONDecoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_no_constants)


try:
    from _json import make_scanner as _make_scanner
except ImportError:  # another Python implementation: the json package it has
    _scan = None
else:
    _scan = _make_scanner(_Options())


def loads(data: bytes | str) -> object:
    """Decode one JSON document; ValueError (or UnicodeDecodeError) if it is not one."""
    text = data.decode() if isinstance(data, bytes) else data
    if _scan is None:
        import json

        return json.loads(text)
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration:
        raise ValueError("not a JSON document") from None
    if text[end:].strip(_WHITESPACE):
        raise ValueError("extra data after the JSON document")
    return value
