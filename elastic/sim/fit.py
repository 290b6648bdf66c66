"""Which pods the simulated scheduler may put on which nodes: nodeSelector, required node affinity
and taints, by the very rules the policy uses (``provisioner.podrules``). Shared by the simulated
scheduler and the baseline policies."""

from __future__ import annotations

from collections.abc import Mapping

from elastic.model import PodInfo, Taint
from provisioner import podrules


def placeable(pod: PodInfo, labels: Mapping[str, str], taints: tuple[Taint, ...]) -> bool:
    """True if the scheduler's filters (not resources) allow ``pod`` on a node with these labels/taints."""
    return podrules.placeable(pod.node_selector, pod.affinity_terms, pod.tolerations, labels, taints)
