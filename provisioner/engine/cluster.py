"""Which cloud workers run user work, asked of the deployment's Kubernetes API, so ``scale`` removes
idle workers before busy ones.

A worker is busy when a user pod is bound to its node: not finished, neither a DaemonSet's nor a
mirror pod (``provisioner.podrules.is_user_pod``, the rule the elastic daemon applies too).
A Kubernetes node is matched to a cloud worker by name, or by an ``InternalIP`` among the worker's
private addresses: k3s names a node after the machine's hostname, which on a cloud machine need not
be the resource name.

``user_pod_nodes``, ``busy_members`` and ``member_nodes`` are pure; ``busy_workers`` does the two
list calls (the ``kubernetes`` client imported lazily: only a shrinking ``scale`` needs it) with a
short timeout and no retries, and raises ``RemoteError`` when the API cannot be asked, so ``scale``
can refuse (or, with ``--force``, go newest-first) and say why. ``drain_workers`` cordons the nodes
``scale`` removes and evicts their user pods first, as the elastic daemon drains before a power-off.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from provisioner.clouds.base import CloudNode
from provisioner.errors import RemoteError
from provisioner.podrules import is_user_pod, protecting_annotation

Obj = Mapping[str, Any]
TIMEOUT_S = 10.0
"""Per request; an unreachable front-end must not hold ``scale`` for minutes."""
def user_pod_nodes(pods: Iterable[Obj]) -> set[str]:
    """The names of the Kubernetes nodes that run at least one user pod."""
    return {str(p["spec"]["nodeName"]) for p in pods if is_user_pod(p)}


def _internal_ips(node: Obj) -> set[str]:
    return {str(a.get("address")) for a in (node.get("status") or {}).get("addresses") or []
            if a.get("type") == "InternalIP"}


def busy_members(members: Sequence[CloudNode], nodes: Iterable[Obj], busy_nodes: set[str]) -> list[str]:
    """The cloud names of ``members`` whose Kubernetes node is in ``busy_nodes`` (matched by name,
    or by an InternalIP among the member's private addresses), in ``members`` order."""
    busy_ips: set[str] = set()
    for node in nodes:
        if str((node.get("metadata") or {}).get("name")) in busy_nodes:
            busy_ips |= _internal_ips(node)
    return [m.name for m in members if m.name in busy_nodes or busy_ips & set(m.private_ips)]


def member_nodes(members: Sequence[CloudNode], nodes: Iterable[Obj]) -> dict[str, str]:
    """Cloud name → Kubernetes node name for the ``members`` that have a node (matched as in
    ``busy_members``)."""
    by_name = {str((n.get("metadata") or {}).get("name")): n for n in nodes}
    found: dict[str, str] = {}
    for member in members:
        if member.name in by_name:
            found[member.name] = member.name
            continue
        for name, node in by_name.items():
            if _internal_ips(node) & set(member.private_ips):
                found[member.name] = name
                break
    return found


def _api_client(kubeconfig: Path) -> tuple[Any, str]:
    """An ``ApiClient`` for the kubeconfig and the API server's URL (for messages)."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    configuration = client.Configuration()
    try:
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    except (ConfigException, OSError, ValueError, KeyError, TypeError) as error:
        raise RemoteError(f"{kubeconfig}: not a usable kubeconfig: {error}") from None
    configuration.retries = 0  # one try: the caller falls back instead of waiting
    return client.ApiClient(configuration), configuration.host


def busy_workers(kubeconfig: Path, members: Sequence[CloudNode], *,
                 timeout_s: float = TIMEOUT_S) -> list[str]:
    """The cloud names of ``members`` that run user pods, from the cluster ``kubeconfig`` points at.

    ``RemoteError`` naming the API server when it cannot be asked (unreachable, refused, an error
    answer); the message never carries the kubeconfig's credentials."""
    import urllib3
    from kubernetes import client

    api, host = _api_client(kubeconfig)
    try:
        core = client.CoreV1Api(api)
        timeout = (min(5.0, timeout_s), timeout_s)
        nodes = core.list_node(_preload_content=False, _request_timeout=timeout)
        pods = core.list_pod_for_all_namespaces(
            field_selector="status.phase!=Succeeded,status.phase!=Failed",
            _preload_content=False, _request_timeout=timeout)
        node_items = json.loads(nodes.data)["items"]
        pod_items = json.loads(pods.data)["items"]
    except client.ApiException as error:
        raise RemoteError(f"Kubernetes API {host}: {error.status} {error.reason}") from None
    except (urllib3.exceptions.HTTPError, OSError) as error:
        reason = re.sub(r"^<[^>]*>: ", "", str(getattr(error, "reason", None) or error))  # no object reprs
        raise RemoteError(f"Kubernetes API {host}: cannot be reached: {reason}") from None
    except (ValueError, KeyError) as error:
        raise RemoteError(f"Kubernetes API {host}: an answer that is not a list: {error}") from None
    finally:
        api.close()
    return busy_members(members, node_items, user_pod_nodes(pod_items))


DRAIN_TIMEOUT_S = 120.0
"""How long ``drain_workers`` retries evictions a PodDisruptionBudget refuses (the daemon's default
``drain_timeout_s``)."""


def drain_workers(kubeconfig: Path, victims: Sequence[CloudNode], *, timeout_s: float = DRAIN_TIMEOUT_S,
                  retry_s: float = 2.0, clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], None] = time.sleep) -> list[str]:
    """Cordon the Kubernetes nodes of ``victims`` and evict their user pods through the Eviction API,
    as the elastic daemon drains a node before its power-off, until none is left: the Kubernetes
    names drained.

    A ``429`` (a PodDisruptionBudget) is retried every ``retry_s`` until ``timeout_s``; any other
    error answer, a pod that asks not to be disrupted (``podrules.PROTECTING``) or the timeout undo
    the cordons and raise ``RemoteError``, so nothing is removed."""
    import urllib3
    from kubernetes import client

    api, host = _api_client(kubeconfig)
    core = client.CoreV1Api(api)
    request = (min(5.0, TIMEOUT_S), TIMEOUT_S)
    cordoned: list[str] = []

    def call(what: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, _request_timeout=request, **kwargs)
        except client.ApiException as error:
            raise RemoteError(f"Kubernetes API {host}: {what}: {error.status} {_message(error)}") from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            reason = re.sub(r"^<[^>]*>: ", "", str(getattr(error, "reason", None) or error))
            raise RemoteError(f"Kubernetes API {host}: {what}: cannot be reached: {reason}") from None

    def pods_on(node: str) -> list[Obj]:
        answer = call(f"listing the pods of {node}", core.list_pod_for_all_namespaces,
                      field_selector=f"spec.nodeName={node}", _preload_content=False)
        return [p for p in json.loads(answer.data)["items"] if is_user_pod(p)]

    try:
        listed = call("listing nodes", core.list_node, _preload_content=False)
        names = member_nodes(victims, json.loads(listed.data)["items"])
        for member in victims:
            node = names.get(member.name)
            if node is None:
                continue
            call(f"cordoning {node}", core.patch_node, node, {"spec": {"unschedulable": True}})
            cordoned.append(node)
        deadline = clock() + timeout_s
        while True:
            left = [p for node in cordoned for p in pods_on(node)]
            if not left:
                return cordoned
            for pod in left:
                meta = pod["metadata"]
                key = f"{meta['namespace']}/{meta['name']}"
                if (why := protecting_annotation(pod)) is not None:
                    raise RemoteError(f"pod {key} on {pod['spec']['nodeName']} asks not to be disrupted "
                                      f"({why})")
                if meta.get("deletionTimestamp"):
                    continue
                body = {"apiVersion": "policy/v1", "kind": "Eviction",
                        "metadata": {"name": meta["name"], "namespace": meta["namespace"]}}
                try:
                    core.create_namespaced_pod_eviction(meta["name"], meta["namespace"], body,
                                                        _request_timeout=request, _preload_content=False)
                except client.ApiException as error:
                    if error.status not in (404, 429):  # gone; a PodDisruptionBudget: retried
                        raise RemoteError(f"Kubernetes API {host}: the eviction of {key} failed: "
                                          f"{error.status} {_message(error)}") from None
            if clock() > deadline:
                raise RemoteError(f"pods on {', '.join(cordoned)} could not be evicted in {timeout_s:g} s: "
                                  + ", ".join(f"{p['metadata']['namespace']}/{p['metadata']['name']}"
                                              for p in left[:5]))
            sleep(retry_s)
    except RemoteError:
        for node in cordoned:  # undone: the nodes stay and take pods again
            with contextlib.suppress(client.ApiException, urllib3.exceptions.HTTPError, OSError):
                core.patch_node(node, {"spec": {"unschedulable": False}}, _request_timeout=request)
        raise
    finally:
        api.close()


def _message(error: Any) -> str:
    """The API server's ``Status.message``, else the HTTP reason."""
    try:
        return str(json.loads(error.body or "{}").get("message") or error.reason)
    except (ValueError, AttributeError, TypeError):
        return str(error.reason)
