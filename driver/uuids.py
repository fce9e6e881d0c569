"""UUIDs as nsvirt writes them (lower case, 8-4-4-4-12) without the uuid module,
which imports platform and more (~2 ms of every define and validation)."""

from __future__ import annotations

import os

_HEX = frozenset("0123456789abcdefABCDEF")


def canonical(text: str) -> str:
    """str(uuid.UUID(text)): for the two forms the schema allows (32 hex digits, or
    8-4-4-4-12) computed here; any other form gets the uuid module's rules and its
    ValueError."""
    if len(text) == 36 and all(text[i] == "-" for i in (8, 13, 18, 23)):
        digits = text.replace("-", "")
    else:
        digits = text
    if len(digits) == 32 and _HEX.issuperset(digits):
        d = digits.lower()
        return f"{d[:8]}-{d[8:12]}-{d[12:16]}-{d[16:20]}-{d[20:]}"
    import uuid

    return str(uuid.UUID(text))


def new() -> str:
    """A random (version 4) uuid, as str(uuid.uuid4())."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40  # version 4
    b[8] = (b[8] & 0x3F) | 0x80  # the RFC 4122 variant
    return canonical(b.hex())
