"""The elastic daemon: watch → view → ``decide()`` → actuator, while this replica holds the Lease.

Threads: two informers (pods, nodes) keep the caches current and wake the loop; the loop runs a
pass after a batching window (a newly unschedulable pod or a node change opens it; it closes after
``batch_idle_s`` without news or ``batch_max_s`` after it opened) and at least every ``tick_s`` for
the timers; the leader elector renews the Lease; actuator workers do the slow power calls.

A pass: move every managed node's lifecycle record on from what the API shows (``lifecycle.observe``,
written back as Node annotations), reconcile cloud groups with the instances their tags list (a
worker created by a replica that died is found again), build the ``ClusterView``, call the very
``elastic.policy.decide`` the simulator uses, hand the ``Decision`` to the actuator, and publish
metrics and the status ConfigMap. A replica that wins the Lease first rebuilds the ledger from Node
annotations, the status ConfigMap and the cloud, so a ``kill -9`` loses nothing that matters.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kubernetes.client.rest import ApiException

from elastic.actuator import Actuator, ActuatorSettings
from elastic.history import HistoryKeeper
from elastic.kubeapi import KubeApi, rfc3339
from elastic.leader import LeaderElector
from elastic.lifecycle import (
    EXCLUDE_DISRUPTION,
    EXCLUDE_DISRUPTION_VALUE,
    GROUP,
    Ledger,
    Record,
    first_sight,
    from_annotations,
    load_dump,
    observe,
    off_label,
)
from elastic.metrics import Metrics
from elastic.model import (
    ClusterView,
    Decision,
    Health,
    MarkFailed,
    NodeGroup,
    NodeInfo,
    NodeState,
    PodInfo,
    PolicySettings,
    PowerOff,
    PowerOn,
    PowerOnReason,
    ProvisioningRequestInfo,
    SetConditions,
)
from elastic.nodes import MEMBERS_KEY, forget_requests, read_requests
from elastic.policy import decide
from elastic.policy.fit import GROUP_LABEL, HOSTNAME_LABEL
from elastic.power import PowerManager
from elastic.view import (
    consumed_request,
    node_ready,
    node_resources,
    node_taints,
    parse_time,
    pod_info,
    provisioning_request_info,
    unschedulable_condition,
)
from elastic.watch import Informer
from provisioner.elastic_settings import Part, knob_float, knob_str, namespaces, of_part
from provisioner.podrules import FINISHED, is_user_pod, phase_of

log = logging.getLogger(__name__)

Obj = dict[str, Any]
MACHINE_LIST_GRACE_S = 30.0
"""A booting cloud record whose instance the cloud does not list is dropped only after this long
(a fresh instance may be missing from a list for a moment)."""


@dataclasses.dataclass(frozen=True)
class DaemonSettings:
    policy: PolicySettings = dataclasses.field(default_factory=PolicySettings)
    actuator: ActuatorSettings = dataclasses.field(default_factory=ActuatorSettings)
    batch_idle_s: float = knob_float("batch_idle_s")
    batch_max_s: float = knob_float("batch_max_s")
    tick_s: float = knob_float("tick_s")
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    lease_retry_s: float = 2.0
    namespace: str = knob_str("namespace")
    status_every_s: float = 30.0
    requests_every_s: float = 1.0
    """How often the leader reads operator requests (``nodes enable|disable|poweron|poweroff|reset``)."""


def settings_from_config(elastic: Any) -> DaemonSettings:
    """``[elastic]`` of the config file (``provisioner.config.ElasticSettings``) → daemon settings:
    every knob of ``provisioner.elastic_settings`` goes to the part that declares it, by name."""
    def values(part: Part) -> dict[str, Any]:
        out = {k.name: getattr(elastic, k.name) for k in of_part(part)}
        if "system_namespaces" in out:
            out["system_namespaces"] = namespaces(out["system_namespaces"])
        return out

    return DaemonSettings(policy=PolicySettings(**values("policy")),
                          actuator=ActuatorSettings(**values("actuator")), **values("daemon"))


class Daemon:
    def __init__(
        self,
        api_client: Any,
        groups: Sequence[NodeGroup],
        managers: Mapping[str, PowerManager],
        settings: DaemonSettings | None = None,
        *,
        metrics: Metrics | None = None,
        identity: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings or DaemonSettings()
        self.groups = {g.name: g for g in groups}
        # the listed boards, published with the status so `nodes` can check a request without a groups file
        self._members = json.dumps({g.name: [m.name for m in g.nodes] for g in groups if g.nodes})
        self.managers = dict(managers)
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.api = KubeApi(api_client, self.settings.namespace)
        self.ledger = Ledger()
        self.fleet = {m.name: g.name for g in groups for m in g.nodes}
        self.unschedulable_seen: dict[str, float] = {}
        self.history = HistoryKeeper()
        self.pods = Informer(self.api, "pods", self._on_pod)
        self.nodes = Informer(self.api, "nodes", self._on_node)
        self.provisioning = Informer(self.api, "provisioningrequests", self._on_request, optional=True)
        self.podtemplates = Informer(self.api, "podtemplates", optional=True)
        self.actuator = Actuator(
            self.api, self.ledger, self.groups, self.managers, self.metrics,
            node_object=lambda name: self.nodes.get(f"/{name}"),
            pods_on=self._pods_on, pod_object=self.pods.get,
            unschedulable_seen=self.unschedulable_seen.get,
            settings=self.settings.actuator, clock=clock,
        )
        self.elector = LeaderElector(
            self.api, identity=identity, lease_duration_s=self.settings.lease_duration_s,
            renew_deadline_s=self.settings.renew_deadline_s, retry_s=self.settings.lease_retry_s,
            on_started=self._on_started_leading, on_stopped=self._on_stopped_leading,
        )
        self.passes = 0
        self.last_decision: Decision | None = None
        self._braked = False
        self._cond = threading.Condition()
        self._first_kick: float | None = None
        self._last_kick: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rebuild = False
        self._machines_at = float("-inf")
        self._status_written: tuple[str, float] = ("", float("-inf"))
        self._requests_at = float("-inf")
        self._pod_cache: dict[str, tuple[str, float | None, PodInfo]] = {}

    # ---- life --------------------------------------------------------------------------------------
    def start(self) -> Daemon:
        self.nodes.start()
        self.pods.start()
        self.podtemplates.start()
        self.provisioning.start()
        self.elector.start()
        self._thread = threading.Thread(target=self._loop, name="elastic-loop", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.actuator.shutdown(wait=True)
        self.elector.stop()
        self.pods.stop()
        self.nodes.stop()
        self.provisioning.stop()
        self.podtemplates.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until ``stop()`` (or the timeout); True if stopped."""
        return self._stop.wait(timeout)

    def _on_started_leading(self) -> None:
        self.metrics.leader.set(1)
        self._rebuild = True
        self.kick()

    def _on_stopped_leading(self) -> None:
        self.metrics.leader.set(0)

    # ---- watch handlers ----------------------------------------------------------------------------
    def _on_pod(self, kind: str, new: Obj | None, old: Obj | None) -> None:
        if kind == "SYNC":
            self.kick()
            return
        obj = new or old
        assert obj is not None
        key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
        if new is None or (new.get("spec") or {}).get("nodeName"):
            self.unschedulable_seen.pop(key, None)
        elif unschedulable_condition(new) is not None and key not in self.unschedulable_seen:
            self.unschedulable_seen[key] = self.clock()
            self.kick()
            return
        if new is None or old is None or phase_of(new) != phase_of(old) or _node(new) != _node(old):
            self.kick()

    def _on_request(self, kind: str, new: Obj | None, old: Obj | None) -> None:
        """A ProvisioningRequest created, deleted or consumed-by-spec: a pass answers it. Our own
        status writes come back as MODIFIED with the same generation: no pass for them."""
        if kind in ("ADDED", "DELETED", "SYNC") or new is None or old is None or \
                new["metadata"].get("generation") != old["metadata"].get("generation"):
            self.kick()

    def _on_node(self, kind: str, new: Obj | None, old: Obj | None) -> None:
        if (kind in ("ADDED", "DELETED", "SYNC") or new is None or old is None
                or node_ready(new) != node_ready(old) or _cordon(new) != _cordon(old)):
            self.kick()

    def kick(self) -> None:
        """Something changed: run a pass after the batching window."""
        now = time.monotonic()
        with self._cond:
            if self._first_kick is None:
                self._first_kick = now
            self._last_kick = now
            self._cond.notify_all()

    # ---- the loop ----------------------------------------------------------------------------------
    def _loop(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            with self._cond:
                while not self._stop.is_set():
                    now = time.monotonic()
                    due = next_tick
                    if self._first_kick is not None and self._last_kick is not None:
                        due = min(due, self._last_kick + self.settings.batch_idle_s,
                                  self._first_kick + self.settings.batch_max_s)
                    if now >= due:
                        break
                    self._cond.wait(due - now)
                self._first_kick = self._last_kick = None
            if self._stop.is_set():
                return
            next_tick = time.monotonic() + self.settings.tick_s
            try:
                self.pass_once()
            except Exception:  # one bad pass (an API hiccup) must not end the daemon
                log.exception("elastic pass failed; next pass in %.1fs", self.settings.tick_s)

    def pass_once(self) -> Decision | None:
        """One observe → decide → act pass; None when this replica is not the leader (or not synced)."""
        if not self.elector.is_leader() or not (self.nodes.synced.is_set() and self.pods.synced.is_set()):
            return None
        started = time.perf_counter()
        now = self.clock()
        if self._rebuild:
            self.rebuild()  # an API error leaves the flag set: the next pass tries again
            self._rebuild = False
        nodes = {o["metadata"]["name"]: o for o in self.nodes.items()}
        listed = self.pods.items()
        self.history.observe(listed)  # run times and arrivals for decide(); finished pods included
        pods = [p for p in listed if phase_of(p) not in FINISHED]
        user_pods: dict[str, int] = {}
        for pod in pods:
            if is_user_pod(pod):
                node = str(pod["spec"]["nodeName"])
                user_pods[node] = user_pods.get(node, 0) + 1
        self._observe(nodes, user_pods, now)
        if now - self._requests_at >= min(self.settings.requests_every_s, self.settings.tick_s):
            self._requests_at = now
            self.handle_requests(nodes, now)
        if now - self._machines_at >= self.settings.tick_s:
            self._reconcile_machines(nodes, now)
        view = ClusterView(
            nodes=tuple(self._node_info(r, nodes.get(r.name)) for r in self.ledger.records()
                        if r.group in self.groups),
            pods=tuple(self._pod_infos(pods)),
            backoff_until=self.ledger.backoff_until(),
            history=self.history.snapshot(),
            provisioning_requests=self._requests(listed),
        )
        decision = decide(view, tuple(self.groups.values()), now, self.settings.policy)
        self.metrics.decision_duration.observe(time.perf_counter() - started)
        self.actuator.apply(decision)
        self._write_conditions(decision.provisioning, now)
        self.actuator.retry_power_offs(now)
        self.passes += 1
        self.last_decision = decision
        self._publish(view, nodes, now)
        return decision

    # ---- observe -----------------------------------------------------------------------------------
    def group_of(self, name: str, node: Obj | None) -> str | None:
        """The group a node belongs to: a fleet's listed name, the daemon's record, or its label."""
        if name in self.fleet:
            return self.fleet[name]
        record = self.ledger.get(name)
        if record is not None and record.group in self.groups:
            return record.group
        if node is not None:
            meta = node["metadata"]
            labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
            for value in (labels.get(GROUP_LABEL), annotations.get(GROUP)):
                if value in self.groups and not self.groups[value].nodes:
                    return value
        return None

    def _observe(self, nodes: Mapping[str, Obj], user_pods: Mapping[str, int], now: float) -> None:
        for name, node in nodes.items():
            group = self.group_of(name, node)
            if group is None or self.ledger.is_busy(name):
                continue
            ready = node_ready(node)
            record = self.ledger.get(name)
            if record is None:
                annotations = node["metadata"].get("annotations") or {}
                record = from_annotations(name, annotations, group) or first_sight(
                    name, group, ready=ready, user_pods=user_pods.get(name, 0), now=now,
                    registered_at=parse_time(node["metadata"].get("creationTimestamp")),
                    fleet=bool(self.groups[group].nodes))
            renewed = None
            if ready and record.acted_at is not None:  # is that Ready from before our power action?
                try:
                    renewed = self.api.node_lease_renewed(name)
                except ApiException as error:
                    log.warning("reading the node Lease of %s: %s", name, error)
            moved = observe(record, ready=ready, user_pods=user_pods.get(name, 0), now=now,
                            lease_renewed=renewed)
            if record.state is NodeState.POWERING_ON and moved.state in (NodeState.IDLE, NodeState.USED):
                self.ledger.succeed_group(group)
                log.info("node %s (group %s) is Ready %.1fs after power-on", name, group,
                         now - (record.powered_on_at or record.since))
            moved = self._glitch(moved, now)
            self.ledger.put(moved)
            self._write_back(moved, node)
        for record in self.ledger.records():
            if record.name in nodes or self.ledger.is_busy(record.name):
                continue
            group = self.groups.get(record.group)
            if group is None:
                continue
            if group.nodes:
                if record.state in (NodeState.IDLE, NodeState.USED):
                    self.ledger.put(record.moved(NodeState.UNKNOWN, now))
            elif record.state not in (NodeState.POWERING_ON, NodeState.POWERING_OFF):
                self.ledger.drop(record.name)  # a cloud worker whose Node went away: the machine is gone

    def _glitch(self, record: Record, now: float) -> Record:
        """CLUES's glitch rule: a node on that stays NotReady (``unknown``) for ``max_wait_poweron_s``
        lost its power or its machine. A board is counted off (it can be powered on again); a cloud
        worker is removed like a failed one, so it no longer fills its group's max. Neither happens
        while the last decision found the unready brake on (``elastic.policy.health``)."""
        grace = self.settings.policy.max_wait_poweron_s
        if record.state is not NodeState.UNKNOWN or now - record.since <= grace:
            return record
        last = self.last_decision
        if last is not None and last.health.braked:
            return record  # the unready brake: not failed nor replaced while so many are unready
        if self.groups[record.group].nodes:
            log.warning("node %s NotReady for %.0fs: counted as off", record.name, now - record.since)
            return record.moved(NodeState.OFF, now, powered_on_at=None, idle_since=None)
        reason = f"NotReady for {now - record.since:.0f}s"
        self.actuator.mark_failed(MarkFailed(record.name, record.group, reason))
        return record

    def handle_requests(self, nodes: Mapping[str, Obj], now: float) -> None:
        """Apply the operator's ``nodes`` requests (see ``elastic.nodes``) and remove them."""
        try:
            requests = read_requests(self.api)
        except ApiException as error:
            log.warning("reading operator requests: %s", error)
            return
        done: dict[str, str] = {}
        for name, action in requests.items():
            group = self.group_of(name, nodes.get(name))
            if group is None:
                log.warning("request %s %s: the node is in no group of this daemon; ignored", action, name)
                done[name] = action
                continue
            if self.ledger.is_busy(name):
                continue  # a worker is on it: next pass
            done[name] = action
            record = self.ledger.get(name)
            base = record or Record(name, group, NodeState.UNKNOWN if name in nodes else NodeState.OFF, now)
            new: Record | None = None
            if action == "disable":
                new = base.moved(NodeState.DISABLED, now)
            elif action == "enable" and base.state is NodeState.DISABLED:
                new = base.moved(NodeState.UNKNOWN if name in nodes else NodeState.OFF, now)
            elif action == "reset" and base.state is NodeState.FAILED:
                new = base.moved(NodeState.OFF, now, powered_on_at=None, idle_since=None)
            elif (action == "poweron" and base.state is NodeState.UNKNOWN
                  and self.managers[group].ephemeral):
                # A cloud worker cannot be powered on again under its name: its old Node and k3s
                # node-password Secret would make k3s refuse the new VM. Remove it; start a fresh one.
                log.info("request poweron %s: a cloud worker in state unknown is replaced: it is "
                         "removed (VM and Node) and a new worker with a new name is started", name)
                self.actuator.mark_failed(MarkFailed(name, group, "replaced at the operator's request"))
                self.actuator.power_on(PowerOn(group, None, f"operator request (replaces {name})",
                                               kind=PowerOnReason.MANUAL), now)
            elif action == "poweron" and base.state in (NodeState.OFF, NodeState.UNKNOWN):
                self.actuator.power_on(PowerOn(group, name, "operator request",
                                               kind=PowerOnReason.MANUAL), now)
            elif action == "poweroff" and base.state in (NodeState.IDLE, NodeState.USED, NodeState.UNKNOWN):
                self.ledger.put(base)
                self.actuator.power_off(PowerOff(name, group, "operator request"), now, reason="manual")
            else:
                log.warning("request %s %s: not possible while it is %s; ignored", action, name,
                            base.state.value)
            if new is not None:
                log.info("operator request: %s %s → %s", action, name, new.state.value)
                self.ledger.put(new)
                if name in nodes:
                    self._write_back(new, nodes[name])
        try:
            forget_requests(self.api, done)
        except ApiException as error:
            log.warning("clearing operator requests: %s", error)

    def _write_back(self, record: Record, node: Obj) -> None:
        """Patch the Node when its annotations (or group label) differ from the record."""
        meta = node["metadata"]
        annotations = meta.get("annotations") or {}
        wanted = record.annotations()
        changes = {k: v for k, v in wanted.items() if annotations.get(k) != v}
        labels: dict[str, str | None] | None = None
        current = meta.get("labels") or {}
        if current.get(GROUP_LABEL) != record.group:
            labels = {GROUP_LABEL: record.group}
        excluded = current.get(EXCLUDE_DISRUPTION)
        if self.groups[record.group].nodes and off_label(record.state) != excluded and (
                excluded in (None, EXCLUDE_DISRUPTION_VALUE)):  # a value of someone else's stays
            labels = {**(labels or {}), EXCLUDE_DISRUPTION: off_label(record.state)}
        if not changes and labels is None:
            return
        try:
            self.api.patch_node(record.name, annotations=changes or None, labels=labels)
        except ApiException as error:
            if error.status != 404:
                raise

    def _reconcile_machines(self, nodes: Mapping[str, Obj], now: float) -> None:
        """Cloud groups: a tagged instance with no record is a power-on in flight; a booting record
        whose instance is gone is dropped, and a registered worker whose instance is gone has its
        Node deleted."""
        self._machines_at = now
        for group in self.groups.values():
            manager = self.managers.get(group.name)
            if manager is None:
                continue
            try:
                machines = manager.machines(group)
            except Exception as error:
                log.warning("listing the machines of group %s: %s", group.name, error)
                continue
            if machines is None:
                continue
            for name, created in machines.items():
                if self.ledger.get(name) is None and name not in nodes:
                    log.info("found instance %s of group %s booting (no record): adopting it", name,
                             group.name)
                    self.ledger.put(Record(name, group.name, NodeState.POWERING_ON, created,
                                           powered_on_at=created))
            for record in self.ledger.records():
                if record.group != group.name or record.name in machines or self.ledger.is_busy(record.name):
                    continue
                fresh = now - (record.powered_on_at or record.since) <= MACHINE_LIST_GRACE_S
                if record.state is NodeState.POWERING_ON and record.name not in nodes and not fresh:
                    log.warning("instance for %s is gone before it registered: forgetting it", record.name)
                    self.ledger.drop(record.name)
                elif record.name in nodes and record.state not in (NodeState.POWERING_OFF,
                                                                    NodeState.DISABLED):
                    # (registered, so its instance was listed before: no grace for a slow list)
                    # Terminated outside the daemon (console, spot reclaim): k3s runs no cloud
                    # node-lifecycle controller, so its Node would stay, NotReady, counted in the group.
                    log.warning("instance for %s is gone: deleting its Node", record.name)
                    self.api.delete_node(record.name)
                    self.ledger.drop(record.name)

    def rebuild(self) -> None:
        """Rebuild the ledger from Node annotations, the status ConfigMap and the cloud."""
        status = self.api.read_status()
        saved, backoff = load_dump(status.get("state"))
        records: dict[str, Record] = {}
        nodes = {o["metadata"]["name"]: o for o in self.nodes.items()}
        for name, node in nodes.items():
            annotations = node["metadata"].get("annotations") or {}
            labels = node["metadata"].get("labels") or {}
            group = self.fleet.get(name) or annotations.get(GROUP) or labels.get(GROUP_LABEL)
            if group in self.groups:
                record = from_annotations(name, annotations, group)
                if record is not None:
                    records[name] = record
        for record in saved:
            if record.name not in nodes and record.group in self.groups:
                records[record.name] = record
        self.ledger.replace(records.values(), backoff)
        self._machines_at = float("-inf")
        log.info("rebuilt state: %d node records, %d groups backing off", len(records), len(backoff))

    # ---- view --------------------------------------------------------------------------------------
    def _node_info(self, record: Record, node: Obj | None) -> NodeInfo:
        group = self.groups[record.group]
        if node is not None:
            cpu, memory, gpus, max_pods = node_resources(node)
            labels = dict(node["metadata"].get("labels") or {})
            labels.setdefault(GROUP_LABEL, group.name)
            taints = node_taints(node)
            ready, cordoned = node_ready(node), _cordon(node)
        else:
            cpu, memory, gpus, max_pods = group.cpu_m, group.memory_mib, group.gpus, group.max_pods
            labels = {**group.labels, GROUP_LABEL: group.name, HOSTNAME_LABEL: record.name}
            taints, ready, cordoned = group.taints, False, False
        return NodeInfo(
            name=record.name, group=record.group, state=record.state, state_since=record.since,
            cpu_m=cpu, memory_mib=memory, gpus=gpus, max_pods=max_pods, labels=labels, taints=taints,
            registered=node is not None, ready=ready, cordoned=cordoned,
            powered_on_at=record.powered_on_at, idle_since=record.idle_since,
        )

    def _requests(self, pods: Sequence[Obj]) -> tuple[ProvisioningRequestInfo, ...]:
        """The ProvisioningRequests with their pods (from their PodTemplates) and how many pods
        consume each (finished ones too: a pod that ran has used its booking)."""
        listed = self.provisioning.items()
        if not listed:
            return ()
        templates = {f"{t['metadata']['namespace']}/{t['metadata']['name']}": t
                     for t in self.podtemplates.items()}
        consumed: dict[str, int] = {}
        for pod in pods:
            key = consumed_request(pod)
            if key is not None:
                consumed[key] = consumed.get(key, 0) + 1
        return tuple(provisioning_request_info(pr, templates, consumed) for pr in listed)

    def _write_conditions(self, updates: Sequence[SetConditions], now: float) -> None:
        """Write the conditions the policy set on ProvisioningRequests (status subresource). A
        condition whose status does not change keeps its ``lastTransitionTime``, as
        ``apimeta.SetStatusCondition`` does; a conflict or a deleted request waits for the next pass."""
        for update in updates:
            obj = self.provisioning.get(update.request)
            if obj is None:
                continue
            meta = obj["metadata"]
            conditions = [dict(c) for c in (obj.get("status") or {}).get("conditions") or []]
            by_type = {c.get("type"): c for c in conditions}
            for cond in update.conditions:
                status = "True" if cond.status else "False"
                old = by_type.get(cond.type)
                entry = {"type": cond.type, "status": status, "reason": cond.reason, "message": cond.message,
                         "observedGeneration": meta.get("generation", 1),
                         "lastTransitionTime": old["lastTransitionTime"]
                         if old is not None and old.get("status") == status and old.get("lastTransitionTime")
                         else rfc3339(now)[:19] + "Z"}
                if old is None:
                    conditions.append(entry)
                else:
                    old.clear()
                    old.update(entry)
            try:
                written = self.api.patch_status_conditions(
                    "provisioningrequests", meta["namespace"], meta["name"], meta["resourceVersion"],
                    conditions)
            except ApiException as error:
                log.warning("ProvisioningRequest %s: conditions not written: %s", update.request, error)
                continue
            if written:
                log.info("ProvisioningRequest %s: %s", update.request, ", ".join(
                    f"{c.type}={c.status} ({c.reason})" for c in update.conditions))

    def _pod_infos(self, pods: Sequence[Obj]) -> list[PodInfo]:
        """Pods as the policy sees them; converted again only when the object changed (a busy cluster
        has many pods and few changes per pass)."""
        infos = []
        cache: dict[str, tuple[str, float | None, PodInfo]] = {}
        for pod in pods:
            meta = pod["metadata"]
            key = f"{meta['namespace']}/{meta['name']}"
            version, seen = meta.get("resourceVersion") or "", self.unschedulable_seen.get(key)
            hit = self._pod_cache.get(key)
            info = hit[2] if hit is not None and hit[0] == version and hit[1] == seen else pod_info(pod, seen)
            cache[key] = (version, seen, info)
            infos.append(info)
        self._pod_cache = cache
        return infos

    def _pods_on(self, node: str) -> list[Obj]:
        return [p for p in self.pods.items() if _node(p) == node]

    # ---- publish -----------------------------------------------------------------------------------
    def _publish(self, view: ClusterView, nodes: Mapping[str, Obj], now: float) -> None:
        counts: dict[tuple[str, str], int] = {}
        for info in view.nodes:
            key = (info.group, info.state.value)
            counts[key] = counts.get(key, 0) + 1
        self.metrics.set_nodes(self.groups, counts)
        system = self.settings.policy.system_namespaces
        self.metrics.unschedulable_pods.set(sum(
            1 for p in view.pods
            if p.node_name is None and p.unschedulable_since is not None and p.namespace not in system
            and not p.daemonset))
        self.metrics.last_activity.labels("main").set(now)
        decision = self.last_decision or Decision()
        braked = decision.health.braked
        if braked != self._braked:
            self._braked = braked
            log.warning("unready brake %s: %s", "on" if braked else "off", decision.health.describe())
        self.metrics.unready_brake.set(1 if braked else 0)
        self.metrics.set_not_triggered(t.kind for t in decision.not_triggered)
        text = status_text(view, self.ledger, self.groups, self.elector.identity, now, decision.health)
        state = self.ledger.dump(set(nodes))
        last_text, last_at = self._status_written
        if text + state != last_text or now - last_at >= self.settings.status_every_s:
            try:
                self.api.write_status({"status": text, "state": state, MEMBERS_KEY: self._members,
                                       "lastUpdated": f"{now:.3f}"})
                self._status_written = (text + state, now)
            except ApiException as error:
                log.warning("writing the status ConfigMap: %s", error)


def status_text(view: ClusterView, ledger: Ledger, groups: Mapping[str, NodeGroup], identity: str,
                now: float, health: Health | None = None) -> str:
    """The status ConfigMap's human-readable part (like the Cluster Autoscaler's): health (the unready
    brake), and the scale-up and scale-down state of each group."""
    lines = ["Cluster-wide:", f"  Health: {(health or Health()).describe()}", f"  Leader: {identity}"]
    pending = sum(1 for p in view.pods if p.node_name is None and p.unschedulable_since is not None)
    lines.append(f"  Unschedulable pods: {pending}")
    backoff = ledger.backoff()
    lines.append("Node groups:")
    for name, group in groups.items():
        states: dict[str, int] = {}
        for info in view.nodes:
            if info.group == name:
                states[info.state.value] = states.get(info.state.value, 0) + 1
        summary = ", ".join(f"{k}={v}" for k, v in sorted(states.items())) or "none"
        lines.append(f"  {name}: min={group.min} max={group.max} nodes: {summary}")
        b = backoff.get(name)
        if b is not None and b.until > now:
            lines.append(f"    ScaleUp: Backoff ({b.failures} failed power-on(s), until {b.until:.0f})")
        else:
            lines.append(f"    ScaleUp: {'InProgress' if states.get('powering_on') else 'NoActivity'}")
        lines.append(f"    ScaleDown: {'InProgress' if states.get('powering_off') else 'NoActivity'}")
    return "\n".join(lines) + "\n"


def _node(pod: Obj) -> str | None:
    return (pod.get("spec") or {}).get("nodeName") or None


def _cordon(node: Obj) -> bool:
    return bool((node.get("spec") or {}).get("unschedulable"))
