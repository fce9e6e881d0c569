"""Fixtures for tests that start real containers (root, real kernel facilities).

Each test gets its own `lxc:///embed?root=` connection, so its cgroup partition,
run files and containers are its own; the finalizer destroys what is still
running and asserts that nothing — cgroup, process, run file — is left behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from nsvirt.driver import connect
from nsvirt.driver.connection import Connection
from nsvirt.driver.consolestream import ConsoleStream
from nsvirt.driver.domain import Domain
from nsvirt.driver.domxml.model import NSVIRT_NS
from nsvirt.driver.errors import OperationInvalid
from tests.conftest import EXAMPLES

MARKER = "nsvirt-test-rootfs"


def _privileged_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if not Path("/proc/self/ns/user").exists():
        return "needs namespaces"
    if (
        not shutil.which("busybox")
        or subprocess.run(["ldd", shutil.which("busybox")], capture_output=True).returncode == 0
    ):
        return "needs a static busybox (apt-get install busybox-static)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _privileged_reason()
    for item in items:
        if "integration" in item.nodeid:
            item.add_marker(pytest.mark.privileged)
            # under CI they must run, not skip: a machine that cannot is a failure
            if reason and not os.environ.get("CI"):
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def rootfs() -> Iterator[Path]:
    """A busybox root filesystem, built once, with a marker file and a non-listed device.

    It lives outside pytest's private (0700) temp tree: a container whose root is
    an unprivileged host uid (user namespace) must be able to reach it."""
    top = Path(tempfile.mkdtemp(prefix="nsvirt-test-rootfs-"))
    top.chmod(0o755)
    yield from _build_rootfs(top / "busybox")
    shutil.rmtree(top)


def _build_rootfs(path: Path) -> Iterator[Path]:
    subprocess.run(
        [str(EXAMPLES / "make-busybox-rootfs.sh"), str(path)], check=True, capture_output=True
    )
    (path / "etc" / MARKER).write_text("the domain's own rootfs\n")
    (path / "testdev").mkdir()
    # /dev/net/tun is 10:200, not on the default list; mknod inside would fail
    # anyway (no CAP_MKNOD), so the host creates it, and the device cgroup must deny it.
    os.mknod(path / "testdev/tun", 0o666 | 0o020000, os.makedev(10, 200))
    os.mknod(path / "testdev/null", 0o666 | 0o020000, os.makedev(1, 3))
    yield path


def cgroup_leftovers(tag: str) -> list[str]:
    """This connection's partition, in any hierarchy (v2 root, v1 controllers, unified)."""
    root = Path("/sys/fs/cgroup")
    candidates = [root / f"nsvirt-{tag}"]
    candidates += [d / f"nsvirt-{tag}" for d in root.iterdir() if d.is_dir()]
    return [str(c) for c in candidates if c.exists()]


def cg_value(dom: Domain, v1: tuple[str, str], v2: str) -> str:
    """A cgroup file of the domain, whichever backend the host uses."""
    dirs = dom.cgroup_dirs()
    if "unified" in dirs:
        return (Path(dirs["unified"]) / v2).read_text().strip()
    return (Path(dirs[v1[0]]) / v1[1]).read_text().strip()


def is_v2(dom: Domain) -> bool:
    return "unified" in dom.cgroup_dirs()


def processes_in(tag: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if f"nsvirt-{tag}" in Path(f"/proc/{entry}/cgroup").read_text():
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def leftovers(conn: Connection) -> list[str]:
    """Everything a stopped connection root must not have any more."""
    out = cgroup_leftovers(conn.tag)
    out += [f"process {p}" for p in processes_in(conn.tag)]
    run = conn.paths.run_dir
    if run.exists():
        out += [str(p) for p in run.iterdir() if p.suffix in (".sock", ".xml")]
        for state in run.glob("*.json"):
            if '"running"' in state.read_text() or '"paused"' in state.read_text():
                out.append(str(state))
    points = conn.paths.mountpoint("x").parent
    if points.exists():
        out += [str(p) for p in points.glob(f"{conn.tag}-*")]
    from nsvirt.driver.state import idranges

    held = idranges.held(idranges.table_path())
    out += [f"host ids {e['start']} held for {e['name']}" for e in held
            if e["root"] == str(conn.paths.root)]  # fmt: skip
    from nsvirt.driver.runtime.cgroups.bpf_devices import (
        BPF_PROG_TYPE_CGROUP_DEVICE,
        loaded_programs,
    )

    out += [
        f"bpf program {p}"
        for p in loaded_programs()
        if p[1] == BPF_PROG_TYPE_CGROUP_DEVICE and p[2] == "nsvirt_devices"
    ]
    server = Path(conn.paths.root, "run/nsvirt/lxc/procfs/server")  # the /proc server
    with contextlib.suppress(OSError, ValueError, IndexError):  # gone meanwhile: well
        pid = int(server.read_text().split()[0])  # it leaves once nothing is registered
        if not exits(pid):
            out.append(f"/proc server {pid}")
    mounts = Path("/proc/self/mountinfo").read_text()
    out += [line for line in mounts.splitlines() if str(conn.paths.root) in line]
    base = conn.paths.root / "run/nsvirt/lxc/procfs"
    if base.exists():  # the /proc server's mount lives outside the root
        from nsvirt.driver.procfs import service

        point = service.mount_point(str(base))
        out += [line for line in mounts.splitlines() if f" {point} " in line]
    # a supervisor answers before it exits: give holders a bounded moment to go
    out += [f"process {p} holds {f}" for p, f in holders_of(conn.paths.root) if not exits(p)]
    return out


def exits(pid: int, timeout: float = 10.0) -> bool:
    """Wait (a bound, not a delay) for process `pid` to exit; False if it does not."""
    from nsvirt.driver.runtime.procstat import wait_gone

    return wait_gone(pid, timeout)


def holders_of(root: Path) -> list[tuple[int, str]]:
    """Processes (but this one) with a file open under `root`: a supervisor that did
    not exit still holds its domain's log."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            for fd in os.listdir(f"/proc/{entry}/fd"):
                target = os.readlink(f"/proc/{entry}/fd/{fd}")
                if target.startswith(f"{root}/"):
                    found.append((int(entry), target))
                    break
        except OSError:
            pass
    return found


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[Connection]:
    c = connect(f"lxc:///embed?root={tmp_path / 'root'}")
    yield c
    for dom in c.list_all():
        if dom.is_active():
            with contextlib.suppress(OperationInvalid):  # it stopped meanwhile: not an error
                dom.destroy()
    left = leftovers(c)
    assert not left, f"left behind: {left}"


def domain_xml(
    name: str,
    rootfs: Path | None,
    *,
    init: str = "/bin/sh",
    args: tuple[str, ...] = (),
    extra: str = "",
    devices: str = "",
    memory_mib: int = 64,
    root_readonly: bool = False,
    privileged: bool = False,
    config: str = "",
) -> str:
    """A domain on `rootfs` (None: the host's root); `privileged` opts out of the user
    namespace; `config`: more of <nsvirt:config>."""
    argxml = "".join(f"<initarg>{escape(a)}</initarg>" for a in args)
    config += "<nsvirt:privileged/>" if privileged else ""
    if config:
        config = f"<nsvirt:config xmlns:nsvirt='{NSVIRT_NS}'>{config}</nsvirt:config>"
        extra = f"<metadata>{config}</metadata>{extra}"
    root = ""
    if rootfs is not None:
        ro = "<readonly/>" if root_readonly else ""
        root = (
            f"<filesystem type='mount'><source dir='{rootfs}'/><target dir='/'/>{ro}</filesystem>"
        )
    return (
        f"<domain type='lxc'><name>{name}</name>"
        f"<memory unit='MiB'>{memory_mib}</memory>{extra}"
        f"<os><type>exe</type><init>{init}</init>{argxml}</os>"
        f"<devices>{root}{devices}<console type='pty'/></devices></domain>"
    )


def start(conn: Connection, xml: str) -> Domain:
    dom = conn.define_xml(xml)
    dom.create()
    return dom


class Shell:
    """A shell on a domain's console: type a command, read its output."""

    def __init__(self, dom: Domain, shell: bool = True) -> None:
        self.stream: ConsoleStream = dom.open_console()
        self.buf = b""
        self.counter = 0
        if shell:
            # no echo and no prompt: what the console prints is the commands' output
            # (a prompt printed late, after typed-ahead input, would interleave)
            self.run("stty -echo; PS1=''")

    def run(self, command: str, timeout: float = 30.0) -> str:
        """Run `command` in the console's shell; return its output (without the echo)."""
        self.counter += 1
        tag = f"@@{self.counter}@@"
        # the marker is split in the typed line so the tty's echo never matches it
        typed = f"echo '{tag[:3]}''{tag[3:]}'$?"
        self.stream.write(f"{command}; {typed}\n".encode())
        text = self._until(re.compile(re.escape(tag).encode() + rb"(\d+)"), timeout, command)
        # drop everything up to the end of the echoed command line
        at = text.rfind(typed)
        out = text[text.index("\n", at) + 1 :] if at >= 0 and "\n" in text[at:] else text
        return out.lstrip("\n")  # a line editor may still end the (unechoed) input line

    def _until(self, pattern: re.Pattern[bytes], timeout: float, what: str) -> str:
        import select

        deadline = time.monotonic() + timeout
        while True:
            m = pattern.search(self.buf)
            if m:
                out = self.buf[: m.start()]
                self.buf = self.buf[m.end() :]
                return out.decode(errors="replace").replace("\r\n", "\n")
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.stream], [], [], left)[0]:
                raise AssertionError(f"no answer to {what!r}; console said {self.buf[-500:]!r}")
            chunk = self.stream.read()
            if not chunk:
                raise AssertionError(f"console closed during {what!r}: {self.buf[-500:]!r}")
            self.buf += chunk

    def read_until(self, text: str, timeout: float = 30.0) -> str:
        return self._until(re.compile(re.escape(text.encode())), timeout, text)

    def close(self) -> None:
        self.stream.close()


@pytest.fixture
def shell_of() -> Iterator:
    shells: list[Shell] = []

    def make(dom: Domain, shell: bool = True) -> Shell:
        s = Shell(dom, shell)
        shells.append(s)
        return s

    yield make
    for s in shells:
        s.close()
