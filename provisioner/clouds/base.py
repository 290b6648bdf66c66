"""The cloud driver contract.

Every resource a driver creates for a deployment carries the tags ``oscar-deploy:deployment=<id>``
and ``oscar-deploy:group=<group>`` (metadata on OpenStack) and a name starting with
``oscar-deploy-<id>-``. ``list_nodes`` and ``sweep`` find resources by either, because some
resources cannot carry tags everywhere (key pairs, security groups) or lost them to a crash between
create and tag. A resource with neither is never touched.

Errors: drivers raise the typed errors of ``provisioner.errors`` that the engine branches on:
``CapacityError`` (fall back to the next size, then zone), ``Throttled`` (retry with backoff),
``NotFound``, ``AuthError``; anything else from the cloud becomes ``CloudError`` with the cloud's
message (never the credentials).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Literal, Protocol

from provisioner.sinks import LONGEST_SUFFIX, short_hash

TAG_DEPLOYMENT = "oscar-deploy:deployment"
TAG_GROUP = "oscar-deploy:group"
NAME_PREFIX = "oscar-deploy-"

NodeState = Literal["pending", "running", "stopping", "stopped", "terminated", "unknown"]
ResourceKind = Literal["instance", "volume", "address", "security_group", "key_pair"]


def resource_prefix(deployment: str) -> str:
    """Every resource name of a deployment starts with this."""
    return f"{NAME_PREFIX}{deployment}-"


def resource_name(deployment: str, *parts: str) -> str:
    """``oscar-deploy-<id>-<part>-<part>``, lowercased and limited to what every cloud accepts.

    Names are never cut where that would make two alike: when all but the last part would leave no
    room for a 7-character last part (an index, ``data``, ``address``), that head is shortened and
    ends with a hash of itself, so the last part (a node's index) always survives whole."""
    cleaned = [re.sub(r"[^a-z0-9-]+", "-", p.lower()).strip("-") for p in parts if p]
    head = resource_prefix(deployment) + "-".join(cleaned[:-1])
    room = 63 - 1 - LONGEST_SUFFIX
    if len(cleaned) > 1 and len(head) > room:
        head = f"{head[:room - 7].rstrip('-')}-{short_hash(head)}"
    tail = cleaned[-1] if cleaned else ""
    if len(cleaned) > 1:
        return f"{head}-{tail}"[:63].rstrip("-")
    return f"{head}{tail}"[:63].rstrip("-")


def deployment_tags(deployment: str, group: str | None = None) -> dict[str, str]:
    tags = {TAG_DEPLOYMENT: deployment}
    if group:
        tags[TAG_GROUP] = group
    return tags


def belongs_to(deployment: str, name: str | None, tags: Mapping[str, str] | None) -> bool:
    """Whether a cloud resource is the deployment's: by tag, or by name prefix. Nothing else is."""
    if tags and tags.get(TAG_DEPLOYMENT) == deployment:
        return True
    return bool(name) and name.startswith(resource_prefix(deployment))


@dataclasses.dataclass(frozen=True)
class FirewallRule:
    """One ingress rule. ``source`` is a CIDR, or ``"cluster"`` for the deployment's own group."""

    protocol: Literal["tcp", "udp", "icmp", "-1"]
    from_port: int
    to_port: int
    source: str
    description: str = ""


@dataclasses.dataclass(frozen=True)
class NodeRequest:
    """One machine to create. ``name`` is already ``resource_name(deployment, group, index)``."""

    deployment: str
    group: str
    name: str
    size: str
    """Instance type (EC2) or flavor id/name (OpenStack)."""
    image: str
    """Image id, already resolved."""
    key_name: str
    security_group: str
    """The security group's id."""
    user_data: str | None = None
    public_ip: bool = False
    zone: str | None = None
    disk_gib: int | None = None
    network: str | None = None
    """Subnet id (EC2) or network id/name (OpenStack); None: the default VPC's subnet of ``zone`` /
    the project's own network."""
    role: str | None = None
    """The group's role (``front-end``, ``worker``): EC2 gives a front-end a larger root volume."""
    instance_profile: str | None = None
    """An IAM instance profile's name (EC2 only: the front-end's, for the elasticity daemon)."""


@dataclasses.dataclass(frozen=True)
class CloudNode:
    """A machine as the cloud lists it."""

    id: str
    name: str
    deployment: str
    group: str | None
    state: NodeState
    size: str | None = None
    public_ips: tuple[str, ...] = ()
    private_ips: tuple[str, ...] = ()
    zone: str | None = None
    created_at: float | None = None


@dataclasses.dataclass(frozen=True)
class CloudResource:
    """Anything a sweep found and removed (or would remove)."""

    kind: ResourceKind
    id: str
    name: str | None


class CloudDriver(Protocol):
    """What the engine and the elastic daemon's cloud power manager need from a cloud.

    Implementations are thread-safe for concurrent ``create_node`` calls (the engine creates nodes
    in parallel). Every method is idempotent where the cloud allows it: calling ``ensure_*`` twice
    returns the same resource, ``destroy_node`` of a gone node is not an error.
    """

    provider: str
    region: str

    def ensure_key_pair(self, deployment: str, public_key: str) -> str:
        """Import the deployment's public key (once); return the key pair's name."""
        ...

    def ensure_security_group(self, deployment: str, rules: Sequence[FirewallRule], *,
                              revoke_others: bool = False) -> str:
        """Create (once) the deployment's security group with these ingress rules; return its id.
        ``revoke_others``: also revoke the group's CIDR rules not among ``rules`` (``create
        --update`` narrowing ``admin_cidr``); rules between the group's members stay."""
        ...

    def resolve_image(self, distribution: str, version: str, arch: str, explicit: str | None) -> str:
        """The image id for an OS, newest first; ``explicit`` wins if it exists. NotFound otherwise."""
        ...

    def sizes_that_fit(self, cpus: int, memory_mib: int, arch: str = "amd64", disk_gib: int | None = None,
                       explicit: str | None = None) -> list[str]:
        """Sizes (EC2 types, OpenStack flavor names) that give at least this, cheapest first (OpenStack
        has no prices: fewest vCPUs, then RAM, then disk), so the engine can fall back on a
        ``CapacityError``; only ``explicit`` when given (NotFound if the cloud has no such size)."""
        ...

    def list_zones(self) -> list[str]:
        """The zones a machine can be placed in, by name, in the order the engine falls back to them
        after a ``CapacityError`` in the default zone (``NodeRequest.zone=None``); ``[]`` when the
        cloud has no zones to choose from (or the driver is pinned to one subnet)."""
        ...

    def create_node(self, request: NodeRequest) -> CloudNode:
        """Create one tagged, named machine and return at once (it may still be pending)."""
        ...

    def list_nodes(self, deployment: str) -> list[CloudNode]:
        """Every machine of the deployment that is not terminated, found by tag or name prefix."""
        ...

    def destroy_node(self, node: CloudNode) -> None:
        """Terminate a machine; a machine already gone is not an error."""
        ...

    def ensure_volume(self, deployment: str, group: str, size_gib: int, zone: str | None) -> str:
        """Create (once) the front-end's tagged data volume; return its id."""
        ...

    def attach_volume(self, volume_id: str, node: CloudNode) -> None: ...

    def ensure_public_address(self, deployment: str, node: CloudNode) -> str:
        """Give a node a public address (EC2: it has one at launch; OpenStack: a floating IP)."""
        ...

    def sweep(self, deployment: str, *, keep_data: bool = False) -> list[CloudResource]:
        """Remove everything of the deployment (instances first, then addresses, volumes unless
        ``keep_data``, security groups, key pairs), wait until gone, and say what was removed."""
        ...
