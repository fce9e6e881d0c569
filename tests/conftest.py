"""Shared fixtures: the repository's paths and libvirt's conformance corpus."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


@pytest.fixture(autouse=True, scope="session")
def own_id_range_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Containers started by tests (and the nsvirsh they run) take their host id ranges
    from a table of the test session's own, never the host's."""
    table = tmp_path_factory.mktemp("idranges") / "idranges.json"
    os.environ["NSVIRT_IDRANGES"] = str(table)
    # and built schemas are cached in the session's own directory (domxml/schemacache.py)
    os.environ.setdefault("NSVIRT_SCHEMA_CACHE", str(tmp_path_factory.mktemp("schemas")))
    # and a root's /proc server leaves with its last domain (a test checks nothing is left)
    os.environ["NSVIRT_PROCFS_LINGER"] = "0"
    return table


def shared_dir() -> Path:
    """../shared beside the checkout (CI lays it there), or $NSVIRT_SHARED."""
    return Path(os.environ.get("NSVIRT_SHARED", REPO.parent / "shared"))


def corpus(sub: str) -> Path:
    """A conformance folder; under CI a missing corpus fails instead of skipping."""
    path = shared_dir() / "conformance/libvirt" / sub
    if not path.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"conformance corpus missing at {path} (CI must have ../shared)")
        pytest.skip(f"conformance corpus not found at {path}")
    return path
