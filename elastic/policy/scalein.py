"""Scale in: which idle nodes to power off.

A node may go when it is on (IDLE/USED state, Ready, registered), runs no user pods (DaemonSet and
mirror pods do not count), has been idle for ``idle_time_s``, was powered on at least ``cooldown_s``
ago, and no pending pod was just placed on it. Never below a group's ``min`` nor below ``extra_free``
spare nodes. Chosen lowest priority group first (cloud bursts go before edge boards), then most
expensive, then longest idle, then by name. DISABLED, FAILED and transitional nodes are never chosen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set

from elastic.model import NodeGroup, NodeInfo, NodeState, PolicySettings, PowerOff

_ON = (NodeState.IDLE, NodeState.USED)


def is_empty(node: NodeInfo, user_pods: Mapping[str, int]) -> bool:
    return user_pods.get(node.name, 0) == 0


def power_offs(
    nodes: Sequence[NodeInfo],
    groups: Mapping[str, NodeGroup],
    user_pods: Mapping[str, int],
    claimed: set[str],
    active: Mapping[str, int],
    spare: int,
    now: float,
    settings: PolicySettings,
    go_now: Set[str] = frozenset(),
) -> list[PowerOff]:
    """Idle nodes to power off now, in the order the actuator should take them. ``spare`` counts the
    schedulable nodes that will run no user pod (the ones ``extra_free`` keeps). Nodes in ``go_now``
    (not needed again within a boot: ``idle``) need not wait ``idle_time_s``."""
    candidates: list[tuple[tuple[int, float, float, str], NodeInfo]] = []
    for node in nodes:
        group = groups.get(node.group)
        if (
            group is None
            or node.state not in _ON
            or not node.ready
            or not node.registered
            or node.name in claimed
            or not is_empty(node, user_pods)
            or node.idle_since is None
            or (now - node.idle_since < settings.idle_time_s and node.name not in go_now)
            or (node.powered_on_at is not None and now - node.powered_on_at < settings.cooldown_s)
        ):
            continue
        candidates.append(((group.priority, -group.cost_per_hour, node.idle_since, node.name), node))
    candidates.sort(key=lambda c: c[0])
    left = dict(active)
    offs: list[PowerOff] = []
    for (_, _, idle_since, _), node in candidates:
        # a cordoned node is nobody's spare room: powering it off leaves the spares as they are
        if not node.cordoned and spare <= settings.extra_free:
            continue
        group = groups[node.group]
        if left.get(node.group, 0) <= group.min:
            continue
        left[node.group] -= 1
        if not node.cordoned:
            spare -= 1
        why = (f"idle_time_s {settings.idle_time_s:g}" if now - idle_since >= settings.idle_time_s
               else "not needed again within a boot at the recent arrival rate")
        offs.append(PowerOff(node.name, node.group, f"idle {now - idle_since:.0f}s ({why})"))
    return offs
