"""The Kubernetes rules about pods that more than one part of the tool applies: which pods are user
work on their node, which ask not to be disrupted, and where the scheduler may put a pod (node
labels, required node affinity, taints and tolerations).

One module, so the elastic policy, the simulator's scheduler, ``scale`` and the actuator cannot
drift apart. It sits low in ``provisioner`` (which never imports ``elastic``) so both may import
it. Pure functions and plain data, no I/O. The rules follow upstream:

* tolerations: ``Toleration.ToleratesTaint`` (kubernetes/api ``core/v1/toleration.go``): an effect,
  when given, must equal the taint's; a key, when given, must equal it; ``Exists`` matches any
  value, ``Equal`` (or no operator) the same value. An empty key with ``Exists`` tolerates
  everything. ``Gt``/``Lt`` tolerations (behind a feature gate, off by default) match nothing, as
  with the gate off.
* taints: the scheduler's TaintToleration filter rejects a node with an untolerated ``NoSchedule``
  or ``NoExecute`` taint (component-helpers ``scheduling/corev1.FindMatchingUntoleratedTaint`` with
  that filter); ``PreferNoSchedule`` only scores.
* node selection: ``nodeaffinity.RequiredNodeAffinity.Match`` (component-helpers
  ``scheduling/corev1/nodeaffinity``): every ``nodeSelector`` pair, and then ANY of the required
  affinity's terms, a term matching when ALL its expressions do; a term without expressions selects
  nothing. ``NotIn`` and ``DoesNotExist`` match a missing label; ``Gt``/``Lt`` compare the label and
  the single value as base-10 64-bit integers (apimachinery ``labels.Requirement.Matches``).

Read at kubernetes/api 10b39a39bcee and kubernetes/component-helpers 1961876b9c57 (July 2026).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, Literal

Obj = Mapping[str, Any]

FINISHED = frozenset({"Succeeded", "Failed"})
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"
PROTECTING: Mapping[str, str] = {DO_NOT_DISRUPT: "true", SAFE_TO_EVICT: "false"}
"""Pod annotations that keep a node on (Karpenter's and the Cluster Autoscaler's)."""
BLOCKING_EFFECTS = frozenset({"NoSchedule", "NoExecute"})
"""Taint effects the scheduler filters on; ``PreferNoSchedule`` only lowers a node's score."""


@dataclasses.dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = "NoSchedule"


@dataclasses.dataclass(frozen=True, slots=True)
class Toleration:
    key: str | None = None
    """None (or "") with operator Exists tolerates every taint."""
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str = ""
    effect: str | None = None
    """None tolerates every effect."""


@dataclasses.dataclass(frozen=True, slots=True)
class MatchExpression:
    """One ``nodeSelectorTerms[].matchExpressions[]`` entry of required node affinity."""

    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
    values: tuple[str, ...] = ()


# ---- user pods ------------------------------------------------------------------------------------


def user_work(bound: bool, phase: str, daemonset: bool, mirror: bool) -> bool:
    """A pod is work on its node when it is bound, not finished, and neither a DaemonSet's (one runs
    on every node, idle or not) nor a mirror pod (the kubelet's own static pods)."""
    return bound and phase not in FINISHED and not daemonset and not mirror


def is_daemonset(pod: Obj) -> bool:
    return any(o.get("kind") == "DaemonSet" for o in (pod.get("metadata") or {}).get("ownerReferences") or [])


def is_mirror(pod: Obj) -> bool:
    return MIRROR_ANNOTATION in ((pod.get("metadata") or {}).get("annotations") or {})


def phase_of(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def is_user_pod(pod: Obj) -> bool:
    """``user_work`` for a Pod object (a JSON dict as the API returns it)."""
    return user_work(bound=bool((pod.get("spec") or {}).get("nodeName")), phase=phase_of(pod),
                     daemonset=is_daemonset(pod), mirror=is_mirror(pod))


def protecting_annotation(pod: Obj) -> str | None:
    """``key=value`` of the annotation that asks not to disrupt ``pod``, if any."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return next((f"{k}={v}" for k, v in PROTECTING.items() if annotations.get(k) == v), None)


# ---- where a pod may go ---------------------------------------------------------------------------


def tolerates(toleration: Toleration, taint: Taint) -> bool:
    """``Toleration.ToleratesTaint``."""
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.key and toleration.key != taint.key:
        return False
    if toleration.operator == "Exists":
        return True
    if toleration.operator in ("Equal", ""):
        return toleration.value == taint.value
    return False


def untolerated(taints: tuple[Taint, ...], tolerations: tuple[Toleration, ...]) -> Taint | None:
    """The first ``NoSchedule``/``NoExecute`` taint no toleration tolerates, or None."""
    for taint in taints:
        if taint.effect in BLOCKING_EFFECTS and not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


_INT64 = re.compile(r"[+-]?[0-9]+")


def _int64(text: str) -> int | None:
    """Go's ``strconv.ParseInt(text, 10, 64)``: no spaces, no underscores, within 64 bits."""
    if not _INT64.fullmatch(text):
        return None
    number = int(text)
    return number if -(2**63) <= number < 2**63 else None


def expression_holds(expr: MatchExpression, labels: Mapping[str, str]) -> bool:
    value = labels.get(expr.key)
    op = expr.operator
    if op == "In":
        return value is not None and value in expr.values
    if op == "NotIn":
        return value is None or value not in expr.values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt"):
        if value is None or len(expr.values) != 1:
            return False
        have, bound = _int64(value), _int64(expr.values[0])
        if have is None or bound is None:
            return False
        return have > bound if op == "Gt" else have < bound
    return False


def affinity_matches(terms: tuple[tuple[MatchExpression, ...], ...], labels: Mapping[str, str]) -> bool:
    """Required node affinity: no terms means no requirement; else ANY non-empty term whose
    expressions ALL hold (an empty term selects nothing)."""
    if not terms:
        return True
    return any(term and all(expression_holds(e, labels) for e in term) for term in terms)


def selects(selector: Mapping[str, str] | tuple[tuple[str, str], ...], labels: Mapping[str, str]) -> bool:
    """``nodeSelector``: every pair present with the same value."""
    pairs = selector.items() if isinstance(selector, Mapping) else selector
    return all(labels.get(key) == value for key, value in pairs)


def placeable(
    selector: Mapping[str, str] | tuple[tuple[str, str], ...],
    affinity: tuple[tuple[MatchExpression, ...], ...],
    tolerations: tuple[Toleration, ...],
    labels: Mapping[str, str],
    taints: tuple[Taint, ...],
) -> bool:
    """May the scheduler put a pod with these constraints on a node with these labels and taints
    (resources aside)?"""
    return (selects(selector, labels) and affinity_matches(affinity, labels)
            and untolerated(taints, tolerations) is None)


# ---- from API objects -----------------------------------------------------------------------------


def affinity_terms_of(spec: Obj) -> tuple[tuple[MatchExpression, ...], ...]:
    """A pod spec's required node affinity terms (``matchFields`` are not modelled)."""
    node_affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {})
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    return tuple(
        tuple(MatchExpression(key=e["key"], operator=e["operator"], values=tuple(e.get("values") or ()))
              for e in term.get("matchExpressions") or [])
        for term in required.get("nodeSelectorTerms") or []
    )


def tolerations_of(spec: Obj) -> tuple[Toleration, ...]:
    return tuple(
        Toleration(key=t.get("key") or None, operator=t.get("operator") or "Equal",
                   value=t.get("value") or "", effect=t.get("effect") or None)
        for t in spec.get("tolerations") or []
    )


def taints_of(node: Obj) -> tuple[Taint, ...]:
    return tuple(
        Taint(key=t["key"], value=t.get("value") or "", effect=t.get("effect") or "NoSchedule")
        for t in (node.get("spec") or {}).get("taints") or []
    )
