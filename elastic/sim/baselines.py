"""The policies ``oscar`` is measured against, each as faithful to its original's documented
behaviour and defaults as a decision function on a ``ClusterView`` can be. Every default can be
overridden by keyword. Like the originals they keep a little memory between looks (the autoscaler's
"unneeded since" timers), so they are small classes; ``oscar`` instead calls the daemon's pure
``elastic.policy.decide`` unchanged.

Shared conventions: a group's ``min`` nodes are never powered off (the operator asked for them), a
group's ``max`` is never exceeded, and when a policy has to choose a group it tries a higher
``priority`` first (as the Cluster Autoscaler's priority expander), then the group order of the file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from elastic.model import (
    ClusterView,
    Decision,
    MarkFailed,
    NodeGroup,
    NodeInfo,
    NodeState,
    PodInfo,
    PolicySettings,
    PowerOff,
    PowerOn,
)
from elastic.policy.fit import group_labels
from elastic.sim.fit import placeable

ON_STATES = (NodeState.POWERING_ON, NodeState.IDLE, NodeState.USED)


@dataclasses.dataclass
class _Bin:
    """Free room on a node (real or planned) while a policy packs pods in its head."""

    name: str | None
    group: NodeGroup
    labels: Mapping[str, str]
    cpu: int
    mem: int
    pods: int

    def take(self, pod: PodInfo) -> bool:
        if (self.cpu >= pod.cpu_m and self.mem >= pod.memory_mib and self.pods > 0
                and placeable(pod, self.labels, self.group.taints)):
            self.cpu -= pod.cpu_m
            self.mem -= pod.memory_mib
            self.pods -= 1
            return True
        return False


def _by_priority(groups: Sequence[NodeGroup]) -> list[NodeGroup]:
    return sorted(groups, key=lambda group: -group.priority)


def _pending(view: ClusterView, system: frozenset[str]) -> list[PodInfo]:
    return sorted(
        (pod for pod in view.pods
         if pod.node_name is None and pod.phase == "Pending" and pod.namespace not in system
         and not pod.daemonset and not pod.mirror),
        key=lambda pod: (pod.created_at, pod.key),
    )


def _stuck(view: ClusterView, now: float, limit_s: float, groups: Mapping[str, NodeGroup],
           why: str) -> tuple[MarkFailed, ...]:
    """Nodes powering on for longer than ``limit_s``: given up (the engine powers them off)."""
    return tuple(
        MarkFailed(n.name, n.group, why) for n in view.nodes
        if n.group in groups and n.state == NodeState.POWERING_ON and not n.ready
        and now - (n.powered_on_at if n.powered_on_at is not None else n.state_since) > limit_s
    )


def _used(view: ClusterView) -> dict[str, tuple[int, int, int, list[PodInfo]]]:
    """Per node: requested CPU, memory, pod count and the user pods on it."""
    used: dict[str, tuple[int, int, int, list[PodInfo]]] = {}
    for pod in view.pods:
        if pod.node_name is None or pod.phase not in ("Pending", "Running"):
            continue
        cpu, mem, count, pods = used.get(pod.node_name, (0, 0, 0, []))
        pods.append(pod)
        used[pod.node_name] = (cpu + pod.cpu_m, mem + pod.memory_mib, count + 1, pods)
    return used


class StaticPolicy:
    """Every group at ``max``, always on: what a fixed cluster sized for the peak costs."""

    name = "static"
    period_s = 3600.0
    event_driven = False
    interrupts_jobs = False

    def initial_on(self, group: NodeGroup) -> int:
        return group.max

    def decide(self, view: ClusterView, now: float) -> Decision:
        return Decision()


class CluesPolicy:
    """CLUES 2 (grycap/clues) with its shipped scheduler pipeline.

    Semantics, from ``clueslib/schedulers.py``: ``CLUES_Scheduler_PowOn_Requests`` serves each
    pending request (here: each pending pod, in arrival order) on nodes already on or powering on,
    counting the capacity of booting nodes and of nodes it has just chosen (its booking system), and
    powers on off nodes for what does not fit; ``CLUES_Scheduler_PowOff_IDLE`` powers off nodes whose
    state has been ``idle`` for longer than ``IDLE_TIME`` (and powered on longer than
    ``COOLDOWN_NODES`` ago).

    Defaults, from ``etc/clues2.cfg-example`` and the code defaults in ``clueslib``:
    ``PERIOD_SCHEDULE = 5`` s, ``IDLE_TIME = 1800`` s, ``COOLDOWN_NODES = 0``, ``EXTRA_NODES_FREE =
    0``, and ``MAX_BOOTING_NODES = 0`` (unlimited: the code default in ``clueslib/schedulers.py``;
    the example file sets 2). A node not on ``MAX_WAIT_POWERON = 300`` s after its power-on is
    considered failed (``[monitoring]`` of ``etc/clues2.cfg-example``) and given up.
    """

    name = "clues"
    event_driven = False
    interrupts_jobs = False
    """It powers off only nodes in state ``idle``."""

    def __init__(self, groups: Sequence[NodeGroup], *, period_s: float = 5.0, idle_time_s: float = 1800.0,
                 cooldown_nodes_s: float = 0.0, max_booting_nodes: int = 0, extra_nodes_free: int = 0,
                 max_wait_poweron_s: float = 300.0,
                 system_namespaces: frozenset[str] = PolicySettings().system_namespaces) -> None:
        self.groups = list(groups)
        self.period_s = period_s
        self.idle_time_s = idle_time_s
        self.cooldown_nodes_s = cooldown_nodes_s
        self.max_booting_nodes = max_booting_nodes
        self.extra_nodes_free = extra_nodes_free
        self.max_wait_poweron_s = max_wait_poweron_s
        self.system = system_namespaces

    def initial_on(self, group: NodeGroup) -> int:
        return group.min

    def decide(self, view: ClusterView, now: float) -> Decision:
        by_group: dict[str, list[NodeInfo]] = {group.name: [] for group in self.groups}
        for node in view.nodes:
            by_group.setdefault(node.group, []).append(node)
        on_count = {name: sum(1 for n in nodes if n.state in ON_STATES) for name, nodes in by_group.items()}
        groups = {group.name: group for group in self.groups}
        failed = _stuck(view, now, self.max_wait_poweron_s, groups,
                        f"clues: not on {self.max_wait_poweron_s:g} s after power-on")
        gone = {f.node for f in failed}
        for f in failed:
            on_count[f.group] -= 1
        booting = sum(1 for n in view.nodes if n.state == NodeState.POWERING_ON and n.name not in gone)
        # Capacity already on its way: booting nodes, whole.
        bins = [_Bin(node.name, groups[node.group], node.labels, node.cpu_m, node.memory_mib, node.max_pods)
                for node in view.nodes if node.state == NodeState.POWERING_ON and node.group in groups
                and node.name not in gone]
        power_on: list[PowerOn] = []
        for pod in _pending(view, self.system):
            if any(slot.take(pod) for slot in bins):
                continue
            if self.max_booting_nodes and booting >= self.max_booting_nodes:
                break
            for group in _by_priority(self.groups):
                if on_count[group.name] >= group.max:
                    continue
                new = _Bin(None, group, group_labels(group), group.cpu_m, group.memory_mib, group.max_pods)
                if not new.take(pod):
                    continue
                name = self._off_node(by_group[group.name], {p.node for p in power_on})
                if group.nodes and name is None:
                    continue
                bins.append(new)
                on_count[group.name] += 1
                booting += 1
                power_on.append(PowerOn(group.name, name, "clues: pending request", (pod.key,)))
                break
        idle = [node for node in view.nodes
                if node.state == NodeState.IDLE and not node.cordoned and node.group in groups]
        power_off = []
        keep_idle = self.extra_nodes_free
        for node in sorted(idle, key=lambda n: n.state_since):
            group = groups[node.group]
            if (now - node.state_since > self.idle_time_s
                    and (node.powered_on_at is None or now - node.powered_on_at > self.cooldown_nodes_s)
                    and on_count[group.name] > group.min and len(idle) - len(power_off) > keep_idle):
                on_count[group.name] -= 1
                power_off.append(PowerOff(node.name, group.name, f"clues: idle > {self.idle_time_s:g} s"))
        return Decision(power_on=tuple(power_on), power_off=tuple(power_off), failed=failed)

    @staticmethod
    def _off_node(nodes: list[NodeInfo], taken: set[str | None]) -> str | None:
        return next((n.name for n in nodes if n.state == NodeState.OFF and n.name not in taken), None)


class AutoscalerPolicy:
    """The Kubernetes Cluster Autoscaler at its defaults (kubernetes/autoscaler, cluster-autoscaler
    FAQ, "What are the parameters to CA?"):

    - ``--scan-interval=10s``: the loop period.
    - Scale-up: unschedulable pods (older than ``--new-pod-scale-up-delay=0s``) are first fitted on
      upcoming (booting) nodes; for the rest, the binpacking estimator packs them first-fit
      decreasing onto template nodes of each group that can take them, and the expander picks one
      group per loop (the ``priority`` expander; ties broken by fewest nodes).
    - Scale-down: a node whose requested CPU and memory are both under
      ``--scale-down-utilization-threshold=0.5`` and whose pods all fit on other nodes is
      *unneeded*; after ``--scale-down-unneeded-time=10m`` unneeded it is removed, empty ones up to
      ``--max-empty-bulk-delete=10`` at once, non-empty ones one at a time; nothing is removed
      within ``--scale-down-delay-after-add=10m`` of a scale-up or
      ``--scale-down-delay-after-delete`` (= scan interval) of a removal. Unneeded timers keep
      running during those delays, as in CA.
    - ``--max-node-provision-time=15m``: a node not registered and Ready by then is given up.
    """

    name = "autoscaler"
    event_driven = False
    interrupts_jobs = True
    """It drains under-used nodes whose pods fit elsewhere; Job pods are evicted like any other."""

    def __init__(self, groups: Sequence[NodeGroup], *, scan_interval_s: float = 10.0,
                 unneeded_time_s: float = 600.0, delay_after_add_s: float = 600.0,
                 delay_after_delete_s: float | None = None, utilization_threshold: float = 0.5,
                 max_empty_bulk_delete: int = 10, new_pod_scale_up_delay_s: float = 0.0,
                 max_node_provision_time_s: float = 900.0,
                 system_namespaces: frozenset[str] = PolicySettings().system_namespaces) -> None:
        self.groups = list(groups)
        self.period_s = scan_interval_s
        self.unneeded_time_s = unneeded_time_s
        self.delay_after_add_s = delay_after_add_s
        self.delay_after_delete_s = scan_interval_s if delay_after_delete_s is None else delay_after_delete_s
        self.utilization_threshold = utilization_threshold
        self.max_empty_bulk_delete = max_empty_bulk_delete
        self.new_pod_scale_up_delay_s = new_pod_scale_up_delay_s
        self.max_node_provision_time_s = max_node_provision_time_s
        self.system = system_namespaces
        self.last_scale_up = -float("inf")
        self.last_scale_down = -float("inf")
        self.unneeded_since: dict[str, float] = {}

    def initial_on(self, group: NodeGroup) -> int:
        return group.min

    def decide(self, view: ClusterView, now: float) -> Decision:
        groups = {group.name: group for group in self.groups}
        failed = _stuck(view, now, self.max_node_provision_time_s, groups,
                        f"autoscaler: not Ready {self.max_node_provision_time_s:g} s after scale-up")
        if failed:
            gone = {f.node for f in failed}
            view = dataclasses.replace(view, nodes=tuple(n for n in view.nodes if n.name not in gone))
        power_on = self._scale_up(view, now, groups)
        if power_on:
            self.last_scale_up = now
        power_off = self._scale_down(view, now, groups)
        if power_off:
            self.last_scale_down = now
        return Decision(power_on=tuple(power_on), power_off=tuple(power_off), failed=failed)

    def _scale_up(self, view: ClusterView, now: float, groups: dict[str, NodeGroup]) -> list[PowerOn]:
        pending = [pod for pod in _pending(view, self.system)
                   if pod.unschedulable_since is not None
                   and now - pod.created_at >= self.new_pod_scale_up_delay_s]
        upcoming = [_Bin(n.name, groups[n.group], n.labels, n.cpu_m, n.memory_mib, n.max_pods)
                    for n in view.nodes if n.state == NodeState.POWERING_ON and n.group in groups]
        pending = [pod for pod in pending if not any(slot.take(pod) for slot in upcoming)]
        if not pending:
            return []
        on_count = {name: 0 for name in groups}
        for node in view.nodes:
            if node.state in ON_STATES and node.group in on_count:
                on_count[node.group] += 1
        ordered = sorted(pending, key=lambda pod: (pod.cpu_m, pod.memory_mib), reverse=True)
        options = []
        for group in self.groups:
            room = group.max - on_count[group.name]
            if room <= 0:
                continue
            bins: list[_Bin] = []
            helped: list[str] = []
            for pod in ordered:
                if any(slot.take(pod) for slot in bins):
                    helped.append(pod.key)
                    continue
                if len(bins) >= room:
                    continue
                new = _Bin(None, group, group_labels(group), group.cpu_m, group.memory_mib, group.max_pods)
                if new.take(pod):
                    bins.append(new)
                    helped.append(pod.key)
            if bins:
                options.append((group, len(bins), helped))
        if not options:
            return []
        group, count, helped = max(options, key=lambda option: (option[0].priority, -option[1]))
        off = [n.name for n in view.nodes if n.group == group.name and n.state == NodeState.OFF]
        names: list[str | None] = list(off[:count]) if group.nodes else [None] * count
        return [PowerOn(group.name, name, "autoscaler: binpacking scale-up", tuple(helped)) for name in names]

    def _scale_down(self, view: ClusterView, now: float, groups: dict[str, NodeGroup]) -> list[PowerOff]:
        used = _used(view)
        ready = [n for n in view.nodes if n.ready and not n.cordoned and n.group in groups
                 and n.state in (NodeState.IDLE, NodeState.USED)]
        # Free room on every ready node, for "do its pods fit elsewhere".
        room = {n.name: _Bin(n.name, groups[n.group], n.labels,
                             n.cpu_m - used.get(n.name, (0, 0, 0, []))[0],
                             n.memory_mib - used.get(n.name, (0, 0, 0, []))[1],
                             n.max_pods - used.get(n.name, (0, 0, 0, []))[2]) for n in ready}
        unneeded: list[NodeInfo] = []
        removing: set[str] = set()
        for node in sorted(ready, key=lambda n: used.get(n.name, (0, 0, 0, []))[0] / max(n.cpu_m, 1)):
            cpu, mem, _, pods = used.get(node.name, (0, 0, 0, []))
            utilization = max(cpu / max(node.cpu_m, 1), mem / max(node.memory_mib, 1))
            if utilization >= self.utilization_threshold or any(not pod.evictable for pod in pods):
                continue
            trial = {name: dataclasses.replace(slot) for name, slot in room.items()
                     if name != node.name and name not in removing}
            if all(any(slot.take(pod) for slot in trial.values()) for pod in pods):
                room.update(trial)
                removing.add(node.name)
                unneeded.append(node)
        for name in list(self.unneeded_since):
            if name not in removing:
                del self.unneeded_since[name]
        for node in unneeded:
            self.unneeded_since.setdefault(node.name, now)
        if (now - self.last_scale_up < self.delay_after_add_s
                or now - self.last_scale_down < self.delay_after_delete_s):
            return []
        on_count = {name: 0 for name in groups}
        for node in view.nodes:
            if node.state in ON_STATES and node.group in on_count:
                on_count[node.group] += 1
        ripe = [n for n in unneeded if now - self.unneeded_since[n.name] >= self.unneeded_time_s]
        empty = [n for n in ripe if not used.get(n.name)]
        chosen: list[NodeInfo] = []
        for node in empty if empty else ripe:
            if on_count[node.group] <= groups[node.group].min:
                continue
            on_count[node.group] -= 1
            chosen.append(node)
            if len(chosen) >= (self.max_empty_bulk_delete if empty else 1):
                break
        for node in chosen:
            self.unneeded_since.pop(node.name, None)
        return [PowerOff(n.name, n.group, "autoscaler: unneeded for "
                         f"{self.unneeded_time_s:g} s") for n in chosen]
