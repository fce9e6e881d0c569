"""Forwarding for a network: an nftables table of nsvirt's own per network (through
`nft -j -f FILE`: JSON in, no shell text to quote), masquerading its IPv4 subnets
(mode nat) and accepting what comes from and returns to its bridge.

nft rather than pyroute2: pyroute2's nftables support covers reading, and building
rule expressions with it would mean writing nftables' netlink encoding by hand.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from typing import Any

from nsvirt.driver.errors import OperationFailed


def table_name(tag: str, network: str) -> str:
    return f"nsvirt-{tag or 'system'}-{network}"


def _nft(commands: list[dict[str, Any]], what: str) -> None:
    nft = shutil.which("nft")
    if nft is None:
        raise OperationFailed(f"{what}: forwarding needs nft (Debian: apt-get install nftables)")
    # a file, not `-f -`: nft opens /dev/stdin by name, which a minimal /dev may lack
    with tempfile.NamedTemporaryFile("w", prefix="nsvirt-nft-", suffix=".json") as f:
        json.dump({"nftables": commands}, f)
        f.flush()
        proc = subprocess.run([nft, "-j", "-f", f.name], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise OperationFailed(f"{what}: nft: {proc.stderr.strip() or proc.returncode}")


def _prefix(field: str, network: Any, op: str = "==") -> dict[str, Any]:
    proto = "ip" if network.version == 4 else "ip6"
    return {
        "match": {
            "op": op,
            "left": {"payload": {"protocol": proto, "field": field}},
            "right": {"prefix": {"addr": str(network.network_address), "len": network.prefixlen}},
        }
    }


def _iface(key: str, name: str) -> dict[str, Any]:
    return {"match": {"op": "==", "left": {"meta": {"key": key}}, "right": name}}


def add(
    table: str, bridge: str, mode: str, subnets: list[Any], ports: tuple[int, int] | None
) -> None:
    """Create the table: masquerade (mode nat, IPv4) and forward accepts (nat, route)."""
    t = {"family": "inet", "table": table}
    cmds: list[dict[str, Any]] = [
        {"add": {"table": {"family": "inet", "name": table}}},
        {
            "add": {
                "chain": {
                    **t,
                    "name": "forward",
                    "type": "filter",
                    "hook": "forward",
                    "prio": 0,
                    "policy": "accept",
                }
            }
        },
        {
            "add": {
                "rule": {
                    **t,
                    "chain": "forward",
                    "expr": [_iface("iifname", bridge), {"accept": None}],
                }
            }
        },
    ]
    back = [_iface("oifname", bridge)]
    if mode == "nat":  # only replies come back in through NAT
        back.append(
            {
                "match": {
                    "op": "in",
                    "left": {"ct": {"key": "state"}},
                    "right": ["established", "related"],
                }
            }
        )
    cmds.append({"add": {"rule": {**t, "chain": "forward", "expr": [*back, {"accept": None}]}}})
    v4 = [n for n in subnets if n.version == 4]
    if mode == "nat" and v4:
        cmds.append(
            {
                "add": {
                    "chain": {
                        **t,
                        "name": "postrouting",
                        "type": "nat",
                        "hook": "postrouting",
                        "prio": 100,
                        "policy": "accept",
                    }
                }
            }
        )
        for net in v4:
            match = [_prefix("saddr", net), _prefix("daddr", net, "!=")]
            if ports:
                for l4 in ("tcp", "udp"):
                    proto = {
                        "match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": l4}
                    }
                    masq = {"masquerade": {"port": {"range": list(ports)}}}
                    cmds.append(
                        {
                            "add": {
                                "rule": {**t, "chain": "postrouting", "expr": [*match, proto, masq]}
                            }
                        }
                    )
            cmds.append(
                {
                    "add": {
                        "rule": {
                            **t,
                            "chain": "postrouting",
                            "expr": [*match, {"masquerade": None}],
                        }
                    }
                }
            )
    _nft(cmds, f"cannot add the nftables table {table}")


def remove(table: str) -> None:
    """Delete the table (and every rule in it); a table that is gone is fine."""
    if shutil.which("nft") is None or not exists(table):
        return
    _nft(
        [{"delete": {"table": {"family": "inet", "name": table}}}],
        f"cannot delete the nftables table {table}",
    )


def exists(table: str) -> bool:
    nft = shutil.which("nft")
    if nft is None:
        return False
    proc = subprocess.run([nft, "-j", "list", "tables"], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        return False
    items = json.loads(proc.stdout or "{}").get("nftables", [])
    return any(i.get("table", {}).get("name") == table for i in items)


def enable_forwarding(ipv6: bool) -> None:
    """The sysctls a router needs (left on, as libvirt leaves them)."""
    paths = ["/proc/sys/net/ipv4/ip_forward"]
    if ipv6:
        paths.append("/proc/sys/net/ipv6/conf/all/forwarding")
    for path in paths:
        with open(path, "w") as f:
            f.write("1")
