"""One-shot nsvirsh: outputs in virsh's layouts, errors as `error:` lines, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.shell.conftest import UUID, nsvirsh


def test_list_empty(tmp_path: Path) -> None:
    proc = nsvirsh(tmp_path, "list", "--all")
    assert proc.stdout == " Id   Name   State\n--------------------\n\n"
    assert proc.returncode == 0


def test_list_inactive_layout(defined: Path) -> None:
    assert nsvirsh(defined, "list").stdout == " Id   Name   State\n--------------------\n\n"
    assert nsvirsh(defined, "list", "--inactive").stdout == (
        " Id   Name        State\n----------------------------\n -    bench-off   shut off\n\n"
    )  # the transcript's layout, byte for byte
    assert nsvirsh(defined, "list", "--all", "--name").stdout == "bench-off\n\n"
    assert nsvirsh(defined, "list", "--all", "--uuid").stdout == f"{UUID}\n\n"


def test_dominfo_shut_off(defined: Path) -> None:
    proc = nsvirsh(defined, "dominfo", "bench-off")
    assert proc.stdout == (
        "Id:             -\n"
        "Name:           bench-off\n"
        f"UUID:           {UUID}\n"
        "OS Type:        exe\n"
        "State:          shut off\n"
        "CPU(s):         1\n"
        "Max memory:     65536 KiB\n"
        "Used memory:    65536 KiB\n"
        "Persistent:     yes\n"
        "Autostart:      disable\n"
        "Managed save:   no\n"
        "Security model: none\n"
        "Security DOI:   0\n\n"
    )


def test_domstate_domid_domuuid_domname(defined: Path) -> None:
    assert nsvirsh(defined, "domstate", "bench-off").stdout == "shut off\n\n"
    assert nsvirsh(defined, "domstate", "--reason", "bench-off").stdout == "shut off (unknown)\n\n"
    assert nsvirsh(defined, "domid", "bench-off").stdout == "-\n\n"
    assert nsvirsh(defined, "domuuid", "bench-off").stdout == f"{UUID}\n\n"
    assert nsvirsh(defined, "domname", UUID).stdout == "bench-off\n\n"


def test_dumpxml_matches_libvirt_defaults(defined: Path) -> None:
    out = nsvirsh(defined, "dumpxml", "bench-off").stdout
    assert out.startswith("<domain type='lxc'>\n  <name>bench-off</name>\n")
    assert "    <console type='pty'>\n      <target type='lxc' port='0'/>\n" in out
    assert "  <vcpu placement='static'>1</vcpu>\n" in out


def test_memtune_of_a_shut_off_domain_as_virsh_prints_it(defined: Path) -> None:
    out = nsvirsh(defined, "memtune", "bench-off").stdout
    assert out == ("hard_limit     : unlimited\nsoft_limit     : unlimited\n"
                   "swap_hard_limit: unlimited\n\n")  # fmt: skip


def test_semicolon_separated_commands(defined: Path) -> None:
    proc = nsvirsh(defined, "domstate bench-off; domuuid bench-off")
    assert proc.stdout == f"shut off\n\n{UUID}\n\n"


@pytest.mark.parametrize(("args", "stderr"), [
    (["dominfo", "no-such-domain"], "error: failed to get domain 'no-such-domain'\n"),
    (["undefine", "no-such-domain"], "error: failed to get domain 'no-such-domain'\n"),
    (["frobnicate"], "error: unknown command: 'frobnicate'\n"),
    (["list", "--bogus"], "error: command 'list' doesn't support option --bogus\n"),
    (["dominfo"], "error: command 'dominfo' requires <domain> option\n"),
    (["domxml-from-native", "lxc-tools", "/no/such"], "error: Failed to open file "
                                                      "'/no/such': No such file or directory\n"),
    (["memtune", "bench-off", "--live"], "error: Unable to get number of memory parameters\n"
                                         "error: Requested operation is not valid: domain is "
                                         "not running\n"),
    (["setmem", "bench-off", "64M"], "error: Requested operation is not valid: domain is not "
                                     "running\n"),
    (["-c", "qemu:///system", "list"], "error: invalid argument: no connection driver "
                                       "available for: 'qemu:///system'\n"),
    (["--frob"], "error: unsupported option '--frob'. See --help.\n"),
])  # fmt: skip
def test_errors(defined: Path, args: list[str], stderr: str) -> None:
    proc = nsvirsh(defined, *args)
    ends = "" if args[0] == "--frob" else "\n"  # virsh's empty line after each command
    assert (proc.stdout, proc.stderr, proc.returncode) == (ends, stderr, 1)
    quiet = nsvirsh(defined, "-q", *args)  # without it under -q
    assert (quiet.stdout, quiet.stderr, quiet.returncode) == ("", stderr, 1)


def test_define_errors_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("<domain type='lxc'>\n  <name>x</name>\n  <frobnicate/>\n</domain>\n")
    proc = nsvirsh(tmp_path, "define", str(bad))
    assert proc.returncode == 1
    assert proc.stderr == (
        f"error: Failed to define domain from {bad}\n"
        f"error: {bad}:3: /domain/frobnicate: unknown element <frobnicate>"
        " in <domain>\n"
    )
    missing = nsvirsh(tmp_path, "define", str(tmp_path / "nope.xml"))
    assert missing.returncode == 1
    assert "No such file or directory" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_define_then_duplicate_uuid_error(defined: Path) -> None:
    other = defined / "other.xml"
    other.write_text(
        f"<domain type='lxc'><name>other</name><uuid>{UUID}</uuid>"
        "<memory>1024</memory><os><type>exe</type></os></domain>"
    )
    proc = nsvirsh(defined, "define", str(other))
    assert proc.stderr == (
        f"error: Failed to define domain from {other}\n"
        f"error: operation failed: domain 'bench-off' is already defined "
        f"with uuid {UUID}\n"
    )


def test_all_examples_define(tmp_path: Path) -> None:
    examples = sorted(EXAMPLES.glob("*.xml"))
    for xml in examples:
        proc = nsvirsh(tmp_path, "define", str(xml))
        assert proc.returncode == 0, proc.stderr
    assert len(nsvirsh(tmp_path, "list", "--all", "--name").stdout.split()) == len(examples)


# every command that changes anything, and the libvirt API the refusal names
MODIFYING = [
    (["define", "{xml}"], "virDomainDefineXML"),
    (["create", "{xml}"], "virDomainCreateXML"),
    (["undefine", "bench-off"], "virDomainUndefine"),
    (["start", "bench-off"], "virDomainCreate"),
    (["destroy", "bench-off"], "virDomainDestroy"),
    (["shutdown", "bench-off"], "virDomainShutdown"),
    (["reboot", "bench-off"], "virDomainReboot"),
    (["suspend", "bench-off"], "virDomainSuspend"),
    (["resume", "bench-off"], "virDomainResume"),
    (["autostart", "bench-off"], "virDomainSetAutostart"),
    (["autostart", "--disable", "bench-off"], "virDomainSetAutostart"),
    (["edit", "bench-off"], "virDomainDefineXML"),
    (["desc", "bench-off", "--new-desc", "x"], "virDomainSetMetadata"),
    (["desc", "bench-off", "--title", "--new-desc", "x"], "virDomainSetMetadata"),
    (["metadata", "bench-off", "https://example.org/a", "--key", "a", "--set", "<b/>"],
     "virDomainSetMetadata"),
    (["metadata", "bench-off", "https://example.org/a", "--remove"], "virDomainSetMetadata"),
    (["console", "bench-off"], "virDomainOpenConsole"),
    (["attach-interface", "bench-off", "bridge", "br0"], "virDomainAttachDeviceFlags"),
    (["attach-device", "bench-off", "{iface}"], "virDomainAttachDeviceFlags"),
    (["detach-interface", "bench-off", "bridge"], "virDomainDetachDeviceFlags"),
    (["detach-device", "bench-off", "{iface}"], "virDomainDetachDeviceFlags"),
    (["domif-setlink", "bench-off", "eth0", "down"], "virDomainUpdateDeviceFlags"),
    (["net-define", "{net}"], "virNetworkDefineXML"),
    (["net-undefine", "ro-net"], "virNetworkUndefine"),
    (["net-start", "ro-net"], "virNetworkCreate"),
    (["net-destroy", "ro-net"], "virNetworkDestroy"),
    (["net-autostart", "ro-net"], "virNetworkSetAutostart"),
]  # fmt: skip

NETWORK = (
    "<network><name>ro-net</name><bridge name='nvro0'/>"
    "<ip address='192.0.2.1' prefix='24'/></network>"
)
IFACE = "<interface type='bridge'><source bridge='br0'/></interface>"


@pytest.mark.parametrize(
    ("words", "api"), MODIFYING, ids=lambda w: "-".join(w) if isinstance(w, list) else w
)
def test_readonly_refuses_every_change(defined: Path, words: list[str], api: str) -> None:
    xml = defined / "bench-off.xml"
    (defined / "net.xml").write_text(NETWORK)
    (defined / "iface.xml").write_text(IFACE)
    assert nsvirsh(defined, "net-define", str(defined / "net.xml")).returncode == 0
    before = sorted(p.name for p in defined.rglob("*")), xml.read_bytes()
    words = [w.format(xml=xml, net=defined / "net.xml", iface=defined / "iface.xml") for w in words]
    proc = nsvirsh(defined, "-r", *words)
    assert proc.returncode == 1
    assert (
        proc.stderr.splitlines()[-1]
        == f"error: operation forbidden: read only access prevents {api}"
    )
    assert "Traceback" not in proc.stderr
    assert (sorted(p.name for p in defined.rglob("*")), xml.read_bytes()) == before
    assert nsvirsh(defined, "-r", "domstate", "bench-off").returncode == 0


def test_readonly_reads(defined: Path) -> None:
    for words in (["list", "--all"], ["dominfo", "bench-off"], ["dumpxml", "bench-off"],
                  ["desc", "bench-off"], ["domuuid", "bench-off"]):  # fmt: skip
        assert nsvirsh(defined, "-r", *words).returncode == 0, words


IMPORT_CHECK = (
    "import json, sys; from nsvirt.shell.__main__ import main; "
    "status = main({args!r}); "
    "heavy = sorted({{'cmd2', 'xmlschema', 'pyroute2'}} & set(sys.modules)); "
    "print(json.dumps([status, heavy]), file=sys.stderr)"
)


def heavy_imports(root: Path, args: list[str]) -> tuple[int, list[str]]:
    """(exit status, heavy modules imported) of one one-shot command, run in-process."""
    env = {**os.environ, "NSVIRT_DEFAULT_URI": f"lxc:///embed?root={root}"}
    proc = subprocess.run([sys.executable, "-c", IMPORT_CHECK.format(args=args)],
                          capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    status, heavy = json.loads(proc.stderr.splitlines()[-1])
    return status, heavy


@pytest.mark.parametrize(
    "args", [["list", "--all"], ["dominfo", "bench-off"], ["domstate", "bench-off"]]
)
def test_one_shot_imports_no_heavy_library(defined: Path, args: list[str]) -> None:
    """cmd2, xmlschema and pyroute2 cost ~250 ms each: one-shot commands do without
    (start and destroy of a running domain: tests/integration/test_nsvirsh.py)."""
    assert heavy_imports(defined, args) == (0, [])


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("fifo", "Failed to read file '{path}': it is a FIFO, not a regular file"),
        ("directory", "Failed to read file '{path}': it is a directory, not a regular file"),
        ("missing", "Failed to open file '{path}': No such file or directory"),
        ("proc-mem", "Failed to read file '{path}': Input/output error"),
    ],
)
def test_define_refuses_what_is_not_a_readable_file(tmp_path: Path, kind: str,
                                                    message: str) -> None:  # fmt: skip
    path = tmp_path / "domain.xml"
    if kind == "fifo":
        os.mkfifo(path)  # nobody writes to it: reading it would block forever
    elif kind == "directory":
        path.mkdir()
    elif kind == "proc-mem":
        path = Path("/proc/self/mem")
    for command in ("define", "create"):
        proc = nsvirsh(tmp_path, command, str(path))  # bounded: a hang fails the test
        assert (proc.returncode, proc.stdout) == (1, "\n")  # virsh's empty line
        assert proc.stderr == f"error: {message.format(path=path)}\n"
    validate = subprocess.run([sys.executable, "-m", "nsvirt.driver.cli.validate", str(path)],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    assert (validate.returncode, validate.stderr) == (1, f"error: {message.format(path=path)}\n")


def test_an_option_value_may_look_like_an_option(defined: Path) -> None:
    proc = nsvirsh(defined, "undefine", "--domain", "-rf")
    assert (proc.returncode, proc.stderr) == (1, "error: failed to get domain '-rf'\n")
    proc = nsvirsh(defined, "dominfo", "--domain")
    assert proc.stderr == "error: command 'dominfo' requires --domain option's data\n"


@pytest.mark.parametrize("words", [["list", "--all", "--name"], ["domuuid", "bench-off"],
                                   ["dumpxml", "bench-off"], ["help"]])  # fmt: skip
def test_output_into_a_closed_pipe_ends_quietly(defined: Path, words: list[str]) -> None:
    # `nsvirsh list --name | head -1`: the reader is gone before we write
    reader, writer = os.pipe()
    os.close(reader)
    env = {**os.environ, "NSVIRT_DEFAULT_URI": f"lxc:///embed?root={defined}"}
    proc = subprocess.run([sys.executable, "-m", "nsvirt.shell", *words], stdout=writer,
                          stderr=subprocess.PIPE, env=env, timeout=60)  # fmt: skip
    os.close(writer)
    assert (proc.returncode, proc.stderr) == (0, b"")


def test_an_empty_definition_is_an_error_not_an_empty_document(defined: Path) -> None:
    config = defined / "etc/nsvirt/lxc/bench-off.xml"
    config.write_bytes(b"")
    proc = nsvirsh(defined, "dumpxml", "bench-off")
    assert (proc.returncode, proc.stdout) == (1, "\n")
    assert proc.stderr == f"error: {config}:1: document is empty\n"


BROKEN = {  # content of a definition file: (line, words of the error)
    "non-utf8": (b"<domain type='lxc'>\n<name>caf\xe9</name>\n</domain>\n", 2,
                 "invalid UTF-8 byte 0xe9: documents must be UTF-8"),
    "truncated": (b"<domain type='lxc'>\n  <name>broken</name>\n  <uuid>", 3,
                  "Premature end of data"),
    "foreign": (b"<network>\n  <name>default</name>\n</network>\n", 1,
                "/network: expected root element <domain>, found <network>"),
    "empty": (b"", 1, "document is empty"),
}  # fmt: skip


@pytest.mark.parametrize("kind", BROKEN)
def test_one_broken_definition_breaks_only_itself(defined: Path, tmp_path: Path,
                                                  kind: str) -> None:  # fmt: skip
    content, line, words = BROKEN[kind]
    broken = defined / "etc/nsvirt/lxc/broken.xml"
    broken.write_bytes(content)
    proc = nsvirsh(defined, "list", "--all", "--name")
    assert (proc.returncode, proc.stdout) == (0, "bench-off\n\n")
    assert proc.stderr.startswith(f"error: {broken}:{line}: {words}")
    assert proc.stderr.count("\n") == 1
    for words_ in (["dominfo", "broken"], ["start", "broken"], ["dumpxml", "broken"]):
        proc = nsvirsh(defined, *words_)
        assert proc.returncode == 1
        assert proc.stderr.splitlines()[-1].startswith(f"error: {broken}:{line}: "), words_
        assert "Traceback" not in proc.stderr
    assert nsvirsh(defined, "dominfo", "bench-off").returncode == 0
    other = tmp_path / "other.xml"
    other.write_text("<domain type='lxc'><name>other</name><memory>1024</memory>"
                     "<os><type>exe</type></os></domain>")  # fmt: skip
    assert nsvirsh(defined, "define", str(other)).returncode == 0
    # defining it anew is the fix
    fixed = tmp_path / "broken.xml"
    fixed.write_text(other.read_text().replace("other", "broken"))
    assert nsvirsh(defined, "define", str(fixed)).returncode == 0
    assert nsvirsh(defined, "list", "--all", "--name").stdout == "bench-off\nbroken\nother\n\n"


def test_json_has_one_vocabulary(defined: Path) -> None:
    import json

    (listed,) = json.loads(nsvirsh(defined, "list", "--all", "--json").stdout)
    info = json.loads(nsvirsh(defined, "dominfo", "bench-off", "--json").stdout)
    state = json.loads(nsvirsh(defined, "domstate", "bench-off", "--json").stdout)
    assert listed == {"id": None, "name": "bench-off", "uuid": UUID, "state": "shut off",
                      "reason": "unknown", "persistent": True, "autostart": False}  # fmt: skip
    contained = info.pop("containment")
    assert info.pop("proc") == {"view": "container", "served": None, "error": None}
    assert info == {
        "id": None, "name": "bench-off", "uuid": UUID, "os_type": "exe",
        "state": "shut off", "reason": "unknown", "cpus": 1, "cpu_time_ns": None,
        "max_memory_kib": 65536, "used_memory_kib": 65536, "persistent": True,
        "autostart": False, "managed_save": False, "security_model": "none",
    }  # fmt: skip
    assert contained["mode"] == "unprivileged" and contained["auto_ids"] == 65536
    assert contained["host_uid"] is None  # not running: no range taken
    assert contained["runs_here"] is True and contained["why_not"] is None
    assert "keyctl" in contained["seccomp_denied"] and contained["remount_guard"] is False
    assert state == {"state": "shut off", "reason": "unknown"}


def test_attach_interface_print_xml_quotes_as_virsh(defined: Path) -> None:
    proc = nsvirsh(defined, "attach-interface", "bench-off", "bridge", "br'0", "--mac",
                   "52:54:00:00:00:01", "--print-xml")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:4] == [
        "<interface type='bridge'>",
        "  <source bridge='br&apos;0'/>",
        "  <mac address='52:54:00:00:00:01'/>",
        "</interface>",
    ]
