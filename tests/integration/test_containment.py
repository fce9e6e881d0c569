"""Containment, probed from inside as a hostile root would (docs/containment.md).

Each probe tries one thing a contained root must not be able to do, and prints
`OK` only if it worked. A default domain (no <idmap>) must stop all of them; an
opted-out privileged one all but PRIVILEGED_LIMITS, which only a MAC (AppArmor,
SELinux) can stop and the docs list as known limits of privileged mode.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Shell, domain_xml, is_v2, start

pytestmark = pytest.mark.v2

# Probes that still succeed in an opted-out privileged domain (the docs' known
# limits): a fresh proc or sysfs, or /proc/sys unmounted, is the host's, writable
# by real root; no capability or syscall filter can tell those mounts apart.
PRIVILEGED_LIMITS = {"proc_sys_after_umount", "fresh_proc", "fresh_sysfs"}

# the value written back is the one read: a probe that succeeds changes nothing
SYSCTL = "/proc/sys/kernel/printk_ratelimit"
SYSFS = "module/printk/parameters/time"  # under /sys


def _probes(v2: bool) -> dict[str, str]:
    """name → a busybox sh command that prints OK if the attack worked. Scratch mount
    points go in /dev/shm: the root is read-only."""
    kind = "-t cgroup2" if v2 else "-t cgroup -o memory"
    limit = "memory.max" if v2 else "memory.limit_in_bytes"
    raise_limit = f"echo 268435456 > /dev/shm/cg/{limit}"
    if not v2:  # memory + swap first: the memory limit may not exceed it
        raise_limit = f"echo 268435456 > /dev/shm/cg/memory.memsw.limit_in_bytes; {raise_limit}"
    write_back = f"v=$(cat {SYSCTL}) && echo $v >"
    sysfs_back = f"v=$(cat /sys/{SYSFS}) && echo $v >"
    probes = {
        "remount_root_rw": "mount -o remount,rw,bind /; touch /probe-root && echo OK",
        "remount_bind_rw": "mount -o remount,rw,bind /data; touch /data/probe && echo OK",
        "write_proc_sys": f"{write_back} {SYSCTL} && echo OK",
        "remount_proc_sys_rw": f"mount -o remount,rw,bind /proc/sys; {write_back} {SYSCTL} "
        "&& echo OK",
        "proc_sys_after_umount": f"umount /proc/sys && {write_back} {SYSCTL} && echo OK",
        "fresh_proc": "mkdir -p /dev/shm/p && mount -t proc proc /dev/shm/p && "
        f"{write_back} /dev/shm/p/sys/kernel/printk_ratelimit && echo OK",
        "remount_sys_rw": f"mount -o remount,rw /sys; {sysfs_back} /sys/{SYSFS} && echo OK",
        "fresh_sysfs": "mkdir -p /dev/shm/s && mount -t sysfs sysfs /dev/shm/s && "
        f"{sysfs_back} /dev/shm/s/{SYSFS} && echo OK",
        # raise its memory limit through a fresh (writable) cgroup mount, then use more
        "raise_memory_limit": f"mkdir -p /dev/shm/cg && mount {kind} none /dev/shm/cg; "
        f"{raise_limit}; dd if=/dev/zero of=/dev/null bs=48M count=1 2>/dev/null && echo OK",
        "cgroup_mount_shows_others": f"mkdir -p /dev/shm/c2 && mount {kind} none /dev/shm/c2 && "
        "{ ls -R /dev/shm/c2 | grep -q nsvirt- || ls /dev/shm/c2/release_agent; } && echo OK",
        "open_denied_device": "exec 3</testdev/tun && echo OK",
    }
    if not v2:  # v1's list is a file the container could try to widen
        probes["widen_device_list"] = (
            "mkdir -p /dev/shm/cgd && mount -t cgroup -o devices none /dev/shm/cgd; "
            "echo a > /dev/shm/cgd/devices.allow; exec 3</testdev/tun && echo OK"
        )
    return probes


@pytest.fixture
def probe_root(rootfs: Path) -> Iterator[Path]:
    """A copy of the busybox rootfs owned by host root (as shipped), with files of other
    owners; outside pytest's private temp tree (the container's ids must reach it)."""
    top = Path(tempfile.mkdtemp(prefix="nsvirt-probe-"))
    top.chmod(0o755)
    copy = top / "rootfs"
    shutil.copytree(rootfs, copy, symlinks=True, ignore=shutil.ignore_patterns("testdev"))
    (copy / "testdev").mkdir()
    os.mknod(copy / "testdev/tun", 0o666 | 0o020000, os.makedev(10, 200))  # not on the list
    (copy / "home/tester/owned").write_text("tester's\n")
    os.chown(copy / "home/tester/owned", 1000, 1000)
    data = top / "data"
    data.mkdir()
    (data / "shared").write_text("from the host\n")
    os.chown(data / "shared", 1234, 4321)
    yield top
    shutil.rmtree(top)


def _probe_domain(conn, top: Path, name: str, *, privileged: bool, readonly: bool):
    extra = "<memtune><swap_hard_limit unit='MiB'>32</swap_hard_limit></memtune>"
    devices = (
        f"<filesystem type='mount'><source dir='{top / 'data'}'/><target dir='/data'/>"
        f"{'<readonly/>' if readonly else ''}</filesystem>"
    )
    xml = domain_xml(name, top / "rootfs", devices=devices, extra=extra, memory_mib=32,
                     root_readonly=readonly, privileged=privileged)  # fmt: skip
    return start(conn, xml)


def _run_probes(sh, v2: bool, names: set[str] | None = None) -> dict[str, bool]:
    worked = {}
    for name, command in _probes(v2).items():
        if names is not None and name not in names:
            continue
        out = sh.run(f"( {command} ) 2>/dev/null")
        worked[name] = "OK" in out.split()
    return worked


@pytest.mark.parametrize("mode", ["default", "privileged"])
def test_probes_fail(conn, probe_root: Path, shell_of, mode: str) -> None:
    privileged = mode == "privileged"
    dom = _probe_domain(conn, probe_root, f"probe-{mode}", privileged=privileged, readonly=True)
    v2 = is_v2(dom)
    sh = shell_of(dom)
    worked = _run_probes(sh, v2)
    expected = {name: privileged and name in PRIVILEGED_LIMITS for name in worked}
    assert worked == expected  # True: the attack worked
    # not for want of trying: a fresh cgroup mount works, and shows the container's own
    kind = "-t cgroup2" if v2 else "-t cgroup -o memory"
    out = sh.run(
        f"mkdir /dev/shm/c3 && mount {kind} none /dev/shm/c3 && cat /dev/shm/c3/cgroup.procs"
    )
    assert "1" in out.split()  # its init, as its pid namespace numbers it
    assert dom.is_active()
    assert not (probe_root / "rootfs/probe-root").exists()
    assert not (probe_root / "data/probe").exists()


def test_probes_fail_without_a_read_only_mount(conn, probe_root: Path, shell_of) -> None:
    """Nothing read-only to guard (no remount filter): the user namespace alone stops the
    writes to /proc/sys, /sys and the cgroup files."""
    dom = _probe_domain(conn, probe_root, "probe-rw", privileged=False, readonly=False)
    names = set(_probes(is_v2(dom))) - {"remount_root_rw", "remount_bind_rw"}
    worked = _run_probes(shell_of(dom), is_v2(dom), names)
    assert worked == dict.fromkeys(names, False)


def test_default_domain_files_keep_their_host_owners(conn, probe_root: Path, shell_of) -> None:
    dom = _probe_domain(conn, probe_root, "owners", privileged=False, readonly=False)
    sh = shell_of(dom)
    assert sh.run("stat -c %u:%g /home/tester/owned /data/shared /bin/busybox").split() == [
        "1000:1000", "1234:4321", "0:0",
    ]  # fmt: skip
    sh.run("echo made > /made-inside; echo made > /data/made-inside")
    for made in (probe_root / "rootfs/made-inside", probe_root / "data/made-inside"):
        st = made.stat()
        assert (st.st_uid, st.st_gid) == (0, 0)  # root inside writes as host root on disk
    # and yet root inside is nobody on the host
    host_uid = int(Path(f"/proc/{dom.init_pid()}/status").read_text().split("Uid:")[1].split()[0])
    assert host_uid >= 65536


# ---------------------------------------------------------------- system calls

SYSCALL_PROBE = r"""
import ctypes, errno, json, os, signal
libc = ctypes.CDLL(None, use_errno=True)
def err():
    return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
class FileHandle(ctypes.Structure):
    _fields_ = [("bytes", ctypes.c_uint), ("type", ctypes.c_int), ("f", ctypes.c_ubyte * 128)]
out = {}
raw = bytes.fromhex(__HANDLE__)
fh = FileHandle(len(raw), __TYPE__)
ctypes.memmove(fh.f, raw, len(raw))
fd = libc.syscall(304, os.open("/", os.O_RDONLY), ctypes.byref(fh), os.O_RDONLY)
out["open_by_handle_at"] = "read " + os.read(fd, 64).decode() if fd >= 0 else err()
key = libc.syscall(250, 10, -4, b"user", __KEY__, 0)  # KEYCTL_SEARCH in @u
if key >= 0:
    buf = ctypes.create_string_buffer(64)
    n = libc.syscall(250, 11, key, buf, 64)  # KEYCTL_READ
    out["keyctl"] = "read " + buf.raw[:max(n, 0)].decode(errors="replace")
else:
    out["keyctl"] = err()
for name, nr, args in (("bpf", 321, (0, 0, 0)), ("perf_event_open", 298, (0, 0, -1, -1, 0)),
                       ("userfaultfd", 323, (0,)), ("kexec_load", 246, (0, 0, 0, 0)),
                       ("init_module", 175, (0, 0, b""))):
    r = libc.syscall(nr, *args)
    out[name] = "done" if r >= 0 else err()
print("PROBES " + json.dumps(out), flush=True)
signal.pause()  # stay up (init): destroy ends it
"""


@pytest.fixture
def host_secrets() -> Iterator[dict[str, str]]:
    """A root-only file outside any rootfs (and its handle), and a key in host root's
    user keyring: what a container's root must not read."""
    libc = ctypes.CDLL(None, use_errno=True)
    top = Path(tempfile.mkdtemp(prefix="nsvirt-secret-"))
    secret = top / "secret"
    secret.write_text("host file secret")
    secret.chmod(0o600)

    class FileHandle(ctypes.Structure):
        _fields_ = [("bytes", ctypes.c_uint), ("type", ctypes.c_int), ("f", ctypes.c_ubyte * 128)]

    fh, mount_id = FileHandle(128, 0), ctypes.c_int()
    assert libc.syscall(303, -100, bytes(secret), ctypes.byref(fh), ctypes.byref(mount_id), 0) == 0
    name = f"nsvirt-probe-{os.getpid()}".encode()
    key = libc.syscall(248, b"user", name, b"host key secret", 15, -4)  # add_key to @u
    assert key > 0, os.strerror(ctypes.get_errno())
    yield {"__HANDLE__": repr(bytes(fh.f)[: fh.bytes].hex()), "__TYPE__": str(fh.type),
           "__KEY__": repr(name)}  # fmt: skip
    libc.syscall(250, 9, key, -4)  # KEYCTL_UNLINK from @u
    shutil.rmtree(top)


@pytest.mark.parametrize("mode", ["default", "privileged"])
def test_system_call_probes_fail(conn, host_secrets: dict[str, str], mode: str,
                                 shell_of) -> None:  # fmt: skip
    import sys

    script = SYSCALL_PROBE
    for key, value in host_secrets.items():
        script = script.replace(key, value)
    # the system's python (root inside may not reach a python under /root)
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    xml = domain_xml(f"calls-{mode}", None, init=python,
                     args=("-c", script), privileged=mode == "privileged")  # fmt: skip
    console = shell_of(start(conn, xml), shell=False)  # it replays what came before
    console.read_until("PROBES ")
    results = json.loads(console.read_until("\n").strip())
    for name, result in results.items():
        assert result in ("EPERM", "ENOSYS", "ENOKEY", "ESTALE", "EACCES"), (name, result)


@pytest.mark.parametrize("mode", ["default", "privileged"])
def test_busybox_init_and_an_app_container_boot(conn, rootfs: Path, shell_of, mode: str) -> None:
    privileged = mode == "privileged"
    system = start(conn, domain_xml(f"sys-{mode}", rootfs, init="/sbin/init",
                                    privileged=privileged))  # fmt: skip
    console = shell_of(system, shell=False)
    console.read_until("Please press Enter to activate this console.")
    console.stream.write(b"\n")
    console.read_until("# ")
    sh = Shell.__new__(Shell)  # the shell busybox init started on the console
    sh.stream, sh.buf, sh.counter = console.stream, b"", 0
    assert sh.run("cat /proc/1/cmdline | tr '\\0' ' '").split()[0] in ("init", "/sbin/init")
    app = start(conn, domain_xml(f"app-{mode}", None, privileged=privileged))
    out = shell_of(app).run("hostname; id -u; cat /proc/self/uid_map")
    assert out.split()[:2] == [f"app-{mode}", "0"]
    assert out.split()[3] == "0" if privileged else int(out.split()[3]) >= 65536


@pytest.mark.parametrize("mode", ["default", "idmap"])
def test_a_rootfs_under_a_private_directory_starts(conn, rootfs: Path, tmp_path: Path,
                                                   shell_of, mode: str) -> None:  # fmt: skip
    """Root inside cannot pass through a host directory of mode 0700 (pytest's temp
    tree is one); the supervisor hands init copies of the root and the binds."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    shutil.copytree(rootfs, private / "rootfs", symlinks=True,
                    ignore=shutil.ignore_patterns("testdev"))  # fmt: skip
    (private / "rootfs/data").mkdir()  # an <idmap>'s root may not make it: not its own
    (private / "data").mkdir()
    (private / "data/note").write_text("private data\n")
    idmap = (
        "<idmap><uid start='0' target='220000' count='65536'/>"
        "<gid start='0' target='220000' count='65536'/></idmap>"
    )
    bind = f"<filesystem><source dir='{private / 'data'}'/><target dir='/data'/></filesystem>"
    xml = domain_xml(f"private-{mode}", private / "rootfs", devices=bind,
                     extra=idmap if mode == "idmap" else "")  # fmt: skip
    sh = shell_of(start(conn, xml))
    assert sh.run("cat /data/note").strip() == "private data"
    owner = sh.run("stat -c %u /bin/busybox").strip()
    assert owner == ("0" if mode == "default" else "65534")  # idmap: the rootfs is not its own


def test_a_running_domain_reports_its_host_ids(conn, rootfs: Path) -> None:
    dom = start(conn, domain_xml("ids", rootfs))
    uid = int(Path(f"/proc/{dom.init_pid()}/status").read_text().split("Uid:")[1].split()[0])
    report = dom.containment()
    assert (report["mode"], report["host_uid"], report["host_gid"]) == ("unprivileged", uid, uid)
    assert f'<nsvirt:userns uid="{uid}" gid="{uid}" count="65536"/>' in dom.xml_desc()
    assert "nsvirt:userns" not in dom.xml_desc(inactive=True)  # the run's, not the definition's
    privileged = start(conn, domain_xml("ids-root", rootfs, privileged=True))
    assert privileged.containment()["host_uid"] == 0
