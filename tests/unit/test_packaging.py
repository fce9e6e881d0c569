"""The package installs under one import name and finds its schemas, editable or built."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from importlib import resources
from pathlib import Path

from tests.conftest import REPO

CHECK = """
import sys
sys.path[:0] = [{wheel!r}, {site!r}]
import nsvirt.driver, nsvirt.shell
from nsvirt.driver import domxml
assert nsvirt.driver.__file__.startswith({wheel!r}), nsvirt.driver.__file__
from nsvirt.driver.domxml import parser
schema_dir = parser._schema_dir()
assert str(schema_dir).startswith({wheel!r}), schema_dir
dom = domxml.load(b"<domain type='lxc'><name>w</name><memory>1024</memory>"
                  b"<os><type>exe</type></os></domain>")
print(schema_dir, dom.name)
"""


def test_editable_install_finds_schemas() -> None:
    schemas = Path(str(resources.files("nsvirt.schemas")))
    assert (schemas / "domain.xsd").is_file()
    assert (schemas / "README.md").is_file()


def test_built_wheel_imports_and_finds_schemas(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--wheel-dir",
            str(tmp_path / "dist"),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("nsvirt-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        zf.extractall(tmp_path / "unpacked")
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        scripts = zf.read(entry_points).decode()
    tops = {n.split("/")[0] for n in names if not n.startswith("nsvirt-")}
    assert tops == {"nsvirt"}  # nothing called driver/ or shell/ in site-packages
    assert "nsvirt/schemas/domain.xsd" in names
    sources = {
        f"nsvirt/{top}/{p.relative_to(REPO / top)}"
        for top in ("driver", "shell")
        for p in (REPO / top).rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert sources - set(names) == set()  # every module ships, subpackages too
    # nsvirsh: a script file whose #!python pip points at the interpreter; not an
    # entry point, whose launcher would import re before it (docs/performance.md)
    script = next(n for n in names if n.endswith(".data/scripts/nsvirsh"))
    launcher = (tmp_path / "unpacked" / script).read_text()
    assert launcher.startswith("#!python\n")
    assert "from nsvirt.shell.quick import main" in launcher and "import re" not in launcher
    assert "nsvirsh" not in scripts
    assert "nsvirt-xml-validate = nsvirt.driver.cli.validate:main" in scripts
    # -S: no .pth files, so the editable install of this checkout stays out of the way
    unpacked = str(tmp_path / "unpacked")
    code = CHECK.format(wheel=unpacked, site=sysconfig.get_paths()["purelib"])
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith(" w")


def readme_commands() -> list[str]:
    """The commands of the README's first fenced shell block, comments stripped."""
    text = (REPO / "README.md").read_text()
    block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_ci_runs_the_readmes_two_commands_in_a_fresh_root() -> None:
    commands = readme_commands()
    assert commands == ["bash examples/demo.sh", "bash tests/run.sh"]
    ci = (REPO / ".ci/run").read_text()
    assert f"\"$fresh\" . '{commands[0]} && {commands[1]}'" in ci
