"""The control loops that make the test server behave like a cluster rather than a database.

One thread runs, every ``period_s``: the node lifecycle (kubelets report Ready after a delay; a
stopped kubelet makes its node ``Unknown``; not-ready nodes carry the ``not-ready``/``unreachable``
NoSchedule taints), pod garbage collection (pods of a deleted node go away), a DaemonSet controller
(one pinned pod per matching node), the scheduler, the kubelets' pod lifecycle (Pending → Running →
Succeeded after the ``harness/runtime-s`` annotation) and the disruption controller (PDB status).

Harness durations (node ready delay, pod runtimes) are multiplied by ``time_scale`` so a test can
describe a 30 s job and wait 0.3 s. Object timestamps stay in wall-clock time, as the product reads them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tests.harness.kube import scheduling
from tests.harness.kube.disruption import budget_status
from tests.harness.kube.store import ApiError, NotFound, Store, timestamp

Obj = dict[str, Any]
log = logging.getLogger(__name__)

RUNTIME_ANNOTATION = "harness/runtime-s"
EXIT_CODE_ANNOTATION = "harness/exit-code"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"


@dataclass(frozen=True)
class Timing:
    """How fast the simulated cluster moves."""

    time_scale: float = 1.0  # real seconds per harness second (0.01: a 30 s job runs 0.3 s)
    period_s: float = 0.05  # real seconds between passes of the control loops
    node_ready_delay_s: float = 0.0  # harness seconds from registration to Ready (per-node override)
    scheduler_events: bool = True  # record Scheduled / FailedScheduling Events, as kube-scheduler does


@dataclass(frozen=True)
class DaemonSet:
    """A DaemonSet as far as the harness needs: what each of its pods requests and where it runs."""

    name: str
    namespace: str = "kube-system"
    requests: dict[str, str] = field(default_factory=lambda: {"cpu": "100m", "memory": "64Mi"})
    node_selector: dict[str, str] = field(default_factory=dict)
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))


def _set_condition(
    conditions: list[Obj],
    ctype: str,
    status: str,
    reason: str = "",
    message: str = "",
    heartbeat: bool = False,
) -> list[Obj]:
    """Set one condition, keeping lastTransitionTime unless the status changes (as the real components do)."""
    now = timestamp()
    old = next((c for c in conditions if c.get("type") == ctype), None)
    new: Obj = {
        "type": ctype,
        "status": status,
        "lastTransitionTime": old["lastTransitionTime"]
        if old and old.get("status") == status and old.get("lastTransitionTime")
        else now,
    }
    if heartbeat:
        new["lastHeartbeatTime"] = now
    else:
        new["lastProbeTime"] = None
    if reason:
        new["reason"] = reason
    if message:
        new["message"] = message
    return [c for c in conditions if c.get("type") != ctype] + [new]


class ClusterSim:
    """Scheduler, kubelets and controllers over one ``Store``; ``tick()`` runs one pass of all of them."""

    def __init__(self, store: Store, timing: Timing) -> None:
        self.store = store
        self.timing = timing
        self._lock = threading.Lock()
        self._ready_at: dict[str, float] = {}  # node → monotonic time its kubelet reports Ready
        self._down: set[str] = set()  # nodes whose kubelet stopped posting status
        self._noexecute_since: dict[tuple[str, str], float] = {}  # (node, taint key) → first seen
        self._started: dict[str, float] = {}  # pod uid → monotonic time it started running
        self._daemonsets: dict[tuple[str, str], DaemonSet] = {}
        self._requests_cache: dict[str, dict[str, Decimal]] = {}
        self._attempted: dict[str, int] = {}  # pod uid → scheduling epoch of its last failed attempt
        self._epoch = 0
        self._node_sig: tuple[tuple[str, str], ...] = ()
        self._bound_active: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- knobs for the harness handle ---------------------------------------------------------
    def node_registered(self, name: str, ready_after_s: float | None) -> None:
        delay = self.timing.node_ready_delay_s if ready_after_s is None else ready_after_s
        with self._lock:
            self._ready_at[name] = time.monotonic() + delay * self.timing.time_scale

    def set_kubelet(self, name: str, up: bool) -> None:
        with self._lock:
            (self._down.discard if up else self._down.add)(name)

    def add_daemonset(self, daemonset: DaemonSet) -> None:
        with self._lock:
            self._daemonsets[(daemonset.namespace, daemonset.name)] = daemonset

    # ---- the loop ------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="kube-harness-controllers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.timing.period_s):
            try:
                self.tick()
            except ApiError as exc:  # a concurrent client write won a race; the next pass retries
                log.debug("controller pass interrupted: %s", exc.message)

    def tick(self) -> None:
        now = time.monotonic()
        with self._lock:
            self._node_lifecycle(now)
            self._taint_eviction(now)
            self._pod_gc()
            self._sync_daemonsets()
            self._schedule()
            self._kubelets(now)
            self._budgets()

    # ---- node lifecycle (kubelet status + node lifecycle controller taints) -------------------
    def _node_lifecycle(self, now: float) -> None:
        nodes, _ = self.store.list("nodes")
        names = {n["metadata"]["name"] for n in nodes}
        for gone in set(self._ready_at) - names:
            del self._ready_at[gone]
        lifecycle_keys = (scheduling.NOT_READY_TAINT, UNREACHABLE_TAINT)
        for node in nodes:
            name = node["metadata"]["name"]
            ready_at = self._ready_at.setdefault(
                name, now + self.timing.node_ready_delay_s * self.timing.time_scale
            )
            if name in self._down:  # the node lifecycle controller's view of a silent kubelet
                want = ("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
                want_taints = {(UNREACHABLE_TAINT, "NoSchedule"), (UNREACHABLE_TAINT, "NoExecute")}
            elif now >= ready_at:
                want = ("True", "KubeletReady", "kubelet is posting ready status")
                want_taints = set()
            else:
                want = ("False", "KubeletNotReady", "container runtime network not ready")
                want_taints = {(scheduling.NOT_READY_TAINT, "NoSchedule")}
            conditions = (node.get("status") or {}).get("conditions") or []
            ready = next((c for c in conditions if c.get("type") == "Ready"), {})
            taints = (node.get("spec") or {}).get("taints") or []
            have_taints = {(t["key"], t.get("effect")) for t in taints if t.get("key") in lifecycle_keys}
            if ready.get("status") == want[0] and have_taints == want_taints:
                continue

            def update(
                obj: Obj, want: tuple[str, str, str] = want, want_taints: set[tuple[str, str]] = want_taints
            ) -> Obj:
                status = obj.setdefault("status", {})
                status["conditions"] = _set_condition(
                    status.get("conditions") or [], "Ready", *want, heartbeat=True
                )
                spec = obj.setdefault("spec", {})
                kept = [t for t in spec.get("taints") or [] if t.get("key") not in lifecycle_keys]
                kept += [{"key": k, "effect": e, "timeAdded": timestamp()} for k, e in sorted(want_taints)]
                if kept:
                    spec["taints"] = kept
                else:
                    spec.pop("taints", None)
                return obj

            self._write("nodes", "", name, update)

    def _taint_eviction(self, now: float) -> None:
        """The taint manager: pods not tolerating a NoExecute taint leave, tolerating ones after
        their ``tolerationSeconds`` (scaled), e.g. 300 s after a node becomes unreachable."""
        tainted: dict[str, list[Obj]] = {}
        for node in self.store.list("nodes")[0]:
            name = node["metadata"]["name"]
            taints = [
                t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") == "NoExecute"
            ]
            if taints:
                tainted[name] = taints
                for taint in taints:
                    self._noexecute_since.setdefault((name, taint["key"]), now)
        self._noexecute_since = {
            k: v
            for k, v in self._noexecute_since.items()
            if k[0] in tainted and any(t["key"] == k[1] for t in tainted[k[0]])
        }
        if not tainted:
            return
        for pod in self.store.list("pods")[0]:
            node = (pod.get("spec") or {}).get("nodeName")
            if node not in tainted or scheduling.is_terminal(pod):
                continue
            tolerations = (pod.get("spec") or {}).get("tolerations") or []
            for taint in tainted[node]:
                matching = [t for t in tolerations if scheduling.tolerates([t], taint)]
                limits = [t.get("tolerationSeconds") for t in matching]
                if not matching or (
                    None not in limits
                    and now - self._noexecute_since[(node, taint["key"])]
                    >= min(float(x) for x in limits) * self.timing.time_scale
                ):
                    self._delete("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
                    break

    # ---- pod garbage collection and DaemonSets --------------------------------------------------
    def _pod_gc(self) -> None:
        nodes = {n["metadata"]["name"] for n in self.store.list("nodes")[0]}
        pods, _ = self.store.list("pods")
        for pod in pods:
            node = (pod.get("spec") or {}).get("nodeName")
            if node and node not in nodes:
                self._delete("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
        alive = {p["metadata"]["uid"] for p in pods}
        self._started = {uid: t for uid, t in self._started.items() if uid in alive}
        self._attempted = {uid: e for uid, e in self._attempted.items() if uid in alive}
        self._requests_cache = {uid: r for uid, r in self._requests_cache.items() if uid in alive}

    def _sync_daemonsets(self) -> None:
        if not self._daemonsets:
            return
        for node in self.store.list("nodes")[0]:
            node_name = node["metadata"]["name"]
            labels = node["metadata"].get("labels") or {}
            for ds in self._daemonsets.values():
                if any(labels.get(k) != v for k, v in ds.node_selector.items()):
                    continue
                name = f"{ds.name}-{node_name}"[:253]
                if self.store.find("pods", ds.namespace, name) is None:
                    self._create_pod(ds.namespace, _daemonset_pod(ds, name, node_name))

    # ---- scheduler ---------------------------------------------------------------------------
    def _requests(self, pod: Obj) -> dict[str, Decimal]:
        uid = pod["metadata"]["uid"]  # a pod's requests never change (its spec is immutable)
        cached = self._requests_cache.get(uid)
        if cached is None:
            cached = self._requests_cache[uid] = scheduling.pod_requests(pod)
        return cached

    def _schedule(self) -> None:
        nodes, _ = self.store.list("nodes")
        pods, _ = self.store.list("pods")
        used: dict[str, dict[str, Decimal]] = {}
        bound_active = set()
        pending = []
        for pod in pods:
            spec = pod.get("spec") or {}
            if scheduling.is_terminal(pod) or pod["metadata"].get("deletionTimestamp"):
                continue
            if spec.get("nodeName"):
                scheduling.add_usage(used, spec["nodeName"], self._requests(pod))
                bound_active.add(pod["metadata"]["uid"])
            elif spec.get("schedulerName", "default-scheduler") == "default-scheduler":
                pending.append(pod)
        # Unschedulable pods are retried when the cluster changes (a node, or freed capacity),
        # as kube-scheduler moves them back to the active queue on cluster events.
        node_sig = tuple((n["metadata"]["name"], n["metadata"]["resourceVersion"]) for n in nodes)
        if node_sig != self._node_sig or self._bound_active - bound_active:
            self._epoch += 1
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
            requests = self._requests(pod)
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
            status["conditions"] = _set_condition(status.get("conditions") or [], "PodScheduled", "True")
            return obj

        meta = pod["metadata"]
        if self._write("pods", meta["namespace"], meta["name"], update) and self.timing.scheduler_events:
            self._event(
                pod,
                "Normal",
                "Scheduled",
                f"Successfully assigned {meta['namespace']}/{meta['name']} to {node}",
            )

    def _mark_unschedulable(self, pod: Obj, message: str) -> None:
        conditions = (pod.get("status") or {}).get("conditions") or []
        current = next((c for c in conditions if c.get("type") == "PodScheduled"), {})
        if current.get("status") == "False" and current.get("message") == message:
            return

        def update(obj: Obj) -> Obj | None:
            if (obj.get("spec") or {}).get("nodeName"):
                return None
            status = obj.setdefault("status", {})
            status["conditions"] = _set_condition(
                status.get("conditions") or [], "PodScheduled", "False", "Unschedulable", message
            )
            return obj

        meta = pod["metadata"]
        if self._write("pods", meta["namespace"], meta["name"], update) and self.timing.scheduler_events:
            self._event(pod, "Warning", "FailedScheduling", message)

    # ---- kubelets ----------------------------------------------------------------------------
    def _kubelets(self, now: float) -> None:
        ready_nodes = {
            n["metadata"]["name"]
            for n in self.store.list("nodes")[0]
            if scheduling.node_is_ready(n) and n["metadata"]["name"] not in self._down
        }
        for pod in self.store.list("pods")[0]:
            spec, status, meta = pod.get("spec") or {}, pod.get("status") or {}, pod["metadata"]
            phase = status.get("phase", "Pending")
            if spec.get("nodeName") not in ready_nodes:
                if spec.get("nodeName") in self._down and phase == "Running" and _pod_ready(pod):
                    # The node lifecycle controller marks the pods of a silent node not ready.
                    self._write(
                        "pods", meta["namespace"], meta["name"], lambda obj: _set_pod_ready(obj, False)
                    )
                continue
            if phase == "Pending":
                self._started[meta["uid"]] = now
                self._write("pods", meta["namespace"], meta["name"], _start_pod)
            elif phase == "Running":
                if not _pod_ready(pod):
                    self._write(
                        "pods", meta["namespace"], meta["name"], lambda obj: _set_pod_ready(obj, True)
                    )
                started = self._started.setdefault(meta["uid"], now)
                runtime = (meta.get("annotations") or {}).get(RUNTIME_ANNOTATION)
                if runtime is not None and now - started >= float(runtime) * self.timing.time_scale:
                    code = int((meta.get("annotations") or {}).get(EXIT_CODE_ANNOTATION, "0"))
                    self._write(
                        "pods", meta["namespace"], meta["name"], lambda obj, code=code: _finish_pod(obj, code)
                    )

    def _budgets(self) -> None:
        budgets, _ = self.store.list("poddisruptionbudgets")
        for pdb in budgets:
            pods, _ = self.store.list("pods", pdb["metadata"]["namespace"])
            status = budget_status(pdb, pods)
            if {k: (pdb.get("status") or {}).get(k) for k in status} != status:
                self._write(
                    "poddisruptionbudgets",
                    pdb["metadata"]["namespace"],
                    pdb["metadata"]["name"],
                    lambda obj, status=status: {**obj, "status": {**(obj.get("status") or {}), **status}},
                )

    # ---- helpers -----------------------------------------------------------------------------
    def _write(self, resource: str, namespace: str, name: str, change: Callable[[Obj], Obj | None]) -> bool:
        try:
            before = self.store.get(resource, namespace, name)
            return self.store.write(resource, namespace, name, change) is not before
        except NotFound:
            return False  # deleted by a client meanwhile

    def _delete(self, resource: str, namespace: str, name: str) -> None:
        with contextlib.suppress(NotFound):
            self.store.delete(resource, namespace, name)

    def _create_pod(self, namespace: str, pod: Obj) -> None:
        try:
            self.store.create("pods", with_pod_defaults(pod), namespace)
        except ApiError as exc:
            log.debug("DaemonSet pod not created: %s", exc.message)

    def _event(self, pod: Obj, etype: str, reason: str, message: str) -> None:
        meta = pod["metadata"]
        event = {
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": meta["namespace"]},
            "involvedObject": {
                "kind": "Pod",
                "apiVersion": "v1",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
            "reason": reason,
            "message": message,
            "type": etype,
            "count": 1,
            "source": {"component": "default-scheduler"},
            "reportingComponent": "default-scheduler",
            "firstTimestamp": timestamp(),
            "lastTimestamp": timestamp(),
        }
        try:
            self.store.create("events", event, meta["namespace"])
        except ApiError as exc:
            log.debug("event not recorded: %s", exc.message)


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


def _pod_ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _set_pod_ready(obj: Obj, ready: bool) -> Obj | None:
    """Flip a running pod's Ready condition (None when it already says so: no write, no event)."""
    status = obj.get("status") or {}
    want = "True" if ready else "False"
    current = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    if status.get("phase") != "Running" or current.get("status") == want:
        return None
    reason = "" if ready else "NodeNotReady"
    status["conditions"] = _set_condition(status.get("conditions") or [], "Ready", want, reason)
    return obj


def _start_pod(obj: Obj) -> Obj | None:
    status = obj.setdefault("status", {})
    if status.get("phase", "Pending") != "Pending":
        return None
    now = timestamp()
    conditions = status.get("conditions") or []
    for ctype in ("Initialized", "ContainersReady", "Ready"):
        conditions = _set_condition(conditions, ctype, "True")
    status.update(
        {
            "phase": "Running",
            "conditions": conditions,
            "startTime": now,
            "hostIP": "127.0.0.1",
            "podIP": "10.42.{}.{}".format(*uuid.UUID(obj["metadata"]["uid"]).bytes[:2]),
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": "",
                    "ready": True,
                    "restartCount": 0,
                    "started": True,
                    "state": {"running": {"startedAt": now}},
                }
                for c in obj["spec"].get("containers") or []
            ],
        }
    )
    return obj


def _finish_pod(obj: Obj, exit_code: int) -> Obj | None:
    status = obj.setdefault("status", {})
    if status.get("phase") != "Running":
        return None
    now = timestamp()
    reason = "Completed" if exit_code == 0 else "Error"
    conditions = status.get("conditions") or []
    for ctype in ("ContainersReady", "Ready"):
        conditions = _set_condition(conditions, ctype, "False", "PodCompleted")
    status.update(
        {
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "conditions": conditions,
            "containerStatuses": [
                {
                    **cs,
                    "ready": False,
                    "started": False,
                    "state": {
                        "terminated": {
                            "exitCode": exit_code,
                            "reason": reason,
                            "startedAt": (cs.get("state") or {}).get("running", {}).get("startedAt", now),
                            "finishedAt": now,
                        }
                    },
                }
                for cs in status.get("containerStatuses") or []
            ],
        }
    )
    return obj


def with_pod_defaults(pod: Obj) -> Obj:
    """What the API server's defaulting and admission plugins add to a new pod (status is reset)."""
    spec = pod.setdefault("spec", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("priority", 0)
    tolerations = spec.setdefault("tolerations", [])
    for key in (scheduling.NOT_READY_TAINT, UNREACHABLE_TAINT):  # DefaultTolerationSeconds admission
        if not any(t.get("key") == key and t.get("effect") in (None, "", "NoExecute") for t in tolerations):
            tolerations.append(
                {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            )
    requests_seen, guaranteed = False, True
    for container in spec.get("containers") or []:
        resources = container.setdefault("resources", {})
        limits = resources.get("limits") or {}
        requests = resources.setdefault("requests", {})
        for key, value in limits.items():
            requests.setdefault(key, value)
        if not requests:
            resources.pop("requests")
        requests_seen = requests_seen or bool(requests)
        guaranteed = guaranteed and all(limits.get(k) == requests.get(k) for k in ("cpu", "memory"))
    qos = "BestEffort" if not requests_seen else "Guaranteed" if guaranteed else "Burstable"
    pod["status"] = {"phase": "Pending", "qosClass": qos}
    return pod


def _daemonset_pod(ds: DaemonSet, name: str, node: str) -> Obj:
    return {
        "metadata": {
            "name": name,
            "namespace": ds.namespace,
            "labels": {"app": ds.name},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "DaemonSet",
                    "name": ds.name,
                    "uid": ds.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": ds.name,
                    "image": f"harness/{ds.name}:latest",
                    "resources": {"requests": dict(ds.requests)},
                }
            ],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
                        ]
                    }
                }
            },
            "tolerations": list(scheduling.DAEMONSET_TOLERATIONS),
        },
    }
