"""DHCP for a network: dnsmasq from Debian's dnsmasq-base (the binary alone, as libvirt
uses it; the `dnsmasq` package would start a host-wide service), one process per
network, DNS off (port=0), its files in the network's own directory.

dnsmasq drops to `nobody` once its sockets, pid file and lease file are open.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from nsvirt.driver.errors import OperationFailed
from nsvirt.driver.runtime import procstat

START_TIMEOUT = 30.0  # a bound on dnsmasq's start (it forks once it is ready)


def binary(network: str) -> str:
    path = shutil.which("dnsmasq") or (
        "/usr/sbin/dnsmasq" if os.path.exists("/usr/sbin/dnsmasq") else None
    )
    if path is None:
        raise OperationFailed(
            f"network '{network}' offers DHCP, which needs dnsmasq "
            "(Debian: apt-get install dnsmasq-base)"
        )
    return path


def config(net: Any, bridge: str, files: Path) -> str:
    """dnsmasq's configuration for `net` (a NetworkDef) on `bridge`."""
    lines = [
        f"# made by nsvirt for the network {net.name}; rewritten at each start",
        "strict-order",
        "port=0",
        "bind-dynamic",
        "except-interface=lo",
        f"interface={bridge}",
        f"pid-file={files / 'pid'}",
        f"dhcp-leasefile={files / 'leases'}",
        f"log-facility={files / 'log'}",
        "dhcp-no-override",
        "dhcp-authoritative",
        "user=nobody",
        "group=nogroup",
    ]
    size = 0
    for ip in net.ips:
        mask = ip.network.netmask if ip.family == "ipv4" else ip.prefix
        for start, end in ip.ranges:
            lines.append(f"dhcp-range={start},{end},{mask}")
            size += int(ipaddress.ip_address(end)) - int(ipaddress.ip_address(start)) + 1
        for host in ip.hosts:
            fields = [f for f in (host.mac, host.ip, host.name) if f]
            lines.append(f"dhcp-host={','.join(fields)}")
    lines.append(f"dhcp-lease-max={max(size, 1)}")
    return "\n".join(lines) + "\n"


def start(net: Any, bridge: str, files: Path) -> dict[str, int]:
    """Start dnsmasq; return its pid and start time (what stop checks)."""
    exe = binary(net.name)
    files.mkdir(mode=0o700, exist_ok=True)
    (files / "dnsmasq.conf").write_text(config(net, bridge, files))
    for stale in ("pid", "leases"):
        (files / stale).unlink(missing_ok=True)
    proc = subprocess.run(
        [exe, f"--conf-file={files / 'dnsmasq.conf'}"],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        cwd="/",
    )
    if proc.returncode != 0:  # dnsmasq reports its start's errors in its exit status
        raise OperationFailed(
            f"cannot start dnsmasq for the network '{net.name}': "
            f"{proc.stderr.strip() or proc.returncode}"
        )
    deadline = time.monotonic() + START_TIMEOUT
    while not (files / "pid").exists():  # written before the parent exits; a bound, not a delay
        if time.monotonic() > deadline:
            raise OperationFailed(f"dnsmasq for the network '{net.name}' wrote no pid file")
        time.sleep(0.01)
    pid = int((files / "pid").read_text())
    return {"pid": pid, "start": procstat.start_time(pid)}


def stop(server: dict[str, int] | None) -> None:
    if server:
        procstat.kill_and_wait(int(server["pid"]), int(server["start"]))


def leases(files: Path) -> list[dict[str, str]]:
    """dnsmasq's leases: expiry, mac, ip, hostname of each (a line each in its file)."""
    try:
        text = (files / "leases").read_text()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            out.append(
                {
                    "expiry": fields[0],
                    "mac": fields[1].lower(),
                    "ip": fields[2],
                    "hostname": fields[3],
                }
            )
    return out
