"""Carry out a ``Decision``: PowerOn, PowerOff (cordon, evict, power off) and MarkFailed.

The decision loop calls ``apply``; it records each action in the ``Ledger`` at once (so the next
decision already counts a node as powering on or off and never asks twice) and hands the slow part
(a power command, a cloud call, an eviction that a PodDisruptionBudget holds back) to a worker
thread. A node has at most one worker at a time (``Ledger.claim``).

* Power-on: the record (powering_on, powered_on_at) goes on the Node (annotations, uncordoned) or,
  for a machine with no Node yet, into the status ConfigMap; then the power manager is called. A
  power manager error backs the group off (the policy then sends the pods to the next group).
* Power-off: powering_off + cordon, every evictable pod evicted through the Eviction API (a ``429``
  from a PodDisruptionBudget is retried until ``drain_timeout_s``; any other error answer fails the
  drain at once; a drain that cannot finish is undone: the node is uncordoned, stays on, and is not
  drained again before a backoff (``backoff_min_s`` doubling to ``backoff_max_s``); pods Terminating
  for long past their grace period are not waited for, as the Cluster Autoscaler does not), then the
  power manager; cloud workers' Node objects are deleted, boards stay as ``off``, labelled
  ``node.kubernetes.io/exclude-disruption`` and, if pods are still bound to them, tainted
  ``node.kubernetes.io/out-of-service`` so podgc removes those pods. A node that is not Ready is not
  drained (its kubelet would never confirm an eviction): its power is cut first, then the taint. A
  power-on takes label and taint away first. A failed power-off stays powering_off and is retried by
  the loop (``retry_power_offs``) until the policy's ``max_wait_poweroff`` marks it failed.
* A Ready node where a user pod (not a DaemonSet's, not a mirror pod) still runs is never powered
  off, whatever a timer says: ``MarkFailed`` puts it back to used, uncordoned, with an Event.
* Mark failed: the machine is powered off (removed, for cloud), the group backs off when it was a
  power-on that failed, boards stay ``failed`` until ``nodes reset``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes.client.rest import ApiException

from elastic.kubeapi import KubeApi
from elastic.lifecycle import (
    EXCLUDE_DISRUPTION,
    EXCLUDE_DISRUPTION_VALUE,
    OUT_OF_SERVICE,
    Backoff,
    Ledger,
    Record,
    next_backoff,
)
from elastic.metrics import Metrics
from elastic.model import Decision, MarkFailed, NodeGroup, NodeState, PowerOff, PowerOn
from elastic.power import PowerError, PowerManager
from elastic.view import node_ready, parse_time
from provisioner.elastic_settings import knob_float
from provisioner.podrules import is_user_pod, protecting_annotation

log = logging.getLogger(__name__)


Obj = dict[str, Any]

LONG_TERMINATING_S = 30.0
"""A pod still Terminating this long after its grace period ended is not waited for (the Cluster
Autoscaler's ``PodLongTerminatingExtraThreshold``): its kubelet is not going to confirm it."""


RESCHEDULER_LABEL = "oscar_rescheduler"
"""OSCAR's rescheduler label, whose value is the pod's threshold in seconds (``ReSchedulerLabelKey``
in grycap/oscar ``pkg/types/service.go``; ``pkg/resourcemanager/rescheduler.go`` sends a pod pending
longer than it since its creation to another cluster), tag v4.1.2."""


def rescheduler_notice(pod: Mapping[str, Any], node: str, group: NodeGroup, now: float) -> str | None:
    """The Event message for a pod OSCAR's rescheduler watches that a node is powering on for: when
    the node should be Ready (the group's boot time) against the pod's threshold. None for other
    pods. The daemon only records Events: it has no right to patch pods."""
    meta = pod.get("metadata") or {}
    label = (meta.get("labels") or {}).get(RESCHEDULER_LABEL)
    if label is None:
        return None
    ready_in = group.boot_s
    created = parse_time(meta.get("creationTimestamp"))
    waited = max(now - created, 0.0) if created is not None else 0.0
    message = (f"node {node} of group {group.name} powering on for this pod: expected Ready in "
               f"{ready_in:.0f}s (pending {waited:.0f}s so far)")
    try:
        threshold = float(label)
    except ValueError:
        return message
    if waited + ready_in > threshold:
        message += (f"; OSCAR's rescheduler threshold for it is {threshold:.0f}s, so it may send the pod "
                    f"to another cluster first (a threshold of {waited + ready_in + 5:.0f}s or more waits)")
    else:
        message += f"; within OSCAR's rescheduler threshold for it ({threshold:.0f}s)"
    return message


@dataclasses.dataclass(frozen=True)
class ActuatorSettings:
    backoff_min_s: float = knob_float("backoff_min_s")
    backoff_max_s: float = knob_float("backoff_max_s")
    drain_timeout_s: float = knob_float("drain_timeout_s")
    """How long evictions are retried (PodDisruptionBudgets) before the power-off is given up."""
    eviction_retry_s: float = knob_float("eviction_retry_s")
    power_off_retry_s: float = 30.0
    """A failed power-off is tried again after this long."""
    not_triggered_every_s: float = 300.0
    """A pod gets the same NotTriggerScaleUp event again at most this often."""
    workers: int = 8


class Actuator:
    def __init__(
        self,
        api: KubeApi,
        ledger: Ledger,
        groups: Mapping[str, NodeGroup],
        managers: Mapping[str, PowerManager],
        metrics: Metrics,
        *,
        node_object: Callable[[str], Obj | None],
        pods_on: Callable[[str], list[Obj]],
        pod_object: Callable[[str], Obj | None],
        unschedulable_seen: Callable[[str], float | None],
        settings: ActuatorSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api = api
        self.ledger = ledger
        self.groups = groups
        self.managers = managers
        self.metrics = metrics
        self.node_object = node_object
        self.pods_on = pods_on
        self.pod_object = pod_object
        self.unschedulable_seen = unschedulable_seen
        self.settings = settings or ActuatorSettings()
        self.clock = clock
        self.pool = ThreadPoolExecutor(self.settings.workers, thread_name_prefix="actuator")
        self._off_failed_at: dict[str, float] = {}
        self._told: dict[str, tuple[str, float]] = {}
        self._requested: dict[str, float] = {}
        self._names_used: set[str] = set()
        self._drain_backoff: dict[str, Backoff] = {}
        """Per node, after a drain failed: no power-off (but the operator's) before ``until``."""
        self._lock = threading.Lock()
        self.stopped = threading.Event()

    def shutdown(self, wait: bool = True) -> None:
        self.stopped.set()
        self.pool.shutdown(wait=wait, cancel_futures=True)

    # ---- the loop's entry point ------------------------------------------------------------------
    def apply(self, decision: Decision) -> None:
        """Record every action now and start its slow part on a worker."""
        now = self.clock()
        for failed in decision.failed:
            self.mark_failed(failed)
        for off in decision.power_off:
            self.power_off(off, now)
        for on in decision.power_on:
            self.power_on(on, now)
        self._tell_not_triggered(decision, now)

    def power_on(self, action: PowerOn, now: float) -> str | None:
        group = self.groups[action.group]
        manager = self.managers[action.group]
        try:
            name = action.node or self._fresh_name(manager, group)
        except PowerError as error:
            log.error("power on in group %s: %s", action.group, error)
            return None
        previous = self.ledger.get(name)
        if previous is not None and previous.state in (NodeState.DISABLED, NodeState.FAILED):
            log.warning("power on %s: it is %s; left alone", name, previous.state.value)
            return None
        acted_at = None if manager.ephemeral else now  # a new cloud worker has no stale Node
        record = Record(name, action.group, NodeState.POWERING_ON, now, powered_on_at=now, acted_at=acted_at)
        if not self._submit(name, self._power_on, action, record, pre=lambda: self.ledger.put(record)):
            return None
        self.metrics.scale_ups.labels(action.group, action.kind.value).inc()
        self.metrics.last_activity.labels("scale_up").set(now)
        log.info("power on %s (group %s): %s", name, action.group, action.reason)
        return name

    def _fresh_name(self, manager: PowerManager, group: NodeGroup) -> str:
        """A new machine's name that no Node, record or earlier machine of ours has had: k3s keeps a
        name's node-password Secret until its Node is deleted and refuses a new machine under it."""
        for _ in range(20):
            name = manager.new_name(group)
            if name not in self._names_used and self.ledger.get(name) is None \
                    and self.node_object(name) is None:
                self._names_used.add(name)
                return name
        raise PowerError(f"no unused node name for group {group.name}")

    def mark_failed(self, action: MarkFailed) -> bool:
        """Remove a node that failed (the policy's timers, or a glitch the loop saw)."""
        return self._submit(action.node, self._mark_failed, action)

    def power_off(self, action: PowerOff, now: float, reason: str = "idle") -> bool:
        record = self.ledger.get(action.node)
        if record is None or record.state in (NodeState.DISABLED, NodeState.FAILED):
            return False
        with self._lock:
            backoff = self._drain_backoff.get(action.node)
        if backoff is not None and backoff.until > now and reason != "manual":
            log.debug("power off %s: its last drain failed; not before %.0f", action.node, backoff.until)
            return False
        if not self._submit(action.node, self._power_off, action,
                            pre=lambda: self.ledger.put(record.moved(NodeState.POWERING_OFF, now))):
            return False
        self.metrics.scale_downs.labels(action.group, reason).inc()
        self.metrics.last_activity.labels("scale_down").set(now)
        log.info("power off %s (group %s): %s", action.node, action.group, action.reason)
        return True

    def retry_power_offs(self, now: float) -> None:
        """Power-offs that failed earlier are tried again (the policy's timer ends a hopeless one)."""
        for record in self.ledger.records():
            if record.state is not NodeState.POWERING_OFF or self.ledger.is_busy(record.name):
                continue
            failed_at = self._off_failed_at.get(record.name)
            if failed_at is not None and now - failed_at < self.settings.power_off_retry_s:
                continue
            action = PowerOff(record.name, record.group, "retry of a power-off")
            self._submit(record.name, self._power_off, action)

    def _submit(self, name: str, func: Callable[..., None], *args: Any,
                pre: Callable[[], None] | None = None) -> bool:
        if self.stopped.is_set() or not self.ledger.claim(name):
            return False
        if pre is not None:
            pre()

        def work() -> None:
            try:
                func(*args)
            except Exception:  # a worker must never die silently: log it, the loop retries
                log.exception("acting on %s failed", name)
            finally:
                self.ledger.release(name)

        self.pool.submit(work)
        return True

    # ---- persistence of one record ---------------------------------------------------------------
    def persist(self, record: Record, *, unschedulable: bool | None = None,
                labels: Mapping[str, str | None] | None = None) -> None:
        """Write a record where it lives: the Node's annotations (if the Node exists)."""
        if self.node_object(record.name) is None:
            return  # the status ConfigMap carries it (written by the loop)
        try:
            self.api.patch_node(record.name, annotations=record.annotations(), unschedulable=unschedulable,
                                labels=labels)
        except ApiException as error:
            if error.status != 404:
                raise

    # ---- workers ---------------------------------------------------------------------------------
    def _power_on(self, action: PowerOn, record: Record) -> None:
        group = self.groups[action.group]
        node = self.node_object(record.name)
        labels = {EXCLUDE_DISRUPTION: None} if node and _labels(node).get(EXCLUDE_DISRUPTION) else None
        self.persist(record, unschedulable=False if node and _cordoned(node) else None, labels=labels)
        if node is not None and _has_taint(node, OUT_OF_SERVICE):
            self.api.set_node_taint(record.name, OUT_OF_SERVICE, present=False)
        issued = self.clock()
        for key in action.pods:
            seen = self.unschedulable_seen(key)
            with self._lock:
                first = key not in self._requested
                self._requested[key] = issued
                if len(self._requested) > 50000:  # keys of long-gone pods: keep the last hour's
                    self._requested = {k: t for k, t in self._requested.items() if issued - t < 3600}
            if seen is not None and first:
                self.metrics.pending_to_request.observe(max(issued - seen, 0.0))
        try:
            self.managers[action.group].power_on(group, record.name)
        except Exception as error:
            self._power_on_failed(record, str(error))
            return
        for key in action.pods:
            pod = self.pod_object(key)
            if pod is not None:
                meta = pod["metadata"]
                self.api.event("Pod", meta["namespace"], meta["name"], meta.get("uid"), "TriggeredScaleUp",
                               f"pod triggered scale-up: node {record.name} of group {action.group} "
                               f"powering on", issued)
                notice = rescheduler_notice(pod, record.name, group, issued)
                if notice is not None:
                    self.api.event("Pod", meta["namespace"], meta["name"], meta.get("uid"), "NodePoweringOn",
                                   notice, issued)

    def _power_on_failed(self, record: Record, why: str) -> None:
        now = self.clock()
        backoff = self.ledger.fail_group(record.group, now, self.settings.backoff_min_s,
                                         self.settings.backoff_max_s)
        self.metrics.power_on_failures.labels(record.group).inc()
        log.error("power on %s failed: %s; group %s backs off %.0fs", record.name, why, record.group,
                  backoff.until - now)
        manager = self.managers[record.group]
        if manager.ephemeral:
            self.ledger.drop(record.name)
        else:
            off = record.moved(NodeState.OFF, now, powered_on_at=None, idle_since=None)
            self.ledger.put(off)
            self.persist(off)

    def _power_off(self, action: PowerOff) -> None:
        record = self.ledger.get(action.node)
        if record is None:
            return
        group = self.groups[action.group]
        if record.state is not NodeState.POWERING_OFF:
            record = record.moved(NodeState.POWERING_OFF, self.clock())
            self.ledger.put(record)
        self.persist(record, unschedulable=True)
        node = self.node_object(action.node)
        silent = node is not None and not node_ready(node)
        if node is not None:
            what = ("not Ready: power cut without a drain" if silent
                    else "cordoned and draining before power-off")
            self.api.event("Node", "", action.node, node["metadata"].get("uid"), "ScaleDown",
                           f"{what}: {action.reason}", self.clock())
        refused = None if silent else self._drain(action.node)
        if refused is not None:
            now = self.clock()
            back = record.moved(NodeState.USED, now, idle_since=None)
            self.ledger.put(back)
            self.persist(back, unschedulable=False)
            with self._lock:
                backoff = self._drain_backoff[action.node] = next_backoff(
                    self._drain_backoff.get(action.node), now, self.settings.backoff_min_s,
                    self.settings.backoff_max_s)
            self.metrics.drain_failures.labels(action.group).inc()
            log.warning("power off %s given up: %s; uncordoned, no drain again for %.0fs", action.node,
                        refused, backoff.until - now)
            if node is not None:
                self.api.event("Node", "", action.node, node["metadata"].get("uid"), "ScaleDown",
                               f"not powered off: {refused}", self.clock(), warning=True)
            return
        manager = self.managers[action.group]
        try:
            manager.power_off(group, action.node)
        except Exception as error:
            self._off_failed_at[action.node] = self.clock()
            log.error("power off %s failed (will retry): %s", action.node, error)
            return
        self._off_failed_at.pop(action.node, None)
        with self._lock:
            self._drain_backoff.pop(action.node, None)
        self._powered_off(record, manager)
        log.info("powered off %s (group %s)", action.node, action.group)

    def _powered_off(self, record: Record, manager: PowerManager) -> None:
        now = self.clock()
        if manager.ephemeral:
            self.api.delete_node(record.name)
            self.ledger.drop(record.name)
            return
        off = record.moved(NodeState.OFF, now, powered_on_at=None, idle_since=None, acted_at=now)
        self.ledger.put(off)
        self.persist(off, labels={EXCLUDE_DISRUPTION: EXCLUDE_DISRUPTION_VALUE})
        if self._bound(record.name):
            log.warning("powered off %s with pods still bound: tainted %s so they are removed",
                        record.name, OUT_OF_SERVICE["key"])
            self.api.set_node_taint(record.name, OUT_OF_SERVICE, present=True)

    def _bound(self, node: str) -> list[Obj]:
        """The user pods on ``node`` (``provisioner.podrules.is_user_pod``): not the node's own
        (DaemonSet, mirror), not finished."""
        return [p for p in self.pods_on(node) if is_user_pod(p)]

    def _drain(self, node: str) -> str | None:
        """Evict every pod that is not the node's own (DaemonSet, mirror) until none is left: None
        when drained, else why not. A ``429`` (a PodDisruptionBudget) is retried until
        ``drain_timeout_s``; any other refusal (``500``: several budgets select the pod, ``403``...)
        fails the drain at once. A pod that asks not to be disrupted (``podrules.PROTECTING``) keeps its
        node on: nothing is evicted then."""
        deadline = time.monotonic() + self.settings.drain_timeout_s
        while not self.stopped.is_set():
            now = self.clock()
            left = [p for p in self._bound(node) if not _long_terminating(p, now)]
            if not left:
                return None
            protected = [f"{p['metadata']['namespace']}/{p['metadata']['name']} ({why})"
                         for p in left if (why := protecting_annotation(p))]
            if protected:
                return f"{', '.join(protected)} asks not to be disrupted"
            for pod in left:
                meta = pod["metadata"]
                if not meta.get("deletionTimestamp"):
                    try:
                        self.api.evict(meta["namespace"], meta["name"])
                    except ApiException as error:  # 429 and 404 never get here (KubeApi.evict)
                        return (f"the eviction of {meta['namespace']}/{meta['name']} failed: "
                                f"{error.status} {_status_message(error)}")
            if time.monotonic() > deadline:
                return f"pods could not be evicted in {self.settings.drain_timeout_s:.0f}s"
            self.stopped.wait(self.settings.eviction_retry_s)
        return "the daemon is stopping"

    def _mark_failed(self, action: MarkFailed) -> None:
        record = self.ledger.get(action.node)
        if record is None or record.state in (NodeState.DISABLED, NodeState.FAILED):
            return
        now = self.clock()
        group = self.groups[action.group]
        manager = self.managers[action.group]
        if record.state is NodeState.POWERING_ON:
            backoff = self.ledger.fail_group(action.group, now, self.settings.backoff_min_s,
                                             self.settings.backoff_max_s)
            self.metrics.power_on_failures.labels(action.group).inc()
            log.error("node %s failed: %s; group %s backs off %.0fs", action.node, action.reason,
                      action.group, backoff.until - now)
        else:
            log.error("node %s failed: %s", action.node, action.reason)
        node = self.node_object(action.node)
        busy = self._bound(action.node) if node is not None and node_ready(node) else []
        if busy:
            self._keep_running(record, node, action.reason, busy)
            return
        self.metrics.scale_downs.labels(action.group, "failed").inc()
        if node is not None:
            self.api.event("Node", "", action.node, node["metadata"].get("uid"), "NodeFailed",
                           action.reason, now, warning=True)
        try:
            manager.power_off(group, action.node)
        except Exception as error:
            log.error("removing failed node %s: %s", action.node, error)
        if manager.ephemeral:
            self.api.delete_node(action.node)
            self.ledger.drop(action.node)
            return
        failed = record.moved(NodeState.FAILED, now)
        self.ledger.put(failed)
        self.persist(failed)

    def _keep_running(self, record: Record, node: Obj | None, why: str, busy: list[Obj]) -> None:
        """A Ready node where user pods still run is never powered off, whatever a timer says: it
        goes back to used, uncordoned."""
        now = self.clock()
        names = ", ".join(f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in busy[:5])
        back = record.moved(NodeState.USED, now, idle_since=None)
        self.ledger.put(back)
        self.persist(back, unschedulable=False)
        log.warning("node %s not powered off (%s): user pods run there: %s; uncordoned", record.name, why,
                    names)
        if node is not None:
            self.api.event("Node", "", record.name, node["metadata"].get("uid"), "ScaleDown",
                           f"not powered off ({why}): user pods still run there: {names}", now, warning=True)

    # ---- events for pods that get nothing --------------------------------------------------------
    def _tell_not_triggered(self, decision: Decision, now: float) -> None:
        for item in decision.not_triggered:
            told = self._told.get(item.pod)
            if told and told[0] == item.reason and now - told[1] < self.settings.not_triggered_every_s:
                continue
            self._told[item.pod] = (item.reason, now)
            pod = self.pod_object(item.pod)
            if pod is None:
                continue
            meta = pod["metadata"]
            self.pool.submit(self.api.event, "Pod", meta["namespace"], meta["name"], meta.get("uid"),
                             "NotTriggerScaleUp", f"pod didn't trigger scale-up: {item.reason}", now)
        if len(self._told) > 10000:
            every = self.settings.not_triggered_every_s
            self._told = {k: v for k, v in self._told.items() if now - v[1] < every}


def _cordoned(node: Obj) -> bool:
    return bool((node.get("spec") or {}).get("unschedulable"))


def _labels(node: Obj) -> dict[str, str]:
    return dict(node["metadata"].get("labels") or {})


def _has_taint(node: Obj, taint: Mapping[str, str]) -> bool:
    return any(t.get("key") == taint["key"] and t.get("effect") == taint["effect"]
               for t in (node.get("spec") or {}).get("taints") or [])


def _long_terminating(pod: Obj, now: float) -> bool:
    """Terminating, and ``LONG_TERMINATING_S`` past the end of its grace period (``deletionTimestamp``)."""
    deadline = parse_time(pod["metadata"].get("deletionTimestamp"))
    return deadline is not None and now > deadline + LONG_TERMINATING_S


def _status_message(error: ApiException) -> str:
    """The API server's ``Status.message`` of an error answer, else the HTTP reason."""
    try:
        return str(json.loads(error.body or "{}").get("message") or error.reason)
    except (ValueError, AttributeError, TypeError):
        return str(error.reason)
