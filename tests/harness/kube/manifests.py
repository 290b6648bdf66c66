"""Node and Pod manifests as the cluster's environment writes them (a k3s agent, a user, OSCAR).

Shared by the Python handle and the harness control endpoint, so a node "powered on" from a shell
command looks exactly like one registered from a test.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from tests.harness.kube.objects import EXIT_CODE_ANNOTATION, RUNTIME_ANNOTATION

Obj = dict[str, Any]


def cpu_quantity(cpus: float) -> str:
    """``4`` → ``4``, ``1.5`` → ``1500m``: the project's ``cpus`` as a Kubernetes quantity."""
    millis = round(cpus * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def node_manifest(
    name: str,
    *,
    cpus: float = 4,
    memory_mib: int = 8192,
    gpus: int = 0,
    pods: int = 110,
    labels: dict[str, str] | None = None,
    taints: list[Obj] | None = None,
    unschedulable: bool = False,
    arch: str = "amd64",
    address: str = "127.0.0.1",
) -> Obj:
    """A Node as a k3s agent registers it: capacity = allocatable, no conditions yet."""
    capacity = {
        "cpu": cpu_quantity(cpus),
        "memory": f"{memory_mib * 1024}Ki",  # kubelets report memory in Ki
        "pods": str(pods),
        "ephemeral-storage": "50Gi",
    }
    if gpus:
        capacity["nvidia.com/gpu"] = str(gpus)
    spec: Obj = {}
    if taints:
        spec["taints"] = copy.deepcopy(taints)
    if unschedulable:
        spec["unschedulable"] = True
    node = {
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch,
                **(labels or {}),
            },
        },
        "spec": spec,
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": [],
            "addresses": [
                {"type": "InternalIP", "address": address},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "architecture": arch,
                "operatingSystem": "linux",
                "kubeletVersion": "v1.33.0+k3s1",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "containerRuntimeVersion": "containerd://1.7.0-k3s1",
                "kernelVersion": "6.1.0-harness",
                "kubeProxyVersion": "v1.33.0+k3s1",
                "bootID": str(uuid.uuid4()),
                "machineID": uuid.uuid4().hex,
                "systemUUID": str(uuid.uuid4()),
            },
        },
    }
    return node


def pod_manifest(
    name: str,
    *,
    namespace: str = "default",
    cpus: float = 1.0,
    memory_mib: int = 512,
    gpus: int = 0,
    runtime_s: float | None = None,
    exit_code: int = 0,
    node_selector: dict[str, str] | None = None,
    tolerations: list[Obj] | None = None,
    affinity: Obj | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    owner_kind: str | None = None,
    priority: int | None = None,
) -> Obj:
    """A pod as a user (or OSCAR's job controller) would submit it."""
    requests = {"cpu": cpu_quantity(cpus), "memory": f"{memory_mib}Mi"}
    limits = {}
    if gpus:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(gpus)
    notes = dict(annotations or {})
    if runtime_s is not None:
        notes[RUNTIME_ANNOTATION] = str(runtime_s)
    if exit_code:
        notes[EXIT_CODE_ANNOTATION] = str(exit_code)
    meta: Obj = {"name": name, "namespace": namespace, "labels": dict(labels or {}), "annotations": notes}
    if owner_kind:
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1" if owner_kind != "Job" else "batch/v1",
                "kind": owner_kind,
                "name": f"{name}-owner",
                "uid": f"uid-{name}-owner",
                "controller": True,
            }
        ]
    spec: Obj = {
        "containers": [
            {
                "name": "main",
                "image": "harness/job:latest",
                "resources": {"requests": requests, **({"limits": limits} if limits else {})},
            }
        ],
        "restartPolicy": "Never",
    }
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if tolerations:
        spec["tolerations"] = copy.deepcopy(tolerations)
    if affinity:
        spec["affinity"] = copy.deepcopy(affinity)
    if priority is not None:
        spec["priority"] = priority
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
