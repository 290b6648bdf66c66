"""Capacity that is already there or on its way: place pending pods on it before buying more.

Two kinds of existing room are used, in this order:

1. Ready nodes (registered, schedulable, not cordoned). A pod the scheduler has not judged yet
   (pending past the grace, no Unschedulable condition) may be counted as served by their free room,
   as the Cluster Autoscaler's filter-out-schedulable does. A pod the scheduler HAS marked
   Unschedulable is not assumed to fit them: the scheduler knows things this model does not (ports,
   pod (anti-)affinity, topology spread, volumes). The one exception is a node whose state changed
   after that verdict and within ``pending_grace_s``: typically a booting node that just became
   Ready, which the scheduler will now try, so powering on another node for the pod would be waste.
   The window bounds the cost of being wrong to one grace period.
2. Booting nodes (POWERING_ON, registered or not, including the ones this decision adds for a
   group's ``min``): every pending pod may be placed on their free room, respecting labels, taints
   and resources, so no second node is powered on for a pod a booting node will take.

Pods are grouped by (shape, which ready nodes they may use) and placed a batch at a time: the cost is
shapes × nodes, not pods × nodes.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Sequence

from elastic.model import PodInfo
from elastic.policy.fit import Shape, Traits, allows, shape_of

_ALL_READY = -1


@dataclasses.dataclass(slots=True)
class Slot:
    """A node's free room during the decision, and the pending pods placed on it."""

    name: str | None
    """None for a new cloud node this decision asks for."""
    group: str
    traits: Traits
    free: list[int]
    """[cpu_m, memory_mib, gpus, pods] still free."""
    since: float = 0.0
    """When the node entered its current state (for the verdict rule above)."""
    pods: list[str] = dataclasses.field(default_factory=list)


def _room_for(shape: Shape, free: list[int]) -> int:
    k = free[3]
    if shape.cpu_m > 0:
        k = min(k, free[0] // shape.cpu_m)
    if shape.memory_mib > 0:
        k = min(k, free[1] // shape.memory_mib)
    if shape.gpus > 0:
        k = min(k, free[2] // shape.gpus)
    return max(k, 0)


def place_on_existing(
    demand: Sequence[PodInfo], ready: Sequence[Slot], booting: Sequence[Slot], now: float, grace_s: float
) -> list[PodInfo]:
    """Place what fits on ``ready`` and ``booting`` slots (filling ``Slot.pods``); return the rest."""
    recent = sorted((s for s in ready if now - s.since <= grace_s), key=lambda s: (s.since, s.name or ""))
    recent_since = [s.since for s in recent]
    batches: dict[tuple[Shape, int], list[PodInfo]] = {}
    for pod in demand:
        if pod.unschedulable_since is None:
            tier = _ALL_READY
        else:
            tier = bisect.bisect_left(recent_since, pod.unschedulable_since)
        batches.setdefault((shape_of(pod), tier), []).append(pod)

    leftover: list[PodInfo] = []
    order = sorted(batches, key=lambda b: (-b[0].gpus, -b[0].cpu_m, -b[0].memory_mib, b[1],
                                           repr(b[0].constraints)))
    for shape, tier in order:
        pods = batches[(shape, tier)]
        first_ready = ready if tier == _ALL_READY else recent[tier:]
        taken = 0
        for slots in (first_ready, booting):
            for slot in slots:
                free = slot.free
                if free[3] <= 0 or not allows(shape.constraints, slot.traits):
                    continue
                k = min(_room_for(shape, free), len(pods) - taken)
                if k <= 0:
                    continue
                free[0] -= shape.cpu_m * k
                free[1] -= shape.memory_mib * k
                free[2] -= shape.gpus * k
                free[3] -= k
                slot.pods.extend(p.key for p in pods[taken:taken + k])
                taken += k
                if taken == len(pods):
                    break
            if taken == len(pods):
                break
        leftover.extend(pods[taken:])
    leftover.sort(key=lambda p: p.key)
    return leftover
