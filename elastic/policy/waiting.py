"""Duration-aware scale-up: a pending pod that will get room on a running node soon enough waits for
it instead of powering a new node on.

Why: a new node costs its boot time plus everything it runs, and a pod on it still waits that boot.
When a running pod of the same service is about to finish, the pending pod gets its room sooner (or
within the operator's wait target) and the cluster buys nothing.

Run times come only from ``RunHistory`` (pods of the same owner that finished before), never from
the future: a running pod's expected end is its start plus the mean residual life of its owner's
recorded run times longer than what it has run so far. An owner with fewer than ``MIN_SAMPLES``
recorded runs, or a pod that has outrun them all, has no expected end (the prior: "runs longer than
any boot"), so it never makes anyone wait.

A pod waits when the earliest room it is expected to get (releases merged over the nodes it may run
on, oldest pod first) starts it sooner than a new node of the fastest group that fits it would
(``now + boot_s``), or within ``wait_target_s`` of its creation. A pod that has waited
``wait_target_s`` already waits only for room sooner than a boot. Every look re-estimates, so a run
that overruns its estimate moves the expected room later, and the pod gets a node.

Cost: one pass over the bound pods, only when some pod would otherwise get a new node; then
shapes × (nodes with a release within the horizon).
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterable, Sequence

from elastic.model import PodInfo, RunHistory
from elastic.policy.capacity import Slot, room_for
from elastic.policy.fit import Shape, allows, shape_of
from elastic.policy.scaleup import GroupInfo
from provisioner.podrules import user_work

MIN_SAMPLES = 3
"""Recorded runs of an owner before its run times are trusted."""


class Runtimes:
    """Expected remaining run time of a running pod, from its owner's recorded run times."""

    def __init__(self, history: RunHistory) -> None:
        self._sorted: dict[str, list[float]] = {}
        self._suffix: dict[str, list[float]] = {}
        for owner, samples in history.runtimes.items():
            if len(samples) < MIN_SAMPLES:
                continue
            ordered = sorted(samples)
            suffix = [0.0] * (len(ordered) + 1)
            for i in range(len(ordered) - 1, -1, -1):
                suffix[i] = suffix[i + 1] + ordered[i]
            self._sorted[owner] = ordered
            self._suffix[owner] = suffix

    def tables(self) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
        """Per owner, its sorted run times and their suffix sums (for inlined look-ups)."""
        return self._sorted, self._suffix

    def __bool__(self) -> bool:
        return bool(self._sorted)

    def remaining(self, owner: str, elapsed: float) -> float | None:
        """Mean of (run time - elapsed) over the recorded run times longer than ``elapsed``; None
        when the owner is unknown or the pod has outrun every recorded run."""
        ordered = self._sorted.get(owner)
        if ordered is None:
            return None
        i = bisect.bisect_right(ordered, elapsed)
        n = len(ordered) - i
        if n == 0:
            return None
        return self._suffix[owner][i] / n - elapsed


@dataclasses.dataclass(slots=True)
class _Future:
    """A Ready node's room as its running pods are expected to end."""

    slot: Slot
    releases: list[tuple[float, int, int, int]]
    """(time, cpu_m, memory_mib, gpus) freed, in time order."""
    reserved: list[int]
    """Room already promised to waiting pods in this decision: [cpu_m, memory_mib, gpus, pods]."""


def _futures(pods: Iterable[PodInfo], ready: Sequence[Slot], runtimes: Runtimes, now: float,
             horizon: float) -> list[_Future]:
    """Ready nodes with running pods expected to end within ``horizon``. The hot loop of a big
    cluster (every bound pod), so the cheap tests come first and ``Runtimes.remaining`` is inlined."""
    by_node: dict[str, list[tuple[float, int, int, int]]] = {}
    names = {s.name for s in ready if s.name}
    samples, suffixes = runtimes.tables()
    for pod in pods:
        started = pod.started_at
        if started is None or pod.node_name not in names:
            continue
        ordered = samples.get(pod.owner)
        if ordered is None or not user_work(True, pod.phase, pod.daemonset, pod.mirror):
            continue
        elapsed = now - started
        i = bisect.bisect_right(ordered, elapsed)
        n = len(ordered) - i
        if n == 0:
            continue
        left = suffixes[pod.owner][i] / n - elapsed
        if left > horizon:
            continue
        by_node.setdefault(pod.node_name or "", []).append((now + left, pod.cpu_m, pod.memory_mib, pod.gpus))
    futures = []
    for slot in ready:
        releases = by_node.get(slot.name or "")
        if releases:
            releases.sort()
            futures.append(_Future(slot, releases, [0, 0, 0, 0]))
    return futures


def _room_times(shape: Shape, future: _Future, want: int) -> list[float]:
    """When each further pod of ``shape`` fits on this node (at most ``want`` of them)."""
    free = [f - r for f, r in zip(future.slot.free, future.reserved, strict=True)]
    times: list[float] = []
    counted = room_for(shape, free)
    for t, cpu, mem, gpu in future.releases:
        free[0] += cpu
        free[1] += mem
        free[2] += gpu
        free[3] += 1
        k = room_for(shape, free) - counted
        if k > 0:
            times.extend([t] * min(k, want - len(times)))
            counted += k
            if len(times) >= want:
                break
    return times


def wait_for_room(
    leftover: Sequence[PodInfo],
    pods: Iterable[PodInfo],
    ready: Sequence[Slot],
    infos: Sequence[GroupInfo],
    history: RunHistory,
    now: float,
    wait_target_s: float,
) -> tuple[list[PodInfo], list[PodInfo]]:
    """Split ``leftover`` into (pods that wait for room on running nodes, pods that need new nodes)."""
    if not leftover or not history.runtimes:
        return [], list(leftover)
    runtimes = Runtimes(history)
    if not runtimes:
        return [], list(leftover)
    boots: dict[Shape, float] = {}
    batches: dict[Shape, list[PodInfo]] = {}
    for pod in sorted(leftover, key=lambda p: (p.created_at, p.key)):
        shape = shape_of(pod)
        if shape not in boots:
            boots[shape] = min((i.group.boot_s for i in infos if i.fits(shape)), default=0.0)
        batches.setdefault(shape, []).append(pod)
    horizon = max(max(boots.values()), wait_target_s)
    futures = _futures(pods, ready, runtimes, now, horizon)
    if not futures:
        return [], list(leftover)
    waiting: list[PodInfo] = []
    rest: list[PodInfo] = []
    for shape in sorted(batches, key=lambda s: (-s.gpus, -s.cpu_m, -s.memory_mib, repr(s.constraints))):
        batch = batches[shape]
        offers: list[tuple[float, int]] = []
        for index, future in enumerate(futures):
            if allows(shape.constraints, future.slot.traits):
                offers.extend((t, index) for t in _room_times(shape, future, len(batch)))
        offers.sort()
        boot_at = now + boots[shape]
        at = 0
        for pod in batch:
            if at < len(offers):
                t, index = offers[at]
                within = t - pod.created_at <= wait_target_s and now - pod.created_at < wait_target_s
                if t < boot_at or within:
                    at += 1
                    reserved = futures[index].reserved
                    reserved[0] += shape.cpu_m
                    reserved[1] += shape.memory_mib
                    reserved[2] += shape.gpus
                    reserved[3] += 1
                    waiting.append(pod)
                    continue
            rest.append(pod)
    rest.sort(key=lambda p: p.key)
    return waiting, rest
