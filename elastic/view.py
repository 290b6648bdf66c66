"""Kubernetes API objects (plain JSON dicts, as the watch delivers them) → the policy's model.

Pure functions: the daemon hands in the cached objects and its lifecycle records, and gets the
``PodInfo`` / node facts that ``elastic.policy.decide`` reads. Working on dicts instead of the
client's generated classes keeps a watch event cheap (no model deserialisation per event).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from elastic.model import Condition, PodInfo, ProvisioningRequestInfo, Taint
from provisioner.podrules import (
    affinity_terms_of,
    protecting_annotation,
    taints_of,
    tolerations_of,
)

# re-exported: the daemon reads pods through this module
from provisioner.podrules import is_daemonset as is_daemonset
from provisioner.podrules import is_mirror as is_mirror

Obj = Mapping[str, Any]

GPU_RESOURCE = "nvidia.com/gpu"
_SUFFIXES = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}


def quantity(text: Any) -> Decimal:
    """A Kubernetes quantity (``500m``, ``2Gi``, ``1e3``) as a Decimal; garbage counts as 0."""
    raw = str(text).strip()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if raw.endswith(suffix) and raw[: -len(suffix)]:
            try:
                return Decimal(raw[: -len(suffix)]) * Decimal(_SUFFIXES[suffix])
            except InvalidOperation:
                return Decimal(0)
    try:
        return Decimal(raw)
    except InvalidOperation:
        return Decimal(0)


def cpu_m(text: Any) -> int:
    return math.ceil(quantity(text) * 1000)


def memory_mib(text: Any) -> int:
    return math.ceil(quantity(text) / 2**20)


def parse_time(text: str | None) -> float | None:
    """RFC 3339 (``2026-01-01T10:00:00Z``, fractions allowed) → epoch seconds."""
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _requests(containers: Iterable[Obj]) -> tuple[int, int, int]:
    cpu = mem = gpu = 0
    for container in containers:
        resources = container.get("resources") or {}
        req = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        cpu += cpu_m(req.get("cpu", 0))
        mem += memory_mib(req.get("memory", 0))
        gpu += int(quantity(req.get(GPU_RESOURCE, 0)))
    return cpu, mem, gpu


def pod_requests(spec: Obj) -> tuple[int, int, int]:
    """What the scheduler reserves: the sum over containers, or the largest init container if more."""
    cpu, mem, gpu = _requests(spec.get("containers") or [])
    for init in spec.get("initContainers") or []:
        icpu, imem, igpu = _requests([init])
        cpu, mem, gpu = max(cpu, icpu), max(mem, imem), max(gpu, igpu)
    return cpu, mem, gpu


def unschedulable_condition(pod: Obj) -> Obj | None:
    """The PodScheduled=False/Unschedulable condition, if the scheduler has given that verdict."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            return condition
    return None


SERVICE_LABEL = "oscar_service"
"""OSCAR labels every job of a service with it (``ServiceLabel`` in grycap/oscar ``pkg/types/service.go``)."""


def owner_of(meta: Obj, cpu: int, memory: int) -> str:
    """What makes pods alike in run time: their OSCAR service within the namespace, else their
    requests (jobs of one OSCAR service ask for the same resources)."""
    service = (meta.get("labels") or {}).get(SERVICE_LABEL)
    return f"{meta['namespace']}/{service}" if service else f"{meta['namespace']}/{cpu}m/{memory}Mi"


def pod_info(pod: Obj, unschedulable_seen_at: float | None = None) -> PodInfo:
    """A pod as the policy sees it. ``unschedulable_seen_at`` (when this process first saw the
    Unschedulable verdict) is sharper than the condition's whole-second timestamp and wins if given."""
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    cpu, mem, gpu = pod_requests(spec)
    condition = unschedulable_condition(pod)
    since = None
    if condition is not None:
        since = unschedulable_seen_at or parse_time(condition.get("lastTransitionTime")) or 0.0
    return PodInfo(
        key=f"{meta['namespace']}/{meta['name']}",
        namespace=meta["namespace"],
        cpu_m=cpu,
        memory_mib=mem,
        gpus=gpu,
        node_selector=dict(spec.get("nodeSelector") or {}),
        affinity_terms=affinity_terms_of(spec),
        tolerations=tolerations_of(spec),
        node_name=spec.get("nodeName") or None,
        phase=status.get("phase") or "Pending",
        created_at=parse_time(meta.get("creationTimestamp")) or 0.0,
        unschedulable_since=since,
        daemonset=is_daemonset(pod),
        mirror=is_mirror(pod),
        evictable=protecting_annotation(pod) is None,
        owner=owner_of(meta, cpu, mem),
        started_at=parse_time(status.get("startTime")),
    )


# ---- nodes ------------------------------------------------------------------------------------------


def node_ready(node: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (node.get("status") or {}).get("conditions") or []
    )


def node_taints(node: Obj) -> tuple[Taint, ...]:
    return taints_of(node)


def node_resources(node: Obj) -> tuple[int, int, int, int]:
    """Allocatable (cpu_m, memory_mib, gpus, pods)."""
    alloc = (node.get("status") or {}).get("allocatable") or {}
    return (
        cpu_m(alloc.get("cpu", 0)),
        memory_mib(alloc.get("memory", 0)),
        int(quantity(alloc.get(GPU_RESOURCE, 0))),
        int(quantity(alloc.get("pods", 110))) or 110,
    )


def node_address(node: Obj) -> str | None:
    for address in (node.get("status") or {}).get("addresses") or []:
        if address.get("type") == "InternalIP":
            return str(address.get("address"))
    return None


# ---- ProvisioningRequests ---------------------------------------------------------------------------

CONSUME_ANNOTATION = "autoscaling.x-k8s.io/consume-provisioning-request"
"""What Kueue puts on the pods of a workload admitted through a ProvisioningRequest
(``ProvisioningRequestPodAnnotationKey`` in kubernetes/autoscaler ``apis/provisioningrequest/
autoscaling.x-k8s.io/v1/types.go``, tag cluster-autoscaler-1.36.1; kueue v0.19.2 ``podSetUpdates``)."""
CONSUME_ANNOTATION_OLD = "cluster-autoscaler.kubernetes.io/consume-provisioning-request"
"""The deprecated key (``provisioningrequest/pods/pods.go``), still read by the autoscaler."""


def consumed_request(pod: Obj) -> str | None:
    """``namespace/name`` of the ProvisioningRequest this pod consumes, if any."""
    meta = pod["metadata"]
    annotations = meta.get("annotations") or {}
    name = annotations.get(CONSUME_ANNOTATION) or annotations.get(CONSUME_ANNOTATION_OLD)
    return f"{meta['namespace']}/{name}" if name else None


def provisioning_request_info(pr: Obj, templates: Mapping[str, Obj], consumed: Mapping[str, int]
                              ) -> ProvisioningRequestInfo:
    """A ProvisioningRequest → the policy's view: one ``PodInfo`` per pod its podSets ask for, built
    from the referenced PodTemplate as the autoscaler's ``PodsForProvisioningRequest`` does (pod
    ``i-j`` of podSet ``i``). ``templates`` is keyed ``namespace/name``; ``consumed`` counts the
    pods naming each request."""
    meta, spec = pr["metadata"], pr.get("spec") or {}
    namespace = meta["namespace"]
    key = f"{namespace}/{meta['name']}"
    created = parse_time(meta.get("creationTimestamp")) or 0.0
    pods: list[PodInfo] = []
    invalid = ""
    for i, podset in enumerate(spec.get("podSets") or []):
        ref = (podset.get("podTemplateRef") or {}).get("name") or ""
        template = templates.get(f"{namespace}/{ref}")
        if template is None:
            invalid = f"PodTemplate {namespace}/{ref} of podSet {i} not found"
            pods = []
            break
        body = template.get("template") or {}
        tmeta = body.get("metadata") or {}
        for j in range(int(podset.get("count") or 0)):
            pod = {"metadata": {**tmeta, "namespace": namespace, "name": f"{meta['name']}#{i}-{j}",
                                "creationTimestamp": meta.get("creationTimestamp")},
                   "spec": body.get("spec") or {}, "status": {"phase": "Pending"}}
            pods.append(pod_info(pod))
    conditions = {}
    for c in (pr.get("status") or {}).get("conditions") or []:
        conditions[c.get("type", "")] = Condition(
            c.get("type", ""), c.get("status") == "True", c.get("reason") or "", c.get("message") or "",
            parse_time(c.get("lastTransitionTime")) or 0.0)
    return ProvisioningRequestInfo(
        key=key, namespace=namespace, class_name=spec.get("provisioningClassName") or "",
        created_at=created, pods=tuple(pods), conditions=conditions, consumed=consumed.get(key, 0),
        no_retry=(spec.get("parameters") or {}).get("noRetry") == "true", invalid=invalid)
