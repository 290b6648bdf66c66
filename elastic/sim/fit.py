"""Which pods may land on which nodes: nodeSelector, required node affinity and taints, as the
kube-scheduler filters them. Shared by the simulated scheduler and the baseline policies."""

from __future__ import annotations

from collections.abc import Mapping

from elastic.model import MatchExpression, PodInfo, Taint, Toleration


def _tolerated(taint: Taint, tolerations: tuple[Toleration, ...]) -> bool:
    for toleration in tolerations:
        if toleration.effect is not None and toleration.effect != taint.effect:
            continue
        if toleration.key is None and toleration.operator == "Exists":
            return True
        if toleration.key != taint.key:
            continue
        if toleration.operator == "Exists" or toleration.value == taint.value:
            return True
    return False


def _expression_holds(expression: MatchExpression, labels: Mapping[str, str]) -> bool:
    value = labels.get(expression.key)
    if expression.operator == "In":
        return value in expression.values
    if expression.operator == "NotIn":
        return value not in expression.values
    if expression.operator == "Exists":
        return value is not None
    if expression.operator == "DoesNotExist":
        return value is None
    try:
        number, bound = int(value or ""), int(expression.values[0])
    except (ValueError, IndexError):
        return False
    return number > bound if expression.operator == "Gt" else number < bound


def placeable(pod: PodInfo, labels: Mapping[str, str], taints: tuple[Taint, ...]) -> bool:
    """True if the scheduler's filters (not resources) allow ``pod`` on a node with these labels/taints."""
    if any(labels.get(key) != value for key, value in pod.node_selector.items()):
        return False
    if pod.affinity_terms and not any(
        all(_expression_holds(expression, labels) for expression in term) for term in pod.affinity_terms
    ):
        return False
    return all(
        taint.effect == "PreferNoSchedule" or _tolerated(taint, pod.tolerations) for taint in taints
    )
