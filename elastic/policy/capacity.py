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
from collections.abc import Callable, Sequence

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


def room_for(shape: Shape, free: list[int]) -> int:
    """How many pods of ``shape`` fit in ``free`` room."""
    k = free[3]
    if shape.cpu_m > 0:
        k = min(k, free[0] // shape.cpu_m)
    if shape.memory_mib > 0:
        k = min(k, free[1] // shape.memory_mib)
    if shape.gpus > 0:
        k = min(k, free[2] // shape.gpus)
    return max(k, 0)


class _Pool:
    """Slots with the same traits, with upper bounds on their free room so that a pod shape too big
    for every one of them skips the whole pool without looking at each node."""

    __slots__ = ("max_cpu", "max_gpu", "max_mem", "slots", "traits")

    def __init__(self, traits: Traits, slots: list[Slot]) -> None:
        self.traits = traits
        self.slots = slots
        self.max_cpu = max((s.free[0] for s in slots), default=0)
        self.max_mem = max((s.free[1] for s in slots), default=0)
        self.max_gpu = max((s.free[2] for s in slots), default=0)

    def place(self, shape: Shape, keys: list[str], taken: int,
              journal: list[tuple[Slot, Shape, int]] | None = None) -> int:
        """Put pods ``keys[taken:]`` on these slots in order; return the new ``taken``. With a
        ``journal``, each slot that takes pods is noted, so ``Room.undo`` can give the room back."""
        if (shape.cpu_m > self.max_cpu or shape.memory_mib > self.max_mem or shape.gpus > self.max_gpu
                or not allows(shape.constraints, self.traits)):
            return taken
        want = len(keys)
        cpu, mem, gpu = shape.cpu_m, shape.memory_mib, shape.gpus
        max_cpu = max_mem = max_gpu = 0
        open_slots: list[Slot] = []
        for i, slot in enumerate(self.slots):
            free = slot.free
            if taken < want:
                k = free[3]
                if cpu > 0 and free[0] // cpu < k:
                    k = free[0] // cpu
                if mem > 0 and free[1] // mem < k:
                    k = free[1] // mem
                if gpu > 0 and free[2] // gpu < k:
                    k = free[2] // gpu
                if k > want - taken:
                    k = want - taken
                if k > 0:
                    free[0] -= cpu * k
                    free[1] -= mem * k
                    free[2] -= gpu * k
                    free[3] -= k
                    slot.pods.extend(keys[taken:taken + k])
                    taken += k
                    if journal is not None:
                        journal.append((slot, shape, k))
            elif not open_slots and i == 0:
                return taken
            else:  # done: keep the rest as they are, bounds stay valid upper bounds
                open_slots.extend(self.slots[i:])
                max_cpu, max_mem, max_gpu = self.max_cpu, self.max_mem, self.max_gpu
                break
            if free[3] > 0:
                open_slots.append(slot)
                max_cpu = max(max_cpu, free[0])
                max_mem = max(max_mem, free[1])
                max_gpu = max(max_gpu, free[2])
        self.slots = open_slots
        self.max_cpu, self.max_mem, self.max_gpu = max_cpu, max_mem, max_gpu
        return taken


def _pools(slots: Sequence[Slot]) -> list[_Pool]:
    by_traits: dict[Traits, list[Slot]] = {}
    for slot in slots:
        if slot.free[3] > 0:
            by_traits.setdefault(slot.traits, []).append(slot)
    return [_Pool(t, ss) for t, ss in by_traits.items()]


def place_on_existing(
    demand: Sequence[PodInfo], ready: Sequence[Slot], booting: Sequence[Slot], now: float, grace_s: float,
    groups_fitting: Callable[[Shape], int] | None = None,
) -> list[PodInfo]:
    """Place what fits on ``ready`` and ``booting`` slots (filling ``Slot.pods``); return the rest.
    ``groups_fitting`` (how many node groups could run a shape) puts the least flexible pods first."""
    recent = sorted((s for s in ready if now - s.since <= grace_s), key=lambda s: (s.since, s.name or ""))
    recent_since = [s.since for s in recent]
    batches: dict[tuple[Shape, int], list[PodInfo]] = {}
    for pod in demand:
        if pod.unschedulable_since is None:
            tier = _ALL_READY
        else:
            tier = bisect.bisect_left(recent_since, pod.unschedulable_since)
        batches.setdefault((shape_of(pod), tier), []).append(pod)

    all_ready = _pools(ready)
    booting_pools = _pools(booting)
    leftover: list[PodInfo] = []
    # Pods that fit fewer groups go first: room that only they can use should not go to a pod that
    # could run elsewhere (it would cost the constrained pod a node of its own).
    flexibility = {shape: groups_fitting(shape) if groups_fitting else 0 for shape, _ in batches}
    order = sorted(batches, key=lambda b: (-b[0].gpus, flexibility[b[0]], -b[0].cpu_m, -b[0].memory_mib, b[1],
                                           repr(b[0].constraints)))
    for shape, tier in order:
        pods = batches[(shape, tier)]
        keys = [p.key for p in pods]
        taken = 0
        if tier == _ALL_READY:
            for pool in all_ready:
                taken = pool.place(shape, keys, taken)
        elif tier < len(recent):
            for slot in recent[tier:]:  # few: nodes whose state changed within the grace
                if taken < len(keys) and allows(shape.constraints, slot.traits):
                    k = min(room_for(shape, slot.free), len(keys) - taken)
                    if k > 0:
                        slot.free[0] -= shape.cpu_m * k
                        slot.free[1] -= shape.memory_mib * k
                        slot.free[2] -= shape.gpus * k
                        slot.free[3] -= k
                        slot.pods.extend(keys[taken:taken + k])
                        taken += k
        for pool in booting_pools:
            taken = pool.place(shape, keys, taken)
        leftover.extend(pods[taken:])
    leftover.sort(key=lambda p: p.key)
    return leftover


class Room:
    """The free room of some slots, pooled once, for many small all-or-nothing placements (the pods
    of one ProvisioningRequest after another): ``place`` then, if the whole request cannot be served,
    ``undo`` to a ``mark``. Pods are placed as ``place_on_existing`` places pods with no verdict."""

    def __init__(self, slots: Sequence[Slot]) -> None:
        self.pools = _pools(slots)
        self.journal: list[tuple[Slot, Shape, int]] = []
        self._pool_log: list[tuple[_Pool, list[Slot], int, int, int]] = []

    def mark(self) -> tuple[int, int]:
        return len(self.journal), len(self._pool_log)

    def place(self, pods: Sequence[PodInfo], groups_fitting: Callable[[Shape], int] | None = None
              ) -> list[PodInfo]:
        """Place what fits; return the rest."""
        batches: dict[Shape, list[PodInfo]] = {}
        for pod in pods:
            batches.setdefault(shape_of(pod), []).append(pod)
        flexibility = {shape: groups_fitting(shape) if groups_fitting else 0 for shape in batches}
        leftover: list[PodInfo] = []
        for shape in sorted(batches, key=lambda b: (-b.gpus, flexibility[b], -b.cpu_m, -b.memory_mib,
                                                     repr(b.constraints))):
            group = batches[shape]
            keys = [p.key for p in group]
            taken = 0
            for pool in self.pools:
                if taken >= len(keys):
                    break
                self._pool_log.append((pool, pool.slots, pool.max_cpu, pool.max_mem, pool.max_gpu))
                taken = pool.place(shape, keys, taken, self.journal)
            leftover.extend(group[taken:])
        return leftover

    def undo(self, mark: tuple[int, int]) -> None:
        """Give back what was placed since ``mark``."""
        at, pools_at = mark
        for slot, shape, k in reversed(self.journal[at:]):
            slot.free[0] += shape.cpu_m * k
            slot.free[1] += shape.memory_mib * k
            slot.free[2] += shape.gpus * k
            slot.free[3] += k
            del slot.pods[len(slot.pods) - k:]
        del self.journal[at:]
        for pool, slots, max_cpu, max_mem, max_gpu in reversed(self._pool_log[pools_at:]):
            pool.slots, pool.max_cpu, pool.max_mem, pool.max_gpu = slots, max_cpu, max_mem, max_gpu
        del self._pool_log[pools_at:]

    def touched(self, mark: tuple[int, int]) -> list[Slot]:
        """The slots that took pods since ``mark``."""
        return [slot for slot, _, _ in self.journal[mark[0]:]]
