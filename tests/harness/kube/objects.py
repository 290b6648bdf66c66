"""What every controller of the harness shares: object conventions and a store writer.

Conditions keep their ``lastTransitionTime`` unless the status changes (as the real components
do); a new pod gets the defaults the API server's admission adds; ``Writer`` wraps the store so a
controller losing a race with a client (object deleted meanwhile) simply retries next pass.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Any

from tests.harness.kube.store import ApiError, NotFound, Store, timestamp

Obj = dict[str, Any]
log = logging.getLogger(__name__)

RUNTIME_ANNOTATION = "harness/runtime-s"  # harness seconds a pod runs before it Succeeds
EXIT_CODE_ANNOTATION = "harness/exit-code"  # non-zero: the pod ends Failed with this exit code
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"


def set_condition(
    conditions: list[Obj],
    ctype: str,
    status: str,
    reason: str = "",
    message: str = "",
    heartbeat: bool = False,
) -> list[Obj]:
    """Set one condition, keeping lastTransitionTime unless the status changes."""
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


def pod_ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def set_pod_ready(obj: Obj, ready: bool) -> Obj | None:
    """Flip a running pod's Ready condition (None when it already says so: no write, no event)."""
    status = obj.get("status") or {}
    want = "True" if ready else "False"
    current = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    if status.get("phase") != "Running" or current.get("status") == want:
        return None
    reason = "" if ready else "NodeNotReady"
    status["conditions"] = set_condition(status.get("conditions") or [], "Ready", want, reason)
    return obj


def with_pod_defaults(pod: Obj) -> Obj:
    """What the API server's defaulting and admission plugins add to a new pod (status is reset)."""
    spec = pod.setdefault("spec", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("priority", 0)
    tolerations = spec.setdefault("tolerations", [])
    for key in (NOT_READY_TAINT, UNREACHABLE_TAINT):  # DefaultTolerationSeconds admission
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


class Writer:
    """Store writes as a controller makes them: tolerant of objects a client deleted meanwhile."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def write(self, resource: str, namespace: str, name: str, change: Callable[[Obj], Obj | None]) -> bool:
        """Apply ``change``; True when something was written."""
        try:
            before = self.store.get(resource, namespace, name)
            return self.store.write(resource, namespace, name, change) is not before
        except NotFound:
            return False

    def delete(self, resource: str, namespace: str, name: str) -> None:
        with contextlib.suppress(NotFound):
            self.store.delete(resource, namespace, name)

    def create_pod(self, namespace: str, pod: Obj) -> None:
        try:
            self.store.create("pods", with_pod_defaults(pod), namespace)
        except ApiError as exc:
            log.debug("pod not created: %s", exc.message)

    def event(self, pod: Obj, etype: str, reason: str, message: str, component: str) -> None:
        """Record a core/v1 Event about ``pod``, as the component's event recorder does."""
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
            "source": {"component": component},
            "reportingComponent": component,
            "firstTimestamp": timestamp(),
            "lastTimestamp": timestamp(),
        }
        try:
            self.store.create("events", event, meta["namespace"])
        except ApiError as exc:
            log.debug("event not recorded: %s", exc.message)
