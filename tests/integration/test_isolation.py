"""A started container really is isolated: namespaces, hostname, pid 1, rootfs, /dev."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nsvirt.driver.runtime.cgroups.bpf_devices import BPF_PROG_TYPE_CGROUP_DEVICE, loaded_programs
from tests.integration.conftest import MARKER, domain_xml, is_v2, start

pytestmark = pytest.mark.v2


def ns(pid: int | str, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


@pytest.mark.parametrize("privileged", [False, True], ids=["default", "privileged"])
def test_init_is_pid1_in_new_namespaces(conn, rootfs: Path, shell_of, privileged: bool) -> None:
    dom = start(conn, domain_xml("web1", rootfs, privileged=privileged))
    init = dom.init_pid()
    for kind in ("mnt", "uts", "ipc", "pid", "cgroup"):
        assert ns(init, kind) != ns("self", kind), kind
    # no <privnet/> and no interface: the host's network, as libvirt does
    assert ns(init, "net") == ns("self", "net")
    if privileged:  # <nsvirt:privileged/>: libvirt's default, no user namespace
        assert ns(init, "user") == ns("self", "user")
        assert Path(f"/proc/{init}/status").read_text().split("Uid:")[1].split()[0] == "0"
    else:  # no <idmap>: a user namespace of 65536 host ids that only it holds
        assert ns(init, "user") != ns("self", "user")
        inside, host, count = Path(f"/proc/{init}/uid_map").read_text().split()
        assert (inside, count) == ("0", "65536") and int(host) >= 65536
        assert Path(f"/proc/{init}/status").read_text().split("Uid:")[1].split()[0] == host
    sh = shell_of(dom)
    assert sh.run("echo $$").strip() == "1"
    assert sh.run("hostname").strip() == "web1"
    assert os.uname().nodename != "web1"


def test_privnet_gives_a_network_namespace_with_only_lo_up(conn, rootfs: Path, shell_of) -> None:
    dom = start(conn, domain_xml("net1", rootfs, extra="<features><privnet/></features>"))
    assert ns(dom.init_pid(), "net") != ns("self", "net")
    links = shell_of(dom).run("ls /sys/class/net; cat /sys/class/net/lo/operstate").split()
    assert links[0] == "lo" and len(links) == 2
    assert links[1] in ("unknown", "up")


def test_host_processes_and_mounts_are_invisible(conn, rootfs: Path, shell_of) -> None:
    dom = start(conn, domain_xml("iso", rootfs))
    sh = shell_of(dom)
    # a host process with a name nobody else has: the container must not see it
    marker = f"nsvirt-host-process-{os.getpid()}"
    host = subprocess.Popen([sys.executable, "-c",
                             "import signal; print('ready', flush=True); signal.pause()", marker],
                            stdout=subprocess.PIPE)  # fmt: skip
    try:
        # Popen may return (vfork) before exec has set the new cmdline: it says when
        assert host.stdout is not None and host.stdout.readline() == b"ready\n"
        assert marker in Path(f"/proc/{host.pid}/cmdline").read_text()
        inside = sh.run("cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
        assert marker not in inside
        pids = [p for p in sh.run("ls /proc").split() if p.isdigit()]
        assert "1" in pids and len(pids) <= 4  # init, and the shell's children for this
    finally:
        host.kill()
        host.wait()
    points = {line.split()[4] for line in sh.run("cat /proc/self/mountinfo").splitlines()}
    # only the container's own tree: its root and the private /proc, /sys, /dev
    assert all(p == "/" or p.split("/")[1] in ("proc", "sys", "dev") for p in points), points
    host_points = {
        line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
    }
    assert host_points - points  # the host has mounts the container does not see
    assert sh.run(f"cat /etc/{MARKER}").strip() == "the domain's own rootfs"


def test_dev_has_only_whitelisted_nodes(conn, rootfs: Path, shell_of) -> None:
    dom = start(conn, domain_xml("dev1", rootfs))
    sh = shell_of(dom)
    names = set(sh.run("ls /dev").split())
    assert {
        "null",
        "zero",
        "full",
        "random",
        "urandom",
        "tty",
        "console",
        "ptmx",
        "pts",
        "shm",
        "fd",
        "stdin",
        "stdout",
        "stderr",
    } <= names
    assert not names & {"sda", "vda", "mem", "kmsg", "loop0"}
    assert sh.run("tty").strip() == "/dev/console"


def test_device_cgroup_denies_unlisted_node(conn, rootfs: Path, shell_of) -> None:
    dom = start(conn, domain_xml("devcg", rootfs))
    sh = shell_of(dom)
    # a node the host created for 10:200 (tun): the device cgroup refuses it
    out = sh.run("cat /testdev/tun 2>&1; echo rc=$?")
    assert "Operation not permitted" in out and "rc=1" in out
    # the same kind of node for a listed device (1:3) works
    assert sh.run("echo x > /testdev/null && echo ok").strip() == "ok"
    assert sh.run("head -c 4 /dev/urandom | wc -c").strip() == "4"
    assert sh.run("head -c 3 /dev/zero | wc -c").strip() == "3"
    # and creating nodes fails for lack of CAP_MKNOD
    assert "rc=1" in sh.run("mknod /tmp/x c 1 3 2>/dev/null; echo rc=$?")
    if is_v2(dom):  # the whitelist is an eBPF program, held by the supervisor
        progs = [p for p in loaded_programs() if p[2] == "nsvirt_devices"]
        assert len(progs) == 1 and progs[0][1] == BPF_PROG_TYPE_CGROUP_DEVICE
        fdinfo = Path(f"/proc/{dom.id}/fdinfo")
        assert any(f"prog_id:\t{progs[0][0]}" in f.read_text() for f in fdinfo.iterdir())


def test_app_container_shares_host_root_with_private_proc_dev(conn, shell_of) -> None:
    dom = start(conn, domain_xml("app1", None))
    sh = shell_of(dom)
    assert sh.run("echo $$").strip() == "1"
    assert sh.run("hostname").strip() == "app1"
    assert Path("/etc/os-release").read_text().splitlines()[0] in sh.run("cat /etc/os-release")
    assert len([p for p in sh.run("ls /proc").split() if p.isdigit()]) <= 4
    assert "sda" not in sh.run("ls /dev").split()


def test_user_namespace_maps_root(conn, rootfs: Path, shell_of) -> None:
    idmap = (
        "<idmap><uid start='0' target='200000' count='65536'/>"
        "<gid start='0' target='200000' count='65536'/></idmap>"
    )
    dom = start(conn, domain_xml("userns1", rootfs, extra=idmap))
    init = dom.init_pid()
    assert ns(init, "user") != ns("self", "user")
    assert Path(f"/proc/{init}/uid_map").read_text().split() == ["0", "200000", "65536"]
    assert Path(f"/proc/{init}/status").read_text().split("Uid:")[1].split()[0] == "200000"
    sh = shell_of(dom)
    assert sh.run("id -u").strip() == "0"
    assert sh.run("echo $$").strip() == "1"
    assert sh.run("hostname").strip() == "userns1"


def test_readonly_root_and_bind_mounts(conn, rootfs: Path, tmp_path: Path, shell_of) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "hello").write_text("from the host\n")
    devices = (
        f"<filesystem type='mount'><source dir='{data}'/><target dir='/data'/>"
        "<readonly/></filesystem>"
        "<filesystem type='ram'><source usage='4096'/><target dir='/scratch'/>"
        "</filesystem>"
    )
    dom = start(conn, domain_xml("ro1", rootfs, devices=devices, root_readonly=True))
    sh = shell_of(dom)
    assert sh.run("cat /data/hello").strip() == "from the host"
    assert "rc=1" in sh.run("touch /data/x 2>/dev/null; echo rc=$?")
    assert "rc=1" in sh.run("touch /etc/x 2>/dev/null; echo rc=$?")
    assert sh.run("touch /scratch/x && echo ok").strip() == "ok"
    assert "4096" in sh.run("df -k /scratch | tail -1")
    assert not (data / "x").exists()
