from __future__ import annotations

import pytest

from nsvirt.driver.domxml import units


@pytest.mark.parametrize(("value", "unit", "kib"), [
    (1, None, 1), (1, "KiB", 1), (1, "k", 1), (1, "KB", 1), (1, "MiB", 1024), (1, "M", 1024),
    (1, "MB", 977), (1024, "bytes", 1), (1025, "b", 2), (1, "GiB", 1 << 20), (2, "T", 2 << 30),
    (1, "kib", 1), (1, "eib", 1 << 50),
])  # fmt: skip
def test_to_kib_scales_and_rounds_up(value: int, unit: str | None, kib: int) -> None:
    assert units.to_kib(value, unit) == kib


def test_to_kib_refuses_past_int64_bytes() -> None:
    assert units.to_kib(units.MAX_KIB, "KiB") == units.MAX_KIB
    with pytest.raises(units.UnitError, match="larger than the limit"):
        units.to_kib(units.MAX_KIB + 1, "KiB")
    with pytest.raises(units.UnitError, match="larger than the limit"):
        units.to_kib(8, "EiB")


def test_unknown_unit() -> None:
    with pytest.raises(units.UnitError, match="unknown unit 'lots'"):
        units.unit_scale("lots")


@pytest.mark.parametrize(("text", "ids"), [
    ("0", {0}), ("0-3", {0, 1, 2, 3}), ("0-3,^2", {0, 1, 3}), ("5,1-2", {1, 2, 5}),
    ("^1,0-1", {0}),
])  # fmt: skip
def test_parse_cpuset(text: str, ids: set[int]) -> None:
    assert units.parse_cpuset(text) == ids


@pytest.mark.parametrize(("text", "words"), [
    ("3-1", "goes backwards"), ("1,,2", "empty item"), ("a", "malformed"), ("0,^0", "no CPU"),
    ("9000", "above the limit"), ("1-", "malformed"),
])  # fmt: skip
def test_parse_cpuset_refuses(text: str, words: str) -> None:
    with pytest.raises(units.UnitError, match=words):
        units.parse_cpuset(text)


def test_format_cpuset_is_canonical() -> None:
    assert units.format_cpuset({7, 0, 1, 2, 5, 6}) == "0-2,5-7"
    assert units.format_cpuset({4}) == "4"
