"""The running domain's XML: its definition plus what the run gave it — the id (the
supervisor's pid), the consoles' host ptys, the interfaces' host-side names, the
host ids of a user namespace allocated for it (dumpxml shows them).

`live_definition` makes it from the model (the driver's start). `template` makes
the same text ahead of time with placeholders, for the one-shot start
(shell/quick.py), which fills it in with `fill` — plain string work, no model.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from nsvirt.driver.domxml import model as m


def live_definition(dom: m.DomainDef, pid: object, ttys: list[Any],
                    interfaces: list[dict[str, Any]],
                    containment: dict[str, Any] | None) -> m.DomainDef:  # fmt: skip
    from nsvirt.driver.domxml.model import CharDevice, LiveIdmap
    from nsvirt.driver.records import replace

    if containment and containment.get("table"):  # ids allocated for this run
        c = containment
        dom = replace(dom, live_idmap=LiveIdmap(c["uid"], c["gid"], c["count"]))
    declared = dom.devices.consoles or (CharDevice(port=0),)
    pairs = enumerate(zip(declared, ttys, strict=False))
    consoles = tuple(replace(c, tty=tty, alias=f"console{i}") for i, (c, tty) in pairs)
    made = {i["mac"]: i for i in interfaces}
    nics = tuple(replace(i, target_dev=made[i.mac]["host"] or i.target_dev)
                 if i.mac in made else i for i in dom.devices.interfaces)  # fmt: skip
    devices = replace(dom.devices, consoles=consoles, interfaces=nics)
    return replace(dom, id=pid, devices=devices)


def template(dom: m.DomainDef, consoles: int, userns: bool) -> dict[str, Any]:
    """The live XML of a run of `dom` (no interfaces) with placeholders: a random
    token (so that no text of the user's can be mistaken for one) followed by
    `i` (the id), `t<N>` (console N's pty), `u`, `g`, `c` (the host ids)."""
    import os

    from nsvirt.driver import domxml

    token = f"nsvirt{os.urandom(8).hex()}"  # secrets.token_hex, without its ~4 ms import
    ids = {"table": "-", "uid": f"{token}u", "gid": f"{token}g", "count": f"{token}c"}
    ttys = [f"{token}t{n}" for n in range(consoles)]
    text = domxml.format(live_definition(dom, f"{token}i", ttys, [], ids if userns else None))
    return {"text": text, "token": token, "consoles": consoles, "userns": userns}


def fill(tpl: dict[str, Any], pid: int, ttys: list[str], ids: dict[str, Any] | None) -> str:
    """The live XML of a run from a template; ValueError if the run does not match
    it (another number of consoles, ids where none were expected, or none)."""
    token = tpl["token"]
    if len(ttys) != tpl["consoles"] or bool(ids and ids.get("table")) != tpl["userns"]:
        raise ValueError("the run does not match the prepared live XML")
    values = {"i": str(pid)}
    values.update((f"t{n}", _attr(tty)) for n, tty in enumerate(ttys))
    if ids and ids.get("table"):
        values.update(u=str(int(ids["uid"])), g=str(int(ids["gid"])), c=str(int(ids["count"])))
    text = tpl["text"]
    # longest first: t1 must not eat the start of t10
    for key in sorted(values, key=len, reverse=True):
        text = text.replace(token + key, values[key])
    if token in text:
        raise ValueError("the prepared live XML has a placeholder left")
    return text


def _attr(value: str) -> str:
    """A pty path as an XML attribute value (they are /dev/pts/N; escape anyway)."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;")
