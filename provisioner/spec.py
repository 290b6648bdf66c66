"""ClusterSpec: what a template asks for, as plain data.

``provisioner.template`` builds it from TOSCA (tosca-parser + our own checks); ``provisioner.plan``
turns it into a Plan (sizes, images, rules, cost). Nothing here knows TOSCA or any cloud, so the
planner and its tests can build specs by hand.

Units are the project's one vocabulary: ``cpus`` (may be fractional only for pods, whole here),
``memory_mib``, ``disk_gib``. Architectures are ``amd64`` or ``arm64``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, Literal

NODE_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
"""A machine's hostname and Kubernetes node name: one lowercase DNS label (boards and cloud workers)."""

Role = Literal["front-end", "worker", "edge"]
Provider = Literal["aws", "openstack", "fleet"]
Arch = Literal["amd64", "arm64"]


@dataclasses.dataclass(frozen=True)
class MachineSpec:
    """What one machine of a group needs (the TOSCA ``host`` and ``os`` capabilities)."""

    cpus: int
    memory_mib: int
    arch: Arch = "amd64"
    gpus: int = 0
    disk_gib: int | None = None
    instance_type: str | None = None
    """A size/flavor the template names explicitly; the planner then does not choose."""
    image: str | None = None
    """An explicit image id (``ami-…``, an OpenStack image name or id); else found by os/version/arch."""
    os_distribution: str = "ubuntu"
    os_version: str = "24.04"


@dataclasses.dataclass(frozen=True)
class PowerSpec:
    """How an edge board is powered on and off (the groups format's ``power:``)."""

    type: Literal["command", "wol", "none"] = "none"
    power_on: str | None = None
    """Shell command with ``{node}``, ``{group}``, ``{address}`` filled in."""
    power_off: str | None = None
    mac: str | None = None


@dataclasses.dataclass(frozen=True)
class BoardSpec:
    """An edge board that already exists: adopted, never created or destroyed."""

    name: str
    address: str
    ssh_user: str = "pi"
    ssh_key: str | None = None
    ssh_port: int = 22
    arch: Arch = "arm64"
    cpus: int = 4
    memory_mib: int = 8192
    power: PowerSpec = dataclasses.field(default_factory=PowerSpec)
    proxy_jump: bool = False
    """Reach the board through the front-end (boards on a private network)."""


@dataclasses.dataclass(frozen=True)
class VolumeSpec:
    """The front-end's data volume (the IM's ``BlockStorage`` at ``/pv``) for NFS and MinIO."""

    size_gib: int
    mount: str = "/pv"


@dataclasses.dataclass(frozen=True)
class GroupSpec:
    """A node group: the front-end, a group of cloud workers, or a fleet of edge boards."""

    name: str
    role: Role
    provider: Provider
    machine: MachineSpec
    count: int = 1
    """Nodes created (or adopted) now. Zero is valid: an elastic group may start empty."""
    min: int = 0
    max: int = 1
    region: str | None = None
    """From ``-i``, else the auth file, else the template; None for fleets."""
    network: str | None = None
    volume: VolumeSpec | None = None
    boards: tuple[BoardSpec, ...] = ()
    priority: int = 0
    """Higher is tried first by the elastic daemon (edge boards before cloud)."""
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    taints: tuple[str, ...] = ()
    """``key=value:Effect`` strings, as k3s ``--node-taint`` takes them."""
    source_node: str | None = None
    """The TOSCA node template this group came from, for messages."""


@dataclasses.dataclass(frozen=True)
class ComponentSpec:
    """A piece of software the configuration installs (k3s, minio, knative, oscar, elastic, ...).

    The version is not here: ``playbooks/group_vars/all/versions.yml`` decides every version.
    """

    name: str
    properties: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    source_node: str | None = None


@dataclasses.dataclass(frozen=True)
class ElasticSpec:
    """Elasticity settings a template gives (None fields fall back to ``[elastic]`` config)."""

    idle_time_s: float | None = None
    max_wait_poweron_s: float | None = None
    max_wait_poweroff_s: float | None = None
    extra_free: int | None = None
    max_booting: int | None = None
    max_nodes: int | None = None
    instance_profile: str | None = None
    """An IAM instance profile the (AWS) front-end runs with: the daemon's AWS credentials, renewed
    through the instance metadata service, instead of static keys in its Secret."""


@dataclasses.dataclass(frozen=True)
class SecretSpec:
    """A secret the deployment needs. ``value`` None means: generate it at create time."""

    name: str
    value: str | None = None
    explicit: bool = False
    """Given by the user with ``-i`` (kept even if weak)."""


@dataclasses.dataclass(frozen=True)
class OutputSpec:
    """A template output. ``value`` may hold placeholders filled in after create:
    ``{node.attribute}`` (e.g. ``{front.public_address}``) and ``{secret.NAME}``."""

    name: str
    value: str
    description: str = ""
    secret: bool = False
    """Built from a secret: masked unless ``--show-secrets``."""


@dataclasses.dataclass(frozen=True)
class ClusterSpec:
    sources: tuple[str, ...]
    """The template files, in merge order."""
    description: str = ""
    groups: tuple[GroupSpec, ...] = ()
    components: tuple[ComponentSpec, ...] = ()
    elastic: ElasticSpec | None = None
    secrets: tuple[SecretSpec, ...] = ()
    outputs: tuple[OutputSpec, ...] = ()
    admin_cidr: str = "0.0.0.0/0"
    """Where SSH and the Kubernetes API may be reached from."""
    admin_cidr_input: str | None = None
    """The input that sets ``admin_cidr`` (``admin_cidr``; an IM template's ``kube_allowed_cidr``),
    if the template has one: what an error tells the operator to give."""
    web_cidrs: Mapping[int, str] = dataclasses.field(default_factory=dict)
    """Public ports (80, 443, MinIO's) a template restricts to a CIDR (the IM's per-port
    ``remote_cidr``); a port not listed is open to all."""
    dns_name: str | None = None
    """Public DNS name of the front-end, if the template gives one (Let's Encrypt then)."""
    inputs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Every input's resolved value (secret inputs replaced by ``{secret.NAME}``)."""
    warnings: tuple[str, ...] = ()
    """Things the operator should know (unsafe defaults, ignored IM properties, ...)."""

    def group(self, name: str) -> GroupSpec:
        for group in self.groups:
            if group.name == name:
                return group
        raise KeyError(name)

    @property
    def front_end(self) -> GroupSpec | None:
        return next((g for g in self.groups if g.role == "front-end"), None)
