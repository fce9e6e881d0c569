"""Compiled definitions: what the daily commands need of a domain's XML, as JSON
(names.py: var/cache/nsvirt/lxc/{config,live}/NAME.json), so that `dominfo` and
`list` never import lxml, the model or dataclasses.

The XML stays the source of truth. A compiled file is used only when it names the
XML file exactly as it is now — device, inode, size, mtime and ctime in ns, and a
CRC-32 of its bytes (ctime cannot be set back by a user; the CRC catches an edit
within one timestamp tick) — and was written by this nsvirt version in this
format, with launch plans of this format. Anything else (missing, corrupt, stale,
another version's) is never used:
the driver parses the XML and writes the compiled file again.
"""

from __future__ import annotations

import os
import zlib

from nsvirt.driver import __version__
from nsvirt.driver.state import jsonlite
from nsvirt.driver.supervisor.planview import PLAN_FORMAT

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsvirt.driver.domxml import model as m

FORMAT = 1
# who wrote it: this nsvirt, and its launch plans' format (a prepared launch is one;
# the format may change between two builds of one version)
WRITER = f"{__version__} plan {PLAN_FORMAT}"
MAX_SIZE = 1 << 16  # what write() makes is far smaller; a bigger file is not one of ours
MAX_XML = 1 << 20  # the parser's own cap

# field → type: a compiled file must have each, of that type
FIELDS: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "uuid": str,
    "title": (str, type(None)),
    "os_type": str,
    "vcpus": int,
    "memory": int,  # KiB
    "current_memory": int,  # KiB
    # launch/prepared.py's launch, for the one-shot start; persistent XML only
    "launch": (dict, type(None)),
}


def summary(dom: m.DomainDef) -> dict[str, object]:
    """The compiled fields of a parsed definition."""
    return {
        "name": dom.name,
        "uuid": dom.uuid or "",
        "title": dom.title,
        "os_type": "exe",
        "vcpus": dom.vcpus,
        "memory": dom.memory,
        "current_memory": dom.current_memory,
    }


def _source(xml_path: str) -> tuple[list[int], bytes]:
    """The XML file's identity (stat fields and CRC of its bytes) and its bytes."""
    with open(xml_path, "rb") as f:
        st = os.fstat(f.fileno())
        data = f.read(MAX_XML + 1)
    key = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, zlib.crc32(data)]
    return key, data


def read(xml_path: str, compiled_path: str) -> dict[str, object] | None:
    """The compiled form of the XML file, or None when there is none to trust."""
    try:
        with open(compiled_path, "rb") as f:
            raw = jsonlite.loads(f.read(MAX_SIZE))
        key, _ = _source(xml_path)
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        return None
    if raw.get("version") != WRITER or raw.get("source") != key:
        return None
    raw.setdefault("launch", None)
    for name, kind in FIELDS.items():
        value = raw.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            return None
    return raw


def write(xml_path: str, compiled_path: str, xml: bytes, fields: dict[str, object]) -> bool:
    """Record `fields` as the compiled form of the XML file, which must still hold
    `xml` (else another writer changed it meanwhile and nothing is written). Best
    effort: a compiled file that cannot be written (a full disk) only costs speed."""
    from nsvirt.driver.state import files

    try:
        key, data = _source(xml_path)
        if data != xml:
            return False
        text = jsonlite.dumps({"format": FORMAT, "version": WRITER, "source": key, **fields})
        os.makedirs(os.path.dirname(compiled_path), mode=0o700, exist_ok=True)
        files.write_atomic(compiled_path, text.encode(), durable=False)
    except OSError:
        return False
    return True


def remove(compiled_path: str) -> None:
    try:
        os.unlink(compiled_path)
    except FileNotFoundError:
        pass
