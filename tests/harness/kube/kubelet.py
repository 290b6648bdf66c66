"""The kubelets' side of a pod's life on a Ready node: Pending → Running → Succeeded/Failed.

A bound pod starts on the next pass; it finishes ``harness/runtime-s`` harness seconds (scaled)
after it started, with ``harness/exit-code`` (default 0); without the annotation it runs until
deleted. Pods on a node whose kubelet is down do not progress.
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

    def __init__(self, writer: Writer, time_scale: float) -> None:
        self.writer = writer
        self.time_scale = time_scale
        self._started: dict[str, float] = {}  # pod uid → monotonic time it started running

    def sync(self, nodes: list[Obj], pods: list[Obj], down: set[str], now: float) -> None:
        ready_nodes = {
            n["metadata"]["name"] for n in nodes if node_is_ready(n) and n["metadata"]["name"] not in down
        }
        alive = {p["metadata"]["uid"] for p in pods}
        self._started = {uid: t for uid, t in self._started.items() if uid in alive}
        for pod in pods:
            meta = pod["metadata"]
            if (pod.get("spec") or {}).get("nodeName") not in ready_nodes:
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
