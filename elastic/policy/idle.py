"""Adaptive idle time: which idle nodes may go now rather than after ``idle_time_s``.

Why: ``idle_time_s`` (about one boot) is the ski-rental break-even when nothing is known about
the next arrival: keeping a node that long costs at most what a boot would. But the recent arrival
rate says more. If the pods expected to arrive within one boot time of a node's group would not
reach it (the free room of busy nodes, and of the idle nodes kept before it, takes them), waiting
only buys node-time: it goes now. If they would, it is about to be needed again and stays for
``idle_time_s``.

Without a history (a daemon that has not kept one) nothing is known, and every idle node keeps the
plain ``idle_time_s``. The estimate is deliberately simple and bounded: the arrivals within the
last boot time of the group (from ``RunHistory.arrivals``) stand for those of the next one; each
brings the mean CPU request of the pods in view. Nodes are kept in the reverse of the order
scale-in takes them (higher priority, cheaper first), and the k-th is kept when the expected
arriving CPU covers the busy nodes' free room, the k-1 kept before it, and one more pod.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence

from elastic.model import NodeGroup, NodeInfo, NodeState, PodInfo, RunHistory

_ON = (NodeState.IDLE, NodeState.USED)


def may_go_now(
    nodes: Sequence[NodeInfo],
    groups: Mapping[str, NodeGroup],
    demand: Sequence[PodInfo],
    used: Mapping[str, list[int]],
    user_pods: Mapping[str, int],
    history: RunHistory,
    now: float,
) -> set[str]:
    """Names of idle nodes that the arrival rate says will not be needed within a boot."""
    if not history.arrivals:
        return set()
    idle: list[NodeInfo] = []
    busy_free = 0
    for node in nodes:
        if (node.group not in groups or node.state not in _ON or not node.ready or not node.registered
                or node.cordoned):
            continue
        if user_pods.get(node.name, 0) == 0:
            if node.idle_since is not None:
                idle.append(node)
        else:
            busy_free += max(node.cpu_m - used.get(node.name, [0])[0], 0)
    if not idle:
        return set()
    # mean CPU request of the pods bound or pending (DaemonSet pods included: close enough, and O(nodes))
    cpu = sum(u[0] for u in used.values()) + sum(p.cpu_m for p in demand)
    count = sum(u[3] for u in used.values()) + len(demand)
    mean_cpu = cpu / count if count else 1000.0
    arrivals = history.arrivals
    idle.sort(key=lambda n: (-groups[n.group].priority, groups[n.group].cost_per_hour, -(n.idle_since or 0.0),
                             n.name))
    go: set[str] = set()
    covered = busy_free + mean_cpu
    for node in idle:
        boot = groups[node.group].boot_s
        expected = (len(arrivals) - bisect.bisect_left(arrivals, now - boot)) * mean_cpu
        if expected >= covered:
            covered += node.cpu_m
        else:
            go.add(node.name)
    return go
