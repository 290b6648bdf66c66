"""The unready brake: when many nodes are unready at once, the cause is rarely the nodes (more often
the network, the API server or a shared power supply), and failing and replacing them all would make
it worse. So, as the Cluster Autoscaler does (``ClusterStateRegistry.IsClusterHealthy`` in
kubernetes/autoscaler ``cluster-autoscaler/clusterstate/clusterstate.go``, flags
``--max-total-unready-percentage`` 45 and ``--ok-total-unready-count`` 3 in ``config/flags/flags.go``,
tag cluster-autoscaler-1.36.1), the cluster is unhealthy when the unready nodes are MORE than
``ok_total_unready_count`` AND more than ``max_total_unready_percentage`` % of the nodes; then no
registered node is marked failed (nor, so, replaced) until it improves.

The nodes counted are those expected up: registered, of a known group, neither off (a powered-off
board is not expected to be Ready), failed nor disabled, and not still within ``max_wait_poweron_s``
of a power-on (the autoscaler's "not started" nodes). A machine that never registered is not counted
and is still failed when it overstays its boot: the autoscaler too removes long-unregistered nodes
before it checks the cluster's health.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from elastic.model import Health, NodeGroup, NodeInfo, NodeState, PolicySettings

_NOT_EXPECTED = (NodeState.OFF, NodeState.FAILED, NodeState.DISABLED)


def expected_up(node: NodeInfo, now: float, settings: PolicySettings) -> bool:
    if not node.registered or node.state in _NOT_EXPECTED:
        return False
    if node.state is NodeState.POWERING_ON:
        started = node.powered_on_at if node.powered_on_at is not None else node.state_since
        return now - started > settings.max_wait_poweron_s
    return True


def health(nodes: Iterable[NodeInfo], groups: Mapping[str, NodeGroup], now: float,
           settings: PolicySettings) -> Health:
    up = unready = 0
    for node in nodes:
        if node.group in groups and expected_up(node, now, settings):
            up += 1
            unready += not node.ready
    braked = (unready > settings.ok_total_unready_count
              and unready > settings.max_total_unready_percentage / 100.0 * up)
    return Health(up, unready, braked)
