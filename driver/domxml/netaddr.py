"""Prefixes of interface addresses and routes given without one, as libvirt takes
them (virSocketAddrGetIPPrefix): used by the checks and by the launch plan."""

from __future__ import annotations

import ipaddress


def default_prefix(address: str) -> int:
    """IPv4 by its class (A /8, B /16, C /24), IPv6 /64; the unspecified address
    (a default route) 0."""
    ip = ipaddress.ip_address(address)
    if ip.is_unspecified:
        return 0
    if ip.version == 6:
        return 64
    first = int(ip) >> 24
    return 8 if first < 128 else 16 if first < 192 else 24


def address_prefix(address: str, prefix: int | None) -> int:
    return prefix if prefix is not None else default_prefix(address)


def route_prefix(address: str, prefix: int | None, netmask: str | None) -> int:
    if prefix is not None:
        return prefix
    if netmask:
        return ipaddress.ip_network(f"0.0.0.0/{netmask}").prefixlen
    return default_prefix(address)
