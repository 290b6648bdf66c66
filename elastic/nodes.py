"""``oscar-deploy nodes``: what the operator sees and asks of the daemon.

``status`` reads what the daemon publishes (Node annotations, the status ConfigMap) and the groups'
listed boards. The other actions are *requests*: a key ``NODE: ACTION`` in the ConfigMap
``oscar-deploy-elastic-requests`` that the leader applies on its next pass and then removes. Going
through the leader keeps one writer of the lifecycle (two replicas never act at once, and a request
made while no replica leads waits for the next one instead of racing it).

Actions: ``enable`` (a disabled node is managed again), ``disable`` (never touched by the daemon),
``poweron`` / ``poweroff`` (by hand, through the group's power manager), ``reset`` (failed → off).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes.client.rest import ApiException

from elastic.kubeapi import KubeApi, finish
from elastic.lifecycle import GROUP, from_annotations, load_dump
from elastic.model import NodeGroup, NodeState
from elastic.policy.fit import GROUP_LABEL
from elastic.view import node_ready
from provisioner.errors import BadInput
from provisioner.podrules import is_user_pod

REQUESTS_CONFIGMAP = "oscar-deploy-elastic-requests"
ACTIONS = ("enable", "disable", "poweron", "poweroff", "reset")


@dataclasses.dataclass(frozen=True)
class NodeRow:
    name: str
    group: str
    state: str
    since: float | None
    ready: bool
    registered: bool
    pods: int
    """User pods bound to it (DaemonSet and mirror pods left out)."""
    requested: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def status(api: KubeApi, groups: Sequence[NodeGroup] = ()) -> list[NodeRow]:
    """Every managed node: from Node annotations, the daemon's ConfigMap, and the groups' boards."""
    nodes = api.list_raw("nodes").get("items") or []
    pods = api.list_raw("pods").get("items") or []
    user: dict[str, int] = {}
    for pod in pods:
        if is_user_pod(pod):
            node = str(pod["spec"]["nodeName"])
            user[node] = user.get(node, 0) + 1
    requests = read_requests(api)
    published = api.read_status()
    fleet = {m.name: g.name for g in groups for m in g.nodes} or published_members(published)
    rows: dict[str, NodeRow] = {}
    for node in nodes:
        meta = node["metadata"]
        name = meta["name"]
        annotations = meta.get("annotations") or {}
        group = fleet.get(name) or annotations.get(GROUP) or (meta.get("labels") or {}).get(GROUP_LABEL)
        if not group:
            continue
        record = from_annotations(name, annotations, group)
        rows[name] = NodeRow(name, group, record.state.value if record else NodeState.UNKNOWN.value,
                             record.since if record else None, node_ready(node), True, user.get(name, 0),
                             requests.get(name))
    saved, _backoff = load_dump(published.get("state"))
    for record in saved:
        if record.name not in rows:
            rows[record.name] = NodeRow(record.name, record.group, record.state.value, record.since, False,
                                        False, 0, requests.get(record.name))
    for name, group in fleet.items():
        if name not in rows:
            rows[name] = NodeRow(name, group, NodeState.OFF.value, None, False, False, 0, requests.get(name))
    return sorted(rows.values(), key=lambda r: (r.group, r.name))


MEMBERS_KEY = "groups"
"""Key of the status ConfigMap where the daemon publishes its groups' listed boards (JSON:
group → node names), so ``nodes`` knows a board that never registered without a groups file."""


def published_members(published: Mapping[str, str]) -> dict[str, str]:
    """node → group of the boards the daemon said it manages (empty when it has not said)."""
    try:
        members = json.loads(published.get(MEMBERS_KEY) or "{}")
    except ValueError:
        return {}
    return {str(n): str(g) for g, names in members.items() if isinstance(names, list) for n in names}


def check_managed(api: KubeApi, rows: Sequence[NodeRow], node: str, groups_given: bool) -> str | None:
    """Refuse a request for a node in no group the daemon manages: the leader would ignore it.
    Without a groups file and before any daemon published its status, nothing can tell: the request
    goes through, and the warning to show is returned."""
    if any(r.name == node for r in rows):
        return None
    if not groups_given and not api.read_status().get(MEMBERS_KEY):
        return (f"no daemon has published its groups yet, so {node!r} cannot be checked; the leader "
                f"ignores the request if it is in no group")
    managed = ", ".join(r.name for r in rows) or "none"
    raise BadInput(f"nodes: {node!r} is in no node group the daemon manages (managed: {managed})")


def read_requests(api: KubeApi) -> dict[str, str]:
    """The operator's pending requests (node → action) the leader has not applied yet."""
    return api.read_configmap_data(REQUESTS_CONFIGMAP)


def request(api: KubeApi, action: str, node: str) -> None:
    """Ask the leader to ``action`` ``node`` on its next pass."""
    if action not in ACTIONS:
        raise BadInput(f"nodes: unknown action {action!r} (one of {', '.join(ACTIONS)})")
    patch = {"data": {node: action}}
    try:
        finish(api.core.patch_namespaced_config_map(REQUESTS_CONFIGMAP, api.namespace, patch,
                                                    _preload_content=False))
    except ApiException as error:
        if error.status != 404:
            raise
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": REQUESTS_CONFIGMAP, "namespace": api.namespace}, "data": {node: action}}
        finish(api.core.create_namespaced_config_map(api.namespace, body, _preload_content=False))


def forget_requests(api: KubeApi, done: Mapping[str, str]) -> None:
    """Remove handled requests (only those still asking the same thing)."""
    if not done:
        return
    patch = {"data": dict.fromkeys(done)}
    try:
        finish(api.core.patch_namespaced_config_map(REQUESTS_CONFIGMAP, api.namespace, patch,
                                                    _preload_content=False))
    except ApiException as error:
        if error.status != 404:
            raise


def format_since(since: float | None, now: float | None = None) -> str:
    if since is None:
        return "-"
    seconds = max(0, int((now or time.time()) - since))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"
