"""The deployment record: what ``create`` recorded about a deployment, typed and versioned.

Every command that works on a created deployment (``inventory``, ``reconfigure``, ``ssh``,
``scale``, ``show``, ``outputs``, the daemon's ``--deployment``) reads this record, never the
template again and never string keys of a plan dictionary. It sits in a low layer (standard library
and ``provisioner.errors`` only), so the elastic daemon may import it without reaching into the
engine or the state file.

- ``DeploymentRecord``: the groups (with their edge boards and, for each cloud group, a
  ``LaunchSpec``), components, security rules, outputs and elasticity settings.
- ``LaunchSpec``: everything needed to create one more worker exactly as ``create`` does, without the
  state file: provider, region, image, sizes to try (cheapest that fit first), zones and network,
  the security group's rules, the key pair's public key, and the cloud-init inputs (``JoinInputs``;
  the join token is named, never held). ``to_dict``/``from_dict`` give plain JSON, so a launch spec can
  travel in a ConfigMap.
- ``read_record``: the one reader. A record of the older, untyped plan-document format (version 1: the
  ``plan -o json`` document plus the engine's ``targets``, ``spec_components``) is migrated here, once:
  ``StateStore.record`` writes the migrated form back and says so.
- ``daemon_groups``: the one function that turns a record into the elastic daemon's node groups (the
  groups-YAML format), used both by ``configure`` (the daemon's ConfigMap) and by ``daemon
  --deployment``, so the two cannot disagree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from provisioner.errors import BadInput

RECORD_VERSION = 2
"""1: the untyped plan document of earlier releases (no ``record_version`` key); 2: this module."""
KNOWN_HOSTS_FILE = "known_hosts"
"""The deployment's known_hosts file in its directory (host keys ``configure`` trusted)."""
TOKEN_SECRET = "k3s_agent_token"
"""The secret workers join with: k3s's agent token in its secure form (never the server token)."""
UNRECORDED = "unrecorded"
"""``Power.type`` of a board migrated from a record that did not keep how boards are powered."""
K3S_PORT = 6443


class RecordError(BadInput):
    """A record this version of oscar-deploy cannot read (newer, or damaged): names the field."""


# --- the parts ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Power:
    """How an edge board is powered (``type``: ``none``, ``command``, ``wol``, or ``UNRECORDED``)."""

    type: str = "none"
    power_on: str | None = None
    power_off: str | None = None
    mac: str | None = None


@dataclasses.dataclass(frozen=True)
class Board:
    """An adopted edge board: its SSH login (``inventory``, ``ssh``, the daemon's halt) and power."""

    name: str
    address: str
    ssh_user: str = "pi"
    ssh_port: int = 22
    ssh_key: str | None = None
    proxy_jump: bool = False
    """Reached through the front-end."""
    arch: str = "arm64"
    cpus: int = 4
    memory_mib: int = 8192
    power: Power = Power()


@dataclasses.dataclass(frozen=True)
class Image:
    """The OS image of a cloud group, found by the driver at launch (``id`` wins when given)."""

    distribution: str
    version: str
    arch: str
    id: str | None = None
    owner: str | None = None
    name_pattern: str | None = None


@dataclasses.dataclass(frozen=True)
class Rule:
    """An inbound rule of the deployment's security group (``source``: a CIDR or ``cluster``)."""

    protocol: str
    port_from: int | None
    port_to: int | None
    source: str
    description: str = ""


@dataclasses.dataclass(frozen=True)
class JoinInputs:
    """What a new worker's cloud-init is rendered from (``provisioner.cloudinit``): the k3s server,
    the token's secret name (never its value), the node's group, role, arch, labels and taints."""

    group: str
    role: str = "worker"
    arch: str = "amd64"
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    taints: tuple[str, ...] = ()
    server_url: str | None = None
    """``https://<front-end private address>:6443``; None until the front-end has an address."""
    token_secret: str = TOKEN_SECRET
    external_ip: bool = False
    """The worker tells k3s its public address (``node-external-ip``): a hybrid cluster's boards reach
    it there over WireGuard."""


@dataclasses.dataclass(frozen=True)
class LaunchSpec:
    """How to create one more worker of a cloud group, as ``create`` does (see the module docstring)."""

    provider: str
    region: str | None
    image: Image | None
    sizes: tuple[str, ...]
    """The planned size first, then the next cheapest that fit (the cloud's live list may add more)."""
    size_explicit: bool
    """Named by the template: never swapped for another."""
    cpus: int
    memory_mib: int
    arch: str
    disk_gib: int | None = None
    network: str | None = None
    """The network (OpenStack) or subnet (EC2) the worker is put in; None: the cloud's default."""
    zones: tuple[str, ...] = ()
    """Zones to try in order; empty: wherever the cloud places it (each zone on capacity errors)."""
    security_rules: tuple[Rule, ...] = ()
    """The deployment's security group (``oscar-deploy-<id>-…``, created once with these rules)."""
    public_key: str | None = None
    """The deployment's key pair (OpenSSH public key); None until ``create`` generated it."""
    public_ip: bool = False
    user_data: JoinInputs | None = None
    instance_profile: str | None = None
    """The IAM instance profile the machine runs with (an AWS front-end's, for the daemon's
    credentials); None for every worker."""

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LaunchSpec:
        return _launch(data, "launch")


@dataclasses.dataclass(frozen=True)
class GroupRecord:
    """One node group: what it is, how many, its boards (edge) or its launch spec (cloud)."""

    name: str
    role: str
    provider: str
    region: str | None = None
    count: int = 0
    min: int = 0
    max: int = 0
    cpus: int = 1
    """Requested per machine; ``node_cpus`` is what one gives."""
    memory_mib: int = 512
    arch: str = "amd64"
    gpus: int = 0
    disk_gib: int | None = None
    size: str | None = None
    size_cpus: int | None = None
    """What the planned size gives (EC2's catalogue), None when unknown until launch."""
    size_memory_mib: int | None = None
    price_per_hour: float | None = None
    priority: int = 0
    volume_gib: int | None = None
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    taints: tuple[str, ...] = ()
    boards: tuple[Board, ...] = ()
    launch: LaunchSpec | None = None

    @property
    def cloud(self) -> bool:
        return self.provider != "fleet"

    @property
    def node_cpus(self) -> int:
        """What one node of the group gives: the size's CPUs, the smallest board's, else the request."""
        if self.boards:
            return min(b.cpus for b in self.boards)
        return self.size_cpus or self.cpus

    @property
    def node_memory_mib(self) -> int:
        if self.boards:
            return min(b.memory_mib for b in self.boards)
        return self.size_memory_mib or self.memory_mib


@dataclasses.dataclass(frozen=True)
class Output:
    name: str
    value: str
    """With placeholders (``{front.public_address}``, ``{secret.NAME}``), filled in by ``outputs``."""
    description: str = ""
    secret: bool = False


@dataclasses.dataclass(frozen=True)
class Component:
    name: str
    version: str


@dataclasses.dataclass(frozen=True)
class DeploymentRecord:
    """What a deployment is made of (see the module docstring). Holds no secret value."""

    groups: tuple[GroupRecord, ...]
    components: tuple[Component, ...] = ()
    component_properties: tuple[Mapping[str, Any], ...] | None = None
    """The template's components and properties (secrets as ``{secret.NAME}``); None in records
    older than the complete plan (their templates are then read again, offline)."""
    security_rules: tuple[Rule, ...] = ()
    outputs: tuple[Output, ...] = ()
    admin_cidr: str = "0.0.0.0/0"
    dns_name: str | None = None
    elastic: Mapping[str, float | int] | None = None
    """The daemon's settings the template gave (merged with ``[elastic]`` at plan time)."""
    sources: tuple[str, ...] = ()
    description: str = ""
    version: int = RECORD_VERSION

    def group(self, name: str) -> GroupRecord:
        for group in self.groups:
            if group.name == name:
                return group
        raise KeyError(name)

    @property
    def front_end(self) -> GroupRecord | None:
        return next((g for g in self.groups if g.role == "front-end"), None)

    @property
    def hybrid(self) -> bool:
        """Edge boards and cloud machines in one cluster (they talk over WireGuard)."""
        providers = {g.provider for g in self.groups}
        return "fleet" in providers and bool(providers - {"fleet"})

    def with_count(self, group: str, count: int) -> DeploymentRecord:
        """The record after ``scale`` set ``group`` to ``count`` nodes."""
        return dataclasses.replace(self, groups=tuple(
            dataclasses.replace(g, count=count) if g.name == group else g for g in self.groups))

    def with_security(self, rules: tuple[Rule, ...], admin_cidr: str) -> DeploymentRecord:
        """The record after ``create --update`` changed the security group's rules (also in every
        launch spec, so a worker the daemon or ``scale`` adds later gets the same group)."""
        return dataclasses.replace(self, security_rules=rules, admin_cidr=admin_cidr, groups=tuple(
            dataclasses.replace(g, launch=dataclasses.replace(g.launch, security_rules=rules))
            if g.launch is not None else g for g in self.groups))

    def with_launch(self, *, public_key: str | None = None, server_url: str | None = None
                    ) -> DeploymentRecord:
        """The record with what ``create`` learns as it goes (the key pair's public key, the k3s
        server's URL) written into every cloud worker group's launch spec."""
        def update(group: GroupRecord) -> GroupRecord:
            launch = group.launch
            if launch is None:
                return group
            if public_key is not None:
                launch = dataclasses.replace(launch, public_key=public_key)
            if server_url is not None and launch.user_data is not None:
                launch = dataclasses.replace(launch, user_data=dataclasses.replace(
                    launch.user_data, server_url=server_url))
            return dataclasses.replace(group, launch=launch)

        return dataclasses.replace(self, groups=tuple(update(g) for g in self.groups))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (what the state file keeps); ``from_dict`` reads it back unchanged."""
        doc = _plain(self)
        doc["record_version"] = doc.pop("version")
        return doc

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeploymentRecord:
        version = data.get("record_version")
        if version != RECORD_VERSION:
            if isinstance(version, int) and version > RECORD_VERSION:
                raise RecordError(f"record version {version} is newer than this oscar-deploy "
                                  f"reads ({RECORD_VERSION}); upgrade oscar-deploy")
            raise RecordError(f"record: 'record_version' is {version!r}, expected "
                              f"{RECORD_VERSION}")
        props = data.get("component_properties")
        return cls(
            groups=tuple(_group(g, f"groups[{i}]") for i, g in enumerate(_list(data, "groups", "record"))),
            components=tuple(Component(str(c["name"]), str(c["version"]))
                             for c in _list(data, "components", "record")),
            component_properties=None if props is None else tuple(dict(c) for c in props),
            security_rules=tuple(_rule(r) for r in _list(data, "security_rules", "record")),
            outputs=tuple(Output(str(o["name"]), str(o["value"]), str(o.get("description") or ""),
                                 bool(o.get("secret"))) for o in _list(data, "outputs", "record")),
            admin_cidr=str(data.get("admin_cidr") or "0.0.0.0/0"),
            dns_name=data.get("dns_name"),
            elastic=dict(data["elastic"]) if data.get("elastic") is not None else None,
            sources=tuple(str(s) for s in data.get("sources") or ()),
            description=str(data.get("description") or ""),
        )


@dataclasses.dataclass(frozen=True)
class DaemonDeployment:
    """What the elastic daemon needs of one deployment to create and remove its cloud workers: its
    record (launch specs filled in), where its credentials come from (never their values) and the
    join token its workers' cloud-init carries. Made by the operator's side
    (``provisioner.engine.handoff``) so the daemon never opens the state file."""

    id: str
    name: str
    record: DeploymentRecord
    credentials: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Provider → where its credentials came from (``CredentialSource.to_json()``)."""
    token: str = dataclasses.field(default="", repr=False)


# --- the one reader and the one migration ------------------------------------------------------------


def read_record(data: Mapping[str, Any]) -> tuple[DeploymentRecord, bool]:
    """The record in ``data`` (what the state file keeps), and whether it was migrated from the older
    untyped plan document (then the caller writes ``to_dict()`` back, once)."""
    if "record_version" in data:
        return DeploymentRecord.from_dict(data), False
    return migrate_plan_document(data), True


def migrate_plan_document(plan: Mapping[str, Any]) -> DeploymentRecord:
    """A version-1 record (the ``plan -o json`` document, the engine's ``targets``, ``board_specs``,
    ``spec_components``; any of them missing in still older ones) as a ``DeploymentRecord``."""
    targets = {str(t.get("name")): t for t in plan.get("targets") or []}
    rules = tuple(_rule(r) for r in plan.get("security_rules") or [])
    groups = []
    providers = {str(i.get("provider") or targets.get(str(i["name"]), {}).get("provider") or "aws")
                 for i in plan.get("groups") or []}
    hybrid = "fleet" in providers and bool(providers - {"fleet"})  # workers as the engine makes them now
    for info in plan.get("groups") or []:
        name = str(info["name"])
        target = targets.get(name, {})
        arch = str(info.get("arch") or target.get("arch") or "amd64")
        provider = str(info.get("provider") or target.get("provider") or "aws")
        role = str(info.get("role") or target.get("role") or "worker")
        labels = {str(k): str(v) for k, v in (target.get("labels") or {}).items()}
        taints = tuple(str(t) for t in target.get("taints") or ())
        boards = _v1_boards(info, target, arch)
        group = GroupRecord(
            name=name, role=role, provider=provider, region=info.get("region", target.get("region")),
            count=int(info.get("count", target.get("count", 0)) or 0),
            min=int(info.get("min", target.get("min", 0)) or 0),
            max=int(info.get("max", target.get("max", 0)) or 0),
            cpus=int(info.get("cpus") or target.get("cpus") or 1),
            memory_mib=int(info.get("memory_mib") or target.get("memory_mib") or 512),
            arch=arch, gpus=int(info.get("gpus") or 0), disk_gib=info.get("disk_gib", target.get("disk_gib")),
            size=info.get("size"), size_cpus=info.get("size_cpus"),
            size_memory_mib=info.get("size_memory_mib"),
            price_per_hour=info.get("price_per_hour"), priority=int(info.get("priority") or 0),
            volume_gib=info.get("volume_gib", target.get("volume_gib")), labels=labels, taints=taints,
            boards=boards,
        )
        if group.cloud:
            image = target.get("image", info.get("image"))
            group = dataclasses.replace(group, launch=LaunchSpec(
                provider=provider, region=group.region,
                image=_image(image) if image else None,
                sizes=tuple(str(s) for s in target.get("sizes")
                            or ([info["size"]] if info.get("size") else [])),
                size_explicit=bool(target.get("size_explicit", info.get("size_explicit", False))),
                cpus=group.cpus, memory_mib=group.memory_mib, arch=arch, disk_gib=group.disk_gib,
                network=target.get("network"), security_rules=rules, public_ip=role == "front-end" or hybrid,
                instance_profile=info.get("instance_profile"),
                user_data=None if role == "front-end" else JoinInputs(
                    group=name, role=role, arch=arch, labels=labels, taints=taints, external_ip=hybrid)))
        groups.append(group)
    props = plan.get("spec_components")
    return DeploymentRecord(
        groups=tuple(groups),
        components=tuple(Component(str(c["name"]), str(c.get("version") or ""))
                         for c in plan.get("components") or []),
        component_properties=None if props is None else tuple(dict(c) for c in props),
        security_rules=rules,
        outputs=tuple(Output(str(o.get("name")), str(o.get("value", "")), str(o.get("description") or ""),
                             bool(o.get("secret"))) for o in plan.get("outputs") or []),
        admin_cidr=str(plan.get("admin_cidr") or "0.0.0.0/0"),
        dns_name=plan.get("dns_name"),
        elastic=dict(plan["elastic"]) if plan.get("elastic") is not None else None,
        sources=tuple(str(s) for s in plan.get("sources") or ()),
        description=str(plan.get("description") or ""),
    )


def _v1_boards(info: Mapping[str, Any], target: Mapping[str, Any], arch: str) -> tuple[Board, ...]:
    """A version-1 group's boards: its ``board_specs`` (every field), else the targets' boards (login
    only, older records), else none."""
    if info.get("board_specs"):
        return tuple(_board(b, arch) for b in info["board_specs"])
    return tuple(Board(
        name=str(b["name"]), address=str(b["address"]), ssh_user=str(b.get("user") or "pi"),
        ssh_key=b.get("ssh_key") or None, ssh_port=int(b.get("port") or 22),
        arch=str(b.get("arch") or arch), proxy_jump=bool(b.get("proxy_jump")), power=Power(UNRECORDED),
    ) for b in target.get("boards") or [])


# --- what consumers derive (pure) --------------------------------------------------------------------


SELF_REACH = "from the front-end's own public address (OSCAR reaches MinIO there)"


def self_reach_rules(rules: Sequence[Rule], address: str | None) -> tuple[Rule, ...]:
    """MinIO's NodePort rules again, from the front-end's own public address: OSCAR (on the
    front-end) and its services reach MinIO at the endpoint they hand to clients, which leaves the
    machine and comes back from that address, outside the admin CIDR. None without an address or
    without NodePorts (behind a DNS name MinIO is reached on 443)."""
    if not address:
        return ()
    source = f"{address}/32" if ":" not in address else f"{address}/128"
    return tuple(dataclasses.replace(r, source=source, description=f"{r.description.split(' (')[0]} "
                                     f"{SELF_REACH}")
                 for r in rules if r.description.startswith("MinIO") and r.source != source
                 and SELF_REACH not in r.description)


def node_labels(group: str, role: str, arch: str, labels: Mapping[str, str]) -> dict[str, str]:
    """The labels k3s gives a node of the group (``node-label``; the roles write the same), the
    template's winning over ours."""
    return {"oscar-deploy/group": group, "oscar-deploy/role": role, "oscar-deploy/arch": arch, **labels}


def server_url(address: str) -> str:
    return f"https://{address}:{K3S_PORT}"


def daemon_groups(record: DeploymentRecord, deployment_id: str, *, known_hosts: str | None = None,
                  launch: bool = False, node_keys: bool = True, warn: Callable[[str], None] | None = None
                  ) -> list[dict[str, Any]]:
    """The elastic daemon's node groups (the groups-YAML format) for every group it may scale: cloud
    worker groups (``power: {type: cloud}``) and edge fleets powered by a command or Wake-on-LAN.

    A node group describes a node as the scheduler sees it: the labels k3s gives it plus
    ``kubernetes.io/arch`` (set by the kubelet), the template's taints, the CPUs and memory one node
    *gives* (the size's, or the smallest board's). Boards reached directly are halted over SSH before
    their power cut (``shutdown``, host keys checked against ``known_hosts`` when given); boards behind
    the front-end cannot be, so they need a ``power_off`` command. ``warn(message)`` hears why a group
    is left out. With ``launch`` a cloud group carries its launch spec (``power.launch``), so a daemon
    in a pod creates workers from its ConfigMap alone; a group recorded without one is then left out.
    Without ``node_keys`` the boards' key files (paths on the operator's machine) are left out: a
    daemon in its pod halts them with the key mounted from its Secret."""
    say = warn or (lambda _message: None)
    out: list[dict[str, Any]] = []
    for group in record.groups:
        if group.role == "front-end":
            continue
        entry: dict[str, Any] = {
            "name": group.name, "cpus": group.node_cpus, "memory_mib": group.node_memory_mib,
            "min": group.min, "max": group.max, "priority": group.priority,
            "cost_per_hour": float(group.price_per_hour or 0.0),
            "labels": {**node_labels(group.name, group.role, group.arch, group.labels),
                       "kubernetes.io/arch": group.arch},
            "taints": list(group.taints),
        }
        if group.cloud:
            cloud: dict[str, Any] = {"type": "cloud", "deployment": deployment_id}
            if launch and group.launch is None:
                say(f"group {group.name}: no launch spec recorded (planned by an older version); not "
                    "scaled in the cluster (run the daemon with --deployment for it)")
                continue
            if launch and group.launch is not None:
                cloud["launch"] = group.launch.to_dict()
            out.append({**entry, "power": cloud})
            continue
        power = _board_power(group, known_hosts, say)
        if power is None:
            continue
        entry["max"] = min(group.max or len(group.boards), len(group.boards))
        entry["min"] = min(group.min, entry["max"])
        entry["nodes"] = [{"name": b.name, "address": b.address, "ssh_user": b.ssh_user,
                           "ssh_port": b.ssh_port,
                           **({"ssh_key": b.ssh_key} if b.ssh_key and node_keys else {}),
                           **({"mac": b.power.mac} if b.power.mac else {})} for b in group.boards]
        out.append({**entry, "power": power})
    return out


def halted_boards(record: DeploymentRecord) -> tuple[Board, ...]:
    """The boards the daemon halts over SSH before cutting their power: those of the groups
    ``daemon_groups`` gives a ``shutdown`` (powered edge fleets none of whose boards is reached
    through the front-end)."""
    quiet: Callable[[str], None] = lambda _message: None  # noqa: E731
    return tuple(b for group in record.groups if group.role != "front-end" and not group.cloud
                 and "shutdown" in (_board_power(group, None, quiet) or {}) for b in group.boards)


def _board_power(group: GroupRecord, known_hosts: str | None, say: Callable[[str], None]
                 ) -> dict[str, Any] | None:
    if not group.boards:
        say(f"group {group.name}: its boards' power settings are not recorded (planned by an older "
            "version); not scaled (run the daemon with --groups for it)")
        return None
    first = group.boards[0].power
    if first.type == UNRECORDED:
        say(f"group {group.name}: its boards' power settings are not recorded (planned by an older "
            "version); not scaled (run the daemon with --groups for it)")
        return None
    if first.type not in ("command", "wol"):
        say(f"group {group.name}: its boards have no power_on command nor wol_mac; the daemon leaves them on")
        return None
    power: dict[str, Any] = {"type": first.type}
    if first.type == "command":
        power["power_on"] = first.power_on
    if first.power_off:
        power["power_off"] = first.power_off
    jumped = [b.name for b in group.boards if b.proxy_jump]
    if jumped:  # reached through the front-end: the daemon's own ssh cannot log in directly
        say(f"group {group.name}: {', '.join(jumped)} reached through the front-end; no SSH shutdown before "
            "the power cut")
        if "power_off" not in power:
            say(f"group {group.name}: no power_off command either; not scaled")
            return None
    else:
        power["shutdown"] = {"known_hosts": known_hosts} if known_hosts else {}
    return power


def size_ranking(planned: Sequence[str], live: Sequence[str], explicit: bool, limit: int = 3
                 ) -> tuple[str, ...]:
    """The sizes to try: a named size alone; else the plan's choice first when the cloud offers it
    (an OpenStack requirement is not a size), then the cloud's own cheapest-first list."""
    if explicit:
        return tuple(live[:1] or planned[:1])
    first = [s for s in planned[:1] if s in live]
    ordered = list(dict.fromkeys([*first, *live])) or [s for s in planned if "≥" not in s]
    return tuple(ordered[:limit])


# --- (de)serialising helpers --------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A dataclass tree as JSON-able data (tuples as lists, mappings as dicts)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _list(data: Mapping[str, Any], key: str, where: str) -> Iterable[Any]:
    value = data.get(key) or []
    if not isinstance(value, list | tuple):
        raise RecordError(f"{where}: {key!r} must be a list, got {type(value).__name__}")
    return value


def _known(cls: Any, data: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``data``'s fields of ``cls``; an unknown key is a ``RecordError`` naming it."""
    if not isinstance(data, Mapping):
        raise RecordError(f"{where}: expected a mapping, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise RecordError(f"{where}: unknown field(s) {', '.join(unknown)}")
    return dict(data)


_SCALARS: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "bool": (bool,), "float": (int, float),
    "str | None": (str, type(None)), "int | None": (int, type(None)),
    "float | None": (int, float, type(None)),
}
"""A field's annotation (this module's, as strings) → the plain JSON types it accepts."""


def _build(cls: Any, fields: dict[str, Any], where: str) -> Any:
    """``cls(**fields)``; a missing field or a scalar of the wrong type is a ``RecordError`` naming it
    (a launch spec in a hand-edited ConfigMap, a damaged record)."""
    declared = dataclasses.fields(cls)
    missing = [f.name for f in declared if f.name not in fields and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise RecordError(f"{where}: missing field(s) {', '.join(missing)}")
    for f in declared:
        accepted = _SCALARS.get(str(f.type))
        value = fields.get(f.name)
        if (accepted is not None and f.name in fields
                and (not isinstance(value, accepted) or (isinstance(value, bool) and bool not in accepted))):
            raise RecordError(f"{where}: {f.name!r} must be {f.type}, got {value!r}")
    try:
        return cls(**fields)
    except TypeError as error:
        raise RecordError(f"{where}: {error}") from None


def _rule(data: Mapping[str, Any]) -> Rule:
    return _build(Rule, _known(Rule, data, "security rule"), "security rule")


def _image(data: Mapping[str, Any]) -> Image:
    return _build(Image, _known(Image, data, "image"), "image")


def _board(data: Mapping[str, Any], arch: str = "arm64") -> Board:
    fields = _known(Board, data, f"board {data.get('name')!r}")
    fields.setdefault("arch", arch)
    fields["arch"] = fields["arch"] or arch
    fields["ssh_user"] = fields.get("ssh_user") or "pi"
    fields["ssh_port"] = int(fields.get("ssh_port") or 22)
    fields["ssh_key"] = fields.get("ssh_key") or None
    fields["cpus"] = int(fields.get("cpus") or 4)
    fields["memory_mib"] = int(fields.get("memory_mib") or 8192)
    power = fields.get("power") or {}
    fields["power"] = _build(Power, {**_known(Power, power, "power"), "type": power.get("type") or "none"},
                             "power")
    return _build(Board, fields, f"board {data.get('name')!r}")


def _join(data: Mapping[str, Any], where: str) -> JoinInputs:
    fields = _known(JoinInputs, data, where)
    fields["taints"] = tuple(fields.get("taints") or ())
    fields["labels"] = dict(fields.get("labels") or {})
    return _build(JoinInputs, fields, where)


def _launch(data: Mapping[str, Any], where: str) -> LaunchSpec:
    fields = _known(LaunchSpec, data, where)
    for key in ("sizes", "zones", "security_rules"):
        if not isinstance(fields.get(key) or [], list | tuple):
            raise RecordError(f"{where}: {key!r} must be a list, got {fields[key]!r}")
    if fields.get("user_data") is not None and not isinstance(fields["user_data"], Mapping):
        raise RecordError(f"{where}: 'user_data' must be a mapping, got {fields['user_data']!r}")
    fields["image"] = _image(fields["image"]) if fields.get("image") else None
    fields["sizes"] = tuple(fields.get("sizes") or ())
    fields["zones"] = tuple(fields.get("zones") or ())
    fields["security_rules"] = tuple(_rule(r) for r in fields.get("security_rules") or ())
    user_data = fields.get("user_data")
    fields["user_data"] = _join(user_data, f"{where}: user_data") if user_data else None
    return _build(LaunchSpec, fields, where)


def _group(data: Mapping[str, Any], where: str) -> GroupRecord:
    fields = _known(GroupRecord, data, where)
    where = f"group {data.get('name')!r}"
    fields["labels"] = dict(fields.get("labels") or {})
    fields["taints"] = tuple(fields.get("taints") or ())
    fields["boards"] = tuple(_board(b) for b in fields.get("boards") or ())
    fields["launch"] = _launch(fields["launch"], f"{where}: launch") if fields.get("launch") else None
    return _build(GroupRecord, fields, where)
