"""The README's "Using it" steps work, in order, from the checkout (issue 9, item 15)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import REPO


def blocks(lang: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    return [b.split("```", 1)[0] for b in text.split(f"```{lang}\n")[1:]]


def test_using_it_steps_run_in_order(tmp_path: Path) -> None:
    shell_steps = blocks("sh")[1]  # the first block is the two commands CI runs
    python_steps = blocks("python")[0]
    root = tmp_path / "play"
    script = shell_steps.replace("/tmp/play", str(root))
    script += f"python - <<'PY'\n{python_steps.replace('/tmp/play', str(root))}PY\n"
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=REPO,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Domain 'busybox' started" in proc.stdout
    assert "examples/busybox.xml validates" in proc.stdout
    assert "Domain 'busybox' destroyed" in proc.stdout
