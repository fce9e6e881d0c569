"""The domain XML layer, pure (no I/O beyond the bytes given, no syscalls):

    parser.parse (hardened lxml parse, XSD 1.1 schema, model) → validate.check
    (semantic checks) → defaults (what define adds) → formatter.format_domain

`load` runs the whole reading pipeline. Modules load lazily: xmlschema costs
~250 ms, and one-shot commands that only read state files need none of this.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nsvirt.driver.domxml.model import DomainDef

# Domain files are a few KiB; the cap is checked before any parsing.
MAX_BYTES = 1 << 20


def load(data: bytes, source: str = "") -> DomainDef:
    """Untrusted XML → a checked DomainDef: hardened parse, schema, model, checks."""
    from nsvirt.driver.domxml import parser, validate

    doc = parser.read(data, source)
    dom = doc.build()
    doc.located(validate.check, dom)
    return dom


def load_trusted(data: bytes, source: str = "") -> DomainDef:
    """XML that nsvirt itself wrote (a stored definition): no schema pass, no checks.
    A file someone else changed into what the model cannot hold gets the full
    pass, so the error names its line."""
    from nsvirt.driver.domxml import parser

    try:
        return parser.read(data, source, with_schema=False).build()
    except (AttributeError, KeyError, TypeError, ValueError):
        return load(data, source)


def format(dom: DomainDef) -> str:
    """The domain as libvirt's dumpxml writes it."""
    from nsvirt.driver.domxml import formatter

    return formatter.format_domain(dom)


def load_file(path: str) -> DomainDef:
    """Read and load a domain file, refusing it before parsing if it is too big."""
    with open(path, "rb") as f:
        data = f.read(MAX_BYTES + 1)
    return load(data, source=path)
