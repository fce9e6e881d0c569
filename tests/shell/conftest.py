"""The shell tests' domain root: one shut-off domain, defined through nsvirsh."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

UUID = "05621346-d353-4bab-acc3-5004556ddd1a"


def nsvirsh(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NSVIRT_DEFAULT_URI": f"lxc:///embed?root={root}"}
    return subprocess.run(
        [sys.executable, "-m", "nsvirt.shell", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.fixture
def defined(tmp_path: Path) -> Path:
    xml = tmp_path / "bench-off.xml"
    xml.write_text(
        f"<domain type='lxc'><name>bench-off</name><uuid>{UUID}</uuid>"
        "<memory unit='MiB'>64</memory><os><type>exe</type><init>/bin/sh</init>"
        "</os><devices><console type='pty'/></devices></domain>"
    )
    proc = nsvirsh(tmp_path, "define", str(xml))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"Domain 'bench-off' defined from {xml}\n\n"
    return tmp_path
