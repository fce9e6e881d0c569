"""Host devices, device presets and image filesystems in real containers (issue 14),
each in a default (unprivileged, user namespace) and a privileged domain. The
device tests run in the v2 lane too (the device cgroup is a program there)."""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nsvirt.driver.runtime import loopdev
from tests.integration.conftest import domain_xml, exits, leftovers, start

V2 = pytest.mark.v2
MODES = pytest.mark.parametrize("privileged", [False, True], ids=["unprivileged", "privileged"])
PRIVNET = "<features><privnet/></features>"
TUN_HOSTDEV = (
    "<hostdev mode='capabilities' type='misc'><source><char>/dev/net/tun</char></source></hostdev>"
)


def tunctl_in(conn, shell_of, rootfs: Path, privileged: bool, devices: str = "",
              config: str = "") -> str:  # fmt: skip
    xml = domain_xml("tun", rootfs, extra=PRIVNET, devices=devices, config=config,
                     privileged=privileged)  # fmt: skip
    dom = start(conn, xml)
    try:
        return shell_of(dom).run("tunctl -t tap7 2>&1 && ip -o link show tap7")
    finally:
        dom.destroy()


@V2
@MODES
def test_a_tun_hostdev_lets_tunctl_make_a_tap_device(conn, shell_of, rootfs, privileged) -> None:
    out = tunctl_in(conn, shell_of, rootfs, privileged, devices=TUN_HOSTDEV)
    assert "tap7:" in out and "mtu" in out, out


@V2
@MODES
def test_the_tun_preset_does_it_in_one_line(conn, shell_of, rootfs, privileged) -> None:
    out = tunctl_in(conn, shell_of, rootfs, privileged, config="<nsvirt:device preset='tun'/>")
    assert "tap7:" in out, out


@V2
@MODES
def test_without_either_there_is_no_tun_device(conn, shell_of, rootfs, privileged) -> None:
    out = tunctl_in(conn, shell_of, rootfs, privileged)
    assert "can't open '/dev/net/tun'" in out and "tap7:" not in out, out


@pytest.fixture
def loops(tmp_path: Path) -> Iterator[list[tuple[str, str]]]:
    """Two loop devices on test images, each starting with its own text: (node, text)."""
    made: list[tuple[str, str, int]] = []
    for n in range(2):
        img = tmp_path / f"disk{n}.img"
        text = f"nsvirt-loop-{n}-{os.getpid()}"
        img.write_bytes(text.encode().ljust(1 << 20, b"\0"))
        path, fd = loopdev.attach(str(img))
        made.append((path, text, fd))
    yield [(path, text) for path, text, _ in made]
    for _, _, fd in made:
        os.close(fd)  # autoclear: detached now


@V2
@MODES
def test_a_storage_hostdev_is_readable_and_other_block_devices_are_not(
    conn, shell_of, rootfs: Path, loops, privileged: bool
) -> None:
    (ours, text), (other, other_text) = loops
    st = os.stat(other)
    planted = rootfs / "testdev" / f"other-{os.getpid()}"  # the host makes the node
    os.mknod(planted, 0o666 | 0o060000, st.st_rdev)
    try:
        hostdev = (f"<hostdev mode='capabilities' type='storage'><source><block>{ours}</block>"
                   "</source></hostdev>")  # fmt: skip
        dom = start(conn, domain_xml("disk", rootfs, devices=hostdev, privileged=privileged))
        sh = shell_of(dom)
        inside = "/dev/" + ours.removeprefix("/dev/")
        assert sh.run(f"head -c {len(text)} {inside}").strip() == text
        denied = sh.run(f"head -c 8 /testdev/{planted.name} 2>&1; echo rc=$?")
        assert other_text[:8] not in denied and "Operation not permitted" in denied, denied
        dom.destroy()
    finally:
        planted.unlink()


def clear_autoclear(device: str) -> None:
    import fcntl

    fd = os.open(device, os.O_RDWR)
    try:
        info = loopdev._LoopInfo64()
        fcntl.ioctl(fd, 0x4C05, info)  # LOOP_GET_STATUS64
        info.lo_flags &= ~loopdev.LO_FLAGS_AUTOCLEAR
        fcntl.ioctl(fd, 0x4C04, info)  # LOOP_SET_STATUS64
        fcntl.ioctl(fd, 0x4C05, info)
        assert not info.lo_flags & loopdev.LO_FLAGS_AUTOCLEAR
    finally:
        os.close(fd)


def ext4_image(path: Path, size_mib: int, content: Path | None = None) -> Path:
    subprocess.run(["truncate", "-s", f"{size_mib}M", str(path)], check=True)
    args = ["-d", str(content)] if content else []
    subprocess.run(["mkfs.ext4", "-q", "-F", *args, str(path)], check=True)
    return path


def ours_attached(images: list[Path]) -> list[str]:
    """Loop devices still attached to one of `images`."""
    found = []
    for entry in Path("/sys/block").glob("loop*"):
        backing = loopdev.backing_file(f"/dev/{entry.name}")
        if backing and any(backing == str(i) for i in images):
            found.append(f"{entry.name}: {backing}")
    return found


@MODES
@pytest.mark.parametrize("readonly", [False, True], ids=["rw", "ro"])
def test_a_raw_image_mounts_as_data_and_as_the_root(
    conn, shell_of, rootfs: Path, tmp_path: Path, privileged: bool, readonly: bool
) -> None:
    if not shutil.which("mkfs.ext4"):
        pytest.fail("needs mkfs.ext4 (e2fsprogs; .ci/setup installs it)")
    data = ext4_image(tmp_path / "data.img", 16)
    content = tmp_path / "content"  # a read-only root needs its mount points made
    shutil.copytree(rootfs, content, symlinks=True, ignore=shutil.ignore_patterns("testdev"))
    (content / "data").mkdir()
    root = ext4_image(tmp_path / "root.img", 64, content)
    ro = "<readonly/>" if readonly else ""
    devices = (
        f"<filesystem type='file'><driver type='loop' format='raw'/><source file='{root}'/>"
        f"<target dir='/'/>{ro}</filesystem>"
        f"<filesystem type='file'><source file='{data}'/><target dir='/data'/>{ro}</filesystem>"
    )
    dom = start(conn, domain_xml("img", None, devices=devices, privileged=privileged))
    sh = shell_of(dom)
    mounts = sh.run("cat /proc/mounts")
    assert any(f.split()[1] == "/data" and f.split()[2] == "ext4" for f in mounts.splitlines())
    assert sh.run("cat /etc/nsvirt-test-rootfs").strip() == "the domain's own rootfs"
    wrote = sh.run("echo hi > /data/f && cat /data/f; touch /new 2>&1; echo done")
    if readonly:
        assert wrote.count("Read-only file system") == 2, wrote
    else:
        assert wrote.splitlines()[0] == "hi" and "Read-only" not in wrote, wrote
    assert len(ours_attached([data, root])) == 2
    dom.destroy()
    assert not ours_attached([data, root])  # released when destroy returns
    if not readonly:  # what the container wrote is on the image
        check = subprocess.run(["debugfs", "-R", "cat /f", str(data)], capture_output=True)
        assert check.stdout.strip() == b"hi"


@MODES
def test_a_killed_supervisor_and_a_failed_start_leave_no_loop_device(
    conn, rootfs: Path, tmp_path: Path, privileged: bool
) -> None:
    data = ext4_image(tmp_path / "data.img", 16)
    blank = tmp_path / "blank.img"  # no filesystem on it: the mount fails
    blank.write_bytes(b"\0" * (1 << 20))
    # /home: a mount point the shared test rootfs has (making one would change it)
    fs = "<filesystem type='file'><source file='{}'/><target dir='/home'/></filesystem>"
    dom = start(conn, domain_xml("kill", rootfs, devices=fs.format(data), privileged=privileged))
    assert ours_attached([data])
    os.kill(dom.id, signal.SIGKILL)  # its container goes with it, and the mount
    assert exits(dom.id)
    assert released([data])
    assert not dom.is_active()  # and asking tidies what the supervisor left (its cgroup)
    assert not leftovers(conn)
    bad = conn.define_xml(domain_xml("blank", rootfs, devices=fs.format(blank),
                                     privileged=privileged))  # fmt: skip
    with pytest.raises(Exception, match="unable to detect filesystem"):
        bad.create()
    assert released([blank])
    assert not leftovers(conn)


def released(images: list[Path], timeout: float = 5.0) -> bool:
    """Wait until no loop device holds `images`: after a kill the kernel detaches a
    device from a work queue a moment later, and says so (a uevent "change" of the
    device), which is what this waits on (at most `timeout`: a bound, not a delay)."""
    uevents = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 15)  # KOBJECT_UEVENT
    with uevents:
        uevents.bind((0, 1))  # before the first look: no change is missed
        deadline = time.monotonic() + timeout
        while ours_attached(images):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([uevents], [], [], left)[0]:
                return False
            uevents.recv(65536)  # a device changed: look again
    return True


@MODES
def test_an_image_reached_through_a_symlink_is_refused(
    conn, rootfs: Path, tmp_path: Path, privileged: bool
) -> None:
    # an image where the container writes could be swapped for a link to a host file
    secret = ext4_image(tmp_path / "host-only.img", 16)
    link = tmp_path / "images" / "data.img"
    link.parent.mkdir()
    link.symlink_to(secret)
    for fs in (f"<filesystem type='file'><source file='{link}'/><target dir='/home'/>"
               "</filesystem>",
               f"<disk type='file'><source file='{link}'/><target dev='sdb'/></disk>"):  # fmt: skip
        dom = conn.define_xml(domain_xml("swapped", rootfs, devices=fs, privileged=privileged))
        with pytest.raises(Exception, match="the path goes through a symlink"):
            dom.create()
        assert not ours_attached([secret]) and not leftovers(conn)


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        ("<hostdev mode='capabilities' type='storage'><source><block>/etc/hostname</block>"
         "</source></hostdev>", "Storage source /etc/hostname must be a block device"),
        ("<filesystem type='file'><source file='/nonexistent/x.img'/><target dir='/d'/>"
         "</filesystem>", "Unable to access /nonexistent/x.img: No such file or directory"),
        ("<filesystem type='file'><driver type='loop' format='qcow2'/><source file='/x'/>"
         "<target dir='/d'/></filesystem>", "fs format qcow2 is not supported"),
    ],
)  # fmt: skip
@MODES
def test_bad_devices_are_refused_at_start_in_libvirts_words(
    conn, rootfs: Path, devices: str, message: str, privileged: bool
) -> None:
    dom = conn.define_xml(domain_xml("bad", rootfs, devices=devices, privileged=privileged))
    with pytest.raises(Exception, match=message):
        dom.create()
    assert not dom.is_active()
    assert not leftovers(conn)


@MODES
def test_an_image_disk_is_a_block_device_inside_and_released_after(
    conn, shell_of, rootfs: Path, tmp_path: Path, privileged: bool
) -> None:
    img = tmp_path / "disk.img"
    text = f"nsvirt-disk-{os.getpid()}"
    img.write_bytes(text.encode().ljust(1 << 20, b"\0"))
    disk = (f"<disk type='file' device='disk'><driver name='loop' type='raw'/>"
            f"<source file='{img}'/><target dev='sdb'/></disk>")  # fmt: skip
    dom = start(conn, domain_xml("imgdisk", rootfs, devices=disk, privileged=privileged))
    sh = shell_of(dom)
    assert sh.run("ls -l /dev/sdb").startswith("b"), sh.run("ls -l /dev")
    assert sh.run(f"head -c {len(text)} /dev/sdb").strip() == text
    (held,) = ours_attached([img])
    # a writer of the device (the container) may clear its autoclear flag: as if it had
    clear_autoclear(f"/dev/{held.split(':')[0]}")
    dom.destroy()
    assert released([img])


@V2
@MODES
def test_a_hostdev_is_attached_and_detached_while_it_runs(
    conn, shell_of, rootfs: Path, privileged: bool
) -> None:
    from nsvirt.driver.errors import OperationFailed

    dom = start(conn, domain_xml("hot", rootfs, extra=PRIVNET, privileged=privileged))
    sh = shell_of(dom)
    # /testdev/tun: 10:200 on the rootfs, made by the host: only the cgroup decides
    probe = "(exec 3<>/testdev/tun) 2>&1 && echo opened"
    assert "Operation not permitted" in sh.run(probe)
    dom.attach_device(TUN_HOSTDEV, live=True, config=False)
    assert sh.run(probe).strip() == "opened"
    assert "tap7:" in sh.run("tunctl -t tap7 2>&1 && ip -o link show tap7")
    assert "<char>/dev/net/tun</char>" in dom.xml_desc()
    assert "hostdev" not in dom.xml_desc(inactive=True)  # live only
    sh.close()
    dom.reboot(timeout=1, wait=True)  # a restart's /dev has it too
    sh = shell_of(dom)
    assert sh.run("(exec 3<>/dev/net/tun) 2>&1 && echo opened").strip() == "opened"
    with pytest.raises(OperationFailed, match="host device already exists"):
        dom.attach_device(TUN_HOSTDEV, live=True, config=False)
    dom.detach_device(TUN_HOSTDEV, live=True, config=False)
    assert "Operation not permitted" in sh.run(probe)
    assert "No such file" in sh.run("ls /dev/net/tun 2>&1")
    assert "hostdev" not in dom.xml_desc()
    with pytest.raises(OperationFailed, match="hostdev /dev/net/tun not found"):
        dom.detach_device(TUN_HOSTDEV, live=True, config=False)
    dom.attach_device(TUN_HOSTDEV, live=False, config=True)  # the definition only
    assert "<char>/dev/net/tun</char>" in dom.xml_desc(inactive=True)
    assert "Operation not permitted" in sh.run(probe)


@V2
@MODES
def test_a_qcow2_image_is_served_by_nbd_where_the_host_has_it(
    conn, shell_of, rootfs: Path, tmp_path: Path, privileged: bool
) -> None:
    from nsvirt.driver.errors import Unsupported
    from nsvirt.driver.runtime import nbd

    raw = ext4_image(tmp_path / "data.img", 16)
    image = tmp_path / "data.qcow2"
    fs = (f"<filesystem type='file'><driver type='nbd' format='qcow2'/><source file='{image}'/>"
          "<target dir='/home'/></filesystem>")  # fmt: skip
    why = nbd.unavailable()
    if why is not None:  # this host: refused at start, saying why and what to do
        image.write_bytes(b"")
        dom = conn.define_xml(domain_xml("qcow", rootfs, devices=fs, privileged=privileged))
        with pytest.raises(Unsupported, match=r"fs driver nbd is needed .*qemu-img convert") as e:
            dom.create()
        assert why in str(e.value) and not dom.is_active()
        return
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(image)],
                   check=True)  # fmt: skip
    disk_image = tmp_path / "disk.qcow2"
    text = f"nsvirt-qcow2-disk-{os.getpid()}"
    disk_raw = tmp_path / "disk.raw"
    disk_raw.write_bytes(text.encode().ljust(1 << 20, b"\0"))
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(disk_raw),
                    str(disk_image)], check=True)  # fmt: skip
    disk = (f"<disk type='file'><driver name='nbd' type='qcow2'/><source file='{disk_image}'/>"
            "<target dev='sdc'/></disk>")  # fmt: skip
    dom = start(conn, domain_xml("qcow", rootfs, devices=fs + disk, privileged=privileged))
    sh = shell_of(dom)
    assert "ext4" in sh.run("grep ' /home ' /proc/mounts")
    assert sh.run("echo q > /home/f && cat /home/f").strip() == "q"
    assert sh.run(f"head -c {len(text)} /dev/sdc").strip() == text
    served = [d for d in Path("/sys/block").glob("nbd*") if (d / "pid").exists()]
    assert served
    dom.destroy()
    assert not [d for d in served if (d / "pid").exists()]  # the server is gone with it


@MODES
def test_the_hosts_root_as_the_containers_root(conn, shell_of, privileged: bool) -> None:
    # libvirt's lxc-filesystem-root: <source dir='/'/> on <target dir='/'/>
    root = "<filesystem type='mount'><source dir='/'/><target dir='/'/></filesystem>"
    dom = start(conn, domain_xml("hostroot", None, devices=root, privileged=privileged))
    sh = shell_of(dom)
    marker = Path("/etc/os-release").read_text().splitlines()[0]
    assert sh.run("head -n 1 /etc/os-release").strip() == marker
    assert sh.run("echo $$").strip() == "1"  # its own pid namespace all the same
    dom.destroy()
