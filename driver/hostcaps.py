"""The host as libvirt's `<capabilities>` document describes an LXC host (libvirt's
virLXCDriverCapsInit and virCapabilitiesFormatXML: the same elements, order and
indentation), read from sysfs and procfs; and `sysinfo`, which needs SMBIOS.

Beyond libvirt: the cgroup layout nsvirt runs containers in, as one element in
nsvirt's namespace at the end of <host>.
"""

from __future__ import annotations

import os

from nsvirt.driver.errors import Unsupported

NODE = "/sys/devices/system/node"
CPU = "/sys/devices/system/cpu"
HOST_NS = "https://nsvirt.dev/xmlns/capabilities/1.0"
ALT_32BIT = {"x86_64": ("i686", 32), "aarch64": ("armv7l", 32), "ppc64": ("ppc", 32),
             "s390x": ("s390", 32)}  # fmt: skip


def _read(path: str, default: str = "") -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def host_uuid() -> str:
    """The host's uuid: SMBIOS's where the firmware gives one, else /etc/machine-id's."""
    raw = _read("/sys/class/dmi/id/product_uuid").lower() or _read("/etc/machine-id")
    hexes = raw.replace("-", "")
    if len(hexes) != 32:
        return "00000000-0000-0000-0000-000000000000"
    return f"{hexes[:8]}-{hexes[8:12]}-{hexes[12:16]}-{hexes[16:20]}-{hexes[20:]}"


def _page_sizes(base: str = "/sys/kernel/mm/hugepages") -> list[int]:
    """Page sizes in KiB: the base page, then each huge page size."""
    huge = []
    for entry in _listdir(base):
        if entry.startswith("hugepages-") and entry.endswith("kB"):
            huge.append(int(entry[len("hugepages-") : -2]))
    return [os.sysconf("SC_PAGE_SIZE") // 1024, *sorted(huge)]


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _cells() -> list[int]:
    found = [int(d[4:]) for d in _listdir(NODE) if d.startswith("node") and d[4:].isdigit()]
    return sorted(found)


def _cpus_of(cell: int | None) -> list[int]:
    where = f"{NODE}/node{cell}" if cell is not None else CPU
    return sorted(int(d[3:]) for d in _listdir(where) if d.startswith("cpu") and d[3:].isdigit())


def _cpu_line(cpu: int) -> str:
    top = f"{CPU}/cpu{cpu}/topology"
    return (f"<cpu id='{cpu}' socket_id='{_read(top + '/physical_package_id', '0')}' "
            f"die_id='{_read(top + '/die_id', '0')}' core_id='{_read(top + '/core_id', '0')}' "
            f"siblings='{_read(top + '/thread_siblings_list', str(cpu))}'/>")  # fmt: skip


def _cell_lines(cell: int, pages: list[int]) -> list[str]:
    base = f"{NODE}/node{cell}"
    meminfo = _read(f"{base}/meminfo")
    total = next((int(line.split()[3]) for line in meminfo.splitlines() if "MemTotal" in line), 0)
    lines = [f"<cell id='{cell}'>", f"  <memory unit='KiB'>{total}</memory>"]
    for size in pages:
        if size == pages[0]:
            count = total // size
        else:
            count = int(_read(f"{base}/hugepages/hugepages-{size}kB/nr_hugepages", "0"))
        lines.append(f"  <pages unit='KiB' size='{size}'>{count}</pages>")
    distances = _read(f"{base}/distance").split()
    if distances:
        lines.append("  <distances>")
        lines += [f"    <sibling id='{i}' value='{d}'/>" for i, d in zip(_cells(), distances,
                                                                        strict=False)]  # fmt: skip
        lines.append("  </distances>")
    cpus = _cpus_of(cell)
    lines.append(f"  <cpus num='{len(cpus)}'>")
    lines += ["    " + _cpu_line(c) for c in cpus]
    lines += ["  </cpus>", "</cell>"]
    return lines


def _caches() -> list[str]:
    """Level 3 (and up) caches, one bank per cache id, as libvirt lists them."""
    banks: dict[tuple[str, str], tuple[str, str, str]] = {}
    for cpu in _cpus_of(None):
        base = f"{CPU}/cpu{cpu}/cache"
        for index in _listdir(base):
            level = _read(f"{base}/{index}/level", "0")
            if not index.startswith("index") or int(level) < 3:
                continue
            key = (level, _read(f"{base}/{index}/id", "0"))
            kind = {"Unified": "both", "Data": "data", "Instruction": "code"}.get(
                _read(f"{base}/{index}/type"), "both")  # fmt: skip
            banks[key] = (kind, _read(f"{base}/{index}/size", "0K"),
                          _read(f"{base}/{index}/shared_cpu_list"))  # fmt: skip
    lines = []
    for (level, bank), (kind, size, cpus) in sorted(banks.items()):
        kib = int(size.rstrip("K"))
        value, unit = (kib // 1024, "MiB") if kib % 1024 == 0 else (kib, "KiB")
        lines.append(f"<bank id='{bank}' level='{level}' type='{kind}' size='{value}' "
                     f"unit='{unit}' cpus='{cpus}'/>")  # fmt: skip
    return lines


def _power() -> list[str]:
    states = _read("/sys/power/state").split()
    kinds = [k for k, s in (("suspend_mem", "mem"), ("suspend_disk", "disk")) if s in states]
    if len(kinds) == 2:
        kinds.append("suspend_hybrid")
    if not kinds:
        return ["<power_management/>"]
    return ["<power_management>", *(f"  <{k}/>" for k in kinds), "</power_management>"]


def capabilities(facts: dict[str, object], emulator: str) -> str:
    """The <capabilities> document; `facts` is HostFacts.to_dict() (the cgroup layout)."""
    arch = os.uname().machine
    pages = _page_sizes()
    host = ["<uuid>" + host_uuid() + "</uuid>", "<cpu>", f"  <arch>{arch}</arch>"]
    host += [f"  <pages unit='KiB' size='{p}'/>" for p in pages]
    host += ["</cpu>", *_power()]
    host.append(f"<iommu support='{'yes' if _listdir('/sys/kernel/iommu_groups') else 'no'}'/>")
    cells = _cells()
    host += ["<topology>", f"  <cells num='{max(len(cells), 1)}'>"]
    for cell in cells:
        host += ["    " + line for line in _cell_lines(cell, pages)]
    if not cells:  # no NUMA: libvirt's one made-up cell of every CPU and all memory
        cpus = _cpus_of(None)
        total = _read("/proc/meminfo").split()[1]
        host += ["    <cell id='0'>", f"      <memory unit='KiB'>{total}</memory>",
                 f"      <cpus num='{len(cpus)}'>", *("        " + _cpu_line(c) for c in cpus),
                 "      </cpus>", "    </cell>"]  # fmt: skip
    host += ["  </cells>", "</topology>"]
    caches = _caches()
    if caches:
        host += ["<cache>", *("  " + c for c in caches), "</cache>"]
    host += ["<secmodel>", "  <model>none</model>", "  <doi>0</doi>", "</secmodel>"]
    host += _cgroups(facts)
    out = ["<capabilities>", "", "  <host>", *("    " + line for line in host), "  </host>", ""]
    guests = [(arch, 64 if arch.endswith("64") else 32)]
    if arch in ALT_32BIT:
        guests.append(ALT_32BIT[arch])
    for name, bits in guests:
        out += ["  <guest>", "    <os_type>exe</os_type>", f"    <arch name='{name}'>",
                f"      <wordsize>{bits}</wordsize>", f"      <emulator>{emulator}</emulator>",
                "      <domain type='lxc'/>", "    </arch>", "  </guest>", ""]  # fmt: skip
    return "\n".join([*out, "</capabilities>"]) + "\n"


def _cgroups(facts: dict[str, object]) -> list[str]:
    mode = facts.get("cgroup_mode")
    lines = [f"<nsvirt:cgroups xmlns:nsvirt='{HOST_NS}' mode='{mode}'>"]
    if mode == "v1":
        mounts = facts.get("cgroup_mounts") or {}
        lines += [f"  <nsvirt:controller name='{c}' path='{p}'/>"
                  for c, p in sorted(mounts.items())]  # type: ignore[attr-defined]  # fmt: skip
    else:
        lines.append(f"  <nsvirt:unified path='{facts.get('cgroup2_mount')}'/>")
    return [*lines, "</nsvirt:cgroups>"]


def sysinfo() -> str:
    """libvirt's sysinfo needs the firmware's SMBIOS tables (dmidecode reads them)."""
    if not os.path.exists("/sys/firmware/dmi/tables/DMI"):
        raise Unsupported("Host SMBIOS information is not available")
    fields = {"bios": (("vendor", "bios_vendor"), ("version", "bios_version"),
                       ("date", "bios_date"), ("release", "bios_release")),
              "system": (("manufacturer", "sys_vendor"), ("product", "product_name"),
                         ("version", "product_version"), ("serial", "product_serial"),
                         ("uuid", "product_uuid"), ("sku", "product_sku"),
                         ("family", "product_family"))}  # fmt: skip
    out = ["<sysinfo type='smbios'>"]
    for section, entries in fields.items():
        out.append(f"  <{section}>")
        for name, file in entries:
            value = _read(f"/sys/class/dmi/id/{file}")
            if value:
                out.append(f"    <entry name='{name}'>{_escape(value)}</entry>")
        out.append(f"  </{section}>")
    return "\n".join([*out, "</sysinfo>"]) + "\n"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
