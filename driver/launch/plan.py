"""DomainDef + HostFacts → LaunchPlan: everything the supervisor will do, as data.

Pure: no I/O, no syscalls. The plan is JSON-serialisable (it crosses a pipe
to the supervisor, which must not need lxml) and carries a format version,
because a supervisor may outlive an upgrade of the package.
"""

from __future__ import annotations

from nsvirt.driver.domxml import model as m
from nsvirt.driver.domxml.capabilities import ALL_CAPS
from nsvirt.driver.domxml.netaddr import address_prefix, route_prefix
from nsvirt.driver.domxml.units import MAX_KIB, format_cpuset, parse_cpuset
from nsvirt.driver.errors import Unsupported
from nsvirt.driver.launch import containment, devices
from nsvirt.driver.launch.devices import DeviceRule, DevNode, HostDevices
from nsvirt.driver.launch.hostfacts import HostFacts
from nsvirt.driver.records import Record, factory
from nsvirt.driver.state import jsonlite

PLAN_FORMAT = 6

# libvirt's default policy drops the first five; nsvirt also drops what runc, crun
# and LXC drop and a normal init does not need (docs/containment.md). SYS_BOOT is
# kept, as libvirt keeps it: in a pid namespace reboot(2) restarts the container.
DEFAULT_DROPPED_CAPS = (
    "sys_module", "sys_time", "mknod", "audit_control", "mac_admin",
    "mac_override", "dac_read_search", "sys_rawio", "syslog",
)  # fmt: skip

# libvirt's default device whitelist: null zero full random urandom tty ptmx fuse, ptys
DEFAULT_DEVICES = (
    ("c", 1, 3), ("c", 1, 5), ("c", 1, 7), ("c", 1, 8), ("c", 1, 9), ("c", 5, 0),
    ("c", 5, 2), ("c", 10, 229), ("c", 136, None),
)  # fmt: skip
# the nodes created in the container's /dev (name, type, major, minor)
DEV_NODES = (
    ("null", "c", 1, 3), ("zero", "c", 1, 5), ("full", "c", 1, 7), ("random", "c", 1, 8),
    ("urandom", "c", 1, 9), ("tty", "c", 5, 0),
)  # fmt: skip
DEV_SYMLINKS = (
    ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"),
)  # fmt: skip
# hidden from the container (runc's defaults): files get /dev/null, directories a tmpfs
MASKED_PATHS = (
    "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
)  # fmt: skip
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

DEFAULT_INIT = "/sbin/init"
DEFAULT_PATH = "/bin:/usr/bin"


class MountOp(Record):
    """One step of building the container's filesystem tree, in order.

    kind: bind | block | tmpfs | proc | sysfs | devpts | mqueue | cgroups | mask | readonly
    (block: a block device's or an image's filesystem, which the supervisor mounts;
    options: its type, "" to detect it)
    """

    kind: str
    dest: str  # path inside the container
    source: str | None = None  # host path for binds
    options: str = ""  # filesystem data (tmpfs size, devpts mode, ...)
    readonly: bool = False
    idmapped: bool = False  # shown through an idmapped mount (the supervisor makes it)
    loop: bool = False  # block: `source` is an image, attached to a loop device first
    nbd: str = ""  # block: `source` is an image of this format, served on an nbd device


class ImageDisk(Record):
    """A `<disk type='file'>`: its image goes on a loop device (or, in another format,
    an nbd device) whose node is /dev/<name> (the supervisor attaches it first and
    holds it: supervisor/early.py)."""

    source: str
    name: str  # the target dev
    readonly: bool = False
    nbd: str = ""  # the image's format, served by qemu-nbd ("": raw, on a loop device)


class NetAddr(Record):
    address: str
    prefix: int
    peer: str | None = None


class NetRoute(Record):
    dest: str
    prefix: int
    gateway: str
    metric: int | None = None


class NetIface(Record):
    """One interface as network/attach.py makes it (a `network` resolved to its bridge;
    a network `<hostdev>`: the host's device itself, moved in and back)."""

    type: str  # bridge | network | ethernet | direct | hostdev
    guest: str  # the name inside
    mac: str
    host: str | None  # <target dev>; None: nv<tag>-N, made at start
    bridge: str | None  # the host end joins it (bridge, network)
    network: str | None  # the network's name (network)
    source_dev: str | None  # direct: the host device
    mode: str | None  # direct: vepa | bridge | private | passthrough
    mtu: int | None
    up: bool  # <link state='down'/>: False
    ips: tuple[NetAddr, ...] = ()
    routes: tuple[NetRoute, ...] = ()
    host_ips: tuple[NetAddr, ...] = ()  # ethernet: on the host end
    host_routes: tuple[NetRoute, ...] = ()


class Limits(Record):
    """Cgroup settings, backend-neutral (each backend maps them to its files)."""

    memory_limit: int | None = None  # bytes
    memory_soft_limit: int | None = None
    memory_swap_limit: int | None = None  # memory + swap, bytes (v1's memsw)
    cpu_shares: int | None = None
    cpu_period: int | None = None  # µs
    cpu_quota: int | None = None  # µs, -1: none
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    blkio_weight: int | None = None
    # (host path, weight, read_iops, write_iops, read_bytes, write_bytes); 0: none
    blkio_devices: tuple[tuple[str, int, int, int, int, int], ...] = ()
    pids_max: int | None = None


class LaunchPlan(Record):
    name: str
    uuid: str
    hostname: str | None  # None: the UTS namespace is shared
    namespaces: tuple[str, ...]  # unshared, in this order (user first)
    join: tuple[tuple[str, str], ...]  # (kind, /proc/PID/ns/... or /run/netns/...)
    uid_map: tuple[m.IdMap, ...]
    gid_map: tuple[m.IdMap, ...]
    root: str  # host directory that becomes "/" ("/" = the host's root, shared)
    root_mount: MountOp | None  # the root is a block device's or an image's filesystem
    root_readonly: bool
    root_idmapped: bool  # the root is shown through an idmapped mount
    detached_mounts: bool  # the supervisor copies the root and binds for init (user ns)
    containment: str  # unprivileged | idmap | privileged (launch/containment.py)
    auto_ids: int  # host ids the supervisor allocates for the user namespace (0: none)
    seccomp: tuple[tuple[str, str], ...]  # (syscall, errno name) the filter denies
    remount_guard: bool  # the filter refuses remounts without MS_RDONLY
    no_new_privs: bool
    mounts: tuple[MountOp, ...]
    dev_nodes: tuple[DevNode, ...]
    image_disks: tuple[ImageDisk, ...]
    dev_symlinks: tuple[tuple[str, str], ...]
    device_rules: tuple[DeviceRule, ...]
    limits: Limits
    cgroup_partition: str
    cgroup_name: str
    keep_caps: tuple[str, ...]
    init: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    cwd: str
    user: str | None
    group: str | None
    consoles: int
    privnet: bool
    interfaces: tuple[NetIface, ...]
    on_poweroff: str
    on_reboot: str
    on_crash: str
    shutdown_signal: str
    proc_view: str = "container"  # container: procfs/ serves its /proc files; host: the kernel's
    format: int = PLAN_FORMAT
    facts: dict = factory(dict)

    def to_json(self) -> str:
        return jsonlite.dumps(_plain(self))  # keys sorted by _plain, as sort_keys would

    @classmethod
    def from_json(cls, text: str) -> LaunchPlan:
        d = jsonlite.loads(text)
        if not isinstance(d, dict):
            raise ValueError("a launch plan is a JSON object")
        if d.get("format") != PLAN_FORMAT:
            raise ValueError(f"launch plan format {d.get('format')} is not {PLAN_FORMAT}")
        d["namespaces"] = tuple(d["namespaces"])
        d["join"] = tuple(tuple(j) for j in d["join"])
        d["uid_map"] = tuple(m.IdMap(**x) for x in d["uid_map"])
        d["gid_map"] = tuple(m.IdMap(**x) for x in d["gid_map"])
        d["mounts"] = tuple(MountOp(**x) for x in d["mounts"])
        d["root_mount"] = MountOp(**d["root_mount"]) if d["root_mount"] else None
        d["dev_nodes"] = tuple(DevNode(**x) for x in d["dev_nodes"])
        d["image_disks"] = tuple(ImageDisk(**x) for x in d["image_disks"])
        d["dev_symlinks"] = tuple(tuple(x) for x in d["dev_symlinks"])
        d["device_rules"] = tuple(DeviceRule(**x) for x in d["device_rules"])
        d["limits"] = Limits(**{**d["limits"], "blkio_devices": tuple(
            tuple(x) for x in d["limits"].get("blkio_devices", ()))})  # fmt: skip
        d["keep_caps"] = tuple(d["keep_caps"])
        d["argv"] = tuple(d["argv"])
        d["env"] = tuple(tuple(e) for e in d["env"])
        d["interfaces"] = tuple(_iface(x) for x in d["interfaces"])
        d["seccomp"] = tuple(tuple(x) for x in d["seccomp"])
        return cls(**d)


def _iface(d: dict) -> NetIface:
    for key, cls in (("ips", NetAddr), ("host_ips", NetAddr), ("routes", NetRoute),
                     ("host_routes", NetRoute)):  # fmt: skip
        d[key] = tuple(cls(**x) for x in d[key])
    return NetIface(**d)


def _plain(value: object) -> object:
    """Records to dicts, tuples to lists; every dict's keys sorted (the plan's JSON is
    json.dumps(sort_keys=True)'s, byte for byte: goldens and signatures compare it)."""
    if isinstance(value, Record):
        return {name: _plain(getattr(value, name)) for name in sorted(value._fields)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(value[k]) for k in sorted(value)}
    return value


def check_supported(dom: m.DomainDef) -> None:
    """Refuse what later issues build, before anything is created."""
    dev = dom.devices
    for d in dev.disks:
        check_disk(d)
    for fs in dev.filesystems:
        check_filesystem(fs)


def check_disk(d: m.Disk) -> None:
    """libvirt's answers for a disk: a block device as it is, an image on a loop device."""
    if not d.source:
        raise Unsupported("Can't setup disk without media")
    if d.type != "file":
        return
    fmt = d.driver_type
    driver = disk_driver(d)
    if driver == "loop" and fmt not in (None, "raw"):
        raise Unsupported(f"disk format {fmt} is not supported")
    if driver == "nbd" and fmt is None:
        raise Unsupported("An explicit disk format must be specified")
    if driver not in ("loop", "nbd"):
        raise Unsupported(f"disk driver {driver} is not supported")


def disk_driver(d: m.Disk) -> str:
    """libvirt's default for an image disk: loop for raw (or no format), else nbd."""
    return d.driver_name or ("loop" if d.driver_type in (None, "raw") else "nbd")


def check_filesystem(fs: m.Filesystem) -> None:
    """libvirt's answers for what a filesystem's type, driver and accessmode ask."""
    if fs.type == "template":
        raise Unsupported(f"Cannot mount filesystem type {fs.type}")
    if fs.accessmode != "passthrough":
        raise Unsupported(
            f"filesystem accessmode '{fs.accessmode}' on {fs.target}: a container sees "
            "its files as they are; only accessmode='passthrough' is supported"
        )
    if fs.type != "file":
        if fs.driver_type not in (None, "path"):
            raise Unsupported(f"fs driver {fs.driver_type} is not supported")
        return
    driver = fs_driver(fs)
    if driver == "loop" and fs.driver_format not in (None, "raw"):
        raise Unsupported(f"fs format {fs.driver_format} is not supported")
    if driver == "nbd" and fs.driver_format is None:
        raise Unsupported("An explicit disk format must be specified")
    if driver not in ("loop", "nbd"):
        raise Unsupported(f"fs driver {driver} is not supported")


def fs_driver(fs: m.Filesystem) -> str:
    """How an image is attached: libvirt's default is loop for raw (or no format)."""
    return fs.driver_type or ("loop" if fs.driver_format in (None, "raw") else "nbd")


def check_host(dom: m.DomainDef, facts: HostFacts) -> None:
    """Checks that need the host's facts (but no I/O): do those CPUs exist?"""
    if dom.vcpu_cpuset:
        missing = parse_cpuset(dom.vcpu_cpuset) - facts.cpus_online
        if missing:
            raise Unsupported(
                f"<vcpu cpuset='{dom.vcpu_cpuset}'> names CPU "
                f"{format_cpuset(missing)}, which this host does not have "
                f"(online: {format_cpuset(facts.cpus_online)})"
            )
    if (
        dom.cputune
        and dom.cputune.quota is not None
        and dom.cputune.quota not in (-1, 0)
        and dom.cputune.quota < 1000
    ):
        raise Unsupported(
            f"<cputune><quota> of {dom.cputune.quota} µs is below the kernel's minimum of 1000"
        )


def keep_caps(dom: m.DomainDef, needed: list[str] | tuple[str, ...] = ()) -> tuple[str, ...]:
    """The capabilities init keeps, from the policy and the per-capability switches;
    `needed`: what its device presets need, kept whatever those say."""
    policy = dom.cap_policy or "default"
    if policy == "deny":
        kept = set()
    elif policy == "allow":
        kept = set(ALL_CAPS)
    else:
        kept = set(ALL_CAPS) - set(DEFAULT_DROPPED_CAPS)
    for name, on in dom.cap_states:
        (kept.add if on else kept.discard)(name)
    kept.update(needed)
    return tuple(c for c in ALL_CAPS if c in kept)


def device_rules(caps: tuple[str, ...]) -> tuple[DeviceRule, ...]:
    rules = [DeviceRule("a", None, None, "rwm")]  # the first rule denies everything
    rules += [DeviceRule(t, ma, mi, "rwm") for t, ma, mi in DEFAULT_DEVICES]
    if "mknod" in caps:  # as libvirt: creating nodes is allowed, opening them is not
        rules += [DeviceRule("c", None, None, "m"), DeviceRule("b", None, None, "m")]
    return tuple(rules)


def limits(dom: m.DomainDef) -> Limits:
    mt = dom.memtune or m.MemTune()
    ct = dom.cputune or m.CpuTune()
    nt = dom.numatune
    return Limits(
        # a container's balloon is its limit: currentMemory, as setmem sets it (libvirt
        # starts with <memory> and leaves currentMemory to the balloon it has not)
        memory_limit=_bytes(mt.hard_limit or dom.current_memory or dom.memory),
        memory_soft_limit=_bytes(mt.soft_limit),
        memory_swap_limit=_bytes(mt.swap_hard_limit),
        cpu_shares=ct.shares,
        cpu_period=ct.period,
        cpu_quota=ct.quota,
        cpuset_cpus=dom.vcpu_cpuset,
        cpuset_mems=nt.nodeset if nt and nt.mode == "strict" and nt.nodeset else None,
        blkio_weight=dom.blkio_weight,
        blkio_devices=tuple(_throttles(d) for d in dom.blkio_devices),
        pids_max=dom.pids_max,
    )


def _throttles(d: m.BlkioDevice) -> tuple[str, int, int, int, int, int]:
    return (d.path, d.weight or 0, d.read_iops_sec or 0, d.write_iops_sec or 0,
            d.read_bytes_sec or 0, d.write_bytes_sec or 0)  # fmt: skip


def _bytes(kib: int | None) -> int | None:
    """A memtune value in bytes; libvirt's "unlimited" (MAX_KIB) as the backends' -1."""
    if not kib:
        return None
    return -1 if kib >= MAX_KIB else kib * 1024


def _sorted_filesystems(dom: m.DomainDef) -> list[m.Filesystem]:
    # parents before children, else a later mount would hide an earlier one
    others = [f for f in dom.devices.filesystems if f.target != "/"]
    return sorted(others, key=lambda f: f.target.count("/"))


def mounts(dom: m.DomainDef, userns: bool, idmapped: bool = False) -> tuple[MountOp, ...]:
    ops = [
        MountOp("proc", "/proc"),
        MountOp("sysfs", "/sys", readonly=True),
        MountOp("cgroups", "/sys/fs/cgroup", readonly=True),
        MountOp("tmpfs", "/dev", options="mode=755,size=65536k"),
        MountOp(
            "devpts",
            "/dev/pts",
            options="newinstance,ptmxmode=0666,mode=0620" + ("" if userns else ",gid=5"),
        ),
        MountOp("tmpfs", "/dev/shm", options="mode=1777,size=65536k"),
        MountOp("mqueue", "/dev/mqueue"),
    ]
    for fs in _sorted_filesystems(dom):
        if fs.type in ("block", "file"):
            ops.append(_block_op(fs, idmapped))
        elif fs.type == "ram":
            ops.append(
                MountOp(
                    "tmpfs",
                    fs.target,
                    options=f"size={fs.usage_kib}k,mode=755",
                    readonly=fs.readonly,
                )
            )
        else:
            ops.append(MountOp("bind", fs.target, source=fs.source, readonly=fs.readonly,
                               idmapped=idmapped))  # fmt: skip
    ops += [MountOp("mask", p) for p in MASKED_PATHS]
    ops += [MountOp("readonly", p) for p in READONLY_PATHS]
    return tuple(ops)


def image_disks(dom: m.DomainDef) -> tuple[ImageDisk, ...]:
    return tuple(ImageDisk(d.source or "", d.target_dev, d.readonly,
                           (d.driver_type or "") if disk_driver(d) == "nbd" else "")
                 for d in dom.devices.disks if d.type == "file")  # fmt: skip


def _block_op(fs: m.Filesystem, idmapped: bool) -> MountOp:
    nbd = fs.type == "file" and fs_driver(fs) == "nbd"
    return MountOp("block", fs.target, source=fs.source, readonly=fs.readonly,
                   idmapped=idmapped, loop=fs.type == "file" and not nbd,
                   nbd=(fs.driver_format or "") if nbd else "")  # fmt: skip


def environment(dom: m.DomainDef) -> tuple[tuple[str, str], ...]:
    env = {
        "PATH": DEFAULT_PATH,
        "TERM": "linux",
        "HOME": "/",
        "container": "lxc-libvirt",  # what libvirt's source sets; systemd keys on it
        "container_uuid": dom.uuid,
        "LIBVIRT_LXC_UUID": dom.uuid,
        "LIBVIRT_LXC_NAME": dom.name,
    }
    env.update(dict(dom.os.initenv))
    return tuple(env.items())


def cgroup_name(domain: str) -> str:
    """The container's cgroup directory under its partition (libvirt's suffix, ours)."""
    return f"{domain}.nsvirt-lxc"


def shutdown_signal(init: str) -> str:
    # systemd reads SIGTERM as "re-execute"; SIGRTMIN+4 is its poweroff
    return "SIGRTMIN+4" if init.rsplit("/", 1)[-1] == "systemd" else "SIGTERM"


def _addrs(ips: tuple[m.IpAddress, ...]) -> tuple[NetAddr, ...]:
    return tuple(NetAddr(i.address, address_prefix(i.address, i.prefix), i.peer) for i in ips)


def _routes(routes: tuple[m.Route, ...]) -> tuple[NetRoute, ...]:
    return tuple(NetRoute(r.address, route_prefix(r.address, r.prefix, r.netmask), r.gateway,
                          r.metric) for r in routes)  # fmt: skip


def interfaces(dom: m.DomainDef, bridges: dict[str, str]) -> tuple[NetIface, ...]:
    """The domain's interfaces for attach; `bridges` maps each network's name to its
    bridge (resolved by the caller: a network's state is the host's)."""
    out = []
    for n, i in enumerate(dom.devices.interfaces):
        if i.mac is None:
            raise Unsupported(f"interface {n + 1} has no MAC address (define gives it one)")
        bridge = i.source if i.type == "bridge" else bridges.get(i.source or "")
        out.append(NetIface(
            type=i.type, guest=i.guest_dev or f"eth{n}", mac=i.mac, host=i.target_dev,
            bridge=bridge if i.type in ("bridge", "network") else None,
            network=i.source if i.type == "network" else None,
            source_dev=i.source if i.type == "direct" else None, mode=i.source_mode,
            mtu=i.mtu, up=i.link_state != "down", ips=_addrs(i.ips), routes=_routes(i.routes),
            host_ips=_addrs(i.host_ips), host_routes=_routes(i.host_routes),
        ))  # fmt: skip
    for h in dom.devices.hostdevs:
        if h.mode == "capabilities" and h.type == "net" and h.source:
            out.append(NetIface(
                type="hostdev", guest=h.source, mac="", host=None, bridge=None, network=None,
                source_dev=h.source, mode=None, mtu=None, up=True, ips=_addrs(h.ips),
                routes=_routes(h.routes),
            ))  # fmt: skip
    return tuple(out)


def build(
    dom: m.DomainDef,
    facts: HostFacts,
    *,
    partition: str,
    join: tuple[tuple[str, str], ...] = (),
    bridges: dict[str, str] | None = None,
    host_devices: HostDevices | None = None,
) -> LaunchPlan:
    """Turn a checked definition into the launch plan (raises Unsupported). The
    caller looks up what the plan needs of the moment: `bridges` maps each network's
    name to its bridge, `host_devices` the domain's host devices
    (launch/hostdevices.py; None: it passes none in)."""
    check_supported(dom)
    check_host(dom, facts)
    contained = containment.decide(dom)
    containment.check_host(contained, facts)
    userns = bool(dom.uid_map) or contained.auto_ids > 0
    joined = {kind for kind, _ in join}
    namespaces = ["user"] if userns else []
    namespaces += ["mnt", "pid"]
    namespaces += [k for k in ("uts", "ipc") if k not in joined]
    moved_in = any(h.type == "net" for h in dom.devices.hostdevs)
    if (dom.privnet or dom.devices.interfaces or moved_in) and "net" not in joined:
        namespaces.append("net")
    namespaces.append("cgroup")  # rooted at its payload cgroup: it sees nothing above
    root_fs = next((f for f in dom.devices.filesystems if f.target == "/"), None)
    root = root_fs.source if root_fs and root_fs.source else "/"
    on_block = root_fs is not None and root_fs.type in ("block", "file")
    consoles = max(1, len(dom.devices.consoles))
    host = host_devices or HostDevices()
    devices.check_filesystems(dom, host)
    nodes, rules, needed = devices.passed(dom, host, consoles)
    caps = keep_caps(dom, needed)
    init = dom.os.init or DEFAULT_INIT
    return LaunchPlan(
        name=dom.name,
        uuid=dom.uuid,
        hostname=None if "uts" in joined else dom.name,
        namespaces=tuple(namespaces),
        join=join,
        uid_map=dom.uid_map,
        gid_map=dom.gid_map,
        root=root,
        root_mount=_block_op(root_fs, contained.idmapped_mounts) if on_block else None,
        root_readonly=bool(root_fs and root_fs.readonly),
        # the host's own root is never idmapped: that would hand its files to root inside
        root_idmapped=contained.idmapped_mounts and root != "/",
        detached_mounts=userns,
        containment=contained.mode,
        auto_ids=contained.auto_ids,
        seccomp=contained.seccomp,
        remount_guard=contained.remount_guard,
        no_new_privs=contained.no_new_privs,
        mounts=mounts(dom, userns, contained.idmapped_mounts),
        dev_nodes=tuple(DevNode(*n) for n in DEV_NODES) + tuple(nodes),
        image_disks=image_disks(dom),
        dev_symlinks=DEV_SYMLINKS,
        device_rules=device_rules(caps) + tuple(rules),
        limits=limits(dom),
        cgroup_partition=partition,
        cgroup_name=cgroup_name(dom.name),
        keep_caps=caps,
        init=init,
        argv=(init, *dom.os.initargs),
        env=environment(dom),
        cwd=dom.os.initdir or "/",
        user=dom.os.inituser,
        group=dom.os.initgroup,
        consoles=consoles,
        privnet="net" in namespaces,
        interfaces=interfaces(dom, bridges or {}),
        on_poweroff=dom.on_poweroff,
        on_reboot=dom.on_reboot,
        on_crash=dom.on_crash,
        shutdown_signal=shutdown_signal(init),
        proc_view=dom.proc_view,
        facts=facts.to_dict(),
    )
