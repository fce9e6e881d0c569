"""A fast schema pre-check: "certainly valid", or "ask xmlschema".

xmlschema costs ~150 ms to import and ~20 ms to load nsvirt's built schema, on
every define, create and validation. Real domains are valid; for those, this
walks the lxml tree against a table compiled from the very schema xmlschema
builds, and answers True. It never answers "invalid": whatever it does not
certainly accept (a bad value, an unknown element, a schema construct it does not
model, any doubt at all) goes to xmlschema, which gives the verdict and the
precise error, exactly as before. So it can only make a refusal slower, never
make a refusal an acceptance, as long as what it accepts is a subset of what
xmlschema accepts (tests/unit/test_fastcheck.py proves that on the conformance
corpus, the bad-input corpus and generated mutations).

The table is JSON (data, never code) next to the built schema's pickle, keyed by
the schema files' bytes and this module's own; it is read only from a private
directory, as the pickle is (schemacache.py). $NSVIRT_FASTCHECK=off turns it off.
"""

from __future__ import annotations

import os
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FORMAT = 1
XS = "{http://www.w3.org/2001/XMLSchema}"
_XSI = "{http://www.w3.org/2001/XMLSchema-instance}"
_INTEGERS = {  # the builtins the table checks itself: lexical form and range
    "long": (-(2**63), 2**63 - 1), "int": (-(2**31), 2**31 - 1),
    "unsignedLong": (0, 2**64 - 1), "unsignedInt": (0, 2**32 - 1),
    "unsignedShort": (0, 2**16 - 1),
}  # fmt: skip
_SIGNED = re.compile(r"[+-]?[0-9]+")
_UNSIGNED = re.compile(r"\+?[0-9]+")  # stricter than XSD ("-0"): doubt goes to xmlschema


class _Defer(Exception):
    """Something the table does not model: xmlschema decides."""


# ---------------------------------------------------------------- the table


def compile_table(schema: Any, root: str) -> dict[str, Any]:
    """The table of `schema` (an xmlschema.XMLSchema11) from its global element
    `root`: types by number, each a dict the checker interprets; a construct it does
    not model becomes {"k": "defer"}."""
    types: list[dict[str, Any]] = []
    numbers: dict[int, int] = {}

    def number(t: Any, make: Any) -> int:
        if id(t) not in numbers:
            numbers[id(t)] = len(types)
            types.append({})
            try:
                types[numbers[id(t)]] = make(t)
            except _Defer:
                types[numbers[id(t)]] = {"k": "defer"}
        return numbers[id(t)]

    def simple(t: Any) -> int:
        return number(t, simple_entry)

    def simple_entry(t: Any) -> dict[str, Any]:
        name = type(t).__name__
        if "Union" in name:
            return {"k": "union", "members": [simple(m) for m in t.member_types]}
        if "List" in name:
            return {"k": "list", "item": simple(t.item_type)}
        levels = []
        level = t
        while "Restriction" in type(level).__name__:
            levels.append(facets(level))
            level = level.base_type
        if "Builtin" not in type(level).__name__ or level.name is None:
            raise _Defer
        base = level.name.removeprefix(XS)
        if base != "string" and base not in _INTEGERS:
            raise _Defer
        return {"k": "simple", "base": base, "ws": t.white_space or "preserve",
                "levels": levels}  # fmt: skip

    def facets(level: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, facet in level.facets.items():
            short = (key or "").removeprefix(XS)
            if short == "enumeration":
                if not all(isinstance(v, str | int) for v in facet.enumeration):
                    raise _Defer
                out["enum"] = list(facet.enumeration)
            elif short == "pattern":
                out["patterns"] = [p.pattern for p in facet.patterns]
            elif short in ("minInclusive", "maxInclusive", "maxLength", "minLength"):
                if not isinstance(facet.value, int):
                    raise _Defer
                out[short] = facet.value
            elif short == "whiteSpace":
                continue  # t.white_space has the outcome
            else:
                raise _Defer
        if getattr(level, "assertions", None):
            raise _Defer
        return out

    def complex_entry(t: Any) -> dict[str, Any]:
        if getattr(t, "assertions", None):
            asserts = [_expression(a.path) for a in t.assertions]
        else:
            asserts = []
        if getattr(t, "open_content", None) is not None or t.mixed:
            raise _Defer
        attrs: dict[str, list[Any]] = {}
        any_attr = False
        for key, a in t.attributes.items():
            if key is None:
                if a.process_contents != "skip" or set(a.namespace) != {"##any"}:
                    raise _Defer
                any_attr = True
                continue
            if a.fixed is not None or a.inheritable:
                raise _Defer
            attrs[key] = [simple(a.type), a.use == "required"]
        entry: dict[str, Any] = {"k": "complex", "attrs": attrs, "any_attr": any_attr,
                                 "asserts": asserts}  # fmt: skip
        if t.has_simple_content():
            entry["content"] = "simple"
            entry["simple"] = simple(t.content)
        elif t.is_empty():
            entry["content"] = "empty"
        else:
            entry.update(group(t.content))
        return entry

    def group(g: Any) -> dict[str, Any]:
        particles = list(g)
        if g.model == "sequence" and len(particles) == 1 and "Any" in type(particles[0]).__name__:
            w = particles[0]
            if w.process_contents != "lax" or set(w.namespace) != {"##other"}:
                raise _Defer
            return {"content": "lax-other", "min": w.min_occurs, "max": w.max_occurs}
        if g.model != "all" or g.min_occurs != 1 or g.max_occurs != 1:
            raise _Defer
        children: dict[str, list[Any]] = {}
        add_all(g, children)
        return {"content": "all", "children": children}

    def add_all(g: Any, children: dict[str, list[Any]]) -> None:
        """An all-group's element particles; a group referenced in it (min=max=1, all)
        adds its own, as XSD 1.1 has it."""
        for p in g:
            kind = type(p).__name__
            if "Group" in kind and p.model == "all" and p.min_occurs == p.max_occurs == 1:
                add_all(p, children)
                continue
            if "Element" not in kind or "Any" in kind or p.name in children:
                raise _Defer
            children[p.name] = [element(p), p.min_occurs, p.max_occurs]

    def element(e: Any) -> int:
        return number(e, element_entry)

    def element_entry(e: Any) -> dict[str, Any]:
        if e.fixed is not None or e.nillable or getattr(e, "abstract", False):
            raise _Defer
        alts = []
        for alt in getattr(e, "alternatives", None) or []:
            test = _expression(alt.path) if alt.path else None
            if test is not None and not _on_attributes_only(test):
                raise _Defer  # an alternative's test sees the attributes alone
            alts.append([test, number(alt.type, type_entry)])
        # with a default alternative last, the declared type (anyType) is never used
        declared = -1 if alts and alts[-1][0] is None else number(e.type, type_entry)
        return {"k": "element", "type": declared, "alts": alts}

    def type_entry(t: Any) -> dict[str, Any]:
        return simple_entry(t) if t.is_simple() else complex_entry(t)

    globals_: dict[str, int] = {}
    for name, decl in schema.maps.elements.items():
        if not name.startswith(XS):
            globals_[name] = element(decl)
    return {"format": FORMAT, "root": root, "types": types, "globals": globals_,
            "known_elements": sorted(schema.maps.elements),
            "known_attributes": sorted(schema.maps.attributes)}  # fmt: skip


def _on_attributes_only(expr: list[Any]) -> bool:
    if expr[0] in ("or", "and"):
        return _on_attributes_only(expr[1]) and _on_attributes_only(expr[2])
    if expr[0] == "not":
        return _on_attributes_only(expr[1])
    return expr[0] in ("attr", "attr=")


# XPath 2.0 in the schema's tests and assertions, the forms it uses: `@a = 'v'`,
# `not(...)`, `and`, `or`, parentheses, a child's name, `count(x) = count(y)`.
_TOKEN = re.compile(r"\s*(\(|\)|=|'[^']*'|@[A-Za-z_][\w.-]*|[A-Za-z_][\w.-]*)")


def _expression(text: str) -> list[Any]:
    """An XPath test as nested lists; _Defer for anything else."""
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            if text[pos:].strip():
                raise _Defer
            break
        tokens.append(m.group(1))
        pos = m.end()
    expr, rest = _or(tokens)
    if rest:
        raise _Defer
    return expr


def _or(t: list[str]) -> tuple[list[Any], list[str]]:
    left, t = _and(t)
    while t[:1] == ["or"]:
        right, t = _and(t[1:])
        left = ["or", left, right]
    return left, t


def _and(t: list[str]) -> tuple[list[Any], list[str]]:
    left, t = _term(t)
    while t[:1] == ["and"]:
        right, t = _term(t[1:])
        left = ["and", left, right]
    return left, t


def _term(t: list[str]) -> tuple[list[Any], list[str]]:
    if not t:
        raise _Defer
    if t[0] == "(":
        inner, t = _or(t[1:])
        if t[:1] != [")"]:
            raise _Defer
        return inner, t[1:]
    if t[0] == "not" and t[1:2] == ["("]:
        inner, t = _or(t[2:])
        if t[:1] != [")"]:
            raise _Defer
        return ["not", inner], t[1:]
    if t[0] == "count" and t[1:2] == ["("] and len(t) >= 9:
        a, b = t[2], t[7]
        if t[3] == ")" and t[4] == "=" and t[5:7] == ["count", "("] and t[8] == ")" \
                and not a.startswith("@") and not b.startswith("@"):  # fmt: skip
            return ["count=", a, b], t[9:]
        raise _Defer
    if t[0].startswith("@") and t[1:2] == ["="] and t[2:3] and t[2].startswith("'"):
        return ["attr=", t[0][1:], t[2][1:-1]], t[3:]
    if t[0].startswith("@"):
        return ["attr", t[0][1:]], t[1:]
    if t[0][0].isalpha() and t[0] not in ("and", "or", "not", "count"):
        return ["child", t[0]], t[1:]
    raise _Defer


# ---------------------------------------------------------------- checking


def certainly_valid(root: Any, table: dict[str, Any]) -> bool:
    """Does xmlschema certainly accept this lxml tree? False means: ask it."""
    number = table["globals"].get(root.tag)
    if root.tag != table["root"] or number is None:
        return False
    checker = _Checker(table)
    try:
        checker.element(root, number)
    except _Defer:
        return False
    return True


class _Checker:
    def __init__(self, table: dict[str, Any]) -> None:
        self.types = table["types"]
        self.globals = table["globals"]
        self.known_elements = set(table["known_elements"])
        self.known_attributes = set(table["known_attributes"])

    def element(self, el: Any, number: int) -> None:
        decl = self.types[number]
        if decl["k"] != "element":
            raise _Defer
        chosen = decl["type"]
        for test, alt in decl["alts"]:
            if test is None or _true(test, el):
                chosen = alt
                break
        entry = self.types[chosen]
        if entry["k"] == "complex":
            self.complex(el, entry)
        else:  # a simple type: text only, no attributes
            if len(el) or el.attrib:
                raise _Defer
            self.value(el.text or "", chosen)

    def complex(self, el: Any, t: dict[str, Any]) -> None:
        attrs = t["attrs"]
        for name in el.attrib:
            if name.startswith(_XSI) or (name not in attrs and not t["any_attr"]):
                raise _Defer  # xsi:type and the like change what xmlschema checks
        for name, (number, required) in attrs.items():
            value = el.get(name)
            if value is None:
                if required:
                    raise _Defer
            else:
                self.value(value, number)
        children = [c for c in el if isinstance(c.tag, str)]
        if len(children) != len(el):  # comments (or PIs) among the children
            raise _Defer
        content = t["content"]
        if content == "simple":
            if children:
                raise _Defer
            self.value(el.text or "", t["simple"])
        else:
            if (el.text or "").strip() or any((c.tail or "").strip() for c in children):
                raise _Defer  # text in element-only content
            if content == "empty":
                if children or el.text:  # empty: not even whitespace
                    raise _Defer
            elif content == "all":
                self.all_group(children, t["children"])
            else:
                self.lax_other(children, t["min"], t["max"])
        for test in t["asserts"]:
            if not _true(test, el):
                raise _Defer

    def all_group(self, children: list[Any], decls: dict[str, list[Any]]) -> None:
        counts: dict[str, int] = {}
        for c in children:
            if c.tag not in decls:
                raise _Defer
            counts[c.tag] = counts.get(c.tag, 0) + 1
            self.element(c, decls[c.tag][0])
        for name, (_, low, high) in decls.items():
            n = counts.get(name, 0)
            if n < low or (high is not None and n > high):
                raise _Defer

    def lax_other(self, children: list[Any], low: int, high: int | None) -> None:
        if len(children) < low or (high is not None and len(children) > high):
            raise _Defer
        for c in children:
            if not c.tag.startswith("{"):
                raise _Defer  # ##other: a namespace, and not the schema's (none)
            number = self.globals.get(c.tag)
            if number is not None:
                self.element(c, number)
            else:  # skipped, unless xmlschema would find something it knows below
                for d in c.iter():
                    if (
                        not isinstance(d.tag, str)
                        or d.tag in self.known_elements
                        or any(a in self.known_attributes for a in d.attrib)
                    ):
                        raise _Defer

    def value(self, text: str, number: int) -> None:
        t = self.types[number]
        kind = t["k"]
        if kind == "union":
            for member in t["members"]:
                try:
                    return self.value(text, member)
                except _Defer:
                    continue
            raise _Defer
        if kind == "list":
            if not text.split():
                raise _Defer
            for item in text.split():
                self.value(item, t["item"])
            return
        if kind != "simple":
            raise _Defer
        if t["ws"] == "collapse":
            text = " ".join(text.split())
        elif t["ws"] == "replace":
            text = text.replace("\t", " ").replace("\n", " ").replace("\r", " ")
        base = t["base"]
        if base != "string":
            low, high = _INTEGERS[base]
            if not (_UNSIGNED if low == 0 else _SIGNED).fullmatch(text):
                raise _Defer
            value: str | int = int(text)
            if not low <= value <= high:  # type: ignore[operator]
                raise _Defer
        else:
            value = text
        for level in t["levels"]:
            if "enum" in level and value not in level["enum"]:
                raise _Defer
            if "patterns" in level and not any(re.match(p, text) for p in level["patterns"]):
                raise _Defer
            if "minInclusive" in level and not (isinstance(value, int)
                                                and value >= level["minInclusive"]):  # fmt: skip
                raise _Defer
            if "maxInclusive" in level and not (isinstance(value, int)
                                                and value <= level["maxInclusive"]):  # fmt: skip
                raise _Defer
            if "maxLength" in level and not (isinstance(value, str)
                                             and len(value) <= level["maxLength"]):  # fmt: skip
                raise _Defer
            if "minLength" in level and not (isinstance(value, str)
                                             and len(value) >= level["minLength"]):  # fmt: skip
                raise _Defer


def _true(expr: list[Any], el: Any) -> bool:
    op = expr[0]
    if op == "or":
        return _true(expr[1], el) or _true(expr[2], el)
    if op == "and":
        return _true(expr[1], el) and _true(expr[2], el)
    if op == "not":
        return not _true(expr[1], el)
    if op == "attr=":
        return el.get(expr[1]) == expr[2]
    if op == "attr":
        return el.get(expr[1]) is not None
    if op == "child":
        return el.find(expr[1]) is not None
    if op == "count=":
        return len(el.findall(expr[1])) == len(el.findall(expr[2]))
    raise _Defer


# ---------------------------------------------------------------- the cache


def table_for(schema_dir: str, schema_file: str, build: Any) -> dict[str, Any] | None:
    """The table of `schema_file`: from the private cache, else compiled from
    `build()` (the xmlschema schema) and cached; None when turned off."""
    import zlib

    from nsvirt.driver.domxml import schemacache
    from nsvirt.driver.state import jsonlite

    if os.environ.get("NSVIRT_FASTCHECK") == "off":
        return None
    crc = FORMAT
    for name in sorted(os.listdir(schema_dir)):
        if name.endswith(".xsd"):
            with open(os.path.join(schema_dir, name), "rb") as f:
                crc = zlib.crc32(name.encode() + b"\0" + f.read(), crc)
    with open(__file__, "rb") as f:  # this checker's own code: a change, a new table
        crc = zlib.crc32(f.read(), crc)
    key = f"{os.path.realpath(schema_dir)}:{schema_file}:{crc:08x}"
    found = schemacache.read_private(f"fastcheck-{schema_file}-{crc:08x}.json")
    if found is not None:
        try:
            table = jsonlite.loads(found)
        except ValueError:
            table = None
        if isinstance(table, dict) and table.get("key") == key:
            return table
    root = {"domain.xsd": "domain", "network.xsd": "network"}.get(schema_file)
    if root is None:
        return None
    table = compile_table(build(), root)
    table["key"] = key
    schemacache.write_private(f"fastcheck-{schema_file}-{crc:08x}.json",
                              jsonlite.dumps(table).encode())  # fmt: skip
    return table
