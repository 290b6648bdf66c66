"""Pure placement rules of the harness scheduler: does this pod fit on that node, and why not.

The filters are those of kube-scheduler's default plugins the product's policy mirrors
(NodeUnschedulable, NodeName, TaintToleration, NodeAffinity incl. nodeSelector, NodeResourcesFit,
NodeReady via the ``node.kubernetes.io/not-ready`` taint); failure messages use the scheduler's
words so a product reading ``PodScheduled=False`` sees what it would see on a real cluster.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity

from tests.harness.kube.objects import NOT_READY_TAINT, UNSCHEDULABLE_TAINT

Obj = dict[str, Any]
Resources = dict[str, Decimal]

GPU = "nvidia.com/gpu"

# Tolerations the DaemonSet controller adds to every pod it creates (pkg/controller/daemon/util).
DAEMONSET_TOLERATIONS: list[Obj] = [
    {"key": NOT_READY_TAINT, "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": UNSCHEDULABLE_TAINT, "operator": "Exists", "effect": "NoSchedule"},
]


def is_daemonset_pod(pod: Obj) -> bool:
    return any(ref.get("kind") == "DaemonSet" for ref in pod["metadata"].get("ownerReferences") or [])


def is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def node_is_ready(node: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (node.get("status") or {}).get("conditions") or []
    )


def pod_requests(pod: Obj) -> Resources:
    """Effective requests: containers summed, the largest init container if larger, one pod slot.

    A container that sets only limits requests its limits (the API server defaults it so).
    """

    def container_sum(containers: Iterable[Obj]) -> Resources:
        total: Counter[str] = Counter()
        for container in containers:
            res = container.get("resources") or {}
            for key, value in {**(res.get("limits") or {}), **(res.get("requests") or {})}.items():
                total[key] += parse_quantity(value)
        return dict(total)

    spec = pod.get("spec") or {}
    result = container_sum(spec.get("containers") or [])
    for init in spec.get("initContainers") or []:
        for key, value in container_sum([init]).items():
            result[key] = max(result.get(key, Decimal(0)), value)
    for key, value in (spec.get("overhead") or {}).items():
        result[key] = result.get(key, Decimal(0)) + parse_quantity(value)
    result["pods"] = Decimal(1)
    return result


def allocatable(node: Obj) -> Resources:
    status = node.get("status") or {}
    return {
        key: parse_quantity(value)
        for key, value in (status.get("allocatable") or status.get("capacity") or {}).items()
    }


def tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    for tol in tolerations:
        if tol.get("effect") and tol["effect"] != taint.get("effect"):
            continue
        if tol.get("operator", "Equal") == "Exists":
            if not tol.get("key") or tol["key"] == taint.get("key"):
                return True
        elif tol.get("key") == taint.get("key") and (tol.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _expression_matches(expr: Obj, labels: dict[str, str]) -> bool:
    key, op, values = expr["key"], expr["operator"], expr.get("values") or []
    present, value = key in labels, labels.get(key)
    if op == "In":
        return present and value in values
    if op == "NotIn":
        return not present or value not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and values:
        try:
            left, right = int(value or ""), int(values[0])
        except ValueError:
            return False
        return left > right if op == "Gt" else left < right
    return False


def matches_node_affinity(pod: Obj, node: Obj) -> bool:
    """nodeSelector AND required node affinity (terms ORed, expressions and fields ANDed)."""
    spec = pod.get("spec") or {}
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms")
    if not terms:
        return True
    fields = {"metadata.name": node["metadata"]["name"]}
    return any(
        (term.get("matchExpressions") or term.get("matchFields"))
        and all(_expression_matches(e, labels) for e in term.get("matchExpressions") or [])
        and all(_expression_matches(e, fields) for e in term.get("matchFields") or [])
        for term in terms
    )


def misfit(
    pod: Obj, node: Obj, used: Resources, requests: Resources | None = None, capacity: Resources | None = None
) -> list[str]:
    """Why ``pod`` cannot go on ``node`` given what is already ``used`` there; [] when it fits.

    ``requests`` and ``capacity`` may be passed precomputed (parsing quantities is the costly part).
    """
    spec = pod.get("spec") or {}
    tolerations = list(spec.get("tolerations") or [])
    if is_daemonset_pod(pod):
        tolerations += DAEMONSET_TOLERATIONS
    node_spec = node.get("spec") or {}
    if node_spec.get("unschedulable") and not tolerates(
        tolerations, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}
    ):
        return ["node(s) were unschedulable"]
    if not matches_node_affinity(pod, node):
        return ["node(s) didn't match Pod's node affinity/selector"]
    taints = list(node_spec.get("taints") or [])
    if not node_is_ready(node) and not any(t.get("key") == NOT_READY_TAINT for t in taints):
        taints.append({"key": NOT_READY_TAINT, "effect": "NoSchedule"})
    for taint in taints:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
            return [f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"]
    capacity = allocatable(node) if capacity is None else capacity
    reasons = []
    for key, amount in (pod_requests(pod) if requests is None else requests).items():
        if amount > 0 and used.get(key, Decimal(0)) + amount > capacity.get(key, Decimal(0)):
            reasons.append("Too many pods" if key == "pods" else f"Insufficient {key}")
    return reasons


def unschedulable_message(reasons: Counter[str], node_count: int) -> str:
    """The scheduler's FitError text: ``0/3 nodes are available: 1 Insufficient cpu, 2 ....``"""
    if node_count == 0:
        return "no nodes available to schedule pods"
    parts = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    return (
        f"0/{node_count} nodes are available: {parts}. preemption: 0/{node_count} nodes are available: "
        f"{node_count} Preemption is not helpful for scheduling."
    )


def place(
    pod: Obj,
    nodes: list[Obj],
    used: dict[str, Resources],
    requests: Resources | None = None,
    capacities: dict[str, Resources] | None = None,
) -> tuple[str | None, str]:
    """Pick the fitting node with the most free CPU (LeastAllocated scoring), or explain the failure."""
    requests = pod_requests(pod) if requests is None else requests
    capacities = capacities if capacities is not None else {}
    reasons: Counter[str] = Counter()
    best, best_free = None, Decimal(-1)
    for node in nodes:
        name = node["metadata"]["name"]
        capacity = capacities.get(name)
        if capacity is None:
            capacity = capacities[name] = allocatable(node)
        why = misfit(pod, node, used.get(name, {}), requests, capacity)
        if why:
            reasons.update(why)
            continue
        free = capacity.get("cpu", Decimal(0)) - used.get(name, {}).get("cpu", Decimal(0))
        if free > best_free:
            best, best_free = name, free
    return best, "" if best else unschedulable_message(reasons, len(nodes))


def add_usage(used: dict[str, Resources], node: str, requests: Resources) -> None:
    bucket = used.setdefault(node, {})
    for key, amount in requests.items():
        bucket[key] = bucket.get(key, Decimal(0)) + amount
