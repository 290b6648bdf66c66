"""DaemonSets as far as the elastic daemon cares: one pod per matching node, owned by a DaemonSet.

Their pods are pinned with ``matchFields metadata.name`` node affinity and carry the tolerations the
DaemonSet controller adds (``unschedulable`` among them), so they land on cordoned nodes too — the
pods a scale-in must not count as user pods.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.harness.kube import scheduling
from tests.harness.kube.objects import Writer
from tests.harness.kube.store import Store

Obj = dict[str, Any]


@dataclass(frozen=True)
class DaemonSet:
    """What each pod of the DaemonSet requests and where it runs."""

    name: str
    namespace: str = "kube-system"
    requests: dict[str, str] = field(default_factory=lambda: {"cpu": "100m", "memory": "64Mi"})
    node_selector: dict[str, str] = field(default_factory=dict)
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))


class DaemonSetController:
    """Creates the missing pod of each DaemonSet on each matching node (pod GC removes the rest)."""

    def __init__(self, writer: Writer, store: Store) -> None:
        self.writer = writer
        self.store = store
        self.daemonsets: dict[tuple[str, str], DaemonSet] = {}

    def add(self, daemonset: DaemonSet) -> None:
        self.daemonsets[(daemonset.namespace, daemonset.name)] = daemonset

    def sync(self, nodes: list[Obj]) -> None:
        for node in nodes:
            node_name = node["metadata"]["name"]
            labels = node["metadata"].get("labels") or {}
            for ds in self.daemonsets.values():
                if any(labels.get(k) != v for k, v in ds.node_selector.items()):
                    continue
                name = f"{ds.name}-{node_name}"[:253]
                if self.store.find("pods", ds.namespace, name) is None:
                    self.writer.create_pod(ds.namespace, daemonset_pod(ds, name, node_name))


def daemonset_pod(ds: DaemonSet, name: str, node: str) -> Obj:
    """The pod the DaemonSet controller creates for ``node``."""
    return {
        "metadata": {
            "name": name,
            "namespace": ds.namespace,
            "labels": {"app": ds.name},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "DaemonSet",
                    "name": ds.name,
                    "uid": ds.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": ds.name,
                    "image": f"harness/{ds.name}:latest",
                    "resources": {"requests": dict(ds.requests)},
                }
            ],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
                        ]
                    }
                }
            },
            "tolerations": list(scheduling.DAEMONSET_TOLERATIONS),
        },
    }
