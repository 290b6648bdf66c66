"""The daemon's Prometheus metrics, on a registry of its own.

Names follow Prometheus conventions (``_total`` counters, ``_seconds`` units, base units only) and
label values are small fixed sets, never pod names or free text: a scale-up's ``reason`` is a
``PowerOnReason``, a pod's without scale-up a ``NotTriggeredReason`` (the policy's enums, never parsed
from the human-readable text), a scale-down's one of ``SCALE_DOWN_REASONS``, so a burst of pods cannot
blow up the series count.

    oscar_deploy_elastic_nodes{group,state}                 nodes by group and lifecycle state
    oscar_deploy_elastic_unschedulable_pods                 pending pods counted as demand
    oscar_deploy_elastic_not_triggered_pods{reason}         pending pods that get no new node, by why
    oscar_deploy_elastic_scale_ups_total{group,reason}      power-ons requested
    oscar_deploy_elastic_scale_downs_total{group,reason}    power-offs (idle) and removals (failed)
    oscar_deploy_elastic_power_on_failures_total{group}     power-ons that failed or timed out
    oscar_deploy_elastic_drain_failures_total{group}        drains given up (the node is uncordoned)
    oscar_deploy_elastic_unready_brake                      1 while too many nodes are unready to fail any
    oscar_deploy_elastic_decision_duration_seconds          one view + decide() pass
    oscar_deploy_elastic_pending_to_request_seconds         pod seen unschedulable → power-on issued
    oscar_deploy_elastic_last_activity_timestamp_seconds{activity}   main loop, scale_up, scale_down
    oscar_deploy_elastic_leader                             1 while this replica holds the Lease
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server

from elastic.model import NodeState, NotTriggeredReason

PREFIX = "oscar_deploy_elastic"
SCALE_DOWN_REASONS = ("idle", "failed", "manual")
ACTIVITIES = ("main", "scale_up", "scale_down")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.nodes = Gauge(f"{PREFIX}_nodes", "Managed nodes by group and lifecycle state.",
                           ["group", "state"], registry=r)
        self.unschedulable_pods = Gauge(f"{PREFIX}_unschedulable_pods",
                                        "Pending pods that count as demand for new nodes.", registry=r)
        self.scale_ups = Counter(f"{PREFIX}_scale_ups", "Node power-ons requested, by group and reason.",
                                 ["group", "reason"], registry=r)
        self.scale_downs = Counter(f"{PREFIX}_scale_downs",
                                   "Node power-offs (idle) and removals (failed), by group and reason.",
                                   ["group", "reason"], registry=r)
        self.power_on_failures = Counter(f"{PREFIX}_power_on_failures",
                                         "Power-ons that failed or did not become Ready in time.",
                                         ["group"], registry=r)
        self.decision_duration = Histogram(
            f"{PREFIX}_decision_duration_seconds", "Time of one pass: view building and decide().",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0), registry=r)
        self.pending_to_request = Histogram(
            f"{PREFIX}_pending_to_request_seconds",
            "From a pod seen unschedulable to the power-on request issued for it.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0), registry=r)
        self.last_activity = Gauge(f"{PREFIX}_last_activity_timestamp_seconds",
                                   "Unix time of the last main-loop pass, scale-up and scale-down.",
                                   ["activity"], registry=r)
        self.leader = Gauge(f"{PREFIX}_leader", "1 while this replica holds the leader Lease.", registry=r)
        self.not_triggered = Gauge(f"{PREFIX}_not_triggered_pods",
                                   "Pending pods that get no new node now, by reason.", ["reason"],
                                   registry=r)
        self.drain_failures = Counter(
            f"{PREFIX}_drain_failures",
            "Drains given up before a power-off (the node is uncordoned, stays on).", ["group"], registry=r)
        self.unready_brake = Gauge(
            f"{PREFIX}_unready_brake",
            "1 while more nodes are unready than max_total_unready_percentage and ok_total_unready_count "
            "allow: no node is failed or replaced.", registry=r)
        self._node_series: set[tuple[str, str]] = set()

    def set_nodes(self, groups: Iterable[str], counts: Mapping[tuple[str, str], int]) -> None:
        """Nodes per (group, state): every state of every group is exported, zeros included."""
        series = {(g, s.value) for g in groups for s in NodeState} | set(counts)
        for gone in self._node_series - series:
            self.nodes.remove(*gone)
        for key in series:
            self.nodes.labels(*key).set(counts.get(key, 0))
        self._node_series = series

    def set_not_triggered(self, kinds: Iterable[NotTriggeredReason]) -> None:
        """Pods without scale-up per reason: every reason exported, zeros included."""
        counts = dict.fromkeys(NotTriggeredReason, 0)
        for kind in kinds:
            counts[kind] += 1
        for kind, n in counts.items():
            self.not_triggered.labels(kind.value).set(n)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def serve(self, port: int, address: str = "127.0.0.1") -> Any:
        """Serve ``/metrics``; returns the server (``shutdown()`` stops it)."""
        server, _thread = start_http_server(port, addr=address, registry=self.registry)
        return server
