"""virsh's habits a migrating admin's scripts rely on (issue 17; what virsh 9.0 prints
against libvirt-lxc, from the transcripts' "More virsh 9.0 behaviour"): -q, the empty
line after each command, list's columns, lookups by id, the commands libvirt-lxc
refuses, echo/cd/pwd, freecell, dumpxml --xpath, help's layout, the URI from
LIBVIRT_DEFAULT_URI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.shell.conftest import UUID, nsvirsh


def test_quiet_drops_the_header_and_the_closing_empty_line(defined: Path) -> None:
    assert nsvirsh(defined, "-q", "list", "--all").stdout == " -    bench-off   shut off\n"
    assert nsvirsh(defined, "list", "--all").stdout.endswith("shut off\n\n")
    assert nsvirsh(defined, "-q", "domuuid", "bench-off").stdout == f"{UUID}\n"
    failed = nsvirsh(defined, "dominfo", "nosuch")
    assert (failed.stdout, failed.returncode) == ("\n", 1)  # virsh's empty line, a failure too
    assert nsvirsh(defined, "-q", "dominfo", "nosuch").stdout == ""


def test_list_columns_as_virsh(defined: Path) -> None:
    assert nsvirsh(defined, "list", "--all", "--name", "--id").stdout == "- bench-off\n\n"
    assert nsvirsh(defined, "list", "--all", "--uuid", "--name", "--id").stdout == (
        f"{UUID} - bench-off\n\n")  # fmt: skip
    assert nsvirsh(defined, "list", "--all", "--id").stdout == "\n"  # no id: not listed
    proc = nsvirsh(defined, "list", "--table", "--name")
    assert (proc.stdout, proc.stderr, proc.returncode) == (
        "\n", "error: Options --table and --name are mutually exclusive\n", 1)  # fmt: skip


@pytest.mark.parametrize(("words", "stderr"), [
    (["save", "bench-off", "/tmp/x.img"], "error: Failed to save domain 'bench-off' to "
     "/tmp/x.img\nerror: this function is not supported by the connection driver: "
     "virDomainSave\n"),
    (["setvcpus", "bench-off", "2"], "error: this function is not supported by the connection "
     "driver: virDomainSetVcpus\n"),
    (["reset", "bench-off"], "error: Failed to reset domain 'bench-off'\nerror: this function "
     "is not supported by the connection driver: virDomainReset\n"),
    (["domrename", "bench-off", "x"], "error: this function is not supported by the "
     "connection driver: virDomainRename\n"),
    (["send-key", "bench-off", "KEY_A"], "error: this function is not supported by the "
     "connection driver: virDomainSendKey\n"),
    (["save", "ghost", "/tmp/x.img"], "error: failed to get domain 'ghost'\n"),
])  # fmt: skip
def test_what_libvirt_lxc_refuses_is_refused_with_its_words(defined: Path, words: list[str],
                                                            stderr: str) -> None:  # fmt: skip
    proc = nsvirsh(defined, *words)
    assert (proc.stdout, proc.stderr, proc.returncode) == ("\n", stderr, 1)


def test_echo_cd_pwd_freecell(defined: Path, tmp_path: Path) -> None:
    assert nsvirsh(defined, "echo", "hello", "world").stdout == "hello world\n\n"
    env = {**os.environ, "NSVIRT_DEFAULT_URI": f"lxc:///embed?root={defined}"}
    proc = subprocess.run([sys.executable, "-m", "nsvirt.shell", "cd /tmp; pwd"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
    assert (proc.stdout, proc.stderr, proc.returncode) == (
        f"\n{tmp_path}\n\n", "error: cd: command valid only in interactive mode\n", 0)  # fmt: skip
    total = nsvirsh(defined, "freecell").stdout
    assert total.startswith("Total: ") and total.endswith(" KiB\n\n")
    cells = nsvirsh(defined, "freecell", "--all").stdout.splitlines()
    assert cells[-3] == "--------------------" and cells[-2].startswith("Total:")
    assert cells[0].startswith("    0: ") and cells[0].endswith(" KiB")


def test_dumpxml_xpath(defined: Path) -> None:
    assert nsvirsh(defined, "dumpxml", "bench-off", "--xpath", "//name").stdout == (
        "<name>bench-off</name>\n\n")  # fmt: skip
    assert nsvirsh(defined, "dumpxml", "bench-off", "--xpath", "//console/@type",
                   "--wrap").stdout == "<nodes>\n  pty\n</nodes>\n\n"  # fmt: skip


def test_help_has_virshs_layout(defined: Path) -> None:
    text = nsvirsh(defined, "help", "dominfo").stdout
    assert text.startswith("  NAME\n    dominfo - domain information\n\n  SYNOPSIS\n"
                           "    dominfo <domain>")  # fmt: skip
    assert "\n  DESCRIPTION\n" in text and "\n  OPTIONS\n    [--domain] <string>" in text


def test_libvirt_default_uri_and_uri(tmp_path: Path) -> None:
    def uri(env: dict[str, str], *words: str) -> str:
        clean = {k: v for k, v in os.environ.items() if not k.endswith("DEFAULT_URI")}
        return subprocess.run([sys.executable, "-m", "nsvirt.shell", *words, "uri"],
                              capture_output=True, text=True, timeout=60,
                              env={**clean, **env}).stdout  # fmt: skip

    assert uri({"LIBVIRT_DEFAULT_URI": "lxc:///"}) == "lxc:///\n\n"
    assert uri({"LIBVIRT_DEFAULT_URI": "qemu:///system"}) == "lxc:///system\n\n"  # not ours
    embed = f"lxc:///embed?root={tmp_path}"
    assert uri({"LIBVIRT_DEFAULT_URI": "lxc:///", "NSVIRT_DEFAULT_URI": embed}) == embed + "\n\n"
    assert uri({}, "-c", "lxc:///") == "lxc:///\n\n"


def test_domxml_to_native(defined: Path) -> None:
    proc = nsvirsh(defined, "domxml-to-native", "lxc-tools", "--domain", "bench-off")
    assert proc.returncode == 0, proc.stderr
    assert "lxc.uts.name = bench-off\n" in proc.stdout and proc.stdout.endswith("\n\n")
    bad = nsvirsh(defined, "domxml-to-native", "qemu-argv", "--domain", "bench-off")
    assert (bad.stderr, bad.returncode) == ("error: invalid argument: unsupported config type "
                                            "qemu-argv\n", 1)  # fmt: skip
