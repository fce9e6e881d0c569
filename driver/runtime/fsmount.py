"""A block device's filesystem as a detached mount (fsopen, fsconfig, fsmount:
Linux 5.2+), made by the supervisor as host root and moved into place by init
(runtime/idmount.py's move_into), as the detached copies of binds are.

Only host root may mount a disk filesystem (ext4, xfs, … are not mountable in a
user namespace), so an unprivileged domain's block and image filesystems are
made here; shown through an idmapped mount where the domain's binds are. The
mount is nodev: a node on an image is the image's author's, not the host's rules.
"""

from __future__ import annotations

import ctypes
import errno
import os

from nsvirt.driver.runtime import syscalls as sc

_SYS_FSOPEN, _SYS_FSCONFIG, _SYS_FSMOUNT, _SYS_MOUNT_SETATTR = 430, 431, 432, 442
FSOPEN_CLOEXEC = 1
FSMOUNT_CLOEXEC = 1
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8

# superblock magic → type, for the filesystems images are made of (blkid's job,
# without running it): (offset, bytes, type)
_MAGIC = (
    (0x438, b"\x53\xef", "ext4"),  # ext2/3/4: the ext4 driver mounts all three
    (0, b"XFSB", "xfs"),
    (0x10040, b"_BHRfS_M", "btrfs"),
    (0, b"hsqs", "squashfs"),
    (0x400, b"\xe2\xe1\xf5\xe0", "erofs"),
    (0x8001, b"CD001", "iso9660"),
    (0x52, b"FAT32   ", "vfat"),
    (0x36, b"FAT1", "vfat"),
)


def detect(device: str) -> str | None:
    """The filesystem type on `device` by its superblock's magic, or None."""
    try:
        fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        head = os.pread(fd, 0x10048, 0)
    except OSError:
        return None
    finally:
        os.close(fd)
    for offset, magic, fstype in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return fstype
    return None


def candidates() -> list[str]:
    """The disk filesystems this kernel has (not nodev), in /proc/filesystems' order."""
    try:
        with open("/proc/filesystems") as f:
            return [line.strip() for line in f if line.strip() and not line.startswith("nodev")]
    except OSError:
        return []


def mount_device(device: str, readonly: bool, what: str, fstype: str | None = None,
                 userns_fd: int = -1) -> int:  # fmt: skip
    """A detached mount of the filesystem on `device` (its type detected unless given,
    else each the kernel has is tried, as libvirt does); idmapped to `userns_fd` if
    one is given. The caller owns the returned fd. `what` names the mount in errors."""
    if fstype is None:
        fstype = detect(device)
    if fstype is not None:
        fd = _mount(device, fstype, readonly, what)
    else:
        fd = -1
        for kind in candidates():
            try:
                fd = _mount(device, kind, readonly, what)
                break
            except sc.SyscallError as e:
                if e.errno not in (errno.EINVAL, errno.ENODEV, errno.ENOTBLK, errno.EUCLEAN):
                    raise
        if fd < 0:
            raise sc.SyscallError(f"{what}, unable to detect filesystem", errno.ENODEV)
    if userns_fd >= 0:
        from nsvirt.driver.runtime import idmount

        try:
            idmount.set_idmap(fd, userns_fd, device, recursive=False)
        except BaseException:
            os.close(fd)
            raise
    return fd


def new_tmpfs(what: str, uid: int, gid: int) -> int:
    """A small detached tmpfs made by host root (its nodes open: no nodev), its top
    directory uid:gid's alone; the caller owns the returned fd, a directory fd."""
    ctx = _call(_SYS_FSOPEN, what, ctypes.c_char_p(b"tmpfs"), ctypes.c_uint(FSOPEN_CLOEXEC))
    options = {b"mode": b"0700", b"uid": b"%d" % uid, b"gid": b"%d" % gid, b"size": b"64k",
               b"nr_inodes": b"1024"}  # fmt: skip
    try:
        for key, value in options.items():
            _config(ctx, FSCONFIG_SET_STRING, key, value, what)
        _config(ctx, FSCONFIG_CMD_CREATE, None, None, what)
        return _call(_SYS_FSMOUNT, what, ctypes.c_int(ctx), ctypes.c_uint(FSMOUNT_CLOEXEC),
                     ctypes.c_uint(MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC))  # fmt: skip
    finally:
        os.close(ctx)


def _mount(device: str, fstype: str, readonly: bool, what: str) -> int:
    ctx = _call(_SYS_FSOPEN, what, ctypes.c_char_p(fstype.encode()), ctypes.c_uint(FSOPEN_CLOEXEC))
    try:
        _config(ctx, FSCONFIG_SET_STRING, b"source", os.fsencode(device), what)
        if readonly:
            _config(ctx, FSCONFIG_SET_FLAG, b"ro", None, what)
        _config(ctx, FSCONFIG_CMD_CREATE, None, None, what)
        attrs = MOUNT_ATTR_NODEV | (MOUNT_ATTR_RDONLY if readonly else 0)
        return _call(_SYS_FSMOUNT, what, ctypes.c_int(ctx), ctypes.c_uint(FSMOUNT_CLOEXEC),
                     ctypes.c_uint(attrs))  # fmt: skip
    finally:
        os.close(ctx)


def _config(ctx: int, cmd: int, key: bytes | None, value: bytes | None, what: str) -> None:
    ret = sc.libc.syscall(
        ctypes.c_long(_SYS_FSCONFIG), ctypes.c_int(ctx), ctypes.c_uint(cmd),
        ctypes.c_char_p(key), ctypes.c_char_p(value), ctypes.c_int(0),
    )  # fmt: skip
    if ret < 0:
        err = ctypes.get_errno()
        detail = _kernel_says(ctx)
        raise sc.SyscallError(f"{what} ({detail})" if detail else what, err)


def _kernel_says(ctx: int) -> str:
    """The messages the kernel left on the filesystem context (its reasons)."""
    out = []
    os.set_blocking(ctx, False)
    for _ in range(8):
        try:
            line = os.read(ctx, 512).decode(errors="replace").strip()
        except OSError:
            break
        if not line:
            break
        out.append(line[2:] if line[1:2] == " " else line)
    return "; ".join(out)


def _call(number: int, what: str, *args: object) -> int:
    ret = sc.libc.syscall(ctypes.c_long(number), *args)
    if ret < 0:
        raise sc.SyscallError(what, ctypes.get_errno())
    return ret
