"""Node lifecycle as kubelets and kube-controller-manager drive it.

- Kubelets report Ready ``ready_after_s`` (scaled) after registration; a stopped kubelet (a board
  powered off) leaves its node ``Unknown`` with the ``unreachable`` NoSchedule and NoExecute taints,
  and its pods marked not ready; a node not yet ready carries ``not-ready:NoSchedule``.
- The taint manager removes pods that do not tolerate a NoExecute taint, and tolerating ones after
  their ``tolerationSeconds`` (scaled): 300 s after a node becomes unreachable, by default.
- Pod garbage collection removes the pods bound to a node that no longer exists.
"""

from __future__ import annotations

import time
from typing import Any

from tests.harness.kube import scheduling
from tests.harness.kube.objects import (
    NOT_READY_TAINT,
    UNREACHABLE_TAINT,
    Writer,
    pod_ready,
    set_condition,
    set_pod_ready,
)
from tests.harness.kube.store import timestamp

Obj = dict[str, Any]
_LIFECYCLE_TAINTS = (NOT_READY_TAINT, UNREACHABLE_TAINT)


class NodeLifecycle:
    """Ready conditions, lifecycle taints and not-ready pods, from each kubelet's (simulated) state."""

    def __init__(self, writer: Writer, time_scale: float, default_ready_delay_s: float) -> None:
        self.writer = writer
        self.time_scale = time_scale
        self.default_ready_delay_s = default_ready_delay_s
        self._ready_at: dict[str, float] = {}  # node → monotonic time its kubelet reports Ready
        self.down: set[str] = set()  # nodes whose kubelet stopped posting status

    def registered(self, name: str, ready_after_s: float | None, now: float | None = None) -> None:
        """A kubelet (re)registers: it is running, and reports Ready after the delay."""
        delay = self.default_ready_delay_s if ready_after_s is None else ready_after_s
        self._ready_at[name] = (time.monotonic() if now is None else now) + delay * self.time_scale
        self.down.discard(name)

    def set_kubelet(self, name: str, up: bool) -> None:
        (self.down.discard if up else self.down.add)(name)

    def sync(self, nodes: list[Obj], pods: list[Obj], now: float) -> None:
        names = {n["metadata"]["name"] for n in nodes}
        for gone in set(self._ready_at) - names:
            del self._ready_at[gone]
        for node in nodes:
            self._sync_node(node, now)
        for pod in pods:  # MarkPodsNotReady: the pods of a silent node are not ready either
            meta = pod["metadata"]
            if (pod.get("spec") or {}).get("nodeName") in self.down and pod_ready(pod):
                self.writer.write(
                    "pods", meta["namespace"], meta["name"], lambda obj: set_pod_ready(obj, False)
                )

    def _sync_node(self, node: Obj, now: float) -> None:
        name = node["metadata"]["name"]
        ready_at = self._ready_at.setdefault(name, now + self.default_ready_delay_s * self.time_scale)
        if name in self.down:
            want = ("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
            want_taints = {(UNREACHABLE_TAINT, "NoSchedule"), (UNREACHABLE_TAINT, "NoExecute")}
        elif now >= ready_at:
            want = ("True", "KubeletReady", "kubelet is posting ready status")
            want_taints = set()
        else:
            want = ("False", "KubeletNotReady", "container runtime network not ready")
            want_taints = {(NOT_READY_TAINT, "NoSchedule")}
        conditions = (node.get("status") or {}).get("conditions") or []
        ready = next((c for c in conditions if c.get("type") == "Ready"), {})
        taints = (node.get("spec") or {}).get("taints") or []
        have_taints = {(t["key"], t.get("effect")) for t in taints if t.get("key") in _LIFECYCLE_TAINTS}
        if ready.get("status") == want[0] and have_taints == want_taints:
            return

        def update(obj: Obj) -> Obj:
            status = obj.setdefault("status", {})
            status["conditions"] = set_condition(
                status.get("conditions") or [], "Ready", *want, heartbeat=True
            )
            spec = obj.setdefault("spec", {})
            kept = [t for t in spec.get("taints") or [] if t.get("key") not in _LIFECYCLE_TAINTS]
            kept += [{"key": k, "effect": e, "timeAdded": timestamp()} for k, e in sorted(want_taints)]
            if kept:
                spec["taints"] = kept
            else:
                spec.pop("taints", None)
            return obj

        self.writer.write("nodes", "", name, update)


class TaintManager:
    """NoExecute taints evict pods that do not tolerate them (after ``tolerationSeconds``, scaled)."""

    def __init__(self, writer: Writer, time_scale: float) -> None:
        self.writer = writer
        self.time_scale = time_scale
        self._since: dict[tuple[str, str], float] = {}  # (node, taint key) → monotonic first seen

    def sync(self, nodes: list[Obj], pods: list[Obj], now: float) -> None:
        tainted: dict[str, list[Obj]] = {}
        for node in nodes:
            taints = [
                t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") == "NoExecute"
            ]
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
            node = (pod.get("spec") or {}).get("nodeName")
            if node not in tainted or scheduling.is_terminal(pod):
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
                    self.writer.delete("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
                    break


class PodGarbageCollector:
    """Pods bound to a node that no longer exists are deleted (kube-controller-manager's podgc)."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer

    def sync(self, nodes: list[Obj], pods: list[Obj]) -> None:
        names = {n["metadata"]["name"] for n in nodes}
        for pod in pods:
            node = (pod.get("spec") or {}).get("nodeName")
            if node and node not in names:
                self.writer.delete("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
