"""Images in formats other than raw (qcow2, vmdk, …) on the kernel's nbd devices,
served by qemu-nbd, as libvirt's LXC driver does it: the first /dev/nbdN that
nobody serves, `qemu-nbd --format FMT [-r] -n -c /dev/nbdN IMAGE`, and the server's
pid put in the container's cgroup, so that it ends with the container (also when
its supervisor is killed) and the device is free again.
"""

from __future__ import annotations

import errno
import os
import shutil

QEMU_NBD = "qemu-nbd"
CONNECT_TIMEOUT = 30.0  # a bound on qemu-nbd's start, not a delay
# qemu-nbd's own socket (its default, /var/lock/, is missing on some hosts)
SOCKET_DIR = "/run"


class NbdError(OSError):
    def __str__(self) -> str:
        return str(self.strerror)


def unavailable(sysfs: str = "/sys") -> str | None:
    """Why images cannot be served here (None: they can)."""
    if not os.path.exists(f"{sysfs}/block/nbd0"):
        return "this host has no nbd devices (/sys/block/nbd0: the kernel's nbd module)"
    if shutil.which(QEMU_NBD) is None:
        return "qemu-nbd is not installed (Debian: qemu-utils)"
    return None


def free_device(sysfs: str = "/sys") -> str:
    """The first nbd device that no server holds (libvirt's rule: no `pid` file)."""
    names = [n for n in os.listdir(f"{sysfs}/block") if n.startswith("nbd") and n[3:].isdigit()]
    for name in sorted(names, key=lambda n: int(n[3:])):
        if not os.path.exists(f"{sysfs}/block/{name}/pid"):
            return f"/dev/{name}"
    raise NbdError(errno.EBUSY, "No free NBD devices")


def check_self_contained(fd: int, image: str, fmt: str) -> None:
    """Refuse an image that names other files: qemu would open them as host root, and
    whoever wrote the image (the container, perhaps) chose them. qcow2 without a
    backing file or an external data file only; other formats can name files."""
    if fmt != "qcow2":
        why = f"(a {fmt} image can name other files); convert it to qcow2 or raw"
        raise NbdError(errno.EINVAL, f"{image}: only qcow2 images are served through nbd {why}")
    head = os.pread(fd, 80, 0)
    if len(head) < 72 or head[:4] != b"QFI\xfb":
        raise NbdError(errno.EINVAL, f"{image} is not a qcow2 image")
    version = int.from_bytes(head[4:8], "big")
    backing = int.from_bytes(head[8:16], "big")
    external = version >= 3 and int.from_bytes(head[72:80], "big") & 0x4
    if backing or external:
        what = "a backing file" if backing else "an external data file"
        raise NbdError(errno.EINVAL, f"{image} has {what}: only self-contained images are "
                       "served (qemu-img convert -O qcow2 gives one)")  # fmt: skip


def connect(image: str, fmt: str, readonly: bool, device: str | None = None) -> tuple[str, int]:
    """Serve `image` on a free nbd device (or on `device`, again after a restart: its
    node inside has its numbers): (the device, the server's pid). The image is
    opened here (no symlinks: loopdev.open_image) and qemu-nbd given that file."""
    import subprocess

    from nsvirt.driver.runtime import loopdev

    fd = loopdev.open_image(image, readonly)
    try:
        check_self_contained(fd, image, fmt)
        device = device or free_device()
        sock = f"{SOCKET_DIR}/nsvirt-qemu-nbd-{os.path.basename(device)}.sock"
        argv = [QEMU_NBD, "--format", fmt, *(["-r"] if readonly else []), "-n", "-k", sock,
                "-c", device, f"/proc/self/fd/{fd}"]  # fmt: skip
        try:
            done = subprocess.run(argv, capture_output=True, text=True, pass_fds=(fd,),
                                  timeout=CONNECT_TIMEOUT, stdin=subprocess.DEVNULL)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as e:
            raise NbdError(errno.EIO, f"cannot serve {image} on {device}: {e}") from None
    finally:
        os.close(fd)
    if done.returncode != 0:
        said = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "it failed"
        raise NbdError(errno.EIO, f"qemu-nbd cannot serve {image} on {device}: {said}")
    try:
        with open(f"/sys/block/{os.path.basename(device)}/pid") as f:
            return device, int(f.read())
    except (OSError, ValueError):
        disconnect(device)
        raise NbdError(errno.EIO, f"qemu-nbd did not connect {device}") from None


def disconnect(device: str) -> None:
    """Stop serving `device` (nothing if no server holds it any more)."""
    import subprocess

    if not os.path.exists(f"/sys/block/{os.path.basename(device)}/pid"):
        return
    try:
        subprocess.run([QEMU_NBD, "-d", device], capture_output=True, timeout=CONNECT_TIMEOUT,
                       stdin=subprocess.DEVNULL)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NbdError(errno.EIO, f"cannot disconnect {device}: {e}") from None
