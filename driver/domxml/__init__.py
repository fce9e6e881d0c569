"""The domain XML layer, pure (no I/O beyond the bytes given, no syscalls):

    parser.parse (hardened lxml parse, XSD 1.1 schema, model) → validate.check
    (semantic checks) → defaults (what define adds) → formatter.format_domain

`load` runs the whole reading pipeline. Modules load lazily: xmlschema costs
~250 ms, and one-shot commands that only read state files need none of this.
"""

from __future__ import annotations

import os
import stat

TYPE_CHECKING = False  # typing costs ~9 ms: the one-shot start reads units.py
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


def read_file(path: str | os.PathLike[str]) -> bytes:
    """A domain file's bytes, at most MAX_BYTES + 1 of them (the parser refuses more).
    Only regular files: a FIFO or a device would block or never end. Opened
    non-blocking, so even a FIFO with no writer cannot hang the caller."""
    from nsvirt.driver.errors import FileError

    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:  # libvirt's wording (virFileReadAll)
        raise FileError(f"Failed to open file '{name}': {e.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = _KINDS.get(stat.S_IFMT(mode), "something else")
            raise FileError(f"Failed to read file '{name}': it is {kind}, not a regular file")
        chunks = []
        size = 0
        while size <= MAX_BYTES and (chunk := os.read(fd, MAX_BYTES + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except OSError as e:  # EIO from /proc/self/mem, say
        raise FileError(f"Failed to read file '{name}': {e.strerror}") from None
    finally:
        os.close(fd)


_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket",
          stat.S_IFDIR: "a directory"}  # fmt: skip


def load_file(path: str | os.PathLike[str]) -> DomainDef:
    """Read and load a domain file (read_file, then load)."""
    return load(read_file(path), source=os.fspath(path))
