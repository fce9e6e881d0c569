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


try:
    from _json import encode_basestring_ascii as _quote
except ImportError:  # pragma: no cover - other Python implementations

    def _quote(s: str) -> str:
        import json

        return json.dumps(s)


def _not_json(value: object) -> object:
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


try:  # json's own C encoder (what json.dumps uses without an indent)
    from _json import make_encoder as _make_encoder
except ImportError:  # pragma: no cover
    _compact = None
else:
    _compact = _make_encoder(None, _not_json, _quote, None, ": ", ", ", False, False, False)


def dumps(value: object, indent: int | None = None) -> str:
    """json.dumps for nsvirt's own data (dicts with string keys, lists, tuples,
    strings, numbers, booleans, None), byte for byte as json.dumps writes it (with
    its default separators, or `indent`). TypeError for anything else; ValueError
    for NaN and infinities, which JSON has not."""
    if indent is None and _compact is not None:
        return "".join(_compact(value, 0))
    out: list[str] = []
    _encode(value, out, indent, 0)
    return "".join(out)


def _encode(v: object, out: list[str], indent: int | None, level: int) -> None:
    if v is None:
        out.append("null")
    elif v is True or v is False:
        out.append("true" if v else "false")
    elif isinstance(v, str):
        out.append(_quote(v))
    elif isinstance(v, int):
        out.append(int.__repr__(v))
    elif isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError(f"{v!r} is not JSON")
        out.append(float.__repr__(v))
    elif isinstance(v, dict | list | tuple):
        items = list(v.items()) if isinstance(v, dict) else list(v)
        opening, closing = ("{", "}") if isinstance(v, dict) else ("[", "]")
        if not items:
            out.append(opening + closing)
            return
        if indent is None:
            sep, first, last = ", ", "", ""
        else:
            pad = "\n" + " " * (indent * (level + 1))
            sep, first, last = "," + pad, pad, "\n" + " " * (indent * level)
        out.append(opening + first)
        for n, item in enumerate(items):
            if n:
                out.append(sep)
            if isinstance(v, dict):
                key, item = item
                if not isinstance(key, str):
                    raise TypeError(f"keys must be strings, not {key!r}")
                out.append(_quote(key) + ": ")
            _encode(item, out, indent, level + 1)
        out.append(last + closing)
    else:
        raise TypeError(f"{type(v).__name__} is not JSON serialisable")
