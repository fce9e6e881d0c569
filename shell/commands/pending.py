"""Commands registered now and answered with virsh's "not supported" error until
their driver part exists: nsvirsh never pretends."""

from __future__ import annotations

from nsvirt.shell.commands import unsupported

# name, summary, libvirt API, which domains complete
PENDING: tuple[tuple[str, str, str, str], ...] = ()

for _name, _summary, _api, _domains in PENDING:
    unsupported(_name, _summary, _api, domains=_domains)
