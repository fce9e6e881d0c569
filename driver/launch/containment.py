"""How a domain is contained on this host, and why: pure, from the definition and the
host's facts (docs/containment.md).

    unprivileged  no <idmap>: a user namespace with 65536 host ids allocated at start,
                  the rootfs and bind mounts shown through idmapped mounts (files keep
                  their host owners; root inside writes as host root on disk, and is
                  nobody anywhere else)
    idmap         an <idmap> (libvirt's meaning: the rootfs is already owned by that
                  range), idmapped mounts only if <nsvirt:idmapped-mounts/> asks
    privileged    <nsvirt:privileged/>: libvirt-lxc's default, root inside is root on
                  the host; hardened by the same capability drops and seccomp filter

Every mode gets the seccomp filter below; remounts that would clear read-only are
refused where something is read-only that only the filter protects: always when
privileged, and in a user namespace when the domain has a read-only root or bind.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from nsvirt.driver.domxml import model as m
from nsvirt.driver.errors import Unsupported
from nsvirt.driver.launch.hostfacts import HostFacts
from nsvirt.driver.records import Record

AUTO_ID_COUNT = 65536  # ids 0-65535 inside: what a distribution's users and groups need

# What the filter denies, and the errno each returns. ENOSYS where programs fall
# back when a call is missing: keyctl (runc, systemd) and the new mount API
# (libmount then uses mount(2), whose flags the filter can see).
SECCOMP_DENY = (
    ("open_by_handle_at", "EPERM"),  # reads any host file by handle (CVE-2014-3519's shocker)
    ("kexec_load", "EPERM"), ("kexec_file_load", "EPERM"),
    ("init_module", "EPERM"), ("finit_module", "EPERM"), ("delete_module", "EPERM"),
    ("iopl", "EPERM"), ("ioperm", "EPERM"),
    ("swapon", "EPERM"), ("swapoff", "EPERM"),
    ("acct", "EPERM"), ("quotactl", "EPERM"), ("lookup_dcookie", "EPERM"),
    ("perf_event_open", "EPERM"), ("userfaultfd", "EPERM"), ("bpf", "EPERM"),
    ("vm86", "EPERM"), ("vm86old", "EPERM"),
    ("keyctl", "ENOSYS"), ("add_key", "ENOSYS"), ("request_key", "ENOSYS"),  # not namespaced
    ("open_tree", "ENOSYS"), ("move_mount", "ENOSYS"), ("fsopen", "ENOSYS"),
    ("fsconfig", "ENOSYS"), ("fsmount", "ENOSYS"), ("fspick", "ENOSYS"),
    ("mount_setattr", "ENOSYS"),
)  # fmt: skip
DENIABLE = frozenset(name for name, _ in SECCOMP_DENY)  # = nsvirt.xsd's filteredSyscall

IDMAPPED_MOUNTS_SINCE = (5, 12)  # mount_setattr(MOUNT_ATTR_IDMAP)
FILTER_ARCHES = ("x86_64", "aarch64")  # runtime/seccomp.py's tables (a unit test checks)


class Containment(Record):
    mode: str  # unprivileged | idmap | privileged
    why: str  # one sentence for dominfo --json and nsvirt-xml-validate --explain
    auto_ids: int  # host ids to allocate at start (0: none, or the <idmap>'s)
    idmapped_mounts: bool  # the rootfs and binds are shown through idmapped mounts
    seccomp: tuple[tuple[str, str], ...]  # (syscall, errno name) denied
    remount_guard: bool  # mount(2) may not remount without MS_RDONLY
    no_new_privs: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "mode": self.mode, "why": self.why, "auto_ids": self.auto_ids,
            "idmapped_mounts": self.idmapped_mounts,
            "seccomp_denied": [name for name, _ in self.seccomp],
            "remount_guard": self.remount_guard, "no_new_privs": self.no_new_privs,
        }  # fmt: skip


def _has_readonly_mount(dom: m.DomainDef) -> bool:
    return any(fs.readonly for fs in dom.devices.filesystems)


def decide(dom: m.DomainDef) -> Containment:
    """The domain's containment, from its definition alone."""
    c = dom.containment
    seccomp = tuple((name, err) for name, err in SECCOMP_DENY if name not in c.seccomp_allow)
    if c.privileged:
        mode, why = (
            "privileged",
            (
                "<nsvirt:privileged/> opts out of the user namespace: root inside is root on "
                "the host, held back by capability drops, the seccomp filter and the cgroup "
                "namespace only"
            ),
        )
        ids, idmapped, guard = 0, False, True
    elif dom.uid_map:
        why = (
            "the domain gives an <idmap>: its ids map as written (libvirt's meaning: the "
            "rootfs is owned by that range)"
        )
        if c.idmapped_mounts:
            why += "; <nsvirt:idmapped-mounts/> shows it through idmapped mounts"
        mode = "idmap"
        ids, idmapped, guard = 0, c.idmapped_mounts, _has_readonly_mount(dom)
    else:
        mode, why = (
            "unprivileged",
            (
                f"no <idmap>: a user namespace with {AUTO_ID_COUNT} host ids allocated at start, "
                "the rootfs and bind mounts shown through idmapped mounts, so files keep their "
                "owners; <nsvirt:privileged/> opts out"
            ),
        )
        ids, idmapped, guard = AUTO_ID_COUNT, True, _has_readonly_mount(dom)
    return Containment(mode, why, ids, idmapped, seccomp, guard, c.no_new_privs)


def kernel_version(release: str) -> tuple[int, int]:
    found = re.match(r"(\d+)\.(\d+)", release)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def check_host(containment: Containment, facts: HostFacts) -> None:
    """Can this kernel contain the domain so? (Whether each filesystem can be idmapped
    is learnt at start, by trying.)"""
    if (containment.seccomp or containment.remount_guard) and facts.arch not in FILTER_ARCHES:
        raise Unsupported(
            f"nsvirt has no seccomp filter for the {facts.arch} architecture (it has for "
            f"{', '.join(FILTER_ARCHES)})"
        )
    if containment.mode == "privileged":
        return
    opt_out = "opt out with <nsvirt:privileged/> in <metadata><nsvirt:config>"
    if not facts.user_namespaces:
        raise Unsupported(
            f"the domain runs in a user namespace ({containment.mode}), and this host has "
            f"them off (user.max_user_namespaces is 0); enable them, or {opt_out}"
        )
    if containment.idmapped_mounts and kernel_version(facts.kernel) < IDMAPPED_MOUNTS_SINCE:
        raise Unsupported(
            "the domain's rootfs is shown through idmapped mounts, which need Linux 5.12 or "
            f"later; this host runs {facts.kernel}. Give an <idmap> whose range owns the "
            f"rootfs, or {opt_out}"
        )


def idmapped_sources(dom: m.DomainDef) -> list[str]:
    """The host paths a start shows through idmapped mounts (the host's own root never)."""
    return [fs.source for fs in dom.devices.filesystems
            if fs.type == "mount" and fs.source and fs.source != "/"]  # fmt: skip


def report(dom: m.DomainDef, facts: HostFacts,
           can_idmap: Callable[[str], str | None] | None = None,
           reachable: Callable[[str], bool] | None = None) -> dict[str, object]:  # fmt: skip
    """What dominfo --json and nsvirt-xml-validate --explain say: the mode and why,
    and whether this host can run it so. `can_idmap(path)` (None: not checked, it
    needs root) tries an idmapped mount of each source and says why not;
    `reachable(path)`: can any host user get to that path?"""
    c = decide(dom)
    out = c.to_dict()
    warnings = []
    if c.idmapped_mounts and reachable is not None:
        # root inside writes these as host root: a setuid binary it makes would be one
        exposed = [path for path in idmapped_sources(dom) if reachable(path)]
        if exposed:
            warnings.append(
                f"any host user can reach {', '.join(exposed)}, and what root inside makes "
                "there is host root's (a setuid binary, say): keep a directory above at "
                "mode 0700"
            )
    out["warnings"] = warnings
    problems = []
    try:
        check_host(c, facts)
    except Unsupported as e:
        problems.append(str(e).removeprefix("unsupported configuration: "))
    if c.idmapped_mounts and not problems and can_idmap is not None:
        problems += [why for why in map(can_idmap, idmapped_sources(dom)) if why]
    out["runs_here"] = not problems
    out["why_not"] = "; ".join(problems) or None
    out["checked_filesystems"] = can_idmap is not None and c.idmapped_mounts
    return out
