"""The topology's network: a bridge in the root namespace and one network namespace per host.

Each host (``drf-app1`` ...) has a veth whose other end is on the bridge, ``lo`` up and a
default route via the bridge's address, where every shared service listens. Only ``ip``
(iproute2) is used; everything here is idempotent and tolerates what is already gone.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess

BRIDGE = "drfbr0"
PREFERRED = ipaddress.IPv4Network("10.77.0.0/24")
# Each host's namespace and the last byte of its address.
HOSTS = {"drf-app1": 11, "drf-app2": 12, "drf-app3": 13, "drf-work1": 21, "drf-work2": 22}


def ip(*args: str, check: bool = True) -> str:
    """Run ``ip args``; its output (an error names the command and what it printed)."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def networks_in_use() -> list[ipaddress.IPv4Network]:
    """The IPv4 networks of the root namespace's addresses and routes."""
    found = []
    for entry in json.loads(ip("-j", "-4", "addr") or "[]"):
        for address in entry.get("addr_info", []):
            found.append(ipaddress.IPv4Interface(f"{address['local']}/{address['prefixlen']}"))
    used = [interface.network for interface in found]
    for route in json.loads(ip("-j", "-4", "route") or "[]"):
        if route["dst"] != "default":
            used.append(ipaddress.IPv4Network(route["dst"], strict=False))
    return used


def choose_network() -> ipaddress.IPv4Network:
    """10.77.0.0/24, or the first 10.77.x.0/24 that no address or route overlaps."""
    used = networks_in_use()
    for candidate in PREFERRED.supernet(new_prefix=16).subnets(new_prefix=24):
        if not any(candidate.overlaps(network) for network in used):
            return candidate
    raise RuntimeError("no free /24 in 10.77.0.0/16 for the topology's bridge")


def addresses(network: ipaddress.IPv4Network) -> tuple[str, dict[str, str]]:
    """The bridge's address and each host's, in ``network``."""
    return str(network[1]), {name: str(network[last]) for name, last in HOSTS.items()}


def exists() -> bool:
    """Whether the bridge or any of the namespaces is there."""
    namespaces = {line.split()[0] for line in ip("netns", "list").splitlines() if line}
    return bool(ip("link", "show", BRIDGE, check=False)) or bool(namespaces & set(HOSTS))


def create(network: ipaddress.IPv4Network) -> None:
    """The bridge with the network's first address, and every host on it."""
    gateway, hosts = addresses(network)
    ip("link", "add", BRIDGE, "type", "bridge")
    ip("addr", "add", f"{gateway}/{network.prefixlen}", "dev", BRIDGE)
    ip("link", "set", BRIDGE, "up")
    for name, address in hosts.items():
        veth = f"veth-{name}"
        ip("netns", "add", name)
        ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name)
        ip("link", "set", veth, "master", BRIDGE, "up")
        ip("-n", name, "addr", "add", f"{address}/{network.prefixlen}", "dev", "eth0")
        ip("-n", name, "link", "set", "lo", "up")
        ip("-n", name, "link", "set", "eth0", "up")
        ip("-n", name, "route", "add", "default", "via", gateway)


def pids(name: str) -> list[int]:
    """The processes running in namespace ``name`` (none if it is gone)."""
    return [int(pid) for pid in ip("netns", "pids", name, check=False).split()]


def destroy() -> None:
    """Remove the namespaces (their processes must be gone), the veths and the bridge."""
    for name in HOSTS:
        ip("netns", "delete", name, check=False)
        ip("link", "delete", f"veth-{name}", check=False)  # gone with its peer, normally
    ip("link", "delete", BRIDGE, check=False)
