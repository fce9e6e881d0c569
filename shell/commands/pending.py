"""Commands registered now and answered with virsh's "not supported" error until
their driver part exists: nsvirsh never pretends."""

from __future__ import annotations

from nsvirt.shell.commands import unsupported

# name, summary, libvirt API, which domains complete
PENDING = (
    (
        "domxml-from-native",
        "Convert native config to domain XML",
        "virConnectDomainXMLFromNative",
        "",
    ),
    ("setmem", "change memory allocation", "virDomainSetMemoryFlags", "all"),
    ("setmaxmem", "change maximum memory limit", "virDomainSetMaxMemory", "all"),
    ("memtune", "Get or set memory parameters", "virDomainGetMemoryParameters", "all"),
    ("schedinfo", "show/set scheduler parameters", "virDomainGetSchedulerType", "all"),
    ("blkiotune", "Get or set blkio parameters", "virDomainGetBlkioParameters", "all"),
    ("cpu-stats", "show domain cpu statistics", "virDomainGetCPUStats", "active"),
    ("event", "Domain Events", "virConnectDomainEventRegisterAny", ""),
)

for _name, _summary, _api, _domains in PENDING:
    unsupported(_name, _summary, _api, domains=_domains)
