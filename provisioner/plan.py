"""The plan: what ``create`` will build, decided before anything reaches a cloud.

``make_plan`` turns a ClusterSpec into a Plan, a frozen value: per group the provider, region, size
(the cheapest EC2 type that fits, from libcloud's offline data; an OpenStack flavor requirement
resolved against the live flavors at create time; nothing for adopted boards), image, count/min/max
and price; the security rules; the component versions (``playbooks/group_vars/all/versions.yml``,
the only place they live); the secrets ``create`` will generate (names only); the outputs; the cost.
The plan holds no secret value: secrets are generated at create time.

``plan_to_json`` is the stable ``plan -o json`` document (described in the README, ``## Plan JSON``);
``render_plan_table`` is the human view. Both are pure.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from provisioner import sizes
from provisioner.config import Settings
from provisioner.errors import BadInput, TemplateError
from provisioner.images import ImagePlan, plan_image
from provisioner.mesh import wireguard_sources
from provisioner.resources import playbooks_dir
from provisioner.spec import Arch, BoardSpec, ClusterSpec, GroupSpec, Provider, Role

JSON_FORMAT = 1
"""Bumped only when a field of ``plan -o json`` changes meaning or disappears (new fields are free)."""
DEFAULT_EC2_REGION = "us-east-1"
MASK = "********"
# Components installed only when the template asks for them; the rest of versions.yml always is.
_OPTIONAL_COMPONENTS = ("minio", "knative", "oscar")


@dataclasses.dataclass(frozen=True)
class SizePlan:
    """What a group's machines are created as."""

    name: str | None
    """EC2 type (``t3.medium``), OpenStack flavor name or requirement (``flavor≥2cpu/4096MiB``),
    None for adopted boards."""
    explicit: bool = False
    """Named by the template (not chosen by the planner)."""
    cpus: int | None = None
    """What the size gives (EC2 only; OpenStack resolves at create time)."""
    memory_mib: int | None = None
    price_per_hour: float | None = None
    """USD per node-hour; None when unknown (OpenStack, or libcloud lists 0.0), 0.0 for boards."""


@dataclasses.dataclass(frozen=True)
class GroupPlan:
    name: str
    role: Role
    provider: Provider
    region: str | None
    count: int
    min: int
    max: int
    cpus: int
    """Requested per machine (the size may give more)."""
    memory_mib: int
    arch: Arch
    gpus: int
    disk_gib: int | None
    size: SizePlan
    image: ImagePlan | None
    boards: tuple[str, ...]
    volume_gib: int | None
    spec: GroupSpec = dataclasses.field(repr=False, compare=False)
    """The group as the template asked for it (labels, taints, boards' SSH and power, ...)."""
    public_ip: bool = False
    """Its machines get a public address: the front-end (reached from outside), and EC2 workers
    unless their subnet reaches the internet through a NAT route (``create`` asks EC2 and then
    launches them without one): they download k3s and images. Only the security group reaches it."""
    instance_profile: str | None = None
    """The IAM instance profile the machines run with: the AWS front-end's, when the template names
    one for the elasticity daemon (its AWS credentials); never a worker's."""

    @property
    def cost_per_hour(self) -> float:
        return self.count * (self.size.price_per_hour or 0.0)

    @property
    def max_cost_per_hour(self) -> float:
        return max(self.count, self.max) * (self.size.price_per_hour or 0.0)

    @property
    def price_known(self) -> bool:
        return self.size.price_per_hour is not None


@dataclasses.dataclass(frozen=True)
class SecurityRule:
    """An inbound rule of the deployment's security group."""

    protocol: Literal["tcp", "udp", "all"]
    port_from: int | None
    port_to: int | None
    source: str
    """A CIDR, or ``cluster``: the deployment's own security group (every node of it)."""
    description: str


@dataclasses.dataclass(frozen=True)
class Component:
    name: str
    version: str


@dataclasses.dataclass(frozen=True)
class SecretPlan:
    name: str
    generated: bool
    """True: ``create`` generates it; False: the user gave it (``-i``)."""


@dataclasses.dataclass(frozen=True)
class OutputPlan:
    name: str
    value: str
    """With placeholders filled in after create (``{front.public_address}``, ``{secret.NAME}``)."""
    description: str
    secret: bool


@dataclasses.dataclass(frozen=True)
class Plan:
    sources: tuple[str, ...]
    description: str
    groups: tuple[GroupPlan, ...]
    components: tuple[Component, ...]
    security_rules: tuple[SecurityRule, ...]
    secrets: tuple[SecretPlan, ...]
    outputs: tuple[OutputPlan, ...]
    admin_cidr: str
    dns_name: str | None
    warnings: tuple[str, ...]
    """The planner's own warnings (the spec's are in ``spec.warnings``; the CLI prints both once)."""
    spec: ClusterSpec = dataclasses.field(repr=False, compare=False)
    elastic: Mapping[str, float | int] | None = None
    """The elasticity daemon's settings (the template's, else ``[elastic]`` of the configuration);
    None when the template installs no daemon."""

    @property
    def cost_per_hour(self) -> float:
        """USD/hour of the nodes created now (unknown prices count as 0: see ``cost_complete``)."""
        return round(sum(g.cost_per_hour for g in self.groups), 4)

    @property
    def max_cost_per_hour(self) -> float:
        """USD/hour with every group at its max."""
        return round(sum(g.max_cost_per_hour for g in self.groups), 4)

    @property
    def cost_complete(self) -> bool:
        """False when some cloud group's price is unknown, so the cost is a lower bound."""
        return all(g.price_known for g in self.groups if max(g.count, g.max) > 0)


# -- making the plan ---------------------------------------------------------------------------------


def make_plan(spec: ClusterSpec, settings: Settings) -> Plan:
    """Decide everything ``create`` needs; raise ``BadInput`` (naming the node) if it cannot be built."""
    cache_dir = Path(settings.general.cache_dir).expanduser()
    warnings: list[str] = []
    try:
        groups = tuple(_plan_group(g, cache_dir, warnings) for g in spec.groups)
        profile = spec.elastic.instance_profile if spec.elastic is not None else None
        groups = tuple(dataclasses.replace(g, instance_profile=profile) if g.role == "front-end" else g
                       for g in groups)
    except TemplateError as error:
        if error.where or not spec.sources:
            raise
        # The planner knows nodes, not files: name the template(s) the way the loader does.
        message = str(error).removeprefix(f"{error.culprit}: ") if error.culprit else str(error)
        raise TemplateError(message, where=", ".join(spec.sources), culprit=error.culprit) from None
    has_security_group = any(g.provider != "fleet" for g in groups)  # boards keep their own firewall
    if has_security_group and _open_to_world(spec.admin_cidr) \
            and not any(spec.admin_cidr in w for w in spec.warnings):
        warnings.append(
            f"admin CIDR is {spec.admin_cidr}: SSH and the Kubernetes API are open to the whole "
            "internet; set the admin_cidr input to your own address range"
        )
    return Plan(
        sources=tuple(spec.sources),
        description=spec.description,
        groups=groups,
        components=plan_components(spec, read_versions()),
        security_rules=security_rules(spec),
        secrets=plan_secrets(spec),
        outputs=tuple(OutputPlan(o.name, o.value, o.description, o.secret) for o in spec.outputs),
        admin_cidr=spec.admin_cidr,
        dns_name=spec.dns_name or None,
        warnings=tuple(warnings),
        spec=spec,
        elastic=plan_elastic(spec, settings),
    )


ELASTIC_FIELDS = ("idle_time_s", "max_wait_poweron_s", "max_wait_poweroff_s", "extra_free", "max_booting",
                  "max_nodes")
"""The settings a template may give the elasticity daemon (``ElasticSpec``)."""


def plan_elastic(spec: ClusterSpec, settings: Settings) -> dict[str, float | int] | None:
    """Each elasticity setting as the daemon will run it: the template's value, else the config's."""
    if spec.elastic is None:
        return None
    given = dataclasses.asdict(spec.elastic)
    return {name: given[name] if given.get(name) is not None else getattr(settings.elastic, name)
            for name in ELASTIC_FIELDS}


_INSTANCE_TYPE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9-]+")
_SUBNET_ID = re.compile(r"subnet-([0-9a-f]{8}|[0-9a-f]{17})")


def _open_to_world(cidr: str) -> bool:
    return cidr.strip() in ("0.0.0.0/0", "::/0")


def refuse_open_admin(spec: ClusterSpec, allow_open_admin: bool) -> None:
    """``BadInput`` (exit 2) when a security group would open SSH and the Kubernetes API to the
    whole internet and the operator did not say so with ``--allow-open-admin``. Edge-only
    deployments have no security group (the boards keep their own firewall): nothing to refuse."""
    if allow_open_admin or not _open_to_world(spec.admin_cidr) \
            or all(g.provider == "fleet" for g in spec.groups):
        return
    how = (f"give your own address range (-i {spec.admin_cidr_input}=203.0.113.7/32)" if spec.admin_cidr_input
           else "this template cannot narrow it (oscar-deploy's templates have an admin_cidr input)")
    raise BadInput(f"admin_cidr is {spec.admin_cidr}: the security group would open SSH and the Kubernetes "
                   f"API to the whole internet; {how}, or add --allow-open-admin to accept that")


def _where(group: GroupSpec) -> str:
    return f"node {group.source_node or group.name}"


def _plan_group(group: GroupSpec, cache_dir: Path, warnings: list[str]) -> GroupPlan:
    machine = group.machine
    region = group.region
    arch: Arch = machine.arch
    if group.provider == "aws":
        if not region:
            region = DEFAULT_EC2_REGION
            warnings.append(f"group {group.name}: no region given; planned for {region}")
        if group.network and not _SUBNET_ID.fullmatch(group.network):
            raise TemplateError(f"{group.network!r} is not an EC2 subnet id (subnet- and 8 or 17 hex digits)",
                                culprit=f"{_where(group)}: network (the subnet_id input)")
        size, arch = _ec2_size(group, region, cache_dir, warnings)
    elif group.provider == "openstack":
        size = _openstack_size(group)
    else:
        size = SizePlan(name=None, price_per_hour=0.0)
        region = None
    return GroupPlan(
        name=group.name,
        role=group.role,
        provider=group.provider,
        region=region,
        count=group.count,
        min=group.min,
        max=group.max,
        cpus=machine.cpus,
        memory_mib=machine.memory_mib,
        arch=arch,
        gpus=machine.gpus,
        disk_gib=machine.disk_gib,
        size=size,
        image=plan_image(group, arch),
        boards=tuple(b.name for b in group.boards),
        volume_gib=group.volume.size_gib if group.volume else None,
        spec=group,
        public_ip=(group.role == "front-end" and group.provider != "fleet") or group.provider == "aws",
    )


def _ec2_size(group: GroupSpec, region: str, cache_dir: Path, warnings: list[str]) -> tuple[SizePlan, Arch]:
    """The cheapest fitting EC2 type, or the named one checked; and the arch it runs (a named type
    decides the arch, so the image follows it)."""
    machine = group.machine
    catalogue = sizes.region_sizes(region, cache_dir)
    named = (machine.instance_type or "").strip()
    if catalogue is None:
        if named:
            warnings.append(f"group {group.name}: EC2 region {region} is not in libcloud's data; "
                            f"{named} is used unchecked and its price is unknown")
            return SizePlan(name=named, explicit=True), machine.arch
        raise TemplateError(
            f"EC2 region {region!r} is no AWS region (a name like eu-west-1, us-gov-west-1 or cn-north-1; "
            f"libcloud's data lists {', '.join(sizes.known_regions())}, and newer regions work too)",
            culprit=f"{_where(group)}: region",
        )
    borrowed = sizes.borrowed_from(region, cache_dir)
    if borrowed:
        warnings.append(f"group {group.name}: libcloud's data has no prices for {region}; sizes are ranked "
                        f"and priced as in {borrowed} (an estimate), and create keeps those EC2 offers there")
    if named:
        found = sizes.find_size(catalogue, named)
        if found is None and _INSTANCE_TYPE.fullmatch(named) and not sizes.known_family(named):
            warnings.append(f"group {group.name}: instance type {named} is newer than libcloud's data; it is "
                            "used as named (create asks EC2 whether it is offered), its price is unknown")
            return SizePlan(name=named, explicit=True), machine.arch
        if found is None:
            hint = _near_names(named, catalogue)
            raise TemplateError(
                f"instance type {named!r} is not an EC2 instance type offered in {region}"
                + (f" (did you mean {hint}?)" if hint else ""),
                culprit=f"{_where(group)}: instance_type",
            )
        if found.cpus < machine.cpus or found.memory_mib < machine.memory_mib:
            warnings.append(
                f"group {group.name}: instance type {named} has {found.cpus} CPUs and "
                f"{found.memory_mib} MiB, less than the {machine.cpus} CPUs and {machine.memory_mib} "
                "MiB the template asks for; the instance type wins"
            )
        if found.price_per_hour is None:
            warnings.append(f"group {group.name}: libcloud has no price for {named} in {region}; "
                            "the cost leaves it out")
        arch = machine.arch
        if found.arch is not None and found.arch != machine.arch:
            warnings.append(f"group {group.name}: instance type {named} is {found.arch}, not "
                            f"{machine.arch}; the image follows the instance type")
            arch = found.arch
        return SizePlan(found.name, True, found.cpus, found.memory_mib, found.price_per_hour), arch
    chosen = sizes.cheapest_fit(catalogue, machine.cpus, machine.memory_mib, machine.arch, machine.gpus)
    if chosen is None:
        gpus = f", {machine.gpus} GPUs" if machine.gpus else ""
        raise TemplateError(
            f"no current-generation EC2 instance type with a known price in {region} has "
            f"{machine.cpus} CPUs, {machine.memory_mib} MiB{gpus} and arch {machine.arch}; "
            "ask for less or name an instance_type",
            culprit=_where(group),
        )
    return SizePlan(chosen.name, False, chosen.cpus, chosen.memory_mib, chosen.price_per_hour), machine.arch


def _near_names(name: str, catalogue: tuple[sizes.Ec2Size, ...]) -> str:
    import difflib

    close = difflib.get_close_matches(name, [s.name for s in catalogue], n=3, cutoff=0.75)
    return ", ".join(close)


def _openstack_size(group: GroupSpec) -> SizePlan:
    machine = group.machine
    named = (machine.instance_type or "").strip()
    if named:
        return SizePlan(name=named, explicit=True)
    requirement = f"flavor≥{machine.cpus}cpu/{machine.memory_mib}MiB"
    if machine.disk_gib:
        requirement += f"/{machine.disk_gib}GiB"
    if machine.gpus:
        requirement += f"/{machine.gpus}gpu"
    return SizePlan(name=requirement)


# -- versions, components, rules, secrets -----------------------------------------------------------


@functools.cache
def _versions_file(path: Path) -> Mapping[str, str]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise TemplateError(f"cannot read the component versions: {error}", where=str(path)) from None
    if not isinstance(data, dict):
        raise TemplateError("expected a mapping of <component>_version: VERSION", where=str(path))
    return {str(k): str(v) for k, v in data.items() if str(k).endswith("_version")}


def read_versions(path: Path | None = None) -> Mapping[str, str]:
    """``playbooks/group_vars/all/versions.yml``: every ``*_version`` variable and its value."""
    return _versions_file(path or playbooks_dir() / "group_vars" / "all" / "versions.yml")


def component_name(variable: str) -> str:
    """``minio_chart_version`` → ``minio``, ``cert_manager_version`` → ``cert-manager``."""
    stem = variable.removesuffix("_version").removesuffix("_chart")
    return stem.replace("_", "-")


def plan_components(spec: ClusterSpec, versions: Mapping[str, str]) -> tuple[Component, ...]:
    """The components installed, in versions-file order: the base ones always, MinIO, Knative and
    OSCAR only when the template has them; then the elasticity daemon (this tool's own version)."""
    wanted = {c.name.lower() for c in spec.components}
    chosen = []
    for variable, version in versions.items():
        name = component_name(variable)
        family = name.split("-")[0]
        if family in _OPTIONAL_COMPONENTS and family not in wanted:
            continue
        chosen.append(Component(name, version))
    if "elastic" in wanted:  # the elasticity daemon is this tool itself
        chosen.append(Component("elastic", _own_version()))
    return tuple(chosen)


def _own_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("oscar-deploy")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


def security_rules(spec: ClusterSpec) -> tuple[SecurityRule, ...]:
    """Inbound rules of the deployment's security group: admin ports from the admin CIDR only,
    web ports public unless the template restricts them (``web_cidrs``), everything between nodes;
    WireGuard from each edge board's address when boards join cloud nodes (``provisioner.mesh``).
    MinIO's NodePorts (where it serves TLS itself when there is no DNS name) from the admin CIDR only;
    with a DNS name MinIO is reached only through the TLS ingress on 443 and has no NodePort. Nothing
    else, NFS's 2049 included, is open beyond the nodes."""
    admin = spec.admin_cidr

    def web(port: int) -> str:  # public unless the template restricts the port (the IM's remote_cidr)
        return spec.web_cidrs.get(port, "0.0.0.0/0")

    rules = [
        SecurityRule("tcp", 22, 22, admin, "SSH (admin CIDR only)"),
        SecurityRule("tcp", 6443, 6443, admin, "Kubernetes API (admin CIDR only)"),
        SecurityRule("tcp", 80, 80, web(80), "HTTP (ingress; ACME HTTP-01 certificate challenge)"),
        SecurityRule("tcp", 443, 443, web(443), "HTTPS (OSCAR, MinIO, Knative via ingress)"),
        SecurityRule("all", None, None, "cluster", "everything between the nodes of the cluster"),
    ]
    for component in spec.components:
        if component.name.lower() == "minio" and not spec.dns_name:  # its NodePorts (outputs name them)
            ports = (("api_port", 30300, "MinIO S3 API"), ("console_port", 30303, "MinIO console"))
            for key, default, what in ports:
                port = int(component.properties.get(key) or default)
                rules.append(SecurityRule("tcp", port, port, spec.web_cidrs.get(port, admin),
                                          f"{what} (NodePort, TLS; admin CIDR only)"))
    for port, source in wireguard_sources(spec):  # hybrid: from each board's own address, no wider
        rules.append(SecurityRule("udp", port, port, source, "WireGuard (k3s flannel) from an edge board"))
    return tuple(rules)


def plan_secrets(spec: ClusterSpec) -> tuple[SecretPlan, ...]:
    """The template's secrets, plus the ones every deployment has: the k3s join token and, when
    cloud machines are created, the deployment's SSH key."""
    secrets = [SecretPlan(s.name, s.value is None) for s in spec.secrets]
    names = {s.name for s in secrets}
    if "k3s_token" not in names:
        secrets.append(SecretPlan("k3s_token", True))
    if any(g.provider != "fleet" for g in spec.groups) and "ssh_private_key" not in names:
        secrets.append(SecretPlan("ssh_private_key", True))
    return tuple(secrets)


# -- output ------------------------------------------------------------------------------------------


def _image_json(image: ImagePlan | None) -> dict[str, Any] | None:
    return dataclasses.asdict(image) if image else None


def _group_json(group: GroupPlan) -> dict[str, Any]:
    return {
        "name": group.name,
        "role": group.role,
        "provider": group.provider,
        "region": group.region,
        "count": group.count,
        "min": group.min,
        "max": group.max,
        "cpus": group.cpus,
        "memory_mib": group.memory_mib,
        "arch": group.arch,
        "gpus": group.gpus,
        "disk_gib": group.disk_gib,
        "size": group.size.name,
        "size_explicit": group.size.explicit,
        "size_cpus": group.size.cpus,
        "size_memory_mib": group.size.memory_mib,
        "price_per_hour": group.size.price_per_hour,
        "image": _image_json(group.image),
        "boards": list(group.boards),
        "volume_gib": group.volume_gib,
        "priority": group.spec.priority,
        "public_ip": group.public_ip,
        "instance_profile": group.instance_profile,
        "board_specs": [_board_json(b) for b in group.spec.boards],
    }


def _board_json(board: BoardSpec) -> dict[str, Any]:
    """An adopted board as the elasticity daemon needs it from the state file: its SSH login (the
    shutdown before a power cut) and how it is powered (``BoardSpec``; ``ssh_key`` is a path)."""
    return {
        "name": board.name, "address": board.address, "ssh_user": board.ssh_user,
        "ssh_port": board.ssh_port, "ssh_key": board.ssh_key, "proxy_jump": board.proxy_jump,
        "arch": board.arch, "cpus": board.cpus, "memory_mib": board.memory_mib,
        "power": dataclasses.asdict(board.power),
    }


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """The ``plan -o json`` document (README ``## Plan JSON``). Secret outputs are masked."""
    return {
        "format": JSON_FORMAT,
        "sources": list(plan.sources),
        "description": plan.description,
        "groups": [_group_json(g) for g in plan.groups],
        "components": [{"name": c.name, "version": c.version} for c in plan.components],
        "security_rules": [dataclasses.asdict(r) for r in plan.security_rules],
        "secrets": [dataclasses.asdict(s) for s in plan.secrets],
        "outputs": [
            {"name": o.name, "value": MASK if o.secret else o.value, "description": o.description,
             "secret": o.secret}
            for o in plan.outputs
        ],
        "admin_cidr": plan.admin_cidr,
        "dns_name": plan.dns_name,
        "currency": "USD",
        "cost_per_hour": plan.cost_per_hour,
        "max_cost_per_hour": plan.max_cost_per_hour,
        "cost_complete": plan.cost_complete,
        "elastic": dict(plan.elastic) if plan.elastic is not None else None,
        "warnings": [*plan.spec.warnings, *plan.warnings],
    }


def _money(value: float | None) -> str:
    return "?" if value is None else f"${value:.4f}"


def _ports(rule: SecurityRule) -> str:
    if rule.port_from is None:
        return "all"
    return str(rule.port_from) if rule.port_from == rule.port_to else f"{rule.port_from}-{rule.port_to}"


def _image_text(image: ImagePlan | None) -> tuple[str, str]:
    """(what, how it is found at create time)."""
    if image is None:
        return "as installed on the boards", ""
    what = f"{image.distribution} {image.version} {image.arch}"
    if image.id:
        return what, f"{image.id} (named)"
    if image.name_pattern:
        return what, f"owner {image.owner}, newest {image.name_pattern}"
    return what, "matched in the cloud's image list at create"


def render_plan_table(plan: Plan) -> str:
    """The human view of the plan (rich tables, rendered to plain text)."""
    import io

    from rich.console import Console
    from rich.table import Table

    buffer = io.StringIO()
    console = Console(file=buffer, width=120, no_color=True, highlight=False, emoji=False)
    title = ", ".join(plan.sources)
    if plan.description:
        console.print(f"{title}: {' '.join(plan.description.split())}")

    groups = Table(title="Node groups", title_justify="left")
    for column in ("group", "role", "where", "count (min-max)", "needs", "size", "$/h each"):
        groups.add_column(column, overflow="fold")
    images = Table(title="Images", title_justify="left")
    for column in ("group", "image", "found as"):
        images.add_column(column)
    for g in plan.groups:
        where = g.provider if g.region is None else f"{g.provider} {g.region}"
        needs = f"{g.cpus} CPU, {g.memory_mib} MiB, {g.arch}" + (f", {g.gpus} GPU" if g.gpus else "")
        if g.disk_gib:
            needs += f", disk {g.disk_gib} GiB"
        if g.volume_gib:
            needs += f", volume {g.volume_gib} GiB"
        if g.size.name is None:
            size = "boards: " + ", ".join(g.boards) if g.boards else "(boards)"
        else:
            size = g.size.name + (" (named)" if g.size.explicit else "")
            if g.size.cpus is not None:
                size += f" ({g.size.cpus} CPU, {g.size.memory_mib} MiB)"
        scale = f"{g.count} ({g.min}-{g.max})"
        if g.spec.priority:
            scale += f"\npriority {g.spec.priority}"
        groups.add_row(g.name, g.role, where, scale, needs, size, _money(g.size.price_per_hour))
        images.add_row(g.name, *_image_text(g.image))
    console.print(groups)
    console.print(images)

    if all(g.provider == "fleet" for g in plan.groups):  # nothing would apply the rules
        console.print("No cloud security group: adopted boards keep their own firewall.")
    else:
        rules = Table(title="Security rules (inbound)", title_justify="left")
        for column in ("protocol", "ports", "from", "why"):
            rules.add_column(column)
        for r in plan.security_rules:
            rules.add_row(r.protocol, _ports(r), r.source, r.description)
        console.print(rules)
        public = [g.name for g in plan.groups if g.public_ip and g.role != "front-end"]
        if public:
            console.print(f"Workers of {', '.join(public)} get a public address (to download k3s and "
                          "images), reached only through the security group above; in a subnet with a NAT "
                          "route (subnet_id) they get none.")

    components = Table(title="Components", title_justify="left")
    components.add_column("component")
    components.add_column("version")
    for c in plan.components:
        components.add_row(c.name, c.version)
    console.print(components)

    generated = [s.name for s in plan.secrets if s.generated]
    given = [s.name for s in plan.secrets if not s.generated]
    if generated:
        console.print(f"Secrets generated at create: {', '.join(generated)}")
    if given:
        console.print(f"Secrets given as inputs: {', '.join(given)}")

    if plan.outputs:
        outputs = Table(title="Outputs", title_justify="left")
        outputs.add_column("output")
        outputs.add_column("value")
        for o in plan.outputs:
            outputs.add_row(o.name, MASK + " (secret)" if o.secret else o.value)
        console.print(outputs)

    priced = [g for g in plan.groups if g.provider != "fleet" and max(g.count, g.max) > 0]
    if not priced:
        console.print("Estimated cost: no cloud machines (the boards are yours)")
    elif not any(g.price_known for g in priced):
        console.print("Estimated cost: unknown (no price is known for these sizes: OpenStack sites price "
                      "their flavors themselves)")
    else:
        lower = "" if plan.cost_complete else " (some prices unknown: a lower bound)"
        console.print(f"Estimated cost: {_money(plan.cost_per_hour)}/h now, "
                      f"{_money(plan.max_cost_per_hour)}/h at max scale{lower}")
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()).rstrip("\n")
