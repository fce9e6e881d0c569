"""Malformed and hostile domain XML: refused with file, line and reason, quickly,
in bounded memory, and with nothing written to the store."""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from nsvirt.driver import connect
from nsvirt.driver.domxml import parser
from nsvirt.driver.errors import XMLError

BASE = """<domain type='lxc'>
  <name>web</name>
  <memory unit='MiB'>64</memory>
  <os>
    <type>exe</type>
    <init>/bin/sh</init>
  </os>
{extra}</domain>
"""
EXTRA_LINE = 8  # the first line of {extra}
LXC = "xmlns:lxc='http://libvirt.org/schemas/domain/lxc/1.0'"


def doc(extra: str = "", **replace: str) -> bytes:
    text = BASE.format(extra=extra)
    for old, new in replace.items():
        text = text.replace(old.replace("_", " "), new)
    return text.encode()


def fs(source: str, target: str) -> str:
    return (
        f"    <filesystem type='mount'>\n      <source dir='{source}'/>\n"
        f"      <target dir='{target}'/>\n    </filesystem>\n"
    )


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<domain type='lxc'><name>&lol9;</name></domain>
"""

# id: (document, line, words the message must contain)
CASES: dict[str, tuple[bytes, int | None, str]] = {
    "empty-file": (b"", 1, "document is empty"),
    "truncated": (doc().rsplit(b"</domain>", 1)[0], 8, "Premature end of data"),
    "non-utf8": (
        doc(extra="  <title>caf\xe9</title>\n").replace("é".encode(), b"\xe9"),
        8,
        "invalid UTF-8 byte 0xe9",
    ),
    "entity-bomb": (BOMB, 2, "DOCTYPE is not allowed"),
    "external-entity": (
        b'<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY x SYSTEM '
        b'"file:///etc/passwd">]>\n<domain type="lxc"><name>&x;</name></domain>',
        2,
        "DOCTYPE is not allowed",
    ),
    "external-dtd": (
        b'<?xml version="1.0"?>\n\n<!DOCTYPE domain SYSTEM "file:///etc/passwd">\n'
        b"<domain type='lxc'/>",
        3,
        "DOCTYPE is not allowed",
    ),
    "xinclude": (
        doc(
            "  <metadata>\n    <xi:include xmlns:xi='http://www.w3.org/2001/XInclude'"
            " href='file:///etc/passwd' parse='text'/>\n  </metadata>\n"
        ),
        EXTRA_LINE + 1,
        "XInclude is not allowed",
    ),
    "deep-nesting": (
        b"<domain type='lxc'>\n" + b"<a>" * 10_000 + b"</a>" * 10_000 + b"</domain>",
        2,
        "nest deeper than 256",
    ),
    "five-mib": (
        b"<domain type='lxc'><description>" + b"x" * (5 << 20) + b"</description></domain>",
        None,
        "larger than the limit",
    ),
    # under the size cap, but shaped so that the schema's work would explode (issue 9.7)
    "attribute-flood": (
        doc("  <vcpu " + " ".join(f"a{i}='x'" for i in range(80_000)) + ">1</vcpu>\n"),
        EXTRA_LINE,
        "more than 32 attributes on one element",
    ),
    "element-flood": (
        doc("  <metadata>\n" + "<x:a xmlns:x='urn:x'/>" * 40_000 + "\n  </metadata>\n"),
        EXTRA_LINE + 1,
        "more than 4096 elements",
    ),
    "long-text": (
        doc("  <description>" + "d" * 900_000 + "</description>\n"),
        EXTRA_LINE,
        "longer than 65536 characters",
    ),
    "wrong-root": (
        b"<?xml version='1.0'?>\n<network><name>default</name></network>",
        2,
        "expected root element <domain>, found <network>",
    ),
    "type-kvm": (doc().replace(b"'lxc'", b"'kvm'"), 1, "domain type 'kvm' is not supported"),
    "unknown-element": (
        doc("  <frobnicate level='9'/>\n"),
        EXTRA_LINE,
        "unknown element <frobnicate> in <domain>",
    ),
    "unknown-attribute": (
        doc("  <vcpu hotplug='yes'>1</vcpu>\n"),
        EXTRA_LINE,
        "'hotplug' is an unknown attribute",
    ),
    "bad-unit": (doc().replace(b"'MiB'", b"'lots'"), 3, "attribute 'unit' = 'lots'"),
    "negative-size": (
        doc("  <currentMemory>-5</currentMemory>\n"),
        EXTRA_LINE,
        "'-5' is not a valid value",
    ),
    "absurd-size": (doc().replace(b"unit='MiB'>64", b"unit='EiB'>64"), 3, "larger than the limit"),
    "name-slash": (doc().replace(b">web<", b">web/1<"), 2, "must not contain '/'"),
    "name-dotdot": (doc().replace(b">web<", b">..<"), 2, "must not start with '.'"),
    "name-newline": (doc().replace(b">web<", b">web\nserver<"), 2, "'web\\nserver'"),
    "name-too-long": (doc().replace(b">web<", b">" + b"w" * 65 + b"<"), 2, "1 to 64 bytes"),
    "malformed-uuid": (
        doc("  <uuid>1234-not-a-uuid</uuid>\n"),
        EXTRA_LINE,
        "'1234-not-a-uuid' is not a valid value",
    ),
    "relative-target": (
        doc("  <devices>\n" + fs("/srv/data", "data") + "  </devices>\n"),
        EXTRA_LINE + 3,
        "'data' must be an absolute path",
    ),
    "dotdot-target": (
        doc("  <devices>\n" + fs("/srv/data", "/srv/../etc") + "  </devices>\n"),
        EXTRA_LINE + 3,
        "must be a normalised path",
    ),
    "duplicate-target": (
        doc("  <devices>\n" + fs("/a", "/data") + fs("/b", "/data") + "  </devices>\n"),
        EXTRA_LINE + 7,
        "'/data' is used more than once",
    ),
    "overlapping-idmap": (
        doc(
            "  <idmap>\n    <uid start='0' target='100000' count='1000'/>\n"
            "    <uid start='500' target='300000' count='10'/>\n"
            "    <gid start='0' target='100000' count='1000'/>\n"
            "  </idmap>\n"
        ),
        EXTRA_LINE + 2,
        "uid map 2 overlaps uid map 1 inside the container",
    ),
    "interface-with-sharenet": (
        doc(
            "  <devices>\n    <interface type='bridge'>\n      <source bridge='br0'/>\n"
            "    </interface>\n  </devices>\n  <lxc:namespace>\n"
            "    <lxc:sharenet type='netns' value='red'/>\n  </lxc:namespace>\n",
            **{"<domain_type='lxc'>": f"<domain type='lxc' {LXC}>"},
        ),
        EXTRA_LINE + 1,
        "<interface> needs a private network namespace",
    ),
    "current-above-memory": (
        doc("  <currentMemory unit='MiB'>128</currentMemory>\n"),
        EXTRA_LINE,
        "must not exceed memory",
    ),
    "malformed-cpuset": (
        doc("  <vcpu cpuset='7-3'>1</vcpu>\n"),
        EXTRA_LINE,
        "malformed cpuset '7-3'",
    ),
    "cpuset-shape": (
        doc("  <vcpu cpuset='0,,1'>1</vcpu>\n"),
        EXTRA_LINE,
        "attribute 'cpuset' = '0,,1'",
    ),
}

TIMEOUT = 20.0  # generous: each is refused in milliseconds (benchmarks/bad_input.py)
MEMORY_LIMIT = 1 << 30


def run_bounded(fn: Callable[[], dict], timeout: float = TIMEOUT) -> dict:
    """Run fn in a forked child with an address-space cap; a hang or a blow-up fails."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: the schema is already built in the parent and shared
        os.close(rfd)
        try:
            resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
            result = fn()
        except BaseException as e:  # report anything, including MemoryError
            result = {"unexpected": repr(e)}
        os.write(wfd, json.dumps(result).encode())
        os._exit(0)
    os.close(wfd)
    try:
        ready, _, _ = select.select([rfd], [], [], timeout)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"not refused within {timeout} s")
        data = b""
        while chunk := os.read(rfd, 65536):
            data += chunk
    finally:
        os.close(rfd)
        os.waitpid(pid, 0)
    return json.loads(data)


@pytest.fixture(scope="module", autouse=True)
def _schema_built() -> None:
    parser.schema()  # build once, before forking


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_refused_with_file_line_and_reason(case: str, tmp_path: Path) -> None:
    data, line, words = CASES[case]
    path = tmp_path / f"{case}.xml"
    path.write_bytes(data)
    conn = connect(f"lxc:///embed?root={tmp_path / 'root'}")

    def attempt() -> dict:
        try:
            conn.define_xml(data, source=str(path))
        except XMLError as e:
            return {"line": e.line, "message": str(e), "source": e.source}
        return {"accepted": True}

    result = run_bounded(attempt)
    assert "accepted" not in result and "unexpected" not in result, result
    assert result["source"] == str(path)
    assert result["line"] == line, result["message"]
    expected_prefix = f"{path}:{line}: " if line is not None else f"{path}: "
    assert result["message"].startswith(expected_prefix)
    assert words in result["message"]
    assert "root:" not in result["message"]  # /etc/passwd is never echoed
    assert conn.list_all() == []
    config = tmp_path / "root/etc/nsvirt/lxc"
    assert not config.exists() or not any(config.glob("*.xml"))


def test_every_case_is_covered_once() -> None:
    assert len({data for data, _, _ in CASES.values()}) == len(CASES)


@pytest.mark.parametrize("case", ["unknown-element", "entity-bomb", "name-newline"])
def test_validator_cli_reports_error_and_exit_1(case: str, tmp_path: Path) -> None:
    data, line, words = CASES[case]
    path = tmp_path / f"{case}.xml"
    path.write_bytes(data)
    proc = subprocess.run(
        [sys.executable, "-m", "nsvirt.driver.cli.validate", str(path)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith(f"error: {path}:{line}: ")
    assert words in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_validator_cli_says_validates(tmp_path: Path) -> None:
    good = tmp_path / "good.xml"
    good.write_bytes(doc())
    bad = tmp_path / "bad.xml"
    bad.write_bytes(b"<domain")
    proc = subprocess.run(
        [sys.executable, "-m", "nsvirt.driver.cli.validate", str(good), str(bad)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.stdout == f"{good} validates\n"
    assert proc.stderr.startswith(f"error: {bad}:1: ")
    assert proc.returncode == 1
