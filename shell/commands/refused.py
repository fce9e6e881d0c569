"""Commands libvirt's LXC driver has no call for: virsh looks the domain up, then
says the driver does not support the call (and for some first what failed), so
scripts that try them fail as they did against libvirt-lxc, not with an unknown
command."""

from __future__ import annotations

import argparse

from nsvirt.driver.errors import NoSupport
from nsvirt.shell.commands import Context, command, domain_arg, domain_of
from nsvirt.shell.report import CommandFailed

# name, summary, libvirt API, virsh's first error line ({name}, {file}) or "", and
# the positional arguments after the domain
REFUSED = (
    ("save", "save a domain state to a file", "virDomainSave",
     "Failed to save domain '{name}' to {file}", ("file",)),
    ("managedsave", "managed save of a domain state", "virDomainManagedSave",
     "Failed to save domain '{name}' state", ()),
    ("setvcpus", "change number of virtual CPUs", "virDomainSetVcpus", "", ("count",)),
    ("vcpupin", "control or query domain vcpu affinity", "virDomainGetVcpuPinInfo", "",
     ("vcpu", "cpulist")),
    ("reset", "reset a domain", "virDomainReset", "Failed to reset domain '{name}'", ()),
    ("send-key", "Send keycodes to the guest", "virDomainSendKey", "", ("keycode",)),
    ("domtime", "domain time", "virDomainGetTime", "", ()),
    ("domrename", "rename a domain", "virDomainRename", "", ("new-name",)),
    ("screenshot", "take a screenshot of a current domain console and store it into a file",
     "virDomainScreenshot", "", ("file",)),
    ("dompmsuspend", "suspend a domain gracefully using power management functions",
     "virDomainPMSuspendForDuration", "", ("target",)),
)  # fmt: skip


def _register(name: str, summary: str, api: str, preamble: str, args: tuple[str, ...]) -> None:
    def configure(p: argparse.ArgumentParser) -> None:
        domain_arg(p)
        for a in args:
            p.add_argument(a, nargs="*" if a in ("keycode", "cpulist") else "?")
        for flag in ("--live", "--config", "--current", "--maximum", "--guest", "--hotpluggable",
                     "--bypass-cache", "--running", "--paused", "--verbose", "--now", "--pretty",
                     "--sync"):  # fmt: skip
            p.add_argument(flag, action="store_true", help=argparse.SUPPRESS)

    def run(ctx: Context, ns: argparse.Namespace) -> int:
        dom = ctx.lookup(domain_of(ns, name))  # virsh finds the domain first
        error = NoSupport(api)
        if preamble:
            raise CommandFailed(preamble.format(name=dom.name, file=getattr(ns, "file", "")),
                                error)  # fmt: skip
        raise error

    command(name, summary, configure, domains="all")(run)


for _entry in REFUSED:
    _register(*_entry)
