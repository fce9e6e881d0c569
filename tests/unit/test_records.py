"""driver/records.py: the frozen records the model and the plan are made of behave as
the frozen dataclasses they replace, where nsvirt relies on it."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest

from nsvirt.driver.records import Record, factory, replace


class Point(Record):
    x: int
    y: int = 0
    tags: list[str] = factory(list)


def test_construction_defaults_and_factories() -> None:
    assert Point(1) == Point(x=1, y=0, tags=[])
    assert Point(1, 2).y == 2 and Point(1, y=3).y == 3
    a, b = Point(1), Point(1)
    assert a.tags is not b.tags  # a factory makes one per record
    assert repr(Point(1, 2)) == "Point(x=1, y=2, tags=[])"


@pytest.mark.parametrize("args,kwargs", [((), {}), ((1, 2, [], 4), {}), ((1,), {"x": 2}),
                                         ((1,), {"z": 2})])  # fmt: skip
def test_a_missing_extra_repeated_or_unknown_field_is_a_type_error(args, kwargs) -> None:
    with pytest.raises(TypeError):
        Point(*args, **kwargs)


def test_frozen_equal_by_type_and_values_hashable_replaceable() -> None:
    p = Point(1, 2, ())  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        p.x = 5  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del p.x

    class Other(Record):
        x: int
        y: int = 0
        tags: tuple = ()

    assert Other(1, 2, ()) != p and p == Point(1, 2, ())  # type: ignore[arg-type]
    assert hash(p) == hash(Point(1, 2, ()))  # type: ignore[arg-type]
    q = replace(p, y=7)
    assert (q.x, q.y, p.y) == (1, 7, 2) and type(q) is Point
    with pytest.raises(TypeError):
        replace(p, z=1)
    assert pickle.loads(pickle.dumps(p)) == p


def test_define_and_validate_do_not_import_dataclasses() -> None:
    """What the records are for: the model and the plan cost no dataclasses import."""
    code = ("import sys; from nsvirt.driver.domxml import model; from nsvirt.driver.launch "
            "import plan; print('dataclasses' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
