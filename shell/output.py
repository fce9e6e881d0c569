"""virsh's output layouts, byte for byte, so users' awk and grep keep working."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # the one-shot path (shell/quick.py) prints with these: no imports
    from collections.abc import Sequence


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], header: bool = True) -> str:
    """virsh's vshTable: one leading space, columns three spaces apart, the last one
    unpadded, a rule two dashes longer than the widest line, then a blank line; with
    -q (header False) the rows alone, still aligned to the headers."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = [c.ljust(w) for c, w in zip(cells[:-1], widths, strict=False)]
        return " " + "   ".join([*padded, cells[-1]])

    total = 1 + sum(widths) + 3 * (len(widths) - 1)
    out = [line(headers), "-" * (total + 2)] if header else []
    out += [line(r) for r in rows]
    return "\n".join(out) + "\n\n" if out else "\n"


def list_line(dom_id: int, uuid: str, name: str, with_uuid: bool, with_id: bool,
              with_name: bool) -> str:  # fmt: skip
    """A `list --uuid/--id/--name` line as virsh prints it: the fields asked for in
    that order (an inactive domain's id is "-" beside another field; alone, the
    domain is left out); "" for none."""
    shown_id = str(dom_id) if dom_id > 0 else ("-" if with_uuid or with_name else "")
    words = [w for w, on in ((uuid, with_uuid), (shown_id, with_id), (name, with_name)) if on and w]
    return " ".join(words) + "\n" if words else ""


def fields(pairs: Sequence[tuple[str, str]]) -> str:
    """dominfo-style rows: `%-15s %s`, then a blank line."""
    return "".join(f"{k + ':':<15} {v}\n" for k, v in pairs) + "\n"


def cpu_stats(per_cpu: Sequence[tuple[int, dict[str, int]]],
              total: dict[str, int] | None) -> str:  # fmt: skip
    """virsh's cpu-stats: `CPUn:` blocks, then `Total:`, each field `\\t%-12s %9d.%09d
    seconds`, then a blank line."""

    def rows(stats: dict[str, int]) -> list[str]:
        return [f"\t{k:<12} {v // 1_000_000_000:9}.{v % 1_000_000_000:09} seconds\n"
                for k, v in stats.items()]  # fmt: skip

    out = []
    for n, stats in per_cpu:
        out += [f"CPU{n}:\n", *rows(stats)]
    if total is not None:
        out += ["Total:\n", *rows(total)]
    return "".join(out) + "\n"


def parameters(rows: dict[str, object], unlimited: int | None = None) -> str:
    """memtune's, schedinfo's, blkiotune's and numatune's `%-15s: %s` rows, `unlimited`
    (memtune's VIR_DOMAIN_MEMORY_PARAM_UNLIMITED) printed as the word, then a blank line."""
    return "".join(f"{k:<15}: {'unlimited' if v == unlimited else v}\n"
                   for k, v in rows.items()) + "\n"  # fmt: skip


def xpath_result(xml: str, expression: str, wrap: bool) -> str:
    """`dumpxml --xpath`: each node the expression selects, as libxml2 writes it (a
    string or number as its text); with `wrap`, inside one <nodes> element."""
    from lxml import etree

    from nsvirt.shell.report import ShellError

    tree = etree.fromstring(xml.encode())
    try:
        found = tree.xpath(expression)
    except etree.XPathError:
        raise ShellError(f"Invalid xpath expression '{expression}'") from None
    items = found if isinstance(found, list) else [found]
    texts = [etree.tostring(i, encoding="unicode").strip() if isinstance(i, etree._Element)
             else str(i) for i in items]  # fmt: skip
    if wrap:
        return (
            "<nodes>\n" + "".join(f"  {t}\n" for t in texts) + "</nodes>" if texts else "<nodes/>"
        )
    return "\n".join(texts)
