"""Which cloud workers run user work, asked of the deployment's Kubernetes API, so ``scale`` removes
idle workers before busy ones.

A worker is busy when a user pod is bound to its node: not finished, neither a DaemonSet's nor a
mirror pod (``provisioner.podrules.is_user_pod``, the rule the elastic daemon applies too).
A Kubernetes node is matched to a cloud worker by name, or by an ``InternalIP`` among the worker's
private addresses: k3s names a node after the machine's hostname, which on a cloud machine need not
be the resource name.

``user_pod_nodes`` and ``busy_members`` are pure; ``busy_workers`` does the two list calls (the
``kubernetes`` client imported lazily: only a shrinking ``scale`` needs it) with a short timeout
and no retries, and raises ``RemoteError`` when the API cannot be asked, so the caller can fall
back to newest-first and say so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from provisioner.clouds.base import CloudNode
from provisioner.errors import RemoteError
from provisioner.podrules import is_user_pod

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
