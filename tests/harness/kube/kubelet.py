"""The kubelets' side of a pod's life on a Ready node: Pending → Running → Succeeded/Failed.

A bound pod starts on the next pass; it finishes ``harness/runtime-s`` harness seconds (scaled)
after it started, with ``harness/exit-code`` (default 0); without the annotation it runs until
deleted. A deleted (Terminating) pod is removed ``termination_s`` (at most its grace period) after
its kubelet sees it. Pods on a node whose kubelet is down do not progress, nor go.
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.harness.kube.objects import (
    EXIT_CODE_ANNOTATION,
    RUNTIME_ANNOTATION,
    Writer,
    pod_ready,
    set_condition,
    set_pod_ready,
)
from tests.harness.kube.scheduling import node_is_ready
from tests.harness.kube.store import timestamp

Obj = dict[str, Any]


class Kubelets:
    """Every node's kubelet, as far as pod phases and container states go."""

    def __init__(self, writer: Writer, time_scale: float, termination_s: float = 1.0) -> None:
        self.writer = writer
        self.time_scale = time_scale
        self.termination_s = termination_s
        self._started: dict[str, float] = {}  # pod uid → monotonic time it started running
        self._stopping: dict[str, float] = {}  # pod uid → monotonic time its kubelet saw the deletion

    def sync(self, nodes: list[Obj], pods: list[Obj], down: set[str], now: float) -> None:
        ready_nodes = {
            n["metadata"]["name"] for n in nodes if node_is_ready(n) and n["metadata"]["name"] not in down
        }
        alive = {p["metadata"]["uid"] for p in pods}
        self._started = {uid: t for uid, t in self._started.items() if uid in alive}
        self._stopping = {uid: t for uid, t in self._stopping.items() if uid in alive}
        running_kubelets = {n["metadata"]["name"] for n in nodes} - down
        for pod in pods:
            meta = pod["metadata"]
            node = (pod.get("spec") or {}).get("nodeName")
            if meta.get("deletionTimestamp"):
                if node in running_kubelets:  # stop the containers, then remove the pod for good
                    since = self._stopping.setdefault(meta["uid"], now)
                    grace = float(meta.get("deletionGracePeriodSeconds") or 0)
                    if now - since >= min(self.termination_s, grace) * self.time_scale:
                        self.writer.delete("pods", meta["namespace"], meta["name"])
                continue
            if node not in ready_nodes:
                continue
            phase = (pod.get("status") or {}).get("phase", "Pending")
            ns, name = meta["namespace"], meta["name"]
            if phase == "Pending":
                self._started[meta["uid"]] = now
                self.writer.write("pods", ns, name, start_pod)
            elif phase == "Running":
                if not pod_ready(pod):  # back from a kubelet outage
                    self.writer.write("pods", ns, name, lambda obj: set_pod_ready(obj, True))
                started = self._started.setdefault(meta["uid"], now)
                runtime = (meta.get("annotations") or {}).get(RUNTIME_ANNOTATION)
                if runtime is not None and now - started >= float(runtime) * self.time_scale:
                    code = int((meta.get("annotations") or {}).get(EXIT_CODE_ANNOTATION, "0"))
                    self.writer.write("pods", ns, name, lambda obj, code=code: finish_pod(obj, code))


def start_pod(obj: Obj) -> Obj | None:
    """Containers started and ready: phase Running with the conditions and statuses a kubelet posts."""
    status = obj.setdefault("status", {})
    if status.get("phase", "Pending") != "Pending":
        return None
    now = timestamp()
    conditions = status.get("conditions") or []
    for ctype in ("Initialized", "ContainersReady", "Ready"):
        conditions = set_condition(conditions, ctype, "True")
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


def finish_pod(obj: Obj, exit_code: int) -> Obj | None:
    """Containers terminated with ``exit_code``: phase Succeeded (0) or Failed."""
    status = obj.setdefault("status", {})
    if status.get("phase") != "Running":
        return None
    now = timestamp()
    reason = "Completed" if exit_code == 0 else "Error"
    conditions = status.get("conditions") or []
    for ctype in ("ContainersReady", "Ready"):
        conditions = set_condition(conditions, ctype, "False", "PodCompleted")
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
