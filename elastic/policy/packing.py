"""Bin-packing pending pods onto new nodes of one size: few nodes, fast, deterministic.

Vector bin packing (CPU, memory, GPU, pod count) is NP-hard; two cheap greedy heuristics are run and
the better result kept ("do better where cheap"):

- bin-centric first-fit decreasing: fill one node at a time with the largest pod (by dominant share)
  that still fits. For one dimension this is exactly FFD, the Cluster Autoscaler's baseline.
- dot-product greedy (Panigrahy et al., "Heuristics for Vector Bin Packing", 2011): fill one node at
  a time with the pod whose normalised requests best align with the node's remaining room, which
  pairs CPU-heavy with memory-heavy pods where FFD strands one resource.

Pods are counted by ``Shape``, never handled one by one, and a node's contents, once chosen, are
repeated as many times as the remaining counts allow: the greedy would make the same choices again
(its choices depend only on which shapes are left, not on how many), so the result is identical to
filling each node separately, at a cost that grows with the number of distinct shapes, not pods.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping

from elastic.policy.fit import Capacity, Shape


@dataclasses.dataclass(frozen=True, slots=True)
class Fill:
    """``times`` identical new nodes, each holding ``counts`` pods of each shape."""

    counts: tuple[tuple[Shape, int], ...]
    times: int

    def cpu_m(self) -> int:
        return sum(s.cpu_m * n for s, n in self.counts)

    def memory_mib(self) -> int:
        return sum(s.memory_mib * n for s, n in self.counts)


@dataclasses.dataclass(frozen=True, slots=True)
class Packing:
    fills: tuple[Fill, ...]
    leftover: Mapping[Shape, int]
    """Pods not placed (only when the node limit ran out)."""

    @property
    def nodes(self) -> int:
        return sum(f.times for f in self.fills)

    @property
    def placed(self) -> int:
        return sum(n * f.times for f in self.fills for _, n in f.counts)

    def waste(self, capacity: Capacity) -> float:
        """Unused share of CPU plus unused share of memory over the new nodes (the CA's least-waste)."""
        if not self.nodes:
            return 0.0
        cpu = sum(f.cpu_m() * f.times for f in self.fills)
        mem = sum(f.memory_mib() * f.times for f in self.fills)
        total_cpu, total_mem = capacity.cpu_m * self.nodes, capacity.memory_mib * self.nodes
        return (1 - cpu / total_cpu if total_cpu else 0.0) + (1 - mem / total_mem if total_mem else 0.0)


_Score = Callable[[Shape, list[int]], float]


def _norms(capacity: Capacity) -> tuple[float, float, float, float]:
    return (
        1 / capacity.cpu_m if capacity.cpu_m > 0 else 0.0,
        1 / capacity.memory_mib if capacity.memory_mib > 0 else 0.0,
        1 / capacity.gpus if capacity.gpus > 0 else 0.0,
        1 / capacity.pods if capacity.pods > 0 else 0.0,
    )


def dominant_share(shape: Shape, capacity: Capacity) -> float:
    """The largest share of one node that a pod of ``shape`` takes (pod slot included)."""
    c, m, g, p = _norms(capacity)
    return max(shape.cpu_m * c, shape.memory_mib * m, shape.gpus * g, p)


def _greedy(demand: Mapping[Shape, int], capacity: Capacity, limit: int | None, score: _Score) -> Packing:
    counts = {s: n for s, n in demand.items() if n > 0 and capacity.holds(s)}
    unfit = {s: n for s, n in demand.items() if n > 0 and not capacity.holds(s)}
    # Deterministic tie-break: larger pods first, then a stable textual order.
    order = sorted(counts, key=lambda s: (-dominant_share(s, capacity), s.cpu_m, s.memory_mib, s.gpus,
                                          repr(s.constraints)))
    fills: list[Fill] = []
    nodes = 0
    while limit is None or nodes < limit:
        avail = [s for s in order if counts[s] > 0]
        if not avail:
            break
        room = [capacity.cpu_m, capacity.memory_mib, capacity.gpus, capacity.pods]
        used: dict[Shape, int] = {}
        while room[3] > 0:
            best: Shape | None = None
            best_score = -1.0
            for s in avail:
                if (s.cpu_m <= room[0] and s.memory_mib <= room[1] and s.gpus <= room[2]
                        and counts[s] > used.get(s, 0)):
                    sc = score(s, room)
                    if sc > best_score:
                        best, best_score = s, sc
            if best is None:
                break
            used[best] = used.get(best, 0) + 1
            room[0] -= best.cpu_m
            room[1] -= best.memory_mib
            room[2] -= best.gpus
            room[3] -= 1
        times = min(counts[s] // n for s, n in used.items())
        if limit is not None:
            times = min(times, limit - nodes)
        for s, n in used.items():
            counts[s] -= n * times
        fills.append(Fill(tuple((s, used[s]) for s in order if s in used), times))
        nodes += times
    leftover = {s: n for s, n in counts.items() if n > 0}
    leftover.update(unfit)
    return Packing(tuple(fills), leftover)


def pack(demand: Mapping[Shape, int], capacity: Capacity, limit: int | None = None) -> Packing:
    """Place ``demand`` (pods per shape) on at most ``limit`` new nodes of ``capacity``.

    Shapes that do not fit an empty node at all come back in ``leftover``; callers filter by labels
    and taints beforehand. Every node returned holds at least one pod.
    """
    c, m, g, p = _norms(capacity)

    def ffd(s: Shape, room: list[int]) -> float:
        return max(s.cpu_m * c, s.memory_mib * m, s.gpus * g, p)

    def dot(s: Shape, room: list[int]) -> float:
        return (s.cpu_m * c * room[0] * c + s.memory_mib * m * room[1] * m
                + s.gpus * g * room[2] * g + p * room[3] * p)

    best: Packing | None = None
    for score in (ffd, dot):
        result = _consolidate(_greedy(demand, capacity, limit, score), capacity)
        if best is None or (-result.placed, result.nodes) < (-best.placed, best.nodes):
            best = result
    assert best is not None
    return best


def _consolidate(packing: Packing, capacity: Capacity, tries: int = 16) -> Packing:
    """Local search after the greedy: try to empty the least-used nodes into the room the others
    leave (first-fit decreasing); a node that empties is not asked for. A few tries, cheap."""
    if packing.nodes < 2:
        return packing
    nodes = [dict(f.counts) for f in packing.fills for _ in range(f.times)]
    cap = (capacity.cpu_m, capacity.memory_mib, capacity.gpus, capacity.pods)
    room = []
    for counts in nodes:
        r = list(cap)
        for s, n in counts.items():
            r[0] -= s.cpu_m * n
            r[1] -= s.memory_mib * n
            r[2] -= s.gpus * n
            r[3] -= n
        room.append(r)
    c, m, g, p = _norms(capacity)

    def load(i: int) -> float:
        r = room[i]
        return max((cap[0] - r[0]) * c, (cap[1] - r[1]) * m, (cap[2] - r[2]) * g, (cap[3] - r[3]) * p)

    removed: set[int] = set()
    for victim in sorted(range(len(nodes)), key=lambda i: (load(i), i))[:tries]:
        trial = [(i, list(room[i])) for i in range(len(nodes)) if i != victim and i not in removed]
        moves: list[tuple[int, Shape]] = []
        items = sorted(nodes[victim].items(), key=lambda it: -dominant_share(it[0], capacity))
        ok = True
        for s, n in items:
            at = 0  # first fit for n equal pods: a node that had no room for one has none for the next
            for _ in range(n):
                while at < len(trial):
                    r = trial[at][1]
                    if s.cpu_m <= r[0] and s.memory_mib <= r[1] and s.gpus <= r[2] and r[3] >= 1:
                        break
                    at += 1
                if at == len(trial):
                    ok = False
                    break
                r = trial[at][1]
                r[0] -= s.cpu_m
                r[1] -= s.memory_mib
                r[2] -= s.gpus
                r[3] -= 1
                moves.append((trial[at][0], s))
            if not ok:
                break
        if not ok:
            continue
        removed.add(victim)
        for i, r in trial:
            room[i] = r
        for i, s in moves:
            nodes[i][s] = nodes[i].get(s, 0) + 1
    if not removed:
        return packing
    fills: dict[tuple[tuple[Shape, int], ...], int] = {}
    for i, counts in enumerate(nodes):
        if i not in removed:
            key = tuple(sorted(counts.items(),
                               key=lambda it: (-dominant_share(it[0], capacity), repr(it[0]))))
            fills[key] = fills.get(key, 0) + 1
    return Packing(tuple(Fill(k, t) for k, t in fills.items()), packing.leftover)


def volume_lower_bound(demand: Mapping[Shape, int], capacity: Capacity) -> int:
    """No packing can use fewer nodes: total requests over one node's size, per resource, the larger."""
    cpu = sum(s.cpu_m * n for s, n in demand.items())
    mem = sum(s.memory_mib * n for s, n in demand.items())
    gpu = sum(s.gpus * n for s, n in demand.items())
    pods = sum(demand.values())
    bounds = [math.ceil(cpu / capacity.cpu_m) if capacity.cpu_m else 0,
              math.ceil(mem / capacity.memory_mib) if capacity.memory_mib else 0,
              math.ceil(gpu / capacity.gpus) if capacity.gpus else 0,
              math.ceil(pods / capacity.pods) if capacity.pods else 0]
    return max(bounds)
