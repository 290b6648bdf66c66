"""What the API server's registry strategies do to a client's update before storing it.

Writes to a resource with a status subresource keep the old status (and ``/status`` writes keep the
old spec); a pod's spec is immutable but for a few fields. A product that patches the wrong endpoint
or field fails here as it would on a cluster.
"""

from __future__ import annotations

import time
from typing import Any

from tests.harness.kube.routes import Route
from tests.harness.kube.store import BadRequest, Invalid, Store, timestamp

Obj = dict[str, Any]

# Pod spec fields a client may change after creation (the rest is immutable, as on a real cluster).
_MUTABLE_POD_SPEC = (
    "activeDeadlineSeconds",
    "tolerations",
    "terminationGracePeriodSeconds",
    "schedulingGates",
)


def prepare_update(route: Route, old: Obj, new: Obj) -> Obj:
    """Apply the status-subresource split and pod spec immutability to a client's update."""
    if not isinstance(new, dict) or not isinstance(new.get("metadata", {}), dict):
        raise BadRequest("the body of the request was not a Kubernetes object")
    if route.sub == "status":
        return {**old, "status": new.get("status")}
    if route.resource.has_status:
        new = {**new, "status": old.get("status")}
        if new["status"] is None:
            new.pop("status")
    if route.key == "pods":

        def comparable(spec: Obj) -> Obj:
            spec = {k: v for k, v in (spec or {}).items() if k not in _MUTABLE_POD_SPEC}
            for group in ("containers", "initContainers"):
                spec[group] = [{k: v for k, v in c.items() if k != "image"} for c in spec.get(group) or []]
            return spec

        if comparable(new.get("spec")) != comparable(old.get("spec")):
            raise Invalid(
                f'Pod "{old["metadata"]["name"]}" is invalid: spec: Forbidden: pod updates may not '
                "change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, "
                "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing "
                "tolerations), `spec.terminationGracePeriodSeconds`",
                {"name": old["metadata"]["name"], "kind": "pods"},
            )
    return new


def delete_pod(
    store: Store, namespace: str, name: str, grace_s: int | None, expect_uid: str | None = None
) -> Obj:
    """Delete a pod as the pod registry does: gracefully when it runs on a node.

    An unbound or finished pod, or ``grace_s == 0``, goes at once. Otherwise the pod gets a
    ``deletionTimestamp`` (grace: the request's, else ``terminationGracePeriodSeconds``, else 30 s)
    and stays, Terminating, until its kubelet has stopped it (see ``kubelet.py``): on a node whose
    kubelet is down it stays until forced or until its node is deleted, as on a real cluster.
    """
    with store.cond:
        pod = store.get("pods", namespace, name)
        if expect_uid and expect_uid != pod["metadata"]["uid"]:
            return store.delete("pods", namespace, name, expect_uid=expect_uid)  # raises the 409
        spec, phase = pod.get("spec") or {}, (pod.get("status") or {}).get("phase")
        if grace_s is None:
            grace_s = int(spec.get("terminationGracePeriodSeconds", 30))
        if grace_s <= 0 or not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return store.delete("pods", namespace, name)
        current = pod["metadata"].get("deletionGracePeriodSeconds")
        if current is not None and current <= grace_s:
            return pod  # already terminating at least as fast

        def terminate(obj: Obj) -> Obj:
            obj["metadata"]["deletionTimestamp"] = timestamp(time.time() + grace_s)
            obj["metadata"]["deletionGracePeriodSeconds"] = grace_s
            return obj

        return store.write("pods", namespace, name, terminate)
