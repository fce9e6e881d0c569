"""The kernel's FUSE protocol (include/uapi/linux/fuse.h), enough to serve a read-only
tree of generated files: mount /dev/fuse, read one request, answer it.

No libfuse: what the /proc server (procfs/server.py) needs is a dozen opcodes of a
stable ABI, answered from one thread without blocking; libfuse would bring a C
library, a thread per request and a mount helper that root does not need. We speak
protocol 7.31 (every kernel since 5.4 speaks it; a newer one adapts to us).
"""

from __future__ import annotations

import errno
import os
import struct

from nsvirt.driver.runtime import syscalls as sc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

MAJOR, MINOR = 7, 31
READ_BUFFER = 135168  # the kernel wants room for max_write + headers, at least 8 KiB
MAX_WRITE = 4096
ROOT_ID = 1

LOOKUP, FORGET, GETATTR, OPEN, READ, STATFS, RELEASE = 1, 2, 3, 14, 15, 17, 18
GETXATTR, LISTXATTR, FLUSH, INIT, OPENDIR, READDIR, RELEASEDIR = 22, 23, 25, 26, 27, 28, 29
ACCESS, INTERRUPT, DESTROY, BATCH_FORGET, READDIRPLUS = 34, 36, 38, 42, 44
NO_REPLY = (FORGET, BATCH_FORGET, INTERRUPT)  # the kernel expects no answer to these

FOPEN_DIRECT_IO = 1  # no page cache: every read asks us, and st_size 0 is no limit
DT_DIR, DT_REG = 4, 8

IN_HEADER = struct.Struct("<IIQQIIIHH")  # len opcode unique nodeid uid gid pid extlen pad
OUT_HEADER = struct.Struct("<IiQ")  # len error unique
INIT_IN = struct.Struct("<IIII")  # major minor max_readahead flags
# major minor max_readahead flags max_background congestion_threshold max_write
# time_gran max_pages map_alignment flags2, then unused words (64 bytes in all)
INIT_OUT = struct.Struct("<IIIIHHIIHHI28x")
ATTR = struct.Struct("<QQQQQQIIIIIIIIII")  # ino size blocks a/m/ctime, their ns, mode...
ENTRY_OUT = struct.Struct("<QQQQII")  # nodeid generation entry_valid attr_valid, their ns
ATTR_OUT = struct.Struct("<QII")  # attr_valid, its ns, dummy
OPEN_OUT = struct.Struct("<QII")  # fh open_flags padding
READ_IN = struct.Struct("<QQI")  # fh offset size (then flags we do not need)
OPEN_IN = struct.Struct("<I")  # flags
RELEASE_IN = struct.Struct("<Q")  # fh
DIRENT = struct.Struct("<QQII")  # ino off namelen type
STATFS_OUT = struct.Struct("<QQQQQIIII24x")  # blocks bfree bavail files ffree bsize namelen frsize
VALID = 86400  # seconds the kernel may keep a name or an attribute: the tree is fixed


class Request:
    __slots__ = ("body", "nodeid", "opcode", "pid", "uid", "unique")

    def __init__(self, data: bytes) -> None:
        _, self.opcode, self.unique, self.nodeid, self.uid, _, self.pid, _, _ = (
            IN_HEADER.unpack_from(data)
        )
        self.body = data[IN_HEADER.size :]


def mount(mountpoint: str, name: str) -> int:
    """Open /dev/fuse and mount it on `mountpoint` (read-only, nosuid, nodev, noexec,
    readable by every uid: containers' roots are other host uids); the device fd."""
    fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
    try:
        options = f"fd={fd},rootmode=40555,user_id=0,group_id=0,allow_other"
        flags = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_RDONLY
        sc.mount(name, mountpoint, f"fuse.{name}", flags, options)
    except BaseException:
        os.close(fd)
        raise
    return fd


def receive(fd: int) -> Request | None:
    """The next request; None when there was none after all (interrupted, or the fd is
    non-blocking and empty). Raises OSError ENODEV once the filesystem is unmounted."""
    try:
        return Request(os.read(fd, READ_BUFFER))
    except OSError as e:
        if e.errno in (errno.EINTR, errno.EAGAIN, errno.ENOENT):
            return None
        raise


def reply(fd: int, request: Request, payload: bytes = b"", error: int = 0) -> None:
    """Answer `request` with `payload`, or with -`error`. A request the kernel has
    given up on (its caller was killed) refuses the answer: that is no failure."""
    if request.opcode in NO_REPLY:
        return
    body = b"" if error else payload
    header = OUT_HEADER.pack(OUT_HEADER.size + len(body), -error, request.unique)
    try:
        os.write(fd, header + body)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise


NOTIFY_STORE = 4  # FUSE_NOTIFY_STORE: data into the kernel's page cache of a node
STORE_OUT = struct.Struct("<QQII")  # nodeid offset size padding


def store(fd: int, nodeid: int, data: bytes) -> None:
    """Put `data` in the page cache of `nodeid` from offset 0, which makes its size
    (i_size) at least len(data). A file's splice (sendfile: busybox cat) reads the
    page cache up to that size, where a plain read asks us (direct I/O); a short
    answer then brings the size down to the text's end."""
    body = STORE_OUT.pack(nodeid, 0, len(data), 0) + data
    try:
        os.write(fd, OUT_HEADER.pack(OUT_HEADER.size + len(body), NOTIFY_STORE, 0) + body)
    except OSError as e:
        if e.errno != errno.ENOENT:  # the kernel no longer knows the node
            raise


def init_reply(request: Request) -> bytes:
    major, _, readahead, _ = INIT_IN.unpack_from(request.body)
    if major != MAJOR:
        raise OSError(errno.EPROTO, f"the kernel speaks FUSE {major}, not {MAJOR}")
    return INIT_OUT.pack(MAJOR, MINOR, readahead, 0, 0, 0, MAX_WRITE, 1, 0, 0, 0)


def attr(ino: int, mode: int, uid: int = 0, gid: int = 0, when: int = 0, size: int = 0) -> bytes:
    nlink = 2 if mode & 0o040000 else 1
    return ATTR.pack(ino, size, 0, when, when, when, 0, 0, 0, mode, nlink, uid, gid, 0, 4096, 0)


def entry(ino: int, attributes: bytes, files: bool = False) -> bytes:
    return ENTRY_OUT.pack(ino, 0, VALID, 0 if files else VALID, 0, 0) + attributes


def attr_out(attributes: bytes, files: bool = False) -> bytes:
    """GETATTR's answer; a generated file's attributes (its size) are never kept."""
    return ATTR_OUT.pack(0 if files else VALID, 0, 0) + attributes


def open_out(fh: int) -> bytes:
    return OPEN_OUT.pack(fh, FOPEN_DIRECT_IO, 0)


def dirents(items: Iterable[tuple[int, str, int]], offset: int, size: int) -> bytes:
    """READDIR's answer: the entries (ino, name, DT_*) from index `offset` that fit in
    `size` bytes; each says the index of the next."""
    out = b""
    for index, (ino, name, kind) in enumerate(items):
        if index < offset:
            continue
        raw = name.encode()
        one = DIRENT.pack(ino, index + 1, len(raw), kind) + raw
        one += b"\0" * (-len(one) % 8)
        if len(out) + len(one) > size:
            break
        out += one
    return out


def statfs_out() -> bytes:
    return STATFS_OUT.pack(0, 0, 0, 0, 0, 4096, 255, 4096, 0)
