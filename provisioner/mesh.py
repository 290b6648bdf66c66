"""The hybrid network: which boards the WireGuard mesh can reach, and who may send it packets.

k3s's "distributed hybrid or multicloud cluster" runs flannel over WireGuard between nodes that share
no private network. Its one demand on the nodes: "nodes must each have a unique IP through which they
can be reached" (``node-external-ip``), since every node sends its WireGuard packets (UDP 51820 over
IPv4, 51821 over IPv6) straight to every other node's external address. A board with a private
address (behind NAT: RFC 1918, carrier-grade NAT, link-local), one reached only through the front-end
(``proxy_jump``), one named by a host name (``node-external-ip`` takes an IP) or one sharing its
address with another board (several boards behind one router) has no such address, and the mesh
cannot carry its pod traffic. ``validate`` refuses such a template, naming the board and why; k3s's
other answer, its Tailscale integration (``vpn-auth``), is not wired here (README, "Hybrid
clusters").

Pure functions: ``check_hybrid_boards`` for the template checks, ``wireguard_sources`` for the
security group (the WireGuard ports open to the boards' addresses only, never to the internet), and
``node_wireguard_source`` for a cloud node's own public address once it has one: with
``flannel-external-ip`` cloud nodes reach each other at their public addresses too, and a cloud's
"same security group" rule matches private addresses only, so the engine (``create``, ``scale``) and
the elasticity daemon open the port to each cloud node they start.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator

from provisioner.errors import TemplateError
from provisioner.spec import BoardSpec, ClusterSpec

WIREGUARD_PORT = 51820
"""flannel's wireguard-native backend over IPv4 (k3s's inbound rules: UDP 51820, IPv6: 51821)."""
WIREGUARD_PORT_V6 = 51821

_NOT_REACHABLE = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # RFC 1918: behind NAT
    "100.64.0.0/10",  # carrier-grade NAT (RFC 6598)
    "169.254.0.0/16", "127.0.0.0/8", "0.0.0.0/8",  # link-local, loopback, "this network"
    "fc00::/7", "fe80::/10", "::1/128",  # unique local, link-local, loopback
))
"""Addresses no other site can send packets to. Documentation ranges (192.0.2.0/24, ...) pass: the
shipped templates use them as stand-ins for public addresses."""


def is_hybrid(spec: ClusterSpec) -> bool:
    """Edge boards and cloud machines in one cluster (the deployment record's ``hybrid`` agrees)."""
    providers = {g.provider for g in spec.groups}
    return "fleet" in providers and bool(providers - {"fleet"})


def hybrid_boards(spec: ClusterSpec) -> Iterator[BoardSpec]:
    for group in spec.groups:
        if group.provider == "fleet":
            yield from group.boards


def unreachable_reason(board: BoardSpec) -> str | None:
    """Why the mesh cannot reach ``board`` at its address, or None if it can."""
    if board.proxy_jump:
        return ("it is reached through the front-end (proxy_jump), so the cloud nodes cannot send it "
                "WireGuard packets")
    try:
        address = ipaddress.ip_address(board.address)
    except ValueError:
        return (f"its address {board.address!r} is a host name; k3s's node-external-ip takes the IP "
                "address other nodes reach it at")
    if any(address in network for network in _NOT_REACHABLE):
        return (f"its address {board.address} is private (behind NAT), so the cloud nodes cannot "
                "send it WireGuard packets")
    return None


def check_hybrid_boards(spec: ClusterSpec, where: Callable[[str], str]) -> None:
    """In a hybrid cluster every board needs a unique IP the other nodes reach it at; TemplateError
    naming the first board that has none (``where(node)`` names the file that defines it)."""
    if not is_hybrid(spec):
        return
    seen: dict[str, str] = {}
    for board in hybrid_boards(spec):
        reason = unreachable_reason(board)
        if reason is None and board.address in seen:
            reason = (f"it shares its address {board.address} with board {seen[board.address]}; each "
                      "node needs a unique IP through which the others reach it")
        if reason is not None:
            raise TemplateError(
                f"board {board.name} cannot join a cluster of edge boards and cloud machines: {reason}. "
                "Give it a public address of its own, or leave it out of the hybrid template",
                where=where(board.name), culprit=f"node {board.name}")
        seen[board.address] = board.name


def node_wireguard_source(address: str) -> tuple[int, str] | None:
    """(port, CIDR) that opens WireGuard to one node's address, None if it is no IP address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    return (WIREGUARD_PORT, f"{ip}/32") if ip.version == 4 else (WIREGUARD_PORT_V6, f"{ip}/128")


def wireguard_sources(spec: ClusterSpec) -> list[tuple[int, str]]:
    """(port, CIDR) pairs the security group opens WireGuard to: each board's own address, the IPv4
    port for an IPv4 board and the IPv6 one for an IPv6 board. Empty unless the cluster is hybrid.
    Cloud nodes reach each other through the group's own all-traffic rule."""
    if not is_hybrid(spec):
        return []
    pairs: list[tuple[int, str]] = []
    for board in hybrid_boards(spec):
        pair = node_wireguard_source(board.address)  # None: a host name, refused at validate
        if pair is not None and pair not in pairs:
            pairs.append(pair)
    return pairs
