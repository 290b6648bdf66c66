"""Two lower bounds on node-hours, reported beside every simulated run.

Both use the same curve: the nodes needed at each moment if every job started at its submit time on
perfectly packed nodes of the largest group (the larger of the CPU and the memory ceiling).
``lower_bound_node_hours`` is its integral (zero boot time). ``lower_bound_boot_aware_node_hours``
adds, for each unit level k of the curve, the smallest ``boot_s`` once for its first start and
``min(gap, boot_s)`` for each gap between its intervals: the exact optimum of keeping a node on
through a short dip rather than paying a boot again.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from elastic.model import NodeGroup
from elastic.sim.trace import Job


def largest_node(groups: Sequence[NodeGroup]) -> tuple[int, int]:
    """(CPU m, memory MiB) of the largest group. When no group is largest in both, a node with the
    largest of each: otherwise the memory ceiling could count more nodes than a real schedule needs
    (8 CPU/15 GiB "largest" next to a 4 CPU/31 GiB group), and the figure would not be a bound."""
    return max(group.cpu_m for group in groups), max(group.memory_mib for group in groups)


def demand_curve(jobs: Sequence[Job], groups: Sequence[NodeGroup]) -> list[tuple[float, int]]:
    """Step function ``[(t, nodes needed from t on)]``, starting at the first submit, ending at 0."""
    big_cpu, big_mem = largest_node(groups)
    deltas: dict[float, list[int]] = {}
    for job in jobs:
        if job.duration_s <= 0:
            continue
        start, end = job.submit_s, job.submit_s + job.duration_s
        deltas.setdefault(start, [0, 0])
        deltas.setdefault(end, [0, 0])
        deltas[start][0] += job.cpu_m
        deltas[start][1] += job.memory_mib
        deltas[end][0] -= job.cpu_m
        deltas[end][1] -= job.memory_mib
    curve: list[tuple[float, int]] = []
    cpu = mem = 0
    for t in sorted(deltas):
        cpu += deltas[t][0]
        mem += deltas[t][1]
        needed = max(math.ceil(cpu / big_cpu), math.ceil(mem / big_mem)) if cpu or mem else 0
        if not curve or curve[-1][1] != needed:
            curve.append((t, needed))
    return curve


def lower_bound_node_hours(jobs: Sequence[Job], groups: Sequence[NodeGroup]) -> float:
    """Zero-boot bound: the integral of the demand curve, in node-hours."""
    curve = demand_curve(jobs, groups)
    seconds = sum((t1 - t0) * n for (t0, n), (t1, _) in itertools.pairwise(curve))
    return seconds / 3600.0


def lower_bound_boot_aware_node_hours(jobs: Sequence[Job], groups: Sequence[NodeGroup]) -> float:
    """Boot-aware bound: each level pays the smallest boot once, then ``min(gap, boot)`` per gap."""
    boot = min(group.boot_s for group in groups)
    curve = demand_curve(jobs, groups)
    last_end: dict[int, float] = {}
    seconds = 0.0
    previous = 0
    for (t0, n), (t1, _) in zip(curve, [*curve[1:], (curve[-1][0], 0)], strict=False):
        for level in range(previous + 1, n + 1):
            seconds += boot if level not in last_end else min(t0 - last_end[level], boot)
        for level in range(n + 1, previous + 1):
            last_end[level] = t0
        seconds += (t1 - t0) * n
        previous = n
    return seconds / 3600.0
