"""Node lifecycle as kubelets, kube-controller-manager and k3s drive it, scaled in time for tests.

Each behaviour is taken from upstream's code (kubernetes v1.32 unless said otherwise):

- Kubelets post their Ready condition (``False`` until ``ready_after_s`` after they start, then
  ``True``) and renew their Lease in ``kube-node-lease`` every 10 s (``nodeLeaseDurationSeconds``
  40 × ``nodeLeaseRenewIntervalFraction`` 0.25: pkg/kubelet/kubelet.go). A stopped kubelet (a
  board powered off) posts nothing and renews nothing; its Node keeps saying ``Ready=True``.
- The node lifecycle controller (pkg/controller/nodelifecycle/node_lifecycle_controller.go):
  ``tryUpdateNodeHealth`` sets the conditions ``Unknown`` only once neither status nor Lease has
  changed for the node-monitor grace period (``--node-monitor-grace-period``, 50 s in 1.32), so a
  powered-off Node stays ``Ready=True`` that long; ``doNoScheduleTaintingPass`` keeps the
  ``not-ready`` / ``unreachable`` / ``unschedulable`` NoSchedule taints in step with the Ready
  condition and ``spec.unschedulable``; ``processTaintBaseEviction`` queues the NoExecute
  ``not-ready`` / ``unreachable`` taints, which ``doNoExecuteTaintingPass`` adds at the zone's rate:
  ``ComputeZoneState`` over the nodes without the ``node.kubernetes.io/exclude-disruption`` label
  (``isNodeExcludedFromDisruptionChecks``) gives Normal, PartialDisruption (more than 2 and at least
  55 % not Ready) or FullDisruption (none Ready); ``setLimiterInZone`` / ``ReducedQPSFunc`` make that
  0.1 taints per second (``--node-eviction-rate``) in Normal, none in PartialDisruption of a zone of
  at most 50 nodes (``--large-cluster-size-threshold``; 0.01/s above), and when every zone is fully
  disrupted all NoExecute lifecycle taints are removed and none added (``handleDisruption``).
  ``MarkPodsNotReady``: the pods of a node whose Ready condition left ``True`` are marked not ready.
- The taint eviction controller (pkg/controller/tainteviction/taint_eviction.go) deletes, as an
  ordinary graceful deletion (``addConditionAndDeletePod``), every pod that does not tolerate a
  NoExecute taint, and tolerating ones after their ``tolerationSeconds`` (scaled; 300 s of the
  API server's DefaultTolerationSeconds by default). On a node whose kubelet is down such a pod
  stays Terminating: only its kubelet, or a forced deletion, removes it.
- Pod garbage collection (pkg/controller/podgc/gc_controller.go): ``gcOrphaned`` force-deletes the
  pods bound to a node that no longer exists; ``gcTerminating`` force-deletes Terminating pods on a
  node that is not Ready and carries ``node.kubernetes.io/out-of-service``.
- k3s (pkg/nodepassword/nodepassword.go ``Ensure``; pkg/node/controller.go ``removeNodePassword``
  when a Node is removed): an agent registers only if the Secret ``<node>.node-password.k3s``
  in ``kube-system`` is absent (then it is created with the
  hash of the agent's ``/etc/rancher/node/password``) or holds the hash of that same password; the
  Secret goes when its Node is deleted, and only then. k3s runs no cloud node-lifecycle controller,
  so a Node stays when its VM is gone. The Node's Lease goes with the Node (owner reference).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import time
from dataclasses import dataclass
from typing import Any

from tests.harness.kube import scheduling
from tests.harness.kube.objects import (
    NOT_READY_TAINT,
    UNREACHABLE_TAINT,
    UNSCHEDULABLE_TAINT,
    Writer,
    pod_ready,
    set_condition,
    set_pod_ready,
)
from tests.harness.kube.store import ApiError, NotFound, timestamp
from tests.harness.kube.strategy import delete_pod

Obj = dict[str, Any]
OUT_OF_SERVICE_TAINT = "node.kubernetes.io/out-of-service"
EXCLUDE_DISRUPTION_LABEL = "node.kubernetes.io/exclude-disruption"
ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"
NODE_LEASE_NAMESPACE = "kube-node-lease"
NODE_PASSWORD_SUFFIX = ".node-password.k3s"
_CONDITION_TAINTS = {"False": NOT_READY_TAINT, "Unknown": UNREACHABLE_TAINT}
_NO_SCHEDULE_KEYS = (NOT_READY_TAINT, UNREACHABLE_TAINT, UNSCHEDULABLE_TAINT)


@dataclass(frozen=True)
class ControlPlane:
    """kube-controller-manager's and the kubelet's node settings (harness seconds, scaled)."""

    node_monitor_grace_s: float = 50.0  # --node-monitor-grace-period (1.32 default)
    lease_renew_s: float = 10.0  # kubelet: nodeLeaseDurationSeconds 40 × renewIntervalFraction 0.25
    eviction_qps: float = 0.1  # --node-eviction-rate
    secondary_eviction_qps: float = 0.01  # --secondary-node-eviction-rate
    large_cluster_threshold: int = 50  # --large-cluster-size-threshold
    unhealthy_zone_threshold: float = 0.55  # --unhealthy-zone-threshold


class NodePasswordRejected(ApiError):
    """What the k3s server answers an agent whose node password does not match (it never registers)."""

    code, reason = 403, "Forbidden"


def micro_time(seconds: float | None = None) -> str:
    """``metav1.MicroTime`` as the API server writes it (a Lease's renewTime)."""
    moment = dt.datetime.fromtimestamp(time.time() if seconds is None else seconds, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def password_secret_name(node: str) -> str:
    return node.lower() + NODE_PASSWORD_SUFFIX


def password_hash(password: str) -> str:
    """Stands in for k3s's scrypt hash: only equality matters here."""
    return hashlib.sha256(password.encode()).hexdigest()


def ready_status(node: Obj) -> str:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status"))
    return "Unknown"


def zone_state(statuses: list[str], threshold: float) -> str:
    """``ComputeZoneState``."""
    ready = sum(1 for s in statuses if s == "True")
    not_ready = len(statuses) - ready
    if ready == 0 and not_ready > 0:
        return "FullDisruption"
    if not_ready > 2 and not_ready / (not_ready + ready) >= threshold:
        return "PartialDisruption"
    return "Normal"


def _zone(node: Obj) -> str:
    labels = node["metadata"].get("labels") or {}
    return f"{labels.get(REGION_LABEL, '')}:\x00:{labels.get(ZONE_LABEL, '')}"


def _taints(node: Obj) -> list[Obj]:
    return list((node.get("spec") or {}).get("taints") or [])


def _has(node: Obj, key: str, effect: str) -> bool:
    return any(t.get("key") == key and t.get("effect") == effect for t in _taints(node))


class NodeLifecycle:
    """Kubelets' status and Lease, and the node lifecycle controller's conditions and taints."""

    def __init__(self, writer: Writer, time_scale: float, default_ready_delay_s: float,
                 control: ControlPlane | None = None) -> None:
        self.writer = writer
        self.time_scale = time_scale
        self.default_ready_delay_s = default_ready_delay_s
        self.control = control or ControlPlane()
        self._ready_at: dict[str, float] = {}  # node → monotonic time its kubelet reports Ready
        self._heartbeat: dict[str, float] = {}  # node → monotonic time its kubelet last posted
        self._renewed: dict[str, float] = {}  # node → monotonic time its Lease was last renewed
        self._queued: dict[str, float] = {}  # node → when it joined its zone's NoExecute taint queue
        self._tokens: dict[str, float] = {}  # zone → NoExecute taints it may add now (burst 1)
        self._last_pass: float | None = None
        self.zone_states: dict[str, str] = {}
        self.down: set[str] = set()  # nodes whose kubelet stopped posting status

    def registered(self, name: str, ready_after_s: float | None, now: float | None = None) -> None:
        """A kubelet (re)starts: it is running, and reports Ready after the delay."""
        now = time.monotonic() if now is None else now
        delay = self.default_ready_delay_s if ready_after_s is None else ready_after_s
        self._ready_at[name] = now + delay * self.time_scale
        self._heartbeat[name] = now
        self._renewed.pop(name, None)  # renews its Lease at once
        self.down.discard(name)

    def set_kubelet(self, name: str, up: bool) -> None:
        (self.down.discard if up else self.down.add)(name)

    def sync(self, nodes: list[Obj], pods: list[Obj], now: float) -> None:
        names = {n["metadata"]["name"] for n in nodes}
        for table in (self._ready_at, self._heartbeat, self._renewed, self._queued):
            for gone in set(table) - names:
                del table[gone]
        for node in nodes:
            self._kubelet(node, now)
        nodes = [self.writer.store.find("nodes", "", n) or {} for n in sorted(names)]
        nodes = [n for n in nodes if n]
        for node in nodes:
            self._monitor(node, now)
        nodes = [n for n in (self.writer.store.find("nodes", "", x) for x in sorted(names)) if n]
        self._disruption(nodes, now)
        statuses = {n["metadata"]["name"]: ready_status(n) for n in nodes}
        for pod in pods:  # MarkPodsNotReady
            meta = pod["metadata"]
            node = (pod.get("spec") or {}).get("nodeName")
            if node in self.down and statuses.get(node, "True") != "True" and pod_ready(pod):
                self.writer.write(
                    "pods", meta["namespace"], meta["name"], lambda obj: set_pod_ready(obj, False)
                )

    # ---- the kubelet ---------------------------------------------------------------------------
    def _kubelet(self, node: Obj, now: float) -> None:
        name = node["metadata"]["name"]
        ready_at = self._ready_at.setdefault(name, now + self.default_ready_delay_s * self.time_scale)
        self._heartbeat.setdefault(name, now)
        if name in self.down:
            return
        self._heartbeat[name] = now
        renewed = self._renewed.get(name)
        if renewed is None or now - renewed >= self.control.lease_renew_s * self.time_scale:
            self._renew_lease(node)
            self._renewed[name] = now
        want = (("True", "KubeletReady", "kubelet is posting ready status") if now >= ready_at
                else ("False", "KubeletNotReady", "container runtime network not ready"))
        if ready_status(node) == want[0]:
            return

        def post(obj: Obj) -> Obj:
            status = obj.setdefault("status", {})
            status["conditions"] = set_condition(status.get("conditions") or [], "Ready", *want,
                                                 heartbeat=True)
            return obj

        self.writer.write("nodes", "", name, post)

    def _renew_lease(self, node: Obj) -> None:
        meta = node["metadata"]
        spec = {"holderIdentity": meta["name"], "leaseDurationSeconds": 40, "renewTime": micro_time()}

        def renew(obj: Obj) -> Obj:
            obj["spec"] = {**(obj.get("spec") or {}), **spec}
            return obj

        if not self.writer.write("leases", NODE_LEASE_NAMESPACE, meta["name"], renew):
            with contextlib.suppress(ApiError):
                self.writer.store.create("leases", {
                    "metadata": {"name": meta["name"], "namespace": NODE_LEASE_NAMESPACE,
                                 "ownerReferences": [{"apiVersion": "v1", "kind": "Node",
                                                      "name": meta["name"], "uid": meta.get("uid")}]},
                    "spec": spec,
                }, NODE_LEASE_NAMESPACE)

    # ---- the node lifecycle controller ---------------------------------------------------------
    def _monitor(self, node: Obj, now: float) -> None:
        """``tryUpdateNodeHealth`` then ``doNoScheduleTaintingPass`` for one node."""
        name = node["metadata"]["name"]
        stale = now > self._heartbeat[name] + self.control.node_monitor_grace_s * self.time_scale
        status = "Unknown" if stale else ready_status(node)
        want = {(_CONDITION_TAINTS[status], "NoSchedule")} if status in _CONDITION_TAINTS else set()
        if (node.get("spec") or {}).get("unschedulable"):
            want.add((UNSCHEDULABLE_TAINT, "NoSchedule"))
        have = {(t["key"], "NoSchedule") for t in _taints(node)
                if t.get("effect") == "NoSchedule" and t.get("key") in _NO_SCHEDULE_KEYS}
        if status == ready_status(node) and want == have:
            return

        def update(obj: Obj) -> Obj:
            if stale and ready_status(obj) != "Unknown":
                st = obj.setdefault("status", {})
                st["conditions"] = set_condition(st.get("conditions") or [], "Ready", "Unknown",
                                                 "NodeStatusUnknown", "Kubelet stopped posting node status.")
            kept = [t for t in _taints(obj)
                    if not (t.get("effect") == "NoSchedule" and t.get("key") in _NO_SCHEDULE_KEYS)]
            kept += [{"key": k, "effect": e, "timeAdded": timestamp()} for k, e in sorted(want)]
            _set_taints(obj, kept)
            return obj

        self.writer.write("nodes", "", name, update)

    def _disruption(self, nodes: list[Obj], now: float) -> None:
        """Zone states, and the rate-limited NoExecute taints (``processTaintBaseEviction``,
        ``handleDisruption``, ``doNoExecuteTaintingPass``)."""
        zones: dict[str, list[str]] = {}
        for node in nodes:
            if EXCLUDE_DISRUPTION_LABEL not in (node["metadata"].get("labels") or {}):
                zones.setdefault(_zone(node), []).append(ready_status(node))
            else:
                zones.setdefault(_zone(node), [])
        control = self.control
        states = {z: zone_state(s, control.unhealthy_zone_threshold) for z, s in zones.items() if s}
        all_full = bool(states) and all(s == "FullDisruption" for s in states.values())
        self.zone_states = states
        elapsed = 0.0 if self._last_pass is None else (now - self._last_pass) / self.time_scale
        self._last_pass = now
        for zone, size in ((z, len(s)) for z, s in zones.items()):
            state = states.get(zone, "Normal")
            if all_full:
                qps = 0.0
            elif state == "PartialDisruption":
                qps = control.secondary_eviction_qps if size > control.large_cluster_threshold else 0.0
            else:
                qps = control.eviction_qps
            self._tokens[zone] = min(1.0, self._tokens.get(zone, 1.0) + elapsed * qps) if qps else 0.0
        for node in sorted(nodes, key=lambda n: self._queued.get(n["metadata"]["name"], now)):
            name, status, zone = node["metadata"]["name"], ready_status(node), _zone(node)
            if status == "True" or all_full:
                self._queued.pop(name, None)
                self._set_no_execute(name, None)  # markNodeAsReachable
                continue
            key = _CONDITION_TAINTS[status]
            other = UNREACHABLE_TAINT if key == NOT_READY_TAINT else NOT_READY_TAINT
            if _has(node, key, "NoExecute"):
                continue
            if _has(node, other, "NoExecute"):  # swapped at once, not rate-limited
                self._set_no_execute(name, key)
                continue
            self._queued.setdefault(name, now)
            if self._tokens.get(zone, 0.0) >= 1.0:
                self._tokens[zone] -= 1.0
                self._queued.pop(name, None)
                self._set_no_execute(name, key)

    def _set_no_execute(self, name: str, key: str | None) -> None:
        def update(obj: Obj) -> Obj | None:
            lifecycle = [t for t in _taints(obj) if t.get("effect") == "NoExecute"
                         and t.get("key") in (NOT_READY_TAINT, UNREACHABLE_TAINT)]
            if [t["key"] for t in lifecycle] == ([key] if key else []):
                return None
            kept = [t for t in _taints(obj) if t not in lifecycle]
            if key:
                kept.append({"key": key, "effect": "NoExecute", "timeAdded": timestamp()})
            _set_taints(obj, kept)
            return obj

        self.writer.write("nodes", "", name, update)


def _set_taints(obj: Obj, taints: list[Obj]) -> None:
    spec = obj.setdefault("spec", {})
    if taints:
        spec["taints"] = taints
    else:
        spec.pop("taints", None)


class TaintManager:
    """NoExecute taints delete (gracefully) the pods that do not tolerate them, and tolerating ones
    after ``tolerationSeconds`` (scaled)."""

    def __init__(self, writer: Writer, time_scale: float) -> None:
        self.writer = writer
        self.time_scale = time_scale
        self._since: dict[tuple[str, str], float] = {}  # (node, taint key) → monotonic first seen

    def sync(self, nodes: list[Obj], pods: list[Obj], now: float) -> None:
        tainted: dict[str, list[Obj]] = {}
        for node in nodes:
            taints = [t for t in _taints(node) if t.get("effect") == "NoExecute"]
            if taints:
                tainted[node["metadata"]["name"]] = taints
        self._since = {
            (node, taint["key"]): self._since.get((node, taint["key"]), now)
            for node, taints in tainted.items()
            for taint in taints
        }
        if not tainted:
            return
        for pod in pods:
            meta = pod["metadata"]
            node = (pod.get("spec") or {}).get("nodeName")
            if node not in tainted or scheduling.is_terminal(pod) or meta.get("deletionTimestamp"):
                continue
            tolerations = (pod.get("spec") or {}).get("tolerations") or []
            for taint in tainted[node]:
                matching = [t for t in tolerations if scheduling.tolerates([t], taint)]
                limits = [t.get("tolerationSeconds") for t in matching]
                if not matching or (
                    None not in limits
                    and now - self._since[(node, taint["key"])]
                    >= min(float(x) for x in limits) * self.time_scale
                ):
                    with contextlib.suppress(NotFound):
                        delete_pod(self.writer.store, meta["namespace"], meta["name"], None)
                    break


class PodGarbageCollector:
    """podgc's ``gcOrphaned`` and ``gcTerminating`` (forced deletions)."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer

    def sync(self, nodes: list[Obj], pods: list[Obj]) -> None:
        by_name = {n["metadata"]["name"]: n for n in nodes}
        for pod in pods:
            meta = pod["metadata"]
            name = (pod.get("spec") or {}).get("nodeName")
            if not name:
                continue
            node = by_name.get(name)
            out_of_service = node is not None and any(
                t.get("key") == OUT_OF_SERVICE_TAINT for t in _taints(node))
            if node is None or (meta.get("deletionTimestamp") and ready_status(node) != "True"
                                and out_of_service):
                self.writer.delete("pods", meta["namespace"], meta["name"])


class K3sNodes:
    """k3s's node passwords, and what goes with a deleted Node (its Lease, its password Secret)."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer

    def admit(self, name: str, password: str) -> None:
        """``nodepassword.Ensure``: raise ``NodePasswordRejected`` unless the agent may register."""
        store = self.writer.store
        secret = store.find("secrets", "kube-system", password_secret_name(name))
        digest = password_hash(password)
        if secret is None:
            store.create("secrets", {
                "metadata": {"name": password_secret_name(name), "namespace": "kube-system"},
                "immutable": True, "type": "k3s.cattle.io/node-password",
                "data": {"hash": digest},
            }, "kube-system")
        elif (secret.get("data") or {}).get("hash") != digest:
            raise NodePasswordRejected(
                f"Node password rejected, duplicate hostname or contents of '/etc/rancher/node/password' "
                f"may not match server node-passwd entry, try enabling a unique node name with the "
                f"--with-node-id flag (node {name})"
            )

    def sync(self, nodes: list[Obj]) -> None:
        names = {n["metadata"]["name"] for n in nodes}
        secrets, _ = self.writer.store.list("secrets", "kube-system")
        for secret in secrets:
            secret_name = secret["metadata"]["name"]
            if secret_name.endswith(NODE_PASSWORD_SUFFIX) and secret_name[: -len(NODE_PASSWORD_SUFFIX)] \
                    not in {n.lower() for n in names}:
                self.writer.delete("secrets", "kube-system", secret_name)
        leases, _ = self.writer.store.list("leases", NODE_LEASE_NAMESPACE)
        for lease in leases:
            if lease["metadata"]["name"] not in names:
                self.writer.delete("leases", NODE_LEASE_NAMESPACE, lease["metadata"]["name"])
