"""The scheduling loop: bind pending pods to nodes, or say why not, as kube-scheduler does.

Pods go by priority, then creation order. One that fits nowhere gets ``PodScheduled=False``,
reason ``Unschedulable``, with the scheduler's message and a ``FailedScheduling`` Event; it is
retried when the cluster changes (a node changes, or a bound pod ends or goes), as kube-scheduler
moves unschedulable pods back to its active queue on cluster events. The placement rules are the
pure functions of ``scheduling.py``.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from tests.harness.kube import scheduling
from tests.harness.kube.objects import Writer, set_condition
from tests.harness.kube.store import Store

Obj = dict[str, Any]
COMPONENT = "default-scheduler"


class Scheduler:
    """The default scheduler over the store; ``sync`` is one pass over every pending pod."""

    def __init__(self, writer: Writer, store: Store, record_events: bool = True) -> None:
        self.writer = writer
        self.store = store
        self.record_events = record_events
        self._requests: dict[str, dict[str, Decimal]] = {}  # pod uid → requests (a pod spec is immutable)
        self._attempted: dict[str, int] = {}  # pod uid → epoch of its last failed attempt
        self._epoch = 0
        self._node_sig: tuple[tuple[str, str], ...] = ()
        self._bound_active: set[str] = set()

    def _requests_of(self, pod: Obj) -> dict[str, Decimal]:
        uid = pod["metadata"]["uid"]
        cached = self._requests.get(uid)
        if cached is None:
            cached = self._requests[uid] = scheduling.pod_requests(pod)
        return cached

    def sync(self, nodes: list[Obj], pods: list[Obj]) -> None:
        alive = {p["metadata"]["uid"] for p in pods}
        self._attempted = {uid: e for uid, e in self._attempted.items() if uid in alive}
        self._requests = {uid: r for uid, r in self._requests.items() if uid in alive}
        used: dict[str, dict[str, Decimal]] = {}
        bound_active = set()
        pending = []
        for pod in pods:
            spec = pod.get("spec") or {}
            if scheduling.is_terminal(pod):
                continue
            if spec.get("nodeName"):  # a terminating pod holds its resources until it is gone
                scheduling.add_usage(used, spec["nodeName"], self._requests_of(pod))
                bound_active.add(pod["metadata"]["uid"])
            elif spec.get("schedulerName", COMPONENT) == COMPONENT:
                pending.append(pod)
        node_sig = tuple((n["metadata"]["name"], n["metadata"]["resourceVersion"]) for n in nodes)
        if node_sig != self._node_sig or self._bound_active - bound_active:
            self._epoch += 1  # the cluster changed: unschedulable pods get another try
        self._node_sig, self._bound_active = node_sig, bound_active
        pending.sort(
            key=lambda p: (
                -int((p.get("spec") or {}).get("priority") or 0),
                self.store.created(p["metadata"]["uid"]),
            )
        )
        capacities: dict[str, dict[str, Decimal]] = {}
        # Within one pass capacity only shrinks, so a pod shaped like one that failed fails too
        # (kube-scheduler's equivalence classes); this keeps thousands of identical pods cheap.
        failed: dict[str, str] = {}
        for pod in pending:
            uid = pod["metadata"]["uid"]
            if self._attempted.get(uid) == self._epoch:
                continue
            requests = self._requests_of(pod)
            shape = _shape(pod, requests)
            message = failed.get(shape)
            node = None
            if message is None:
                node, message = scheduling.place(pod, nodes, used, requests, capacities)
            if node:
                self._bind(pod, node)
                scheduling.add_usage(used, node, requests)
                self._bound_active.add(uid)
            else:
                failed[shape] = message
                self._attempted[uid] = self._epoch
                self._mark_unschedulable(pod, message)

    def _bind(self, pod: Obj, node: str) -> None:
        def update(obj: Obj) -> Obj | None:
            if (obj.get("spec") or {}).get("nodeName"):
                return None
            obj["spec"]["nodeName"] = node
            status = obj.setdefault("status", {})
            status["conditions"] = set_condition(status.get("conditions") or [], "PodScheduled", "True")
            return obj

        meta = pod["metadata"]
        if self.writer.write("pods", meta["namespace"], meta["name"], update) and self.record_events:
            message = f"Successfully assigned {meta['namespace']}/{meta['name']} to {node}"
            self.writer.event(pod, "Normal", "Scheduled", message, COMPONENT)

    def _mark_unschedulable(self, pod: Obj, message: str) -> None:
        conditions = (pod.get("status") or {}).get("conditions") or []
        current = next((c for c in conditions if c.get("type") == "PodScheduled"), {})
        if current.get("status") == "False" and current.get("message") == message:
            return

        def update(obj: Obj) -> Obj | None:
            if (obj.get("spec") or {}).get("nodeName"):
                return None
            status = obj.setdefault("status", {})
            status["conditions"] = set_condition(
                status.get("conditions") or [], "PodScheduled", "False", "Unschedulable", message
            )
            return obj

        meta = pod["metadata"]
        if self.writer.write("pods", meta["namespace"], meta["name"], update) and self.record_events:
            self.writer.event(pod, "Warning", "FailedScheduling", message, COMPONENT)


def _shape(pod: Obj, requests: dict[str, Decimal]) -> str:
    """What the scheduler's filters look at, as one comparable string."""
    spec = pod.get("spec") or {}
    return json.dumps(
        [
            sorted((k, str(v)) for k, v in requests.items()),
            spec.get("nodeSelector"),
            spec.get("affinity"),
            spec.get("tolerations"),
            scheduling.is_daemonset_pod(pod),
        ],
        sort_keys=True,
    )
