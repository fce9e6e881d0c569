"""Loop devices through the kernel's own interface: /dev/loop-control's
LOOP_CTL_GET_FREE, then LOOP_CONFIGURE (Linux 5.8+) on the free device.

Every device is attached with LO_FLAGS_AUTOCLEAR: the kernel detaches it when its
last user goes, the last open fd or the mount made from it. So a device is never
left behind: not by a failed start (the supervisor closes its fd), not by a stop
(the container's mount namespace goes, and the mount with it), not by a
supervisor killed with SIGKILL (the kernel closes its fds, then the container goes).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import stat

LOOP_CTL_GET_FREE = 0x4C82
LOOP_CONFIGURE = 0x4C0A
LOOP_CLR_FD = 0x4C01
LO_FLAGS_READ_ONLY = 1
LO_FLAGS_AUTOCLEAR = 4
LO_NAME_SIZE = 64
_ATTEMPTS = 16  # another process may take the free device first: ask again


class _LoopInfo64(ctypes.Structure):
    _fields_ = [
        ("lo_device", ctypes.c_uint64),
        ("lo_inode", ctypes.c_uint64),
        ("lo_rdevice", ctypes.c_uint64),
        ("lo_offset", ctypes.c_uint64),
        ("lo_sizelimit", ctypes.c_uint64),
        ("lo_number", ctypes.c_uint32),
        ("lo_encrypt_type", ctypes.c_uint32),
        ("lo_encrypt_key_size", ctypes.c_uint32),
        ("lo_flags", ctypes.c_uint32),
        ("lo_file_name", ctypes.c_char * LO_NAME_SIZE),
        ("lo_crypt_name", ctypes.c_char * LO_NAME_SIZE),
        ("lo_encrypt_key", ctypes.c_char * 32),
        ("lo_init", ctypes.c_uint64 * 2),
    ]


class _LoopConfig(ctypes.Structure):
    _fields_ = [
        ("fd", ctypes.c_uint32),
        ("block_size", ctypes.c_uint32),
        ("info", _LoopInfo64),
        ("reserved", ctypes.c_uint64 * 8),
    ]


class LoopError(OSError):
    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}" if self.filename else str(self.strerror)


def open_image(image: str, readonly: bool) -> int:
    """Open the image file `image` without following a symlink on the way (an image
    where the container can write could be swapped for a link to a host file
    between two starts), and only if it is a regular file. Raises LoopError."""
    from nsvirt.driver.runtime import inroot

    flags = os.O_RDONLY if readonly else os.O_RDWR
    try:
        no_links = inroot.RESOLVE_NO_SYMLINKS | inroot.RESOLVE_NO_MAGICLINKS
        fd = inroot.openat2(inroot.AT_FDCWD, image, flags, resolve=no_links)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise LoopError(e.errno, f"Unable to open {image}: the path goes through a "
                            "symlink; give the image's real path") from None  # fmt: skip
        raise LoopError(e.errno, f"Unable to open {image}: {e.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LoopError(errno.EINVAL, f"Unable to open {image}: not a regular file")
    return fd


def attach(image: str, readonly: bool = False, dev: str = "/dev") -> tuple[str, int]:
    """Attach the file `image` to a free loop device: (its path, an open fd of it).
    The device lives while the fd (or a mount of it) does. Raises LoopError."""
    backing = open_image(image, readonly)
    try:
        control = _open(f"{dev}/loop-control", os.O_RDWR)
        try:
            for _ in range(_ATTEMPTS):
                number = _ioctl(control, LOOP_CTL_GET_FREE, 0, "Unable to find a free loop device")
                path = f"{dev}/loop{number}"
                fd = _open(path, (os.O_RDONLY if readonly else os.O_RDWR))
                config = _LoopConfig(fd=backing)
                config.info.lo_flags = LO_FLAGS_AUTOCLEAR | (LO_FLAGS_READ_ONLY if readonly else 0)
                config.info.lo_file_name = os.fsencode(image)[: LO_NAME_SIZE - 1]
                try:
                    fcntl.ioctl(fd, LOOP_CONFIGURE, config)
                    return path, fd
                except OSError as e:
                    os.close(fd)
                    if e.errno != errno.EBUSY:  # EBUSY: taken since GET_FREE answered
                        raise LoopError(e.errno, f"Unable to attach {image} to {path}: "
                                        f"{e.strerror}") from None  # fmt: skip
            raise LoopError(errno.EBUSY, "Unable to find a free loop device in /dev")
        finally:
            os.close(control)
    finally:
        os.close(backing)  # the device holds the file now


def release(fd: int) -> None:
    """Detach the device of `fd` (ours) and close it: autoclear is a flag whoever
    holds the device open for writing may clear (LOOP_SET_STATUS64), and an image
    disk's container does; once the container is gone ours is the last user."""
    try:
        fcntl.ioctl(fd, LOOP_CLR_FD, 0)
    except OSError:
        pass  # detached already, or still used: autoclear then
    finally:
        os.close(fd)


def backing_file(path: str, sysfs: str = "/sys") -> str | None:
    """The file a loop device is attached to (None: not attached)."""
    name = os.path.basename(path)
    try:
        with open(f"{sysfs}/block/{name}/loop/backing_file") as f:
            return f.read().strip()
    except OSError:
        return None


def _open(path: str, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_CLOEXEC)
    except OSError as e:
        raise LoopError(e.errno, f"Unable to open {path}: {e.strerror}") from None


def _ioctl(fd: int, request: int, arg: int, what: str) -> int:
    try:
        return fcntl.ioctl(fd, request, arg)
    except OSError as e:
        raise LoopError(e.errno, f"{what}: {e.strerror}") from None
