"""Which pods are demand, and what the running pods already use on each node: one pass over the pods.

Demand is a pod that is Pending, bound to no node, and either marked Unschedulable by the scheduler
or left without a node longer than ``pending_grace_s`` (a scheduler that is slow or down). DaemonSet
and mirror pods never are (a DaemonSet pod follows its node; a mirror pod is the kubelet's), nor are
pods of the system namespaces. Finished pods use nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from elastic.model import PodInfo, PolicySettings
from provisioner.podrules import FINISHED, user_work


@dataclasses.dataclass(slots=True)
class PodIndex:
    used: dict[str, list[int]]
    """Per node name: [cpu_m, memory_mib, gpus, pods] requested by its unfinished bound pods."""
    user_pods: dict[str, int]
    """Per node name: how many of those are user pods (``provisioner.podrules.user_work``)."""
    demand: list[PodInfo]
    """Pending pods that should make the cluster grow, sorted by key."""


def index_pods(pods: Iterable[PodInfo], now: float, settings: PolicySettings) -> PodIndex:
    used: dict[str, list[int]] = {}
    user: dict[str, int] = {}
    demand: list[PodInfo] = []
    system = settings.system_namespaces
    grace_before = now - settings.pending_grace_s
    for pod in pods:
        node = pod.node_name
        if node is not None:
            if pod.phase in FINISHED:
                continue
            u = used.get(node)
            if u is None:
                used[node] = [pod.cpu_m, pod.memory_mib, pod.gpus, 1]
            else:
                u[0] += pod.cpu_m
                u[1] += pod.memory_mib
                u[2] += pod.gpus
                u[3] += 1
            if user_work(True, pod.phase, pod.daemonset, pod.mirror):
                user[node] = user.get(node, 0) + 1
        elif (
            pod.phase == "Pending"
            and not pod.daemonset
            and not pod.mirror
            and pod.namespace not in system
            and (pod.unschedulable_since is not None or pod.created_at <= grace_before)
        ):
            demand.append(pod)
    demand.sort(key=lambda p: p.key)
    return PodIndex(used, user, demand)
