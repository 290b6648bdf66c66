"""The node-groups YAML, shared by ``simulate --groups`` and ``daemon --groups``.

A list of mappings ``{name, cpus, memory_mib, min, max, boot_s, cost_per_hour, priority, labels,
taints, gpus, max_pods, power, nodes}`` parsed into ``elastic.model.NodeGroup``. Every problem is a
``BadInput`` naming the file, the group and the key, so an operator can fix it without reading code.

Edge boards: ``nodes: [{name, address, mac, ssh_user, ssh_port, ssh_key}]`` and, in a ``command`` or
``wol`` power mapping, ``shutdown: {user, port, key, known_hosts, wait_s, settle_s, command}`` (all
optional) to halt a board over SSH before ``power_off`` cuts its power; with ``shutdown`` the cut is
optional and every node needs an ``address``. A node's ``ssh_*`` win over the group's ``shutdown``.

Cloud workers: ``power: {type: cloud, deployment}``, and in the daemon's pod also ``launch`` (the
group's recorded ``LaunchSpec``, checked here), ``credentials`` and ``token`` (the Secret's files).

YAML 1.1 trap: PyYAML reads bare ``on``/``off``/``yes``/``no`` as booleans, so ``power: {on: CMD}``
would silently become ``{True: CMD}``. This loader keeps YAML 1.2's rule (only ``true``/``false`` are
booleans): such keys stay strings and are then rejected by name (``power_on``/``power_off`` are the
keys), and a label value ``yes`` stays the string Kubernetes expects.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from elastic.model import GroupNode, NodeGroup, Taint
from provisioner import sinks
from provisioner.errors import BadInput
from provisioner.record import LaunchSpec, RecordError

GROUP_KEYS = frozenset({
    "name", "cpus", "memory_mib", "min", "max", "boot_s", "cost_per_hour", "priority", "labels",
    "taints", "gpus", "max_pods", "power", "nodes",
})
POWER_TYPES = frozenset({"cloud", "wol", "command"})
POWER_KEYS = {
    # launch, credentials, token: in a pod, how to create a worker without the operator's state file
    "cloud": frozenset({"type", "deployment", "launch", "credentials", "token"}),
    "wol": frozenset({"type", "broadcast", "port", "power_off", "shutdown"}),
    "command": frozenset({"type", "power_on", "power_off", "timeout_s", "shutdown"}),
}
SHUTDOWN_KEYS = frozenset({"user", "port", "key", "known_hosts", "wait_s", "settle_s", "command"})
"""``power.shutdown``: the SSH login that halts a board before its power cut (``power.SshShutdown``)."""
NODE_KEYS = frozenset({"name", "address", "mac", "ssh_user", "ssh_port", "ssh_key"})
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_TAINT_RE = re.compile(r"^(?P<key>[^=:\s]+)(=(?P<value>[^:\s]*))?:(?P<effect>\w+)$")
_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


class GroupsError(BadInput):
    """The groups file is invalid; the message names the file, the group and the key."""


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader whose booleans are only ``true``/``false`` (YAML 1.2), not ``on``/``yes``/..."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml12(path: Path) -> Any:
    """Read a YAML file with YAML 1.2 booleans; a syntax error or unreadable file is ``BadInput``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise GroupsError(f"{path}: cannot read: {error.strerror or error}") from None
    try:
        return yaml.load(text, Loader=_Yaml12Loader)  # a SafeLoader subclass
    except yaml.YAMLError as error:
        reason = " ".join(str(error).split())  # one line: a pod's log shows it as its reason
        raise GroupsError(f"{path}: not valid YAML: {reason}") from None


def load_groups(path: Path) -> tuple[NodeGroup, ...]:
    """Parse and check a groups file; groups come back in file order."""
    data = load_yaml12(path)
    if isinstance(data, Mapping) and "groups" in data:
        data = data["groups"]
    return parse_groups(data, str(path))


def parse_groups(data: Any, where: str) -> tuple[NodeGroup, ...]:
    """Check already-loaded YAML data (a list of group mappings) and build ``NodeGroup``s."""
    if not isinstance(data, list) or not data:
        raise GroupsError(f"{where}: expected a non-empty list of groups")
    groups = [_parse_group(item, where, index) for index, item in enumerate(data, start=1)]
    seen: set[str] = set()
    node_names: dict[str, str] = {}
    for group in groups:
        if group.name in seen:
            raise GroupsError(f"{where}: group {group.name!r}: name used twice")
        seen.add(group.name)
        for node in group.nodes:
            if node.name in node_names:
                raise GroupsError(
                    f"{where}: group {group.name!r}: node {node.name!r} is also in group "
                    f"{node_names[node.name]!r}"
                )
            node_names[node.name] = group.name
    return tuple(groups)


def _parse_group(item: Any, where: str, index: int) -> NodeGroup:
    if not isinstance(item, Mapping):
        raise GroupsError(f"{where}: group #{index}: expected a mapping, got {type(item).__name__}")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise GroupsError(f"{where}: group #{index}: 'name' must be a DNS-style name, got {name!r}")
    here = f"{where}: group {name!r}"
    for key in item:
        if not isinstance(key, str):
            raise GroupsError(f"{here}: key {key!r} is not a string (quote it)")
        if key not in GROUP_KEYS:
            raise GroupsError(f"{here}: unknown key {key!r} (known: {', '.join(sorted(GROUP_KEYS))})")
    for required in ("cpus", "memory_mib"):
        if required not in item:
            raise GroupsError(f"{here}: missing {required!r}")
    cpus = _number(item["cpus"], here, "cpus", positive=True)
    memory = _integer(item["memory_mib"], here, "memory_mib", positive=True)
    nodes = _nodes(item.get("nodes"), here)
    minimum = _integer(item.get("min", 0), here, "min")
    maximum = _integer(item.get("max", len(nodes) if nodes else 1), here, "max")
    if minimum > maximum:
        raise GroupsError(f"{here}: 'min' ({minimum}) is greater than 'max' ({maximum})")
    if nodes and maximum > len(nodes):
        raise GroupsError(f"{here}: 'max' ({maximum}) is more than the {len(nodes)} listed nodes")
    power = _power(item.get("power"), here)
    if power.get("type") in ("wol", "command") and not nodes:
        raise GroupsError(f"{here}: power type {power['type']!r} needs a 'nodes' list")
    if "shutdown" in power:
        for node in nodes:
            if not node.address:
                raise GroupsError(f"{here}: node {node.name!r}: power 'shutdown' halts boards over SSH, so "
                                  f"every node needs an 'address'")
    return NodeGroup(
        name=name,
        cpus=cpus,
        memory_mib=memory,
        min=minimum,
        max=maximum,
        boot_s=_number(item.get("boot_s", 60.0), here, "boot_s"),
        cost_per_hour=_number(item.get("cost_per_hour", 0.0), here, "cost_per_hour"),
        priority=_integer(item.get("priority", 0), here, "priority", signed=True),
        labels=_labels(item.get("labels"), here),
        taints=_taints(item.get("taints"), here),
        gpus=_integer(item.get("gpus", 0), here, "gpus"),
        max_pods=_integer(item.get("max_pods", 110), here, "max_pods", positive=True),
        nodes=nodes,
        power=power,
    )


def _number(value: Any, here: str, key: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise GroupsError(f"{here}: {key!r} must be a number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise GroupsError(f"{here}: {key!r} must be {'positive' if positive else '0 or more'}, got {value}")
    return float(value)


def _integer(value: Any, here: str, key: str, *, positive: bool = False, signed: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise GroupsError(f"{here}: {key!r} must be a whole number, got {value!r}")
    if not signed and (value < 0 or (positive and value == 0)):
        raise GroupsError(f"{here}: {key!r} must be {'positive' if positive else '0 or more'}, got {value}")
    return value


def _labels(value: Any, here: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise GroupsError(f"{here}: 'labels' must be a mapping of strings")
    labels = {}
    for key, label in value.items():
        if not isinstance(key, str) or isinstance(label, bool) or not isinstance(label, str | int | float):
            raise GroupsError(f"{here}: label {key!r}: {label!r} is not a string")
        labels[key] = str(label)
    return labels


def parse_taints(value: Any, here: str) -> tuple[Taint, ...]:
    """Taints as ``key=value:Effect`` strings or mappings (also the recorded plan's), checked."""
    return _taints(value, here)


def _taints(value: Any, here: str) -> tuple[Taint, ...]:
    """Taints as ``key=value:Effect`` strings (kubectl's form) or ``{key, value, effect}`` mappings."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise GroupsError(f"{here}: 'taints' must be a list")
    taints = []
    for raw in value:
        if isinstance(raw, str):
            match = _TAINT_RE.match(raw)
            if not match:
                raise GroupsError(f"{here}: taint {raw!r} is not 'key=value:Effect'")
            key, taint_value, effect = match["key"], match["value"] or "", match["effect"]
        elif isinstance(raw, Mapping) and isinstance(raw.get("key"), str):
            key, taint_value = raw["key"], str(raw.get("value", ""))
            effect = raw.get("effect", "NoSchedule")
        else:
            raise GroupsError(f"{here}: taint {raw!r} must be 'key=value:Effect' or {{key, value, effect}}")
        if effect not in TAINT_EFFECTS:
            raise GroupsError(f"{here}: taint {key!r}: effect {effect!r} is not one of {TAINT_EFFECTS}")
        taints.append(Taint(key=key, value=taint_value, effect=effect))
    return tuple(taints)


def _nodes(value: Any, here: str) -> tuple[GroupNode, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise GroupsError(f"{here}: 'nodes' must be a list of {{{', '.join(sorted(NODE_KEYS))}}}")
    nodes = []
    for raw in value:
        if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
            raise GroupsError(f"{here}: node {raw!r} must be a mapping with a 'name'")
        unknown = set(raw) - NODE_KEYS
        if unknown:
            raise GroupsError(f"{here}: node {raw['name']!r}: unknown key(s) {sorted(map(str, unknown))} "
                              f"(known: {', '.join(sorted(NODE_KEYS))})")
        for key in ("address", "mac", "ssh_user", "ssh_key"):
            if raw.get(key) is not None and not isinstance(raw[key], str):
                raise GroupsError(f"{here}: node {raw['name']!r}: {key!r} must be a string (quote it)")
        # Each of these reaches ssh's command line, a power command or a Kubernetes name.
        checks = {"name": sinks.dns_label, "address": sinks.host_address, "mac": sinks.mac_address,
                  "ssh_user": sinks.posix_user, "ssh_key": sinks.file_path}
        for key, check in checks.items():
            why = check(raw[key]) if raw.get(key) is not None else None
            if why:
                raise GroupsError(f"{here}: node {raw['name']!r}: {key} {raw[key]!r} {why}")
        port = raw.get("ssh_port")
        if port is not None:
            port = _port(port, f"{here}: node {raw['name']!r}", "ssh_port")
        nodes.append(GroupNode(name=raw["name"], address=raw.get("address"), mac=raw.get("mac"),
                               ssh_user=raw.get("ssh_user"), ssh_port=port, ssh_key=raw.get("ssh_key")))
    return tuple(nodes)


def _power(value: Any, here: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise GroupsError(f"{here}: 'power' must be a mapping with a 'type'")
    kind = value.get("type")
    if kind not in POWER_TYPES:
        raise GroupsError(f"{here}: power 'type' must be one of {sorted(POWER_TYPES)}, got {kind!r}")
    for key in value:
        if key in ("on", "off", "yes", "no") or not isinstance(key, str):
            raise GroupsError(
                f"{here}: power key {key!r} is not allowed (YAML 1.1 reads bare on/off as booleans); "
                f"use 'power_on' / 'power_off'"
            )
        if key not in POWER_KEYS[kind]:
            raise GroupsError(
                f"{here}: power key {key!r} is unknown for type {kind!r} "
                f"(known: {', '.join(sorted(POWER_KEYS[kind]))})"
            )
    if "shutdown" in value:
        _shutdown(value["shutdown"], here)
    for key in ("power_on", "power_off"):
        if key in value and (not isinstance(value[key], str) or not value[key].strip()):
            raise GroupsError(f"{here}: power {key!r} must be a command string, got {value[key]!r}")
    if kind == "command":
        if "power_on" not in value:
            raise GroupsError(f"{here}: power type 'command' needs a 'power_on' command string")
        if "power_off" not in value and "shutdown" not in value:
            raise GroupsError(f"{here}: power type 'command' needs a 'power_off' command string (the power "
                              f"cut), a 'shutdown' mapping (halt over SSH), or both")
    if kind == "cloud" and not isinstance(value.get("deployment"), str):
        raise GroupsError(f"{here}: power type 'cloud' needs 'deployment' (a deployment id or name)")
    if kind == "cloud" and "launch" in value:
        _cloud_launch(value, here)
    return dict(value)


def _cloud_launch(value: Mapping[str, Any], here: str) -> None:
    """``power: {type: cloud, launch, credentials, token}``: a launch spec (``LaunchSpec.to_dict()``),
    the directory of the cloud credential's files and the join token's file (the elastic role adds
    those two; the daemon needs them once it makes the group's power manager)."""
    for key in ("credentials", "token"):
        if key in value and (not isinstance(value[key], str) or not value[key].strip()):
            raise GroupsError(f"{here}: power {key!r} must be a file path, got {value[key]!r}")
    try:
        LaunchSpec.from_dict(value["launch"])
    except RecordError as error:
        raise GroupsError(f"{here}: power.{error}") from None


def _port(value: Any, here: str, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise GroupsError(f"{here}: {key!r} must be a port number 1-65535, got {value!r}")
    return value


def _shutdown(value: Any, here: str) -> None:
    """``power.shutdown: {user, port, key, known_hosts, wait_s, settle_s, command}``, all optional
    (``{}`` halts as ``pi`` on port 22 with ssh's default keys)."""
    where = f"{here}: power 'shutdown'"
    if not isinstance(value, Mapping):
        raise GroupsError(f"{where} must be a mapping such as {{user: pi, port: 22, key: ~/.ssh/id_ed25519}} "
                          f"(use {{}} for the defaults), got {value!r}")
    for key, field in value.items():
        if not isinstance(key, str) or key not in SHUTDOWN_KEYS:
            raise GroupsError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(SHUTDOWN_KEYS))})")
        if key == "port":
            _port(field, where, key)
        elif key in ("wait_s", "settle_s"):
            _number(field, where, key)
        elif not isinstance(field, str) or not field.strip():
            raise GroupsError(f"{where}: {key!r} must be a non-empty string (quote it), got {field!r}")
        elif key in ("user", "key", "known_hosts"):
            why = (sinks.posix_user if key == "user" else sinks.file_path)(field)
            if why:
                raise GroupsError(f"{where}: {key} {field!r} {why}")
