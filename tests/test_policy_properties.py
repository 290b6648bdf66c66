"""Property-based checks of ``elastic.policy.decide`` (hypothesis): whatever the cluster looks like,
the nodes it asks for hold the pods it meant them for, no limit is exceeded, a pod is promised at
most one node, booting room is used before new nodes, and the answer does not depend on order."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elastic.model import (
    ClusterView,
    Decision,
    GroupNode,
    NodeGroup,
    NodeInfo,
    NodeState,
    PodInfo,
    PolicySettings,
    Taint,
    Toleration,
)
from elastic.policy import decide

NOW = 50_000.0
GPU_TAINT = Taint("gpu", "yes", "NoSchedule")
ARCHES = ("amd64", "arm64")


@st.composite
def groups_st(draw: st.DrawFn) -> list[NodeGroup]:
    out = []
    for i in range(draw(st.integers(1, 3))):
        fleet = draw(st.booleans())
        boards = draw(st.integers(1, 4)) if fleet else 0
        tainted = draw(st.booleans())
        out.append(
            NodeGroup(
                name=f"g{i}",
                cpus=draw(st.sampled_from([1, 2, 4, 8])),
                memory_mib=draw(st.sampled_from([1024, 4096, 16384])),
                gpus=draw(st.sampled_from([0, 0, 1, 2])),
                max_pods=draw(st.sampled_from([3, 110])),
                min=draw(st.integers(0, 1)),
                max=boards if fleet else draw(st.integers(0, 6)),
                priority=draw(st.integers(0, 2)),
                cost_per_hour=draw(st.sampled_from([0.0, 0.1, 0.5])),
                labels={"kubernetes.io/arch": draw(st.sampled_from(ARCHES))},
                taints=(GPU_TAINT,) if tainted else (),
                nodes=tuple(GroupNode(f"g{i}-b{j}") for j in range(boards)),
            )
        )
    return out


@st.composite
def nodes_st(draw: st.DrawFn, groups: list[NodeGroup]) -> list[NodeInfo]:
    out = []
    for g in groups:
        names = [n.name for n in g.nodes] or [f"{g.name}-c{j}" for j in range(draw(st.integers(0, 3)))]
        for name in names:
            if not draw(st.booleans()):
                continue
            state = draw(st.sampled_from(list(NodeState)))
            on = state in (NodeState.IDLE, NodeState.USED)
            out.append(
                NodeInfo(
                    name=name,
                    group=g.name,
                    state=state,
                    state_since=NOW - draw(st.sampled_from([5, 100, 5000])),
                    cpu_m=g.cpu_m,
                    memory_mib=g.memory_mib,
                    gpus=g.gpus,
                    max_pods=g.max_pods,
                    labels={**g.labels, "oscar-deploy/group": g.name},
                    taints=g.taints,
                    registered=on or draw(st.booleans()),
                    ready=on,
                    powered_on_at=NOW - draw(st.sampled_from([10, 200, 900, 5000])),
                    idle_since=NOW - draw(st.sampled_from([10, 1000])) if state is NodeState.IDLE else None,
                )
            )
    return out


@st.composite
def pods_st(draw: st.DrawFn) -> list[PodInfo]:
    out = []
    for i in range(draw(st.integers(0, 25))):
        selector = {"kubernetes.io/arch": draw(st.sampled_from(ARCHES))} if draw(st.booleans()) else {}
        out.append(
            PodInfo(
                key=f"ns/p{i}",
                namespace="ns",
                cpu_m=draw(st.sampled_from([0, 100, 500, 1000, 3000, 9000])),
                memory_mib=draw(st.sampled_from([0, 256, 1024, 3000, 20000])),
                gpus=draw(st.sampled_from([0, 0, 0, 1])),
                node_selector=selector,
                tolerations=(Toleration("gpu", "Exists"),) if draw(st.booleans()) else (),
                created_at=NOW - 100,
                unschedulable_since=NOW - draw(st.sampled_from([1, 50])) if draw(st.booleans()) else None,
            )
        )
    return out


@st.composite
def scenario(draw: st.DrawFn) -> tuple[ClusterView, list[NodeGroup], PolicySettings]:
    groups = draw(groups_st())
    nodes = draw(nodes_st(groups))
    pods = draw(pods_st())
    backoff = {g.name: NOW + 60 for g in groups if draw(st.integers(0, 4)) == 0}
    cfg = PolicySettings(
        extra_free=draw(st.integers(0, 2)),
        max_booting=draw(st.integers(0, 3)),
        max_nodes=draw(st.integers(0, 8)),
    )
    return ClusterView(tuple(nodes), tuple(pods), backoff), groups, cfg


def _holds(group: NodeGroup, pods: list[PodInfo]) -> bool:
    """Independent of the policy's code: do these pods fit one new node of ``group`` together?"""
    labels = {**group.labels, "oscar-deploy/group": group.name, "kubernetes.io/os": "linux"}
    for p in pods:
        if any(labels.get(k) != v for k, v in p.node_selector.items()):
            return False
        if group.taints and not p.tolerations:
            return False
    return (
        sum(p.cpu_m for p in pods) <= group.cpu_m
        and sum(p.memory_mib for p in pods) <= group.memory_mib
        and sum(p.gpus for p in pods) <= group.gpus
        and len(pods) <= group.max_pods
    )


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(scenario())
def test_new_nodes_hold_their_pods_and_respect_every_limit(
    case: tuple[ClusterView, list, PolicySettings],
) -> None:
    view, groups, cfg = case
    d = decide(view, groups, NOW, cfg)
    by_group = {g.name: g for g in groups}
    pods = {p.key: p for p in view.pods}

    promised = [k for p in d.power_on for k in p.pods] + [t.pod for t in d.not_triggered]
    assert len(promised) == len(set(promised)), "a pod promised twice"
    for p in d.power_on:
        assert _holds(by_group[p.group], [pods[k] for k in p.pods]), p
        assert p.group not in view.backoff_until

    on = Counter(p.group for p in d.power_on)
    occupied = Counter(n.group for n in view.nodes if n.state is not NodeState.OFF)
    for name, n in on.items():
        assert occupied[name] + n <= by_group[name].max
    if cfg.max_nodes:
        assert sum(occupied.values()) + len(d.power_on) <= max(cfg.max_nodes, sum(occupied.values()))
    if cfg.max_booting:
        booting = sum(1 for n in view.nodes if n.state is NodeState.POWERING_ON) - sum(
            1 for f in d.failed if f.node in {n.name for n in view.nodes if n.state is NodeState.POWERING_ON}
        )
        assert booting + len(d.power_on) <= max(cfg.max_booting, booting)

    states = {n.name: n.state for n in view.nodes}
    named = [p.node for p in d.power_on if p.node is not None]
    assert len(named) == len(set(named))
    for name in named:
        assert states.get(name, NodeState.OFF) is NodeState.OFF

    users = {p.node_name for p in view.pods if p.node_name and not p.daemonset}
    for off in d.power_off:
        assert states[off.node] in (NodeState.IDLE, NodeState.USED) and off.node not in users
    for f in d.failed:
        assert states[f.node] in (NodeState.POWERING_ON, NodeState.POWERING_OFF)

    with_pods = [p for p in d.power_on if p.pods]
    assert len(with_pods) <= len(view.pods)


@SETTINGS
@given(scenario(), st.randoms(use_true_random=False))
def test_decide_is_deterministic(case: tuple[ClusterView, list, PolicySettings], rng: random.Random) -> None:
    view, groups, cfg = case
    first = decide(view, groups, NOW, cfg)
    nodes, pods = list(view.nodes), list(view.pods)
    rng.shuffle(nodes)
    rng.shuffle(pods)
    assert decide(ClusterView(tuple(nodes), tuple(pods), view.backoff_until), groups, NOW, cfg) == first


@SETTINGS
@given(pods_st(), st.sampled_from(ARCHES))
def test_no_power_on_when_booting_nodes_take_every_pod(pods: list[PodInfo], arch: str) -> None:
    big = NodeGroup("big", cpus=64, memory_mib=262144, gpus=4, max=100, labels={"kubernetes.io/arch": arch})
    demand = [p for p in pods if not p.node_selector or p.node_selector["kubernetes.io/arch"] == arch]
    booting = tuple(
        NodeInfo(
            f"big-{i}", "big", NodeState.POWERING_ON, NOW - 30, 0, 0, registered=False, powered_on_at=NOW - 30
        )
        for i in range(len(demand))
    )
    d = decide(ClusterView(booting, tuple(demand)), [big], NOW, PolicySettings())
    assert d.power_on == ()
    assert d.not_triggered == ()


def test_every_pod_in_a_large_burst_is_either_placed_or_explained() -> None:
    rng = random.Random(3)
    groups = [
        NodeGroup("a", cpus=4, memory_mib=8192, max=30, priority=1),
        NodeGroup("b", cpus=8, memory_mib=8192, max=5),
    ]
    pods = [
        PodInfo(
            f"ns/p{i}",
            "ns",
            rng.choice([250, 500, 1500]),
            rng.choice([256, 1024, 3000]),
            unschedulable_since=NOW - 1,
        )
        for i in range(400)
    ]
    d: Decision = decide(ClusterView((), tuple(pods)), groups, NOW, PolicySettings())
    placed = sum(len(p.pods) for p in d.power_on)
    assert placed + len(d.not_triggered) == 400
    assert Counter(p.group for p in d.power_on) == {"a": 30, "b": 5}
    assert all("at its max" in t.reason for t in d.not_triggered)


_SCRIPT = """
import random
from elastic.model import *
from elastic.policy import decide
rng = random.Random(5)
arm = {"kubernetes.io/arch": "arm64"}
boards = tuple(GroupNode(f"b{i}") for i in range(6))
groups = [NodeGroup("edge", cpus=4, memory_mib=4096, max=6, priority=9, labels=arm, nodes=boards),
          NodeGroup("a", cpus=4, memory_mib=16384, max=40, cost_per_hour=0.2),
          NodeGroup("b", cpus=8, memory_mib=8192, max=40, cost_per_hour=0.2, taints=(Taint("t", "1"),))]
states = [NodeState.IDLE, NodeState.USED, NodeState.POWERING_ON]
nodes = [NodeInfo(f"n{i}", rng.choice("ab"), rng.choice(states), 1.0, 4000, 8192, ready=True,
                  idle_since=0.0, powered_on_at=0.0) for i in range(30)]
tol = (Toleration("t", "Exists"),)
pods = [PodInfo(f"ns/p{i}", "ns", rng.choice([100, 900, 2500]), rng.choice([100, 3000]),
                unschedulable_since=1.0, tolerations=tol if rng.random() < 0.3 else (),
                node_selector=arm if rng.random() < 0.2 else {}) for i in range(300)]
print(repr(decide(ClusterView(tuple(nodes), tuple(pods)), groups, 1000.0, PolicySettings(extra_free=1))))
"""


def test_decision_does_not_depend_on_hash_seed() -> None:
    """The simulator's results must be reproducible run to run: no set or dict order may leak out."""
    import os
    import subprocess
    import sys

    outs = {
        subprocess.run(
            [sys.executable, "-c", _SCRIPT],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outs) == 1 and "PowerOn" in next(iter(outs))
