"""Does a pod fit a node? Labels (nodeSelector, required node affinity), taints, and resources.

Pods are reduced to a hashable ``Shape`` (requests + constraints) and nodes to hashable ``Traits``
(labels + taints), so the policy decides "may this kind of pod go on this kind of node" once per
pair of kinds (cached) instead of once per pod × node: thousands of pods share a few shapes and
thousands of nodes a few traits. Pure functions, no I/O.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Mapping

from elastic.model import MatchExpression, NodeGroup, NodeInfo, PodInfo, Taint, Toleration
from provisioner import podrules

HOSTNAME_LABEL = "kubernetes.io/hostname"
"""Every node has it, with its own name: the way a pod is pinned to one edge board."""

GROUP_LABEL = "oscar-deploy/group"
"""Label every worker carries with its group's name (derived here; the actuator sets it on the Node)."""

STANDARD_LABELS: Mapping[str, str] = {"kubernetes.io/os": "linux"}
"""Labels every k3s worker has, so a pod selecting them is not wrongly judged unfit."""

TRANSIENT_TAINTS = frozenset(
    {
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
        "node.cloudprovider.kubernetes.io/uninitialized",
        "node.kubernetes.io/unschedulable",
    }
)
"""Taints a booting node carries until it is Ready, and the one the node lifecycle controller keeps
on a cordoned node until its next pass after the uncordon: they say nothing about where pods may go
later."""


@dataclasses.dataclass(frozen=True, slots=True)
class Constraints:
    """Where a pod may run, apart from its resource requests."""

    selector: tuple[tuple[str, str], ...] = ()
    affinity: tuple[tuple[MatchExpression, ...], ...] = ()
    tolerations: tuple[Toleration, ...] = ()

    def describe(self) -> str:
        parts = []
        if self.selector:
            parts.append("nodeSelector " + ",".join(f"{k}={v}" for k, v in self.selector))
        if self.affinity:
            parts.append("node affinity " + " or ".join(
                " and ".join(f"{e.key} {e.operator} {','.join(e.values)}".strip() for e in term)
                for term in self.affinity
            ))
        if self.tolerations:
            parts.append("tolerations " + ",".join(t.key or "*" for t in self.tolerations))
        return "; ".join(parts)


@dataclasses.dataclass(frozen=True, slots=True)
class Shape:
    """A pod's requests and constraints: pods with equal shapes are interchangeable for the policy."""

    cpu_m: int
    memory_mib: int
    gpus: int
    constraints: Constraints

    def describe(self) -> str:
        text = f"cpu {self.cpu_m}m, memory {self.memory_mib} MiB"
        if self.gpus:
            text += f", {self.gpus} GPU"
        extra = self.constraints.describe()
        return f"{text}; {extra}" if extra else text


@dataclasses.dataclass(frozen=True, slots=True)
class Traits:
    """What a node offers besides resources: its labels and taints."""

    labels: tuple[tuple[str, str], ...]
    taints: tuple[Taint, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Capacity:
    """Allocatable resources of one node."""

    cpu_m: int
    memory_mib: int
    gpus: int
    pods: int

    def holds(self, shape: Shape) -> bool:
        """An empty node of this capacity has room for one pod of ``shape``."""
        return (
            shape.cpu_m <= self.cpu_m
            and shape.memory_mib <= self.memory_mib
            and shape.gpus <= self.gpus
            and self.pods >= 1
        )


@functools.lru_cache(maxsize=16384)
def _interned(
    cpu_m: int,
    memory_mib: int,
    gpus: int,
    selector: tuple[tuple[str, str], ...],
    affinity: tuple[tuple[MatchExpression, ...], ...],
    tolerations: tuple[Toleration, ...],
) -> Shape:
    return Shape(cpu_m, memory_mib, gpus, Constraints(selector, affinity, tolerations))


def shape_of(pod: PodInfo) -> Shape:
    """The pod's shape; equal pods get the very same object (a memo, so dict lookups stay cheap)."""
    selector = tuple(sorted(pod.node_selector.items())) if pod.node_selector else ()
    return _interned(pod.cpu_m, pod.memory_mib, pod.gpus, selector, pod.affinity_terms, pod.tolerations)


def group_labels(group: NodeGroup) -> dict[str, str]:
    """The labels a new node of ``group`` will carry: standard ones, the group label, the group's own."""
    return {**STANDARD_LABELS, GROUP_LABEL: group.name, **group.labels}


def group_traits(group: NodeGroup) -> Traits:
    return Traits(tuple(sorted(group_labels(group).items())), tuple(group.taints))


def group_capacity(group: NodeGroup) -> Capacity:
    return Capacity(group.cpu_m, group.memory_mib, group.gpus, group.max_pods)


def referenced_keys(shapes: Iterable[Shape]) -> frozenset[str]:
    """The label keys any of these pods' selectors or affinities mention."""
    keys: set[str] = set()
    for shape in shapes:
        keys.update(k for k, _ in shape.constraints.selector)
        keys.update(e.key for term in shape.constraints.affinity for e in term)
    return frozenset(keys)


def node_traits(node: NodeInfo, group: NodeGroup | None, keys: frozenset[str] | None = None) -> Traits:
    """A known node's traits. Its own labels win over the group's (an unregistered node has none yet);
    taints a booting node carries only until it is Ready are ignored.

    With ``keys``, only those labels are kept: a label no pod mentions cannot change whether it fits,
    and dropping the per-node ones (hostname, internal IP) lets thousands of nodes share a few traits.
    """
    derived = group_labels(group) if group is not None else {}
    labels = {**derived, HOSTNAME_LABEL: node.name, **node.labels}
    if keys is not None:
        labels = {k: v for k, v in labels.items() if k in keys}
    taints = list(node.taints) if node.registered or group is None else list(group.taints) + list(node.taints)
    kept = tuple(t for t in taints if t.key not in TRANSIENT_TAINTS)
    return _interned_traits(tuple(sorted(labels.items())), kept)


@functools.lru_cache(maxsize=4096)
def _interned_traits(labels: tuple[tuple[str, str], ...], taints: tuple[Taint, ...]) -> Traits:
    """Nodes alike share one object: fewer objects for the garbage collector to walk, faster dicts."""
    return Traits(labels, taints)


def node_capacity(node: NodeInfo, group: NodeGroup | None) -> Capacity:
    """A node's allocatable resources; the group's size where an unregistered node reports none."""
    if group is not None and node.cpu_m <= 0 and node.memory_mib <= 0:
        return group_capacity(group)
    return Capacity(node.cpu_m, node.memory_mib, node.gpus, node.max_pods)


@functools.lru_cache(maxsize=65536)
def allows(constraints: Constraints, traits: Traits) -> bool:
    """May a pod with ``constraints`` run on a node with ``traits`` (ignoring resources)? The
    scheduler's rules, from ``provisioner.podrules``."""
    c = constraints
    return podrules.placeable(c.selector, c.affinity, c.tolerations, dict(traits.labels), traits.taints)


def fits_new(shape: Shape, capacity: Capacity, traits: Traits) -> bool:
    """Could a new, empty node with ``capacity`` and ``traits`` ever take a pod of ``shape``?"""
    return capacity.holds(shape) and allows(shape.constraints, traits)
