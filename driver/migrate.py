"""Moving a host off libvirt-lxc: its stored definitions (/etc/libvirt/lxc/NAME.xml)
and autostart links defined in nsvirt (`nsvirsh import-libvirt`), each shown first as
a diff of what nsvirt will store. libvirt's files are only read; a domain libvirt is
running is imported as a definition and reported, never taken over."""

from __future__ import annotations

import difflib
import os
from typing import TYPE_CHECKING

from nsvirt.driver.errors import DriverError

if TYPE_CHECKING:
    from nsvirt.driver.connection import Connection

LIBVIRT_CONFIG = "/etc/libvirt/lxc"
LIBVIRT_RUN = "/run/libvirt/lxc"  # NAME.pid / NAME.xml while libvirt runs it


class Imported:
    """One definition's outcome: `done` (or would be), its diff and notes, or `error`."""

    __slots__ = ("autostart", "diff", "done", "error", "name", "notes", "source")

    def __init__(self, name: str, source: str) -> None:
        self.name, self.source = name, source
        self.done, self.autostart = False, False
        self.diff = ""
        self.error: str | None = None
        self.notes: list[str] = []


def import_libvirt(conn: Connection, source: str = LIBVIRT_CONFIG, *, autostart: bool = False,
                   dry_run: bool = False,
                   running: str = LIBVIRT_RUN) -> list[Imported]:  # fmt: skip
    """Every NAME.xml under `source` (libvirt-lxc's layout), in name order."""
    from nsvirt.driver import domxml

    out = []
    for file in sorted(f for f in os.listdir(source) if f.endswith(".xml")):
        path = os.path.join(source, file)
        result = Imported(file.removesuffix(".xml"), path)
        out.append(result)
        try:
            data = domxml.read_file(path)
            dom, _ = conn._load_for_define(data, path, update=False)  # checked, defaults in
            result.name = dom.name
            ours = domxml.format(dom)  # what define stores (a uuid or MAC it makes may differ)
            result.diff = "".join(difflib.unified_diff(
                data.decode(errors="replace").splitlines(keepends=True),
                ours.splitlines(keepends=True), fromfile=path,
                tofile=f"nsvirt: {dom.name}"))  # fmt: skip
            if _exists(conn, dom.name):
                result.error = f"a domain '{dom.name}' is defined in nsvirt already: not imported"
                continue
            link = os.path.join(source, "autostart", file)
            result.autostart = autostart and os.path.lexists(link)
            if any(os.path.exists(os.path.join(running, f"{dom.name}.{ext}"))
                   for ext in ("pid", "xml")):  # fmt: skip
                result.notes.append("libvirt runs it now: imported as a definition only; stop "
                                    "it in libvirt before starting it here")  # fmt: skip
            if not dry_run:
                imported = conn.define_xml(data, source=path)
                if result.autostart:
                    imported.set_autostart(True)
            result.done = True
        except DriverError as e:
            result.error = str(e)
    return out


def _exists(conn: Connection, name: str) -> bool:
    from nsvirt.driver.errors import NoDomainError

    try:
        conn.lookup_by_name(name)
    except NoDomainError:
        return False
    return True
