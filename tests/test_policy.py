"""Hand-made cases for ``elastic.policy.decide``: one rule each, checked the way an operator would
read the decision (which group, which board, how many nodes, why a pod got nothing)."""

from __future__ import annotations

import random

from elastic.model import (
    ClusterView,
    Decision,
    GroupNode,
    MatchExpression,
    NodeGroup,
    NodeInfo,
    NodeState,
    PodInfo,
    PolicySettings,
    RunHistory,
    Taint,
    Toleration,
)
from elastic.policy import decide

NOW = 10_000.0
S = PolicySettings()


def pending(name: str, cpu_m: int = 500, memory_mib: int = 512, **kw: object) -> PodInfo:
    """A pod the scheduler marked Unschedulable a while ago."""
    kw.setdefault("unschedulable_since", NOW - 5)
    kw.setdefault("created_at", NOW - 10)
    ns = str(kw.pop("namespace", "default"))
    return PodInfo(key=f"{ns}/{name}", namespace=ns, cpu_m=cpu_m, memory_mib=memory_mib, **kw)  # type: ignore[arg-type]


def running(name: str, node: str, cpu_m: int = 500, memory_mib: int = 512, **kw: object) -> PodInfo:
    return PodInfo(
        key=f"default/{name}",
        namespace="default",
        cpu_m=cpu_m,
        memory_mib=memory_mib,
        node_name=node,
        phase="Running",
        **kw,
    )  # type: ignore[arg-type]


def cloud(name: str = "cloud", cpus: float = 2, memory_mib: int = 4096, **kw: object) -> NodeGroup:
    kw.setdefault("max", 10)
    return NodeGroup(name=name, cpus=cpus, memory_mib=memory_mib, **kw)  # type: ignore[arg-type]


def edge(name: str = "edge", boards: int = 2, **kw: object) -> NodeGroup:
    kw.setdefault("max", boards)
    kw.setdefault("priority", 10)
    return NodeGroup(
        name=name, cpus=4, memory_mib=4096, nodes=tuple(GroupNode(f"{name}-{i}") for i in range(boards)), **kw
    )  # type: ignore[arg-type]


def node(
    name: str,
    group: str,
    state: NodeState = NodeState.IDLE,
    cpu_m: int = 2000,
    memory_mib: int = 4096,
    **kw: object,
) -> NodeInfo:
    if state in (NodeState.IDLE, NodeState.USED):
        kw.setdefault("ready", True)
    kw.setdefault("state_since", NOW - 3600)
    return NodeInfo(name=name, group=group, state=state, cpu_m=cpu_m, memory_mib=memory_mib, **kw)  # type: ignore[arg-type]


def run(
    nodes: list[NodeInfo],
    pods: list[PodInfo],
    groups: list[NodeGroup],
    settings: PolicySettings = S,
    backoff: dict[str, float] | None = None,
) -> Decision:
    return decide(ClusterView(tuple(nodes), tuple(pods), backoff or {}), groups, NOW, settings)


def new_per_group(d: Decision) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in d.power_on:
        out[p.group] = out.get(p.group, 0) + 1
    return out


def reasons(d: Decision) -> dict[str, str]:
    return {t.pod: t.reason for t in d.not_triggered}


# --- demand -----------------------------------------------------------------------------------------


def test_only_real_demand_scales_up() -> None:
    pods = [
        pending("ds", daemonset=True),
        pending("mirror", mirror=True),
        pending("sys", namespace="kube-system"),
        PodInfo("default/fresh", "default", 500, 512, created_at=NOW - 5),  # scheduler has not judged it yet
        PodInfo("default/done", "default", 500, 512, phase="Succeeded", unschedulable_since=NOW - 5),
    ]
    assert run([], pods, [cloud()]).power_on == ()


def test_pending_past_grace_without_verdict_is_demand() -> None:
    d = run([], [PodInfo("default/slow", "default", 500, 512, created_at=NOW - 31)], [cloud()])
    assert [p.pods for p in d.power_on] == [("default/slow",)]


# --- constraints ------------------------------------------------------------------------------------


def test_node_selector_picks_the_matching_group() -> None:
    groups = [
        cloud("amd", labels={"kubernetes.io/arch": "amd64"}, priority=5),
        cloud("arm", labels={"kubernetes.io/arch": "arm64"}),
    ]
    d = run([], [pending("a", node_selector={"kubernetes.io/arch": "arm64"})], groups)
    assert new_per_group(d) == {"arm": 1}


def test_group_label_is_derived_for_selectors() -> None:
    groups = [cloud("a", priority=5), cloud("b")]
    d = run(
        [], [pending("p", node_selector={"oscar-deploy/group": "b", "kubernetes.io/os": "linux"})], groups
    )
    assert new_per_group(d) == {"b": 1}


def test_required_node_affinity_any_term() -> None:
    groups = [
        cloud("amd", labels={"kubernetes.io/arch": "amd64", "zone": "z1"}, priority=5),
        cloud("arm", labels={"kubernetes.io/arch": "arm64", "zone": "z2"}),
    ]
    not_amd = ((MatchExpression("kubernetes.io/arch", "NotIn", ("amd64",)),),)
    d = run([], [pending("p", affinity_terms=not_amd)], groups)
    assert new_per_group(d) == {"arm": 1}
    either = ((MatchExpression("zone", "In", ("z9",)),), (MatchExpression("zone", "Exists"),))
    assert new_per_group(run([], [pending("q", affinity_terms=either)], groups)) == {"amd": 1}


def test_taints_need_tolerations() -> None:
    gpu = cloud("gpu", gpus=1, priority=10, taints=(Taint("nvidia.com/gpu", "present", "NoSchedule"),))
    plain = cloud("plain")
    assert new_per_group(run([], [pending("p")], [gpu, plain])) == {"plain": 1}
    tol = (Toleration("nvidia.com/gpu", "Exists"),)
    assert new_per_group(run([], [pending("p", tolerations=tol)], [gpu, plain])) == {"gpu": 1}


def test_gpu_pods_only_on_gpu_nodes_and_packed_by_gpu_count() -> None:
    gpu = cloud("gpu", cpus=16, memory_mib=65536, gpus=2, priority=0)
    plain = cloud("plain", cpus=16, memory_mib=65536, priority=10)
    pods = [pending(f"g{i}", gpus=1) for i in range(4)] + [pending("cpu")]
    d = run([], pods, [gpu, plain])
    assert new_per_group(d) == {"gpu": 2, "plain": 1}


def test_pod_count_limits_a_node() -> None:
    d = run([], [pending(f"t{i}", cpu_m=10, memory_mib=10) for i in range(7)], [cloud(max_pods=3)])
    assert sorted(len(p.pods) for p in d.power_on) == [1, 3, 3]


def test_pod_too_big_for_every_group_is_reported() -> None:
    d = run([], [pending("huge", cpu_m=64_000)], [cloud()])
    assert d.power_on == ()
    assert "no node group fits" in reasons(d)["default/huge"]


# --- groups: priority, waste, limits ---------------------------------------------------------------


def test_higher_priority_first_then_overflow_to_next_group() -> None:
    pods = [pending(f"p{i}", cpu_m=1000, memory_mib=1024) for i in range(12)]
    d = run([node("edge-0", "edge", NodeState.OFF, registered=False)], pods, [edge(), cloud()])
    assert new_per_group(d) == {"edge": 2, "cloud": 2}
    assert sorted(p.node for p in d.power_on if p.group == "edge") == ["edge-0", "edge-1"]
    assert all(p.node is None for p in d.power_on if p.group == "cloud")


def test_least_waste_among_equal_priority() -> None:
    cpu_box = cloud("cpu-box", cpus=4, memory_mib=2048)
    mem_box = cloud("mem-box", cpus=1, memory_mib=16384)
    d = run([], [pending(f"m{i}", cpu_m=200, memory_mib=3000) for i in range(4)], [cpu_box, mem_box])
    assert new_per_group(d) == {"mem-box": 1}


def test_fleet_powers_on_only_off_boards() -> None:
    nodes = [
        node("edge-0", "edge", NodeState.FAILED),
        node("edge-1", "edge", NodeState.DISABLED),
        node("edge-2", "edge", NodeState.USED),
        node("edge-3", "edge", NodeState.OFF, registered=False),
    ]
    pods = [pending(f"p{i}", cpu_m=3000) for i in range(3)]
    d = run(nodes, pods, [edge(boards=5, max=5)])
    # edge-4 is not in the view at all: a board never seen is taken to be off
    assert [p.node for p in d.power_on] == ["edge-3", "edge-4"]
    assert len(d.not_triggered) == 1 and "at its max (5)" in d.not_triggered[0].reason


def test_group_max_counts_failed_nodes_and_reports_the_rest() -> None:
    nodes = [node("c1", "cloud", NodeState.FAILED)]
    pods = [pending(f"p{i}", cpu_m=1500) for i in range(3)]
    d = run(nodes, pods, [cloud(max=2)])
    assert new_per_group(d) == {"cloud": 1}
    assert len(d.not_triggered) == 2
    assert all("at its max (2)" in t.reason for t in d.not_triggered)


def test_cluster_max_nodes() -> None:
    nodes = [node("c1", "cloud", NodeState.USED)]
    pods = [pending(f"p{i}", cpu_m=1500) for i in range(3)]
    d = run(nodes, pods, [cloud()], PolicySettings(max_nodes=2))
    assert len(d.power_on) == 1
    assert all("max_nodes (2)" in t.reason for t in d.not_triggered)


def test_max_booting() -> None:
    nodes = [
        node(
            "c1",
            "cloud",
            NodeState.POWERING_ON,
            registered=False,
            powered_on_at=NOW - 10,
            state_since=NOW - 10,
            cpu_m=2000,
        )
    ]
    pods = [pending(f"p{i}", cpu_m=1500) for i in range(4)]  # one fits the booting node
    d = run(nodes, pods, [cloud()], PolicySettings(max_booting=3))
    assert len(d.power_on) == 2
    assert len(d.not_triggered) == 1 and "max_booting (3)" in d.not_triggered[0].reason


def test_backoff_sends_pods_to_next_group() -> None:
    pods = [pending("p", cpu_m=1000)]
    d = run([], pods, [edge(), cloud()], backoff={"edge": NOW + 60})
    assert new_per_group(d) == {"cloud": 1}
    d = run([], pods, [edge()], backoff={"edge": NOW + 60})
    assert d.power_on == () and "backing off" in reasons(d)["default/p"]
    assert new_per_group(run([], pods, [edge(), cloud()], backoff={"edge": NOW - 1})) == {"edge": 1}


# --- capacity already there ------------------------------------------------------------------------


def test_booting_capacity_is_counted_first() -> None:
    booting = node(
        "c1", "cloud", NodeState.POWERING_ON, registered=False, powered_on_at=NOW - 20, state_since=NOW - 20
    )
    pods = [pending(f"p{i}", cpu_m=1000, memory_mib=1024) for i in range(2)]
    assert run([booting], pods, [cloud()]).power_on == ()
    # a third pod does not fit the booting node: exactly one more node, for that pod only
    d = run([booting], [*pods, pending("p2", cpu_m=1000, memory_mib=1024)], [cloud()])
    assert [len(p.pods) for p in d.power_on] == [1]


def test_booting_capacity_respects_selectors() -> None:
    booting = node(
        "e1",
        "edge",
        NodeState.POWERING_ON,
        registered=False,
        powered_on_at=NOW - 20,
        state_since=NOW - 20,
        cpu_m=4000,
    )
    groups = [edge(labels={"kubernetes.io/arch": "arm64"}), cloud(labels={"kubernetes.io/arch": "amd64"})]
    d = run([booting], [pending("p", node_selector={"kubernetes.io/arch": "amd64"})], groups)
    assert new_per_group(d) == {"cloud": 1}


def test_ready_room_serves_unjudged_pods_but_not_unschedulable_ones() -> None:
    ready = node("c1", "cloud", NodeState.IDLE)
    unjudged = PodInfo("default/u", "default", 500, 512, created_at=NOW - 60)
    assert run([ready], [unjudged], [cloud()]).power_on == ()
    assert len(run([ready], [pending("v")], [cloud()]).power_on) == 1
    # ... unless the node became Ready after the verdict (a booting node that just joined)
    just_ready = node("c1", "cloud", NodeState.IDLE, state_since=NOW - 1)
    assert run([just_ready], [pending("v", unschedulable_since=NOW - 5)], [cloud()]).power_on == ()


# --- extra_free, min --------------------------------------------------------------------------------


def test_extra_free_spares_are_kept_on() -> None:
    d = run([], [], [cloud()], PolicySettings(extra_free=2))
    assert new_per_group(d) == {"cloud": 2}
    idle = node("c1", "cloud", idle_since=NOW - 3600, powered_on_at=NOW - 7200)
    d = run([idle], [], [cloud()], PolicySettings(extra_free=1))
    assert d.power_on == () and d.power_off == ()


def test_min_is_reached_and_kept() -> None:
    d = run([], [pending("p")], [cloud(min=2)])
    assert new_per_group(d) == {"cloud": 2}
    assert sum(len(p.pods) for p in d.power_on) == 1  # the pending pod rides on a min node
    idle = [node(f"c{i}", "cloud", idle_since=NOW - 3600, powered_on_at=NOW - 7200) for i in range(3)]
    d = run(idle, [], [cloud(min=2)])
    assert [o.node for o in d.power_off] == ["c0"]


# --- scale in ---------------------------------------------------------------------------------------


def busy(arrivals: int, within_s: float = 50.0) -> RunHistory:
    """A history of ``arrivals`` pods created in the last ``within_s`` seconds."""
    return RunHistory(arrivals=tuple(NOW - within_s + within_s * i / arrivals for i in range(arrivals)))


def test_idle_nodes_power_off_after_idle_time_and_cooldown() -> None:
    """While pods keep arriving (ten within the last boot time, more than these nodes would take),
    an idle node stays for idle_time_s, and none goes within cooldown_s of its power-on."""
    long_idle = node("a", "cloud", idle_since=NOW - S.idle_time_s - 1, powered_on_at=NOW - 3600)
    short_idle = node("b", "cloud", idle_since=NOW - S.idle_time_s + 5, powered_on_at=NOW - 3600)
    fresh = node("c", "cloud", idle_since=NOW - 3600, powered_on_at=NOW - S.cooldown_s + 5)
    view = ClusterView((long_idle, short_idle, fresh), (), history=busy(10))
    assert [o.node for o in decide(view, [cloud()], NOW, S).power_off] == ["a"]


def test_idle_nodes_not_needed_within_a_boot_go_at_once() -> None:
    """No arrival within the last boot time: waiting idle_time_s would only buy node-time, so both
    idle nodes go now (the one in its cooldown still stays). Two arrivals of 1 CPU within the last
    boot: they would fill one 2-CPU node, so the most recently idle node stays for them."""
    a = node("a", "cloud", idle_since=NOW - 10, powered_on_at=NOW - 3600)
    b = node("b", "cloud", idle_since=NOW - 5, powered_on_at=NOW - 3600)
    fresh = node("c", "cloud", idle_since=NOW - 1, powered_on_at=NOW - S.cooldown_s + 5)
    quiet = decide(ClusterView((a, b, fresh), (), history=busy(2, within_s=600)), [cloud()], NOW, S)
    assert sorted(o.node for o in quiet.power_off) == ["a", "b"]
    assert all("not needed again within a boot" in o.reason for o in quiet.power_off)
    some = decide(ClusterView((a, b), (), history=busy(2)), [cloud()], NOW, S)
    assert [o.node for o in some.power_off] == ["a"]


def test_daemonset_only_node_is_idle_but_user_pod_keeps_it() -> None:
    n = node("a", "cloud", idle_since=NOW - 3600, powered_on_at=NOW - 7200)
    ds = [running("ds", "a", daemonset=True), running("mirror", "a", mirror=True)]
    assert [o.node for o in run([n], ds, [cloud()]).power_off] == ["a"]
    assert run([n], [*ds, running("user", "a")], [cloud()]).power_off == ()


def test_scale_in_order_low_priority_then_expensive() -> None:
    nodes = [
        node("e", "edge", idle_since=NOW - 3600),
        node("cheap", "cheap", idle_since=NOW - 3600),
        node("dear", "dear", idle_since=NOW - 3600),
    ]
    groups = [edge(boards=1), cloud("cheap", cost_per_hour=0.1), cloud("dear", cost_per_hour=0.9)]
    d = run(nodes, [], groups, PolicySettings(extra_free=1))
    assert [o.node for o in d.power_off] == ["dear", "cheap"]


def test_disabled_and_failed_nodes_are_never_touched() -> None:
    nodes = [
        node(
            "d",
            "cloud",
            NodeState.DISABLED,
            idle_since=NOW - 9999,
            ready=True,
            state_since=NOW - 9999,
            powered_on_at=NOW - 9999,
        ),
        node("f", "cloud", NodeState.FAILED, idle_since=NOW - 9999, state_since=NOW - 9999),
    ]
    d = run(nodes, [pending("p", cpu_m=100)], [cloud()])
    assert d.power_off == () and d.failed == ()
    assert len(d.power_on) == 1  # neither offers room


def test_node_taking_pending_pods_is_not_powered_off() -> None:
    n = node("a", "cloud", idle_since=NOW - 3600, powered_on_at=NOW - 7200)
    unjudged = PodInfo("default/u", "default", 500, 512, created_at=NOW - 60)
    d = run([n], [unjudged], [cloud()])
    assert d.power_off == () and d.power_on == ()


# --- lifecycle timers -------------------------------------------------------------------------------


def test_power_on_timeout_marks_failed_and_pods_go_elsewhere() -> None:
    stuck = node(
        "e-0",
        "edge",
        NodeState.POWERING_ON,
        registered=False,
        powered_on_at=NOW - S.max_wait_poweron_s - 1,
        state_since=NOW - S.max_wait_poweron_s - 1,
        cpu_m=4000,
    )
    d = run([stuck], [pending("p", cpu_m=1000)], [edge(boards=2), cloud()])
    assert [(f.node, f.group) for f in d.failed] == [("e-0", "edge")]
    assert new_per_group(d) == {"cloud": 1}
    ok = node(
        "e-0",
        "edge",
        NodeState.POWERING_ON,
        registered=False,
        powered_on_at=NOW - 10,
        state_since=NOW - 10,
        cpu_m=4000,
    )
    assert run([ok], [pending("p", cpu_m=1000)], [edge(), cloud()]).failed == ()


def test_power_off_timeout_marks_failed() -> None:
    slow = node("c", "cloud", NodeState.POWERING_OFF, state_since=NOW - S.max_wait_poweroff_s - 1)
    fine = node("d", "cloud", NodeState.POWERING_OFF, state_since=NOW - 10)
    assert [f.node for f in run([slow, fine], [], [cloud()]).failed] == ["c"]


# --- determinism ------------------------------------------------------------------------------------


def test_same_inputs_same_decision_whatever_the_order() -> None:
    pods = [pending(f"p{i}", cpu_m=100 * (i % 7 + 1), memory_mib=300 * (i % 5 + 1)) for i in range(60)]
    nodes = [node(f"e-{i}", "edge", NodeState.OFF, registered=False) for i in range(3)]
    groups = [edge(boards=3), cloud(), cloud("other", cpus=4, memory_mib=8192)]
    first = run(nodes, pods, groups)
    rng = random.Random(7)
    for _ in range(3):
        rng.shuffle(pods)
        rng.shuffle(nodes)
        assert run(nodes, pods, groups) == first


# --- pods pinned to a board, per-node labels ------------------------------------------------------


def test_pod_pinned_by_hostname_powers_on_that_board() -> None:
    nodes = [node(f"edge-{i}", "edge", NodeState.OFF, registered=False) for i in range(3)]
    pinned = pending("cam", node_selector={"kubernetes.io/hostname": "edge-2"})
    d = run(nodes, [pinned, pending("any")], [edge(boards=3)])
    assert [(p.node, p.pods) for p in d.power_on] == [("edge-2", ("default/any", "default/cam"))]
    # the board is not off: no other board will do, and the reason says why
    busy = [*nodes[:2], node("edge-2", "edge", NodeState.DISABLED)]
    d = run(busy, [pinned], [edge(boards=3), cloud()])
    assert d.power_on == ()
    assert reasons(d)["default/cam"] == "the node of group edge it names is not off (on, failed or disabled)"
    d = run(nodes, [pending("x", node_selector={"kubernetes.io/hostname": "nowhere"})], [edge(boards=3)])
    assert "no node group fits" in reasons(d)["default/x"]


def test_pinned_pod_rides_a_booting_board() -> None:
    booting = node(
        "edge-1",
        "edge",
        NodeState.POWERING_ON,
        registered=False,
        powered_on_at=NOW - 5,
        state_since=NOW - 5,
        cpu_m=4000,
    )
    d = run([booting], [pending("cam", node_selector={"kubernetes.io/hostname": "edge-1"})], [edge(boards=2)])
    assert d.power_on == () and d.not_triggered == ()


def test_per_node_labels_do_not_hide_room() -> None:
    ready = [
        node(
            f"c{i}",
            "cloud",
            NodeState.USED,
            labels={"kubernetes.io/hostname": f"c{i}", "k3s.io/internal-ip": f"10.0.0.{i}"},
        )
        for i in range(3)
    ]
    pods = [running(f"r{i}", f"c{i}", cpu_m=1500) for i in range(3)]
    unjudged = [PodInfo(f"default/u{i}", "default", 500, 512, created_at=NOW - 60) for i in range(3)]
    assert run(ready, pods + unjudged, [cloud()]).power_on == ()
    d = run(
        ready, [*pods, *unjudged, PodInfo("default/u3", "default", 500, 512, created_at=NOW - 60)], [cloud()]
    )
    assert [p.pods for p in d.power_on] == [("default/u3",)]


def test_cordoned_idle_node_is_not_a_spare() -> None:
    nodes = [
        node("a", "cloud", idle_since=NOW - 3600, powered_on_at=NOW - 7200),
        node("b", "cloud", idle_since=NOW - 3600, powered_on_at=NOW - 7200, cordoned=True),
    ]
    d = run(nodes, [], [cloud()], PolicySettings(extra_free=1))
    assert [o.node for o in d.power_off] == ["b"] and d.power_on == ()


def test_fleet_min_powers_on_named_boards() -> None:
    d = run([node("edge-0", "edge", NodeState.FAILED)], [], [edge(boards=3, min=2)])
    assert [(p.node, p.reason) for p in d.power_on] == [
        ("edge-1", "group edge below its min (2)"),
        ("edge-2", "group edge below its min (2)"),
    ]


def test_the_unschedulable_taint_of_a_board_just_uncordoned_does_not_hide_its_room() -> None:
    """The node lifecycle controller taints a cordoned node ``node.kubernetes.io/unschedulable`` and
    removes the taint only on its next pass after the uncordon: a board the daemon just powered on
    (and uncordoned) still carries it, and its room must count, or a second board powers on."""
    cordon_taint = Taint("node.kubernetes.io/unschedulable", "", "NoSchedule")
    booting = node("edge-0", "edge", NodeState.POWERING_ON, registered=True, powered_on_at=NOW - 2,
                   state_since=NOW - 2, cpu_m=4000, taints=(cordon_taint,))
    d = run([booting, node("edge-1", "edge", NodeState.OFF)], [pending("p")], [edge()])
    assert d.power_on == ()

# --- duration-aware scale-up -------------------------------------------------------------------------


def test_a_pod_waits_for_room_a_finishing_pod_frees_sooner_than_a_boot() -> None:
    """A full node runs two pods of service "svc" started 50 s ago. Its recorded runs took about a
    minute, so room frees in ~10 s, before a new node (boot 60 s) would be Ready: the pending pod
    waits, and says why. Runs that took 10 minutes, or too few recorded runs, buy a node."""
    full = node("a", "cloud", NodeState.USED, cpu_m=1000, powered_on_at=NOW - 3600)
    pods = [running(f"r{i}", "a", owner="svc", started_at=NOW - 50) for i in range(2)]
    waiting = pending("p", owner="svc")
    quick = RunHistory(runtimes={"svc": (58.0, 60.0, 62.0, 61.0)})
    d = decide(ClusterView((full,), (*pods, waiting), history=quick), [cloud(boot_s=60)], NOW, S)
    assert d.power_on == ()
    assert "sooner than a new node boots" in reasons(d)["default/p"]
    slow = RunHistory(runtimes={"svc": (590.0, 600.0, 610.0)})
    d = decide(ClusterView((full,), (*pods, waiting), history=slow), [cloud(boot_s=60)], NOW, S)
    assert new_per_group(d) == {"cloud": 1}
    few = RunHistory(runtimes={"svc": (58.0, 60.0)})
    d = decide(ClusterView((full,), (*pods, waiting), history=few), [cloud(boot_s=60)], NOW, S)
    assert new_per_group(d) == {"cloud": 1}


def test_room_expected_later_than_a_boot_waits_only_within_wait_target() -> None:
    """Room expected in ~90 s, a boot takes 60 s: within a 120 s wait target the pod waits for it,
    within a 60 s one it gets a node; a pod that already waited past the target gets one."""
    full = node("a", "cloud", NodeState.USED, cpu_m=1000, powered_on_at=NOW - 3600)
    pods = [running(f"r{i}", "a", owner="svc", started_at=NOW - 10) for i in range(2)]
    history = RunHistory(runtimes={"svc": (99.0, 100.0, 101.0)})
    fresh = pending("p", owner="svc", created_at=NOW - 1, unschedulable_since=NOW - 1)
    patient = PolicySettings(wait_target_s=120)
    d = decide(ClusterView((full,), (*pods, fresh), history=history), [cloud(boot_s=60)], NOW, patient)
    assert d.power_on == ()
    d = decide(ClusterView((full,), (*pods, fresh), history=history), [cloud(boot_s=60)], NOW,
               PolicySettings(wait_target_s=60))
    assert new_per_group(d) == {"cloud": 1}
    old = pending("p", owner="svc", created_at=NOW - 130, unschedulable_since=NOW - 130)
    d = decide(ClusterView((full,), (*pods, old), history=history), [cloud(boot_s=60)], NOW, patient)
    assert new_per_group(d) == {"cloud": 1}


def test_room_on_a_booting_node_goes_to_the_pod_that_can_use_nothing_else() -> None:
    """One pod's room is left on a booting amd64 node; an amd64-only pod and a pod that runs
    anywhere are pending (the anywhere pod sorts first by name and asks more CPU). The amd64 pod
    takes that room; the other gets a board: one new node in all, not a second amd64 one."""
    booting = node("c1", "cloud", NodeState.POWERING_ON, cpu_m=2000, registered=False,
                   labels={"arch": "amd64"}, powered_on_at=NOW - 10)
    pods = [running("r", "c1", cpu_m=1000),
            pending("a-anywhere", cpu_m=1000), pending("b-amd64", cpu_m=900, node_selector={"arch": "amd64"})]
    d = run([booting], pods, [cloud(labels={"arch": "amd64"}), edge(labels={"arch": "arm64"})])
    assert [(p.group, p.pods) for p in d.power_on] == [("edge", ("default/a-anywhere",))]
