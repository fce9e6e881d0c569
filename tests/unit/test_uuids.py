"""driver/uuids.py gives what the uuid module gives, for every form it accepts."""

from __future__ import annotations

import random
import uuid

import pytest

from nsvirt.driver import uuids


def test_canonical_is_the_uuid_modules_answer() -> None:
    rng = random.Random(13)
    for _ in range(500):
        u = uuid.UUID(int=rng.getrandbits(128))
        for text in (str(u), str(u).upper(), u.hex, u.hex.upper(), "{" + str(u) + "}",
                     u.urn, str(u).replace("-", "", 2)):  # fmt: skip
            assert uuids.canonical(text) == str(uuid.UUID(text)), text


@pytest.mark.parametrize("text", ["", "xyz", "0" * 31, "g" * 32, "0" * 8 + "-" + "0" * 27])
def test_what_the_uuid_module_refuses_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        uuid.UUID(text)
    with pytest.raises(ValueError):
        uuids.canonical(text)


def test_new_is_a_random_version_4_uuid() -> None:
    made = {uuids.new() for _ in range(200)}
    assert len(made) == 200
    for text in made:
        u = uuid.UUID(text)
        assert str(u) == text and u.version == 4 and u.variant == uuid.RFC_4122
