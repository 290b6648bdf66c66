"""CLUES's lifecycle timers: a power-on or power-off that took too long becomes ``MarkFailed``.

The actuator removes a failed machine and backs its group off; a failed power-off is retried by it.
Disabled nodes are the operator's and are never touched; nodes of unknown groups are not ours.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from elastic.model import MarkFailed, NodeGroup, NodeInfo, NodeState, PolicySettings


def overdue(
    nodes: Iterable[NodeInfo], groups: Mapping[str, NodeGroup], now: float, settings: PolicySettings
) -> list[MarkFailed]:
    """Nodes stuck powering on (not Ready within ``max_wait_poweron_s``) or off, sorted by name."""
    failed: list[MarkFailed] = []
    for node in nodes:
        if node.group not in groups:
            continue
        if node.state is NodeState.POWERING_ON and not node.ready:
            started = node.powered_on_at if node.powered_on_at is not None else node.state_since
            waited = now - started
            if waited > settings.max_wait_poweron_s:
                failed.append(MarkFailed(node.name, node.group,
                                         f"not Ready {waited:.0f}s after power-on "
                                         f"(max_wait_poweron_s {settings.max_wait_poweron_s:g})"))
        elif node.state is NodeState.POWERING_OFF:
            waited = now - node.state_since
            if waited > settings.max_wait_poweroff_s:
                failed.append(MarkFailed(node.name, node.group,
                                         f"still powering off after {waited:.0f}s "
                                         f"(max_wait_poweroff_s {settings.max_wait_poweroff_s:g})"))
    failed.sort(key=lambda f: f.node)
    return failed
