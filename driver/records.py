"""Frozen records: what @dataclass(frozen=True) gives the model and the plan, without
writing and compiling each class's methods when the module is imported.

dataclasses builds `__init__`, `__eq__`, `__repr__`, `__hash__` and `__setattr__`
as source text and compiles it, for every class, in every process: the model's 20
classes and the plan's 8 took ~16 ms of each `define`, `create` and validation
(docs/performance.md). A Record subclass declares its fields as annotations, with
defaults as class attributes (`factory(f)` for a mutable one, as default_factory);
the methods are shared and read the field list made once per class.

    class Route(Record):
        address: str
        metric: int | None = None

Same behaviour where nsvirt relies on it: positional or keyword construction in
field order, a TypeError for a missing or unknown field, no assignment after
construction, equality and hash by type and field values, replace().
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, ClassVar, TypeVar, dataclass_transform

    R = TypeVar("R", bound="Record")
else:

    def dataclass_transform(**_options: object) -> Callable:  # type checkers' view only
        return lambda cls: cls


_MISSING = object()


class factory:  # lower case: it reads as a call in a class body, like field()
    """A default made anew for each record: `devices: Devices = factory(Devices)`."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], object]) -> None:
        self.make = make


@dataclass_transform(frozen_default=True, field_specifiers=(factory,))
class Record:
    _fields: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, object]] = {}

    def __init_subclass__(cls) -> None:
        own = cls.__dict__.get("__annotations__", {})  # noqa: RUF063 (strings will do: no eval)
        names = tuple(n for n in own if not n.startswith("_"))
        cls._fields = names
        cls._defaults = {n: cls.__dict__[n] for n in names if n in cls.__dict__}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fields = self._fields
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__}() takes {len(fields)} fields, "
                            f"{len(args)} given")  # fmt: skip
        values = self.__dict__
        values.update(zip(fields, args, strict=False))  # the rest: keywords or defaults
        for name, value in kwargs.items():
            if name not in fields or name in values:
                raise TypeError(f"{type(self).__name__}() got an unknown or repeated "
                                f"field {name!r}")  # fmt: skip
            values[name] = value
        if len(values) < len(fields):
            for name in fields:
                if name not in values:
                    default = self._defaults.get(name, _MISSING)
                    if default is _MISSING:
                        raise TypeError(f"{type(self).__name__}() missing field {name!r}")
                    values[name] = default.make() if type(default) is factory else default

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of a frozen record")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of a frozen record")

    def _values(self) -> tuple[object, ...]:
        values = self.__dict__
        return tuple(values[name] for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        values = self.__dict__
        shown = ", ".join(f"{name}={values[name]!r}" for name in self._fields)
        return f"{type(self).__name__}({shown})"


def replace(record: R, **changes: Any) -> R:
    """A copy with some fields changed (dataclasses.replace)."""
    return type(record)(**{**record.__dict__, **changes})


def is_record(value: object) -> bool:
    return isinstance(value, Record)
