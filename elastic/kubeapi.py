"""The few Kubernetes writes the daemon makes, over the stock ``kubernetes`` client.

Node annotations and cordon (merge patches), pod eviction through the Eviction API (a ``429`` is a
PodDisruptionBudget saying "not now"), node deletion, the status ConfigMap and core/v1 Events.
Bodies are plain dicts and reads skip model deserialisation (``_preload_content=False``): the daemon
works on JSON, as the watch delivers it.
"""

from __future__ import annotations

import datetime
import json
import logging
import socket
from collections.abc import Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

log = logging.getLogger(__name__)

COMPONENT = "oscar-deploy-elastic"
STATUS_CONFIGMAP = "oscar-deploy-elastic-status"
DEFAULT_NAMESPACE = "kube-system"
NODE_LEASE_NAMESPACE = "kube-node-lease"
PATHS = {
    "pods": "/api/v1/pods",
    "nodes": "/api/v1/nodes",
    "podtemplates": "/api/v1/podtemplates",
    "provisioningrequests": "/apis/autoscaling.x-k8s.io/v1/provisioningrequests",
}
"""The resources the daemon lists and watches, across namespaces."""


def finish(response: Any) -> None:
    """Read a raw response to its end before its connection goes back to the pool (a connection
    returned with an unread body corrupts the next request on it)."""
    try:
        response.read()
    finally:
        response.release_conn()


def rfc3339(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def micro_time(epoch: float) -> str:
    return rfc3339(epoch)


class KubeApi:
    """Thin, typed wrappers; every method raises ``ApiException`` except where it says otherwise."""

    def __init__(self, api_client: client.ApiClient, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.coordination = client.CoordinationV1Api(api_client)
        self.namespace = namespace
        self.host = socket.gethostname()

    def list_raw(self, resource: str, **kwargs: Any) -> dict[str, Any]:
        """A resource of ``PATHS`` as the JSON list document (items + metadata.resourceVersion)."""
        response = self.list_call(resource, **kwargs)
        try:
            return json.loads(response.data)
        finally:
            response.release_conn()

    def list_call(self, resource: str, **kwargs: Any) -> Any:
        """The raw response of a list (or, with ``watch=True``, a watch) across namespaces."""
        if resource == "pods":
            return self.core.list_pod_for_all_namespaces(_preload_content=False, **kwargs)
        if resource == "nodes":
            return self.core.list_node(_preload_content=False, **kwargs)
        query = [(k, str(v).lower() if isinstance(v, bool) else v) for k, v in (
            ("watch", kwargs.get("watch")), ("resourceVersion", kwargs.get("resource_version")),
            ("allowWatchBookmarks", kwargs.get("allow_watch_bookmarks")),
            ("timeoutSeconds", kwargs.get("timeout_seconds"))) if v is not None]
        return self.api_client.call_api(
            PATHS[resource], "GET", query_params=query, header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True,
            _request_timeout=kwargs.get("_request_timeout"))

    def patch_status_conditions(self, resource: str, namespace: str, name: str, resource_version: str,
                                conditions: list[dict[str, Any]]) -> bool:
        """Replace ``status.conditions`` through the status subresource (a JSON merge patch: custom
        resources take no strategic merge), guarded by the resourceVersion read. False on a conflict
        or if the object is gone (the next pass reads it again)."""
        body = {"metadata": {"resourceVersion": resource_version}, "status": {"conditions": conditions}}
        base, _, plural = PATHS[resource].rpartition("/")
        try:
            finish(self.api_client.call_api(
                f"{base}/namespaces/{{namespace}}/{plural}/{{name}}/status",
                "PATCH", path_params={"namespace": namespace, "name": name}, body=body,
                header_params={"Content-Type": "application/merge-patch+json", "Accept": "application/json"},
                auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True,
            ))
        except ApiException as error:
            if error.status in (404, 409):
                return False
            raise
        return True

    def patch_node(self, name: str, *, annotations: Mapping[str, str | None] | None = None,
                   labels: Mapping[str, str | None] | None = None, unschedulable: bool | None = None) -> None:
        body: dict[str, Any] = {"metadata": {}}
        if annotations:
            body["metadata"]["annotations"] = dict(annotations)
        if labels:
            body["metadata"]["labels"] = dict(labels)
        if unschedulable is not None:
            body["spec"] = {"unschedulable": unschedulable}
        finish(self.core.api_client.call_api(
            "/api/v1/nodes/{name}", "PATCH", path_params={"name": name}, body=body,
            header_params={"Content-Type": "application/merge-patch+json", "Accept": "application/json"},
            auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True,
        ))

    def node_lease_renewed(self, name: str) -> float | None:
        """When the node's kubelet last renewed its Lease in ``kube-node-lease`` (epoch seconds), or
        None if it has none: the node lifecycle controller's freshest sign of a live kubelet."""
        try:
            lease = self.coordination.read_namespaced_lease(name, NODE_LEASE_NAMESPACE)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        renewed = lease.spec.renew_time if lease.spec else None
        if renewed is None:
            return None
        if renewed.tzinfo is None:
            renewed = renewed.replace(tzinfo=datetime.UTC)
        return float(renewed.timestamp())

    def set_node_taint(self, name: str, taint: Mapping[str, str], present: bool, attempts: int = 5) -> bool:
        """Add (or remove) one taint, keeping the others: read, then patch with the resourceVersion
        read, so a controller's concurrent taint change is not overwritten (a ``409`` reads again).
        False if the Node is gone."""
        for _ in range(attempts):
            try:
                response = self.core.read_node(name, _preload_content=False)
            except ApiException as error:
                if error.status == 404:
                    return False
                raise
            try:
                node = json.loads(response.data)
            finally:
                response.release_conn()
            taints = list((node.get("spec") or {}).get("taints") or [])
            kept = [t for t in taints if (t.get("key"), t.get("effect")) != (taint["key"], taint["effect"])]
            ours = [t for t in taints if t not in kept]
            if (present and any(t.get("value", "") == taint.get("value", "") for t in ours)) or \
                    (not present and not ours):
                return True  # already so
            wanted = [*kept, dict(taint)] if present else kept
            body = {"metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
                    "spec": {"taints": wanted}}
            try:
                finish(self.core.api_client.call_api(
                    "/api/v1/nodes/{name}", "PATCH", path_params={"name": name}, body=body,
                    header_params={"Content-Type": "application/merge-patch+json",
                                   "Accept": "application/json"},
                    auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True,
                ))
                return True
            except ApiException as error:
                if error.status == 404:
                    return False
                if error.status != 409:
                    raise
        raise ApiException(status=409, reason=f"taint {taint['key']} on node {name}: kept conflicting")

    def delete_node(self, name: str) -> None:
        """Delete a Node object; one already gone is fine."""
        try:
            finish(self.core.delete_node(name, _preload_content=False))
        except ApiException as error:
            if error.status != 404:
                raise

    def evict(self, namespace: str, name: str) -> bool:
        """Ask the Eviction API to remove a pod: True if done (or the pod is gone), False if a
        PodDisruptionBudget refuses it now (429), to be retried."""
        body = {"apiVersion": "policy/v1", "kind": "Eviction",
                "metadata": {"name": name, "namespace": namespace}}
        try:
            finish(self.core.create_namespaced_pod_eviction(name, namespace, body,
                                                     _preload_content=False))
        except ApiException as error:
            if error.status == 404:
                return True
            if error.status == 429:
                return False
            raise
        return True

    # ---- status ConfigMap ------------------------------------------------------------------------
    def read_configmap_data(self, name: str) -> dict[str, str]:
        """The data of ConfigMap ``name`` in the daemon's namespace ({} if it does not exist yet)."""
        try:
            response = self.core.read_namespaced_config_map(name, self.namespace, _preload_content=False)
        except ApiException as error:
            if error.status == 404:
                return {}
            raise
        try:
            return dict(json.loads(response.data).get("data") or {})
        finally:
            response.release_conn()

    def read_status(self) -> dict[str, str]:
        """The status ConfigMap's data ({} if it does not exist yet)."""
        return self.read_configmap_data(STATUS_CONFIGMAP)

    def write_status(self, data: Mapping[str, str]) -> None:
        """Create or replace the status ConfigMap (the Cluster Autoscaler's ``cluster-autoscaler-status``)."""
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": STATUS_CONFIGMAP, "namespace": self.namespace,
                             "labels": {"app.kubernetes.io/managed-by": COMPONENT}},
                "data": dict(data)}
        try:
            finish(self.core.replace_namespaced_config_map(STATUS_CONFIGMAP, self.namespace, body,
                                                    _preload_content=False))
        except ApiException as error:
            if error.status != 404:
                raise
            finish(self.core.create_namespaced_config_map(self.namespace, body,
                                                   _preload_content=False))

    # ---- events ----------------------------------------------------------------------------------
    def event(self, kind: str, namespace: str, name: str, uid: str | None, reason: str, message: str,
              now: float, warning: bool = False) -> None:
        """Record a core/v1 Event on a pod or node (best effort: a failure is logged, not raised)."""
        ns = namespace or "default"
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{name}.", "namespace": ns},
            "involvedObject": {"kind": kind, "name": name, "namespace": namespace or None, "uid": uid,
                               "apiVersion": "v1"},
            "reason": reason, "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT, "host": self.host},
            "reportingComponent": COMPONENT, "reportingInstance": self.host,
            "firstTimestamp": rfc3339(now)[:19] + "Z", "lastTimestamp": rfc3339(now)[:19] + "Z", "count": 1,
        }
        try:
            finish(self.core.create_namespaced_event(ns, body, _preload_content=False))
        except (ApiException, OSError) as error:
            log.warning("event %s on %s %s/%s not recorded: %s", reason, kind, namespace, name, error)
