"""The domain model: frozen data parsed from `<domain type='lxc'>`.

No I/O and no lxml objects here; defaults are applied once, by domxml/parser.py
(those that depend on nothing) and domxml/defaults.py (what define adds).
Sizes are KiB, as libvirt keeps them. Foreign XML that nsvirt keeps but does
not interpret (`<metadata>` children, `<cpu>`) is held as serialised text.
"""

from __future__ import annotations

from nsvirt.driver.domxml.capabilities import LIBVIRT_CAPS
from nsvirt.driver.records import Record, factory, replace

# capability names <features><capabilities> knows, in the order libvirt writes them
CAPABILITIES = LIBVIRT_CAPS

# the <source> attribute that names each filesystem type's source (ram has none)
FS_SOURCE_ATTR = {"mount": "dir", "bind": "dir", "file": "file", "block": "dev",
                  "template": "name"}  # fmt: skip

# the <source> child that names a capabilities-mode hostdev's device, by its type
HOSTDEV_SOURCE_TAG = {"storage": "block", "misc": "char", "net": "interface"}

LXC_NS = "http://libvirt.org/schemas/domain/lxc/1.0"
NSVIRT_NS = "https://nsvirt.dev/xmlns/domain/1.0"


class IdMap(Record):
    start: int  # first id inside the container
    target: int  # first id on the host
    count: int


class IpAddress(Record):
    address: str
    family: str  # ipv4 | ipv6, derived from the address when not given
    prefix: int | None = None
    peer: str | None = None


class Route(Record):
    address: str
    gateway: str
    family: str | None = None
    netmask: str | None = None
    prefix: int | None = None
    metric: int | None = None


class Filesystem(Record):
    type: str  # mount | bind | block | file | ram | template
    target: str
    source: str | None = None  # dir, file, dev or template name; None for ram
    usage_kib: int | None = None  # ram only
    readonly: bool = False
    accessmode: str = "passthrough"
    driver_type: str | None = None
    driver_format: str | None = None
    driver_wrpolicy: str | None = None


class Disk(Record):
    type: str  # file | block
    target_dev: str
    device: str = "disk"
    source: str | None = None
    target_bus: str | None = None
    driver_name: str | None = None
    driver_type: str | None = None
    readonly: bool = False
    shareable: bool = False


class Interface(Record):
    type: str  # network | bridge | ethernet | direct
    mac: str | None  # None until define generates one (domxml/defaults.py)
    source: str | None = None  # network name, bridge name or direct's host device
    source_mode: str | None = None  # direct: vepa | bridge | private | passthrough
    portgroup: str | None = None
    host_ips: tuple[IpAddress, ...] = ()  # ethernet: addresses on the host side
    host_routes: tuple[Route, ...] = ()
    ips: tuple[IpAddress, ...] = ()
    routes: tuple[Route, ...] = ()
    target_dev: str | None = None  # host-side name
    guest_dev: str | None = None  # name inside the container
    model: str | None = None
    link_state: str | None = None
    mtu: int | None = None


class Hostdev(Record):
    mode: str  # capabilities | subsystem
    type: str  # storage | misc | net | usb
    source: str | None = None  # block or char device path, or host interface name
    ips: tuple[IpAddress, ...] = ()
    routes: tuple[Route, ...] = ()
    usb_vendor: str | None = None
    usb_product: str | None = None
    usb_bus: str | None = None
    usb_device: str | None = None
    managed: bool = False
    readonly: bool = False
    shareable: bool = False
    startup_policy: str | None = None  # usb: mandatory | requisite | optional


class CharDevice(Record):
    """A `<console>` or `<serial>`; LXC offers pty only."""

    port: int
    target_type: str | None = "lxc"  # consoles: lxc; serials: None
    tty: str | None = None  # live only: the host pty
    alias: str | None = None  # live only


class BlkioDevice(Record):
    path: str
    weight: int | None = None
    read_iops_sec: int | None = None
    write_iops_sec: int | None = None
    read_bytes_sec: int | None = None
    write_bytes_sec: int | None = None


class MemTune(Record):
    hard_limit: int | None = None
    soft_limit: int | None = None
    min_guarantee: int | None = None
    swap_hard_limit: int | None = None


class CpuTune(Record):
    shares: int | None = None
    period: int | None = None
    quota: int | None = None


class NumaTune(Record):
    mode: str = "strict"
    placement: str | None = None
    nodeset: str | None = None  # canonical cpuset text


class Os(Record):
    arch: str | None = None
    init: str | None = None
    initargs: tuple[str, ...] = ()
    initenv: tuple[tuple[str, str], ...] = ()
    initdir: str | None = None
    inituser: str | None = None
    initgroup: str | None = None


class Clock(Record):
    offset: str = "utc"
    adjustment: str | None = None
    timezone: str | None = None
    basis: str | None = None
    start: int | None = None


class Seclabel(Record):
    type: str | None = None
    model: str | None = None
    relabel: str | None = None
    label: str | None = None
    imagelabel: str | None = None
    baselabel: str | None = None


class SharedNamespace(Record):
    """`<lxc:shareNS type='netns|name|pid' value='...'/>`."""

    kind: str  # net | ipc | uts
    type: str
    value: str


class Devices(Record):
    emulator: str | None = None
    filesystems: tuple[Filesystem, ...] = ()
    disks: tuple[Disk, ...] = ()
    interfaces: tuple[Interface, ...] = ()
    consoles: tuple[CharDevice, ...] = ()
    serials: tuple[CharDevice, ...] = ()
    hostdevs: tuple[Hostdev, ...] = ()


class Containment(Record):
    """nsvirt's own containment settings, in <metadata><nsvirt:config>."""

    privileged: bool = False  # <nsvirt:privileged/>: no user namespace (libvirt's default)
    idmapped_mounts: bool = False  # <nsvirt:idmapped-mounts/>: also with an <idmap>
    no_new_privs: bool = False  # <nsvirt:no-new-privs/>
    seccomp_allow: tuple[str, ...] = ()  # <nsvirt:seccomp allow='…'/>: not denied after all
    device_presets: tuple[str, ...] = ()  # <nsvirt:device preset='tun'/>…, in document order


class LiveIdmap(Record):
    """The host ids a run of a default (unprivileged) domain was given: live XML only."""

    uid: int  # the host uid of the container's root
    gid: int
    count: int


class DomainDef(Record):
    name: str
    uuid: str | None  # lower-case, dashed; None until define generates one
    memory: int  # KiB
    current_memory: int  # KiB
    os: Os
    title: str | None = None
    description: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()  # (namespace, element serialised verbatim)
    pids_max: int | None = None  # nsvirt:config/nsvirt:pids/@max
    proc_view: str = "container"  # nsvirt:config/nsvirt:proc/@view: container | host
    containment: Containment = factory(Containment)
    live_idmap: LiveIdmap | None = None  # nsvirt:config/nsvirt:userns, live only
    max_memory: int | None = None  # KiB
    max_memory_slots: int | None = None
    blkio_weight: int | None = None
    blkio_devices: tuple[BlkioDevice, ...] = ()
    memtune: MemTune | None = None
    vcpus: int = 1
    vcpu_placement: str = "static"
    vcpu_cpuset: str | None = None  # canonical cpuset text
    vcpu_current: int | None = None
    cputune: CpuTune | None = None
    numatune: NumaTune | None = None
    partition: str | None = None
    uid_map: tuple[IdMap, ...] = ()
    gid_map: tuple[IdMap, ...] = ()
    privnet: bool = False
    cap_policy: str | None = None  # None: no <capabilities> element
    cap_states: tuple[tuple[str, bool], ...] = ()  # in CAPABILITIES order
    cpu_xml: str | None = None  # accepted, kept, ignored
    clock: Clock = factory(Clock)
    on_poweroff: str = "destroy"
    on_reboot: str = "restart"
    on_crash: str = "destroy"
    devices: Devices = factory(Devices)
    seclabels: tuple[Seclabel, ...] = ()
    shared_namespaces: tuple[SharedNamespace, ...] = ()
    id: int | None = None  # live only: the supervisor's pid

    def metadata_for(self, namespace: str) -> str | None:
        """The serialised <metadata> element of that namespace, if any."""
        return next((xml for ns, xml in self.metadata if ns == namespace), None)

    def with_metadata(self, namespace: str, xml: str | None) -> DomainDef:
        """A copy whose <metadata> element of that namespace is `xml` (None: removed)."""
        kept = tuple((ns, x) for ns, x in self.metadata if ns != namespace)
        return replace(self, metadata=kept + (((namespace, xml),) if xml else ()))

    def shared(self, kind: str) -> SharedNamespace | None:
        """Return the lxc:namespace sharing for `kind` (net, ipc, uts), if any."""
        return next((s for s in self.shared_namespaces if s.kind == kind), None)
