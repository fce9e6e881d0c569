"""LXC's container config (`lxc-tools`: legacy and ≥ 3.0 keys) → libvirt domain XML,
as libvirt's `domxml-from-native lxc-tools` makes it, byte for byte (its
lxcconf2xml corpus is the test), plus what libvirt leaves out: `lxc.cgroup2.*`
limits, and a reason for every refusal and every key left behind (`notes`).

Pure: text in, text out. The parse follows libvirt's config reader (the first of
a repeated key counts; an unquoted value runs to the end of the line).
"""

from __future__ import annotations

import ipaddress
import re

from nsvirt.driver.domxml.units import format_cpuset, parse_cpuset
from nsvirt.driver.errors import DriverError

LIBVIRT_TEST_UUID = "c7a5fdbd-edaf-9455-926a-d65c16db1809"  # libvirt's lxcconf2xmltest
EMULATOR = "/usr/libexec/libvirt_lxc"  # libvirt writes its controller's path
ARCHES = {"x86": "i686", "i686": "i686", "amd64": "x86_64", "x86_64": "x86_64",
          "arm64": "aarch64", "aarch64": "aarch64", "armhf": "armv7l",
          "armv7l": "armv7l"}  # fmt: skip
GUEST_ARCHES = {"x86_64": ("i686", "x86_64"), "aarch64": ("armv7l", "aarch64")}
SKIPPED_MOUNTS = ("/proc", "/proc/sys", "/proc/sys/net/ipv4", "/proc/sys/net/ipv6", "/sys",
                  "/sys/kernel/security")  # fmt: skip
NET_KEYS = ("type", "link", "hwaddr", "flags", "macvlan.mode", "vlan.id", "name", "ipv4",
            "ipv4.address", "ipv4.gateway", "ipv6", "ipv6.address", "ipv6.gateway")  # fmt: skip
# libvirt's capability enum order (virDomainProcessCapsFeature)
CAPS = ("audit_control", "audit_write", "block_suspend", "chown", "dac_override",
        "dac_read_search", "fowner", "fsetid", "ipc_lock", "ipc_owner", "kill", "lease",
        "linux_immutable", "mac_admin", "mac_override", "mknod", "net_admin", "net_bind_service",
        "net_broadcast", "net_raw", "setgid", "setfcap", "setpcap", "setuid", "sys_admin",
        "sys_boot", "sys_chroot", "sys_module", "sys_nice", "sys_pacct", "sys_ptrace",
        "sys_rawio", "sys_resource", "sys_time", "sys_tty_config", "syslog",
        "wake_alarm")  # fmt: skip
BLKIO_KEYS = {"device_weight": "weight", "throttle.read_iops_device": "read_iops_sec",
              "throttle.write_iops_device": "write_iops_sec",
              "throttle.read_bps_device": "read_bytes_sec",
              "throttle.write_bps_device": "write_bytes_sec"}  # fmt: skip
BLKIO_ORDER = ("weight", "read_iops_sec", "write_iops_sec", "read_bytes_sec", "write_bytes_sec")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.]*")
_SIZE = re.compile(r"(\d+)\s*([a-zA-Z]*)")
# keys whose meaning libvirt's format has no place for (said with --explain)
_NOT_CARRIED = "no equivalent in libvirt's domain format: left out"


class NativeError(DriverError):
    """A config that cannot be converted (libvirt's words where it has some)."""


class Entry:
    __slots__ = ("key", "line", "value")

    def __init__(self, key: str, value: str, line: int) -> None:
        self.key, self.value, self.line = key, value, line


def parse(text: str) -> list[Entry]:
    """The config's `key = value` entries in file order (libvirt's reader: `#` starts
    a comment line; a quoted value is unquoted; an unquoted one keeps the rest of its
    line)."""
    out = []
    for number, raw in enumerate(text.replace("\r", "\n").split("\n"), start=1):
        line = raw.lstrip(" \t")
        if not line or line.startswith("#"):
            continue
        name = _NAME.match(line)
        if name is None:
            raise _syntax(number, "expecting a name")
        rest = line[name.end() :].lstrip(" \t")
        if not rest.startswith("="):
            raise _syntax(number, "expecting an assignment")
        value = rest[1:].lstrip(" \t")
        if value[:1] in ("'", '"'):
            end = value.find(value[0], 1)
            if end < 0:
                raise _syntax(number, "unterminated string")
            after = value[end + 1 :].lstrip(" \t")
            if after and not after.startswith(("#", ";")):
                raise _syntax(number, "expecting a separator")
            value = value[1:end]
        out.append(Entry(name.group(), value, number))
    return out


def _syntax(line: int, what: str) -> NativeError:
    return NativeError(f"configuration file syntax error: memory conf:{line}: {what}")


class Converter:
    """One config's conversion; `notes` says what became what and what was left out."""

    def __init__(self, entries: list[Entry], host_arch: str) -> None:
        self.entries = entries
        self.host_arch = host_arch
        self.used: set[int] = set()  # entries' lines that went into the XML
        self.notes: list[str] = []

    def first(self, *keys: str) -> Entry | None:
        for key in keys:
            for e in self.entries:
                if e.key == key:
                    self.used.add(e.line)
                    return e
        return None

    def all(self, key: str) -> list[Entry]:
        found = [e for e in self.entries if e.key == key]
        self.used.update(e.line for e in found)
        return found

    def needed(self, what: str, *keys: str) -> str:
        e = self.first(*keys)
        if e is None:
            raise NativeError(f"invalid argument: {' or '.join(keys)} is missing: {what}")
        return e.value

    # ------------------------------------------------------------ the document

    def xml(self, uuid: str) -> str:
        name = self.needed("the domain's name", "lxc.uts.name", "lxc.utsname")
        root = self.needed("the root filesystem", "lxc.rootfs.path", "lxc.rootfs")
        if self.first("lxc.mount.fstab", "lxc.mount") is not None:
            raise NativeError("argument unsupported: lxc.mount.fstab or lxc.mount found, "
                              "use lxc.mount.entry lines instead")  # fmt: skip
        filesystems = [_filesystem(root, "/", False), *self.mounts()]
        interfaces, hostdevs = self.network()
        memory, memtune = self.memory()
        w = ["<domain type='lxc'>", f"  <name>{_esc(name)}</name>", f"  <uuid>{uuid}</uuid>",
             f"  <memory unit='KiB'>{memory}</memory>",
             f"  <currentMemory unit='KiB'>{memory}</currentMemory>"]  # fmt: skip
        w += self.blkiotune()
        w += _block("memtune", memtune)
        cpus, mems = self.cpuset()
        w.append(f"  <vcpu placement='static'{f' cpuset={_q(cpus)}' if cpus else ''}>1</vcpu>")
        w += _block("cputune", self.cputune())
        if mems:
            w += ["  <numatune>", f"    <memory mode='strict' nodeset={_q(mems)}/>",
                  "  </numatune>"]  # fmt: skip
        arch = self.arch()
        w += ["  <os>", f"    <type{f' arch={_q(arch)}' if arch else ''}>exe</type>",
              "    <init>/sbin/init</init>", "  </os>"]  # fmt: skip
        w += _block("idmap", self.idmap())
        w += ["  <features>"]
        if not interfaces and not hostdevs and not self.has_network:
            w.append("    <privnet/>")
        dropped = self.dropped_caps()
        if dropped:
            w += ["    <capabilities policy='allow'>"]
            w += [f"      <{c} state='off'/>" for c in dropped] + ["    </capabilities>"]
        else:
            w.append("    <capabilities policy='allow'/>")
        w += ["  </features>", "  <clock offset='utc'/>", "  <on_poweroff>destroy</on_poweroff>",
              "  <on_reboot>restart</on_reboot>", "  <on_crash>destroy</on_crash>",
              "  <devices>", f"    <emulator>{EMULATOR}</emulator>"]  # fmt: skip
        for part in filesystems + interfaces + self.consoles() + hostdevs:
            w += ["    " + line for line in part]
        w += ["  </devices>", "</domain>"]
        self.left_out()
        return "\n".join(w) + "\n"

    def arch(self) -> str | None:
        e = self.first("lxc.arch")
        if e is None:
            return None
        arch = ARCHES.get(e.value, e.value)
        if arch not in GUEST_ARCHES.get(self.host_arch, (self.host_arch,)):
            raise NativeError("invalid argument: could not find capabilities for ostype=exe "
                              f"arch={arch} domaintype=lxc ")  # fmt: skip
        return arch

    # ------------------------------------------------------------ filesystems

    def mounts(self) -> list[list[str]]:
        out = []
        for e in self.all("lxc.mount.entry"):
            fields = e.value.replace("\t", " ").split()
            if len(fields) < 4:
                raise NativeError(f"invalid argument: lxc.mount.entry on line {e.line} has "
                                  f"{len(fields)} fields, not an fstab line's 4 to 6")  # fmt: skip
            source, target, fstype, options = fields[:4]
            target = target if target.startswith("/") else "/" + target
            if target in SKIPPED_MOUNTS:
                self.notes.append(f"line {e.line}: {target} is the container's own: left out")
                continue
            readonly = "ro" in options.split(",")
            if fstype == "tmpfs":
                out.append(_ram(target, _tmpfs_kib(options), readonly))
            else:
                out.append(_filesystem(source, target, readonly))
        return out

    # ------------------------------------------------------------ network

    def network(self) -> tuple[list[list[str]], list[list[str]]]:
        nics: list[dict[str, list[str]]] = []
        by_index: dict[str, dict[str, list[str]]] = {}
        self.has_network = False
        for e in self.entries:
            if e.key.startswith("lxc.network."):
                self.has_network = True
                self.used.add(e.line)
                key = e.key.removeprefix("lxc.network.")
                if key == "type":
                    nics.append({})
                elif not nics:
                    raise NativeError(f"invalid argument: {e.key} on line {e.line} comes before "
                                      "any lxc.network.type")  # fmt: skip
                self._nic_key(nics[-1], key, e)
            elif e.key.startswith("lxc.net."):
                self.has_network = True
                self.used.add(e.line)
                index, _, key = e.key.removeprefix("lxc.net.").partition(".")
                if not index.isdigit() or not key:
                    raise NativeError(f"invalid argument: {e.key} on line {e.line}: expected "
                                      "lxc.net.N.KEY")  # fmt: skip
                if index not in by_index:
                    by_index[index] = {}
                    nics.append(by_index[index])
                self._nic_key(by_index[index], key, e)
        interfaces, hostdevs = [], []
        for nic in nics:
            kind = (nic.get("type") or [""])[-1]
            if kind in ("", "none", "empty"):
                continue
            if kind in ("phys", "vlan"):
                hostdevs.append(_hostdev(nic, kind))
            else:
                interfaces.append(_interface(nic, kind))
        return interfaces, hostdevs

    def _nic_key(self, nic: dict[str, list[str]], key: str, e: Entry) -> None:
        if key not in NET_KEYS:
            raise NativeError(f"unsupported configuration: {e.key} (line {e.line}) has no "
                              "libvirt equivalent: remove it to convert the rest")  # fmt: skip
        key = key.removesuffix(".address")
        if key in ("ipv4", "ipv6"):
            nic.setdefault(key, []).append(_cidr(e.value))
        else:
            nic[key] = [e.value]

    # ------------------------------------------------------------ limits

    def memory(self) -> tuple[int, list[str]]:
        limit = self._size_kib("lxc.cgroup.memory.limit_in_bytes", "lxc.cgroup2.memory.max")
        soft = self._size_kib("lxc.cgroup.memory.soft_limit_in_bytes", "lxc.cgroup2.memory.high")
        swap = self._size_kib("lxc.cgroup.memory.memsw.limit_in_bytes")
        if swap is None:  # v2's swap.max is swap alone; libvirt's swap_hard_limit both
            extra = self._size_kib("lxc.cgroup2.memory.swap.max")
            if extra is not None and limit is not None:
                swap = limit + extra
        memtune = []
        for tag, kib in (("hard_limit", limit), ("soft_limit", soft), ("swap_hard_limit", swap)):
            if kib is not None and kib < UNLIMITED_KIB:
                memtune.append(f"<{tag} unit='KiB'>{kib}</{tag}>")
        return (limit if limit is not None and limit < UNLIMITED_KIB else 65536), memtune

    def _size_kib(self, *keys: str) -> int | None:
        e = self.first(*keys)
        if e is None:
            return None
        if e.value.strip() in ("-1", "max"):
            return UNLIMITED_KIB
        kib = _bytes(e.value) // 1024
        if kib == 0:
            raise NativeError(f"internal error: failed to convert size: '{e.value}'")
        return kib

    def cputune(self) -> list[str]:
        out = []
        shares = self.first("lxc.cgroup.cpu.shares")
        weight = self.first("lxc.cgroup2.cpu.weight") if shares is None else None
        if shares is not None:
            out.append(f"<shares>{_int(shares)}</shares>")
        elif weight is not None:  # v2's weight 1..10000 ↔ v1's shares 2..262144 (the kernel's map)
            out.append(f"<shares>{2 + (_int(weight) - 1) * 262142 // 9999}</shares>")
        period = self.first("lxc.cgroup.cpu.cfs_period_us")
        quota = self.first("lxc.cgroup.cpu.cfs_quota_us")
        v2 = self.first("lxc.cgroup2.cpu.max") if period is None and quota is None else None
        p = _int(period) if period else 0
        q = _int(quota) if quota else 0
        if v2 is not None:
            words = v2.value.split()
            q = -1 if words[0] == "max" else int(words[0])
            p = int(words[1]) if len(words) > 1 else 100000
        if p:
            out.append(f"<period>{p}</period>")
        if q:
            out.append(f"<quota>{q}</quota>")
        return out

    def cpuset(self) -> tuple[str, str]:
        cpus = self.first("lxc.cgroup.cpuset.cpus", "lxc.cgroup2.cpuset.cpus")
        mems = self.first("lxc.cgroup.cpuset.mems", "lxc.cgroup2.cpuset.mems")
        return (_bitmap(cpus.value) if cpus else "", _bitmap(mems.value) if mems else "")

    def blkiotune(self) -> list[str]:
        weight = self.first("lxc.cgroup.blkio.weight", "lxc.cgroup2.io.weight")
        devices: dict[str, dict[str, int]] = {}
        for e in self.entries:
            key = e.key.removeprefix("lxc.cgroup.blkio.")
            if key == e.key or key == "weight":
                continue
            if key not in BLKIO_KEYS:
                continue  # left for --explain
            self.used.add(e.line)
            words = e.value.split()
            if len(words) < 2 or not words[1].isdigit():
                raise NativeError(f"internal error: invalid {e.key} value: '{e.value}'")
            devices.setdefault(f"/dev/block/{words[0]}", {})[BLKIO_KEYS[key]] = int(words[1])
        inner = [f"<weight>{_int(weight)}</weight>"] if weight is not None else []
        for path, values in devices.items():
            if not any(values.values()):
                continue
            inner += ["<device>", f"  <path>{_esc(path)}</path>"]
            inner += [f"  <{k}>{values[k]}</{k}>" for k in BLKIO_ORDER if values.get(k)]
            inner.append("</device>")
        return _block("blkiotune", inner)

    def idmap(self) -> list[str]:
        uids, gids = [], []
        for e in self.all("lxc.idmap") or self.all("lxc.id_map"):
            words = e.value.split()
            if len(words) != 4 or words[0] not in ("u", "g") or not all(
                    w.isdigit() for w in words[1:]):  # fmt: skip
                raise NativeError(f"internal error: invalid {e.key}: '{e.value}'")
            # libvirt reads the host id first, then the id inside (LXC's lxc.idmap is the
            # other way round): the same output as libvirt's, and a note saying so
            line = f"<{'uid' if words[0] == 'u' else 'gid'} start='{words[2]}' " \
                   f"target='{words[1]}' count='{words[3]}'/>"  # fmt: skip
            self.notes.append(f"line {e.line}: {e.key} = {e.value}: read as libvirt reads it, "
                              f"ids {words[2]}… inside are host ids {words[1]}… (LXC's "
                              "own reading is the reverse: check the <idmap>)")  # fmt: skip
            (uids if words[0] == "u" else gids).append(line)
        return uids + gids if uids else []

    def dropped_caps(self) -> list[str]:
        e = self.first("lxc.cap.drop")
        if e is None:
            return []
        asked = set(e.value.split(" "))
        unknown = sorted(asked - set(CAPS) - {""})
        if unknown:
            self.notes.append(f"line {e.line}: lxc.cap.drop: {' '.join(unknown)} unknown: "
                              "not dropped")  # fmt: skip
        return [c for c in CAPS if c in asked]

    def consoles(self) -> list[list[str]]:
        e = self.first("lxc.tty.max", "lxc.tty")
        if e is None:
            return []
        count = _int(e)
        return [["<console type='pty'>", f"  <target type='lxc' port='{n}'/>", "</console>"]
                for n in range(count)]  # fmt: skip

    def left_out(self) -> None:
        for e in self.entries:
            if e.line not in self.used:
                self.notes.append(f"line {e.line}: {e.key}: {_NOT_CARRIED}")


UNLIMITED_KIB = (1 << 64) // 1024  # -1 through libvirt's unsigned parse: no limit


def convert(text: str, uuid: str, host_arch: str = "x86_64") -> tuple[str, list[str]]:
    """(the domain XML, notes on keys left out or changed)."""
    c = Converter(parse(text), host_arch)
    xml = c.xml(uuid)
    return xml, c.notes


# ------------------------------------------------------------ pieces


def _filesystem(source: str, target: str, readonly: bool) -> list[str]:
    block = source.startswith("/dev/")
    kind, attr = ("block", "dev") if block else ("mount", "dir")
    out = [f"<filesystem type='{kind}' accessmode='passthrough'>",
           f"  <source {attr}={_q(source)}/>", f"  <target dir={_q(target)}/>"]  # fmt: skip
    return out + (["  <readonly/>"] if readonly else []) + ["</filesystem>"]


def _ram(target: str, kib: int, readonly: bool) -> list[str]:
    out = ["<filesystem type='ram' accessmode='passthrough'>",
           f"  <source usage='{kib}' units='KiB'/>", f"  <target dir={_q(target)}/>"]  # fmt: skip
    return out + (["  <readonly/>"] if readonly else []) + ["</filesystem>"]


def _tmpfs_kib(options: str) -> int:
    for option in options.split(","):
        if option.startswith("size="):
            value = option.removeprefix("size=")
            if value.endswith("%"):
                raise NativeError(f"internal error: can't convert relative size: '{value}'")
            return _bytes(value) // 1024
    raise NativeError("internal error: missing tmpfs size, set the size option")


def _bytes(text: str) -> int:
    """A size with libvirt's suffixes: k, m, g… and KiB… are 1024ⁿ, KB… 1000ⁿ."""
    m = _SIZE.fullmatch(text.strip())
    if m is None:
        raise NativeError(f"internal error: failed to convert size: '{text}'")
    number, unit = int(m.group(1)), m.group(2).lower()
    if unit in ("", "b", "byte", "bytes"):
        return number
    power = "kmgtpe".find(unit[0]) + 1
    if power == 0 or unit not in (unit[0], unit[0] + "ib", unit[0] + "b"):
        raise NativeError(f"internal error: failed to convert size: '{text}'")
    return number * (1000 if unit.endswith("b") and not unit.endswith("ib") else 1024) ** power


def _cidr(text: str) -> tuple[str, int]:
    address, slash, prefix = text.strip().partition("/")
    try:
        ip = ipaddress.ip_address(address)
        if not slash or not prefix.isdigit():
            raise ValueError
    except ValueError:
        raise NativeError(f"invalid argument: Invalid CIDR address: '{text}'") from None
    return str(ip), int(prefix)


def _ips_and_routes(nic: dict[str, list[str]]) -> list[str]:
    out = []
    for family in ("ipv4", "ipv6"):
        for address, prefix in nic.get(family, []):  # type: ignore[misc]
            out.append(f"<ip address='{address}' family='{family}'"
                       + (f" prefix='{prefix}'" if prefix else "") + "/>")  # fmt: skip
    for family, anywhere in (("ipv4", "0.0.0.0"), ("ipv6", "::")):
        gateway = nic.get(f"{family}.gateway")
        if gateway:
            try:
                ip = ipaddress.ip_address(gateway[-1])
            except ValueError:
                raise NativeError("XML error: Domain interface: Bad gateway address "
                                  f"'{gateway[-1]}' in route definition") from None  # fmt: skip
            out.append(f"<route family='{family}' address='{anywhere}' gateway='{ip}'/>")
    return out


def _interface(nic: dict[str, list[str]], kind: str) -> list[str]:
    link = (nic.get("link") or [""])[-1]
    mac = (nic.get("hwaddr") or [""])[-1].lower()
    if not re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", mac):
        mac = "00:00:00:00:00:00"
    if kind == "veth":
        kind_attr, source = ("bridge", [f"<source bridge={_q(link)}/>"]) if link else \
            ("ethernet", [])  # fmt: skip
    elif kind == "macvlan":
        if not link:
            raise NativeError("unsupported configuration: Missing 'link' attribute for NIC")
        mode = (nic.get("macvlan.mode") or ["private"])[-1]
        mode = mode if mode in ("private", "vepa", "bridge") else "vepa"
        kind_attr, source = "direct", [f"<source dev={_q(link)} mode='{mode}'/>"]
    else:
        kind_attr, source = "user", []
    body = [f"<mac address='{mac}'/>", *source, *_ips_and_routes(nic)]
    if nic.get("name"):
        body.append(f"<guest dev={_q(nic['name'][-1])}/>")
    up = (nic.get("flags") or [""])[-1] == "up"
    body.append(f"<link state='{'up' if up else 'down'}'/>")
    return [f"<interface type='{kind_attr}'>", *("  " + b for b in body), "</interface>"]


def _hostdev(nic: dict[str, list[str]], kind: str) -> list[str]:
    link = (nic.get("link") or [""])[-1]
    if not link:
        raise NativeError("unsupported configuration: Missing 'link' attribute for NIC")
    if kind == "vlan" and nic.get("vlan.id"):
        link += "." + nic["vlan.id"][-1]
    return ["<hostdev mode='capabilities' type='net'>", "  <source>",
            f"    <interface>{_esc(link)}</interface>", "  </source>",
            *("  " + r for r in _ips_and_routes(nic)), "</hostdev>"]  # fmt: skip


def _bitmap(text: str) -> str:
    try:
        return format_cpuset(set(parse_cpuset(text.strip())))
    except ValueError:
        raise NativeError(f"invalid argument: Failed to parse bitmap '{text}'") from None


def _int(e: Entry) -> int:
    try:
        return int(e.value.strip())
    except ValueError:
        raise NativeError(f"internal error: failed to parse integer: '{e.value}'") from None


def _block(tag: str, inner: list[str]) -> list[str]:
    if not inner:
        return []
    return [f"  <{tag}>", *("    " + line for line in inner), f"  </{tag}>"]


def _esc(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&apos;"))  # fmt: skip


def _q(text: str) -> str:
    return f"'{_esc(text)}'"
