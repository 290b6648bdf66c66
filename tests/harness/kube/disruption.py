"""PodDisruptionBudget arithmetic and the Eviction API's decision (pkg/registry/core/pod/storage/eviction.go).

A pod that is Pending, Succeeded or Failed is evicted without consulting budgets; otherwise the one
budget selecting it must allow a disruption, or the eviction is refused with ``429`` — the answer a
draining daemon has to retry on.
"""

from __future__ import annotations

import math
from typing import Any

from tests.harness.kube.objects import Writer
from tests.harness.kube.selectors import label_selector_from_dict, labels_match
from tests.harness.kube.store import ApiError, Store, TooManyRequests
from tests.harness.kube.strategy import delete_pod

Obj = dict[str, Any]


class MultipleBudgets(ApiError):
    code, reason = 500, "InternalError"


def pod_is_healthy(pod: Obj) -> bool:
    status = pod.get("status") or {}
    return (
        status.get("phase") == "Running"
        and not pod["metadata"].get("deletionTimestamp")
        and any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
        )
    )


def _scaled(value: Any, expected: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * expected / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value)


def budget_status(pdb: Obj, pods: list[Obj]) -> Obj:
    """The status the disruption controller would write for ``pdb`` over the namespace's ``pods``."""
    selector = label_selector_from_dict((pdb.get("spec") or {}).get("selector"))
    selected = (
        [p for p in pods if labels_match(selector, p)] if (pdb.get("spec") or {}).get("selector") else []
    )
    expected = len(selected)
    healthy = sum(1 for p in selected if pod_is_healthy(p))
    spec = pdb.get("spec") or {}
    if spec.get("minAvailable") is not None:
        desired = _scaled(spec["minAvailable"], expected, round_up=True)
    elif spec.get("maxUnavailable") is not None:
        desired = max(0, expected - _scaled(spec["maxUnavailable"], expected, round_up=True))
    else:
        desired = expected
    return {
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "disruptionsAllowed": max(0, healthy - desired),
        "observedGeneration": pdb["metadata"].get("generation", 1),
    }


def evict(store: Store, namespace: str, name: str) -> Obj:
    """Delete the pod (gracefully) if its budgets allow, atomically with the budget check."""
    with store.cond:
        pod = store.get("pods", namespace, name)
        if pod["metadata"].get("deletionTimestamp"):
            return pod  # already terminating: the eviction has nothing left to do
        phase = (pod.get("status") or {}).get("phase")
        if phase not in ("Pending", "Succeeded", "Failed"):
            pods, _ = store.list("pods", namespace)
            budgets = [
                b
                for b in store.list("poddisruptionbudgets", namespace)[0]
                if (b.get("spec") or {}).get("selector")
                and labels_match(label_selector_from_dict(b["spec"]["selector"]), pod)
            ]
            if len(budgets) > 1:
                raise MultipleBudgets(
                    "This pod has more than one PodDisruptionBudget, which the eviction "
                    "subresource does not support."
                )
            if budgets:
                status = budget_status(budgets[0], pods)
                healthy_pod = pod_is_healthy(pod)
                allowed = (
                    status["disruptionsAllowed"] > 0
                    if healthy_pod
                    else status["currentHealthy"] >= status["desiredHealthy"]
                )
                if not allowed:
                    budget = budgets[0]["metadata"]["name"]
                    raise TooManyRequests(
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                        {
                            "causes": [
                                {
                                    "reason": "DisruptionBudget",
                                    "message": f"The disruption budget {budget} needs "
                                    f"{status['desiredHealthy']} healthy pods and has "
                                    f"{status['currentHealthy']} currently",
                                }
                            ]
                        },
                    )
        return delete_pod(store, namespace, name, None)


class DisruptionController:
    """Keeps each PodDisruptionBudget's status current, as kube-controller-manager's disruption controller."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer

    def sync(self, budgets: list[Obj], pods: list[Obj]) -> None:
        by_namespace: dict[str, list[Obj]] = {}
        for pod in pods:
            by_namespace.setdefault(pod["metadata"]["namespace"], []).append(pod)
        for pdb in budgets:
            meta = pdb["metadata"]
            status = budget_status(pdb, by_namespace.get(meta["namespace"], []))
            if {k: (pdb.get("status") or {}).get(k) for k in status} != status:
                self.writer.write(
                    "poddisruptionbudgets",
                    meta["namespace"],
                    meta["name"],
                    lambda obj, status=status: {**obj, "status": {**(obj.get("status") or {}), **status}},
                )
