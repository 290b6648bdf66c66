"""What the engine builds, as plain data: per group the node names, the sizes to try, the image.

Pure functions only. ``group_targets`` turns a Plan into ``GroupTarget`` values; ``plan_record``
makes the deployment record from both (``provisioner.record``), and ``record_targets`` gives them back
from a record, so ``scale`` builds the very same nodes without reading the template again.

Node names are the idempotency key of resume: node ``i`` of group ``g`` of deployment
``d`` is always ``oscar-deploy-d-g-i``, so a re-run finds it in the cloud's listing and never
creates a second copy.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from provisioner import sizes
from provisioner.clouds.base import CloudNode, resource_name, resource_prefix
from provisioner.plan import GroupPlan, Plan
from provisioner.record import (
    Board,
    Component,
    DeploymentRecord,
    GroupRecord,
    Image,
    JoinInputs,
    LaunchSpec,
    Output,
    Power,
    Rule,
)
from provisioner.spec import ClusterSpec
from provisioner.template.inputs import is_secret_input, placeholder

MAX_SIZES = 3
"""Sizes tried per node on capacity errors: the planned one, then the next cheapest that fit."""


@dataclasses.dataclass(frozen=True)
class BoardTarget:
    """An adopted edge board: reached over SSH, never created. The login fields are recorded so that
    ``inventory``, ``reconfigure`` and ``ssh`` need nothing but the record."""

    name: str
    address: str
    port: int = 22
    user: str = "pi"
    ssh_key: str | None = None
    """Private key file as the template names it; None: the SSH agent or the user's default keys."""
    proxy_jump: bool = False
    """Reached through the front-end."""
    arch: str = "arm64"


@dataclasses.dataclass(frozen=True)
class GroupTarget:
    """One group of the plan as the engine executes it."""

    name: str
    role: str
    provider: str
    region: str | None
    count: int
    min: int
    max: int
    sizes: tuple[str, ...] = ()
    """The planned size (an EC2 type, an OpenStack flavor or a ``flavor≥…`` requirement) and, for
    EC2, the next cheapest that fit by the offline catalogue; the live list comes from the driver."""
    size_explicit: bool = False
    """Named by the template: never swapped for another."""
    cpus: int = 1
    memory_mib: int = 512
    arch: str = "amd64"
    image: Mapping[str, Any] | None = None
    """The plan's image (``distribution``, ``version``, ``arch``, ``id``)."""
    disk_gib: int | None = None
    network: str | None = None
    volume_gib: int | None = None
    boards: tuple[BoardTarget, ...] = ()
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Kubernetes node labels and taints (``key=value:Effect``) of the group's nodes (cloud-init)."""
    taints: tuple[str, ...] = ()
    hybrid: bool = False
    """Edge boards in the same cluster: they reach this group's nodes over WireGuard, at a public address."""

    @property
    def cloud(self) -> bool:
        return self.provider != "fleet"

    public: bool | None = None
    """Whether its machines get a public address (the plan's, or the record's); None: the front-end only."""
    instance_profile: str | None = None
    """The IAM instance profile its machines run with (the AWS front-end's, for the daemon)."""

    @property
    def public_ip(self) -> bool:
        """The front-end is reached from outside; a hybrid cluster's workers keep a public address the
        boards reach (k3s's node-external-ip, ``provisioner.mesh``); other workers get one only to reach
        the internet where their subnet has no NAT route (``GroupPlan.public_ip``)."""
        if self.hybrid:
            return True
        return self.public if self.public is not None else self.role == "front-end"


def size_candidates(group: GroupPlan, cache_dir: Path | None = None,
                    limit: int = MAX_SIZES) -> tuple[str, ...]:
    """The sizes to try, in order: the planned size, then (EC2, size not named by the template) the
    next cheapest current-generation priced types that fit, as the planner ranks them."""
    planned = group.size.name
    if planned is None:
        return ()
    if group.provider != "aws" or group.size.explicit or group.region is None:
        return (planned,)
    catalogue = sizes.region_sizes(group.region, cache_dir) or ()
    fitting = sorted(
        (s for s in catalogue
         if s.current and s.price_per_hour is not None and not s.metal
         and sizes.fits(s, group.cpus, group.memory_mib, group.arch, group.gpus)),
        key=lambda s: (s.price_per_hour, s.cpus, s.memory_mib, s.name),
    )
    ordered = [planned, *(s.name for s in fitting if s.name != planned)]
    return tuple(ordered[:limit])


def group_targets(plan: Plan, cache_dir: Path | None = None) -> tuple[GroupTarget, ...]:
    """Every group of ``plan`` as the engine will build it."""
    out = []
    providers = {g.provider for g in plan.groups}
    hybrid = "fleet" in providers and bool(providers - {"fleet"})
    for g in plan.groups:
        image = dataclasses.asdict(g.image) if g.image else None
        boards = tuple(BoardTarget(b.name, b.address, b.ssh_port, b.ssh_user, ssh_key=b.ssh_key,
                                   proxy_jump=b.proxy_jump, arch=b.arch) for b in g.spec.boards)
        out.append(GroupTarget(
            name=g.name, role=g.role, provider=g.provider, region=g.region, count=g.count, min=g.min,
            max=g.max, sizes=size_candidates(g, cache_dir), size_explicit=g.size.explicit, cpus=g.cpus,
            memory_mib=g.memory_mib, arch=g.arch, image=image, disk_gib=g.disk_gib,
            network=g.spec.network, volume_gib=g.volume_gib, boards=boards, labels=dict(g.spec.labels),
            taints=tuple(g.spec.taints), hybrid=hybrid and g.provider != "fleet",
            public=g.public_ip if g.provider != "fleet" else None, instance_profile=g.instance_profile,
        ))
    return tuple(out)


def plan_record(plan: Plan, targets: Sequence[GroupTarget]) -> DeploymentRecord:
    """The deployment record of ``plan`` as the engine builds it (``targets``): what every later
    command reads instead of the template. Outputs keep their placeholders (``{secret.NAME}``, never a
    value): ``outputs --show-secrets`` fills them in."""
    rules = tuple(Rule(r.protocol, r.port_from, r.port_to, r.source, r.description)
                  for r in plan.security_rules)
    by_name = {t.name: t for t in targets}
    groups = []
    for g in plan.groups:
        target = by_name[g.name]
        boards = tuple(Board(
            name=b.name, address=b.address, ssh_user=b.ssh_user, ssh_port=b.ssh_port, ssh_key=b.ssh_key,
            proxy_jump=b.proxy_jump, arch=b.arch, cpus=b.cpus, memory_mib=b.memory_mib,
            power=Power(b.power.type, b.power.power_on, b.power.power_off, b.power.mac))
            for b in g.spec.boards)
        launch = None
        if target.cloud:
            launch = LaunchSpec(
                provider=g.provider, region=g.region,
                image=Image(**dataclasses.asdict(g.image)) if g.image else None, sizes=target.sizes,
                size_explicit=target.size_explicit, cpus=g.cpus, memory_mib=g.memory_mib, arch=g.arch,
                disk_gib=g.disk_gib, network=g.spec.network, security_rules=rules, public_ip=target.public_ip,
                instance_profile=target.instance_profile,
                user_data=None if g.role == "front-end" else JoinInputs(
                    group=g.name, role=g.role, arch=g.arch, labels=dict(g.spec.labels),
                    taints=tuple(g.spec.taints), external_ip=target.hybrid))
        groups.append(GroupRecord(
            name=g.name, role=g.role, provider=g.provider, region=g.region, count=g.count, min=g.min,
            max=g.max, cpus=g.cpus, memory_mib=g.memory_mib, arch=g.arch, gpus=g.gpus, disk_gib=g.disk_gib,
            size=g.size.name, size_cpus=g.size.cpus, size_memory_mib=g.size.memory_mib,
            price_per_hour=g.size.price_per_hour, priority=g.spec.priority, volume_gib=g.volume_gib,
            labels=dict(g.spec.labels), taints=tuple(g.spec.taints), boards=boards, launch=launch))
    components, _literals = recorded_components(plan.spec)
    return DeploymentRecord(
        groups=tuple(groups),
        components=tuple(Component(c.name, c.version) for c in plan.components),
        component_properties=tuple(json.loads(json.dumps(components, default=str))),
        security_rules=rules,
        outputs=tuple(Output(o.name, o.value, o.description, o.secret) for o in plan.outputs),
        admin_cidr=plan.admin_cidr, dns_name=plan.dns_name,
        elastic=dict(plan.elastic) if plan.elastic is not None else None,
        sources=tuple(plan.sources), description=plan.description,
    )


def record_targets(record: DeploymentRecord) -> tuple[GroupTarget, ...]:
    """What the engine builds for each group of a recorded deployment (``scale``)."""
    out = []
    for g in record.groups:
        launch = g.launch
        out.append(GroupTarget(
            name=g.name, role=g.role, provider=g.provider, region=g.region, count=g.count, min=g.min,
            max=g.max, sizes=launch.sizes if launch else (),
            size_explicit=launch.size_explicit if launch else False,
            cpus=g.cpus, memory_mib=g.memory_mib, arch=g.arch,
            image=dataclasses.asdict(launch.image) if launch and launch.image else None, disk_gib=g.disk_gib,
            network=launch.network if launch else None, volume_gib=g.volume_gib,
            boards=tuple(BoardTarget(b.name, b.address, b.ssh_port, b.ssh_user, ssh_key=b.ssh_key,
                                     proxy_jump=b.proxy_jump, arch=b.arch) for b in g.boards),
            labels=dict(g.labels), taints=tuple(g.taints), hybrid=record.hybrid and g.cloud,
            public=launch.public_ip if launch else None,
            instance_profile=launch.instance_profile if launch else None))
    return tuple(out)


def recorded_components(spec: ClusterSpec) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The template's components with their properties, as the record keeps them for ``reconfigure``
    (which never reads the template again), and the literal secrets taken out of them.

    A password-like property the template gives as a literal (the template loader warns about it) is
    recorded as a ``{secret.template_<component>_<key>}`` placeholder: its value goes to the state's
    secrets (returned here, name → value), never into the plan that ``show`` prints."""
    components: list[dict[str, Any]] = []
    literals: dict[str, str] = {}
    for component in spec.components:
        properties: dict[str, Any] = {}
        for key, value in component.properties.items():
            if (isinstance(value, str) and value and not value.startswith("{secret.")
                    and is_secret_input(str(key), {"type": "string"})):
                name = re.sub(r"[^A-Za-z0-9_]", "_", f"template_{component.name}_{key}").lower()
                literals[name] = value
                value = placeholder(name)
            properties[str(key)] = value
        components.append({"name": component.name, "properties": properties,
                           "source_node": component.source_node})
    return components, literals


def node_name(deployment: str, group: str, index: int) -> str:
    """The deterministic name of node ``index`` (from 1) of ``group``."""
    return resource_name(deployment, group, str(index))


def node_index(deployment: str, group: str, name: str) -> int | None:
    """The index in a node name made by ``node_name``, or None for any other name."""
    stem = resource_name(deployment, group, "0")[:-1]
    if not name.startswith(stem):
        return None
    tail = name[len(stem):]
    return int(tail) if re.fullmatch(r"[1-9][0-9]*", tail) else None


def wanted_names(deployment: str, group: GroupTarget, count: int | None = None) -> list[str]:
    """The names of the group's first ``count`` (default: the planned count) nodes."""
    n = group.count if count is None else count
    return [node_name(deployment, group.name, i) for i in range(1, n + 1)]


def names_to_add(deployment: str, group: str, existing: Iterable[str], count: int) -> list[str]:
    """Names for the nodes that bring the group to ``count``: the lowest free indices, so a name is
    never used for two live machines."""
    taken = {node_index(deployment, group, n) for n in existing} - {None}
    missing = count - len(taken)
    out: list[str] = []
    index = 1
    while len(out) < missing:
        if index not in taken:
            out.append(node_name(deployment, group, index))
        index += 1
    return out


def pick_removals(nodes: Sequence[CloudNode], count: int, busy: Iterable[str] = ()) -> list[CloudNode]:
    """Which nodes go when a group shrinks to ``count``: idle before busy, newest first (creation
    time, then the index in the name)."""
    excess = len(nodes) - count
    if excess <= 0:
        return []
    busy_names = set(busy)

    def order(node: CloudNode) -> tuple[bool, float, int]:
        index = int(m.group(1)) if (m := re.search(r"-([0-9]+)$", node.name)) else 0
        return (node.name in busy_names, -(node.created_at or 0.0), -index)

    return sorted(nodes, key=order)[:excess]


def is_ours(deployment: str, name: str) -> bool:
    return name.startswith(resource_prefix(deployment))
