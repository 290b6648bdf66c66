"""The shared pod rules (``provisioner.podrules``): they follow upstream's scheduler, and the
simulator's scheduler and the policy, which both use them, agree on every pod and node."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from elastic.model import MatchExpression, NodeGroup, NodeState, PodInfo, PolicySettings, Taint, Toleration
from elastic.policy.capacity import room_for
from elastic.policy.demand import index_pods
from elastic.policy.fit import allows, fits_new, node_capacity, node_traits, shape_of
from elastic.sim.baselines import StaticPolicy
from elastic.sim.engine import Simulation, has_room, schedulable
from elastic.sim.trace import Job
from provisioner import podrules

KEYS = ("zone", "kubernetes.io/arch", "kubernetes.io/os", "tier", "gpu")
VALUES = ("a", "b", "amd64", "linux", "1", "7", "-3", "x")
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

keys = st.sampled_from(KEYS)
values = st.sampled_from(VALUES)
taints = st.builds(Taint, keys, values, st.sampled_from(EFFECTS))
tolerations = st.one_of(
    st.builds(Toleration, st.one_of(st.none(), keys), st.just("Exists"), st.just(""),
              st.one_of(st.none(), st.sampled_from(EFFECTS))),
    st.builds(Toleration, keys, st.just("Equal"), values, st.one_of(st.none(), st.sampled_from(EFFECTS))),
)
expressions = st.one_of(
    st.builds(MatchExpression, keys, st.sampled_from(("In", "NotIn")),
              st.lists(values, min_size=1, max_size=3).map(tuple)),
    st.builds(MatchExpression, keys, st.sampled_from(("Exists", "DoesNotExist"))),
    st.builds(MatchExpression, keys, st.sampled_from(("Gt", "Lt")), st.tuples(values)),
)
affinities = st.lists(st.lists(expressions, max_size=3).map(tuple), max_size=3).map(tuple)


@st.composite
def pods(draw: st.DrawFn) -> PodInfo:
    return PodInfo(
        key="default/p", namespace="default",
        cpu_m=draw(st.sampled_from([0, 100, 1000, 2000, 4000, 9000])),
        memory_mib=draw(st.sampled_from([0, 128, 2048, 8192, 32768])),
        node_selector=draw(st.dictionaries(keys, values, max_size=2)),
        affinity_terms=draw(affinities),
        tolerations=tuple(draw(st.lists(tolerations, max_size=3))),
    )


@st.composite
def groups(draw: st.DrawFn) -> NodeGroup:
    return NodeGroup(
        name="g", cpus=draw(st.sampled_from([1, 2, 4, 8])),
        memory_mib=draw(st.sampled_from([1024, 4096, 16384])),
        max_pods=draw(st.sampled_from([1, 110])), max=3,
        labels=draw(st.dictionaries(keys, values, max_size=3)),
        taints=tuple(draw(st.lists(taints, max_size=2, unique_by=lambda t: (t.key, t.effect)))),
    )


@settings(max_examples=400, deadline=None)
@given(pod=pods(), group=groups())
def test_the_simulators_scheduler_and_the_policy_agree(pod: PodInfo, group: NodeGroup) -> None:
    """A pod goes on an empty simulated node iff the policy judges that node fitting for it."""
    sim = Simulation([], [group], StaticPolicy())
    node = sim._new_node(group, None)
    sim._power_on(node, instantly=True)
    assert node.state is NodeState.IDLE
    info = next(n for n in sim.view().nodes if n.name == node.name)
    policy_says = fits_new(shape_of(pod), node_capacity(info, group), node_traits(info, group))
    assert schedulable(node, pod) == policy_says


@settings(max_examples=300, deadline=None)
@given(pod=pods(), group=groups(),
       running=st.lists(st.tuples(st.sampled_from([100, 500, 1000, 3000]), st.sampled_from([64, 1024, 4096])),
                        max_size=4))
def test_they_agree_on_a_node_with_pods_running(pod: PodInfo, group: NodeGroup,
                                                running: list[tuple[int, int]]) -> None:
    """The same on a node already running jobs: the room the policy counts (its requests index over
    the simulator's view) is the room the simulated scheduler finds."""
    jobs = [Job(i, 0.0, cpu, mem, 3600.0) for i, (cpu, mem) in enumerate(running)]
    sim = Simulation(jobs, [group], StaticPolicy())
    node = sim._new_node(group, None)
    sim._power_on(node, instantly=True)
    for i, job in enumerate(jobs):
        if has_room(node, job.cpu_m, job.memory_mib):
            sim._start(i, node)
    view = sim.view()
    info = next(n for n in view.nodes if n.name == node.name)
    used = index_pods(view.pods, 0.0, PolicySettings()).used.get(node.name) or [0, 0, 0, 0]
    cap = node_capacity(info, group)
    free = [cap.cpu_m - used[0], cap.memory_mib - used[1], cap.gpus - used[2], cap.pods - used[3]]
    shape = shape_of(pod)
    policy_says = room_for(shape, free) >= 1 and allows(shape.constraints, node_traits(info, group))
    assert schedulable(node, pod) == policy_says


def test_a_simulated_worker_carries_the_labels_the_policy_expects() -> None:
    """A pod selecting ``kubernetes.io/os=linux`` (every k3s worker has it) runs in the simulator."""
    group = NodeGroup(name="g", cpus=2, memory_mib=2048, max=1)
    sim = Simulation([], [group], StaticPolicy())
    node = sim._new_node(group, None)
    sim._power_on(node, instantly=True)
    assert schedulable(node, PodInfo("default/p", "default", node_selector={"kubernetes.io/os": "linux"}))


def test_tolerations_follow_toleration_go() -> None:
    taint = Taint("gpu", "yes", "NoSchedule")
    assert podrules.tolerates(Toleration("gpu", "Equal", "yes"), taint)
    assert not podrules.tolerates(Toleration("gpu", "Equal", "no"), taint)
    assert podrules.tolerates(Toleration("gpu", "Exists"), taint)
    assert podrules.tolerates(Toleration(None, "Exists"), taint)
    assert podrules.tolerates(Toleration("", "Exists", effect="NoSchedule"), taint)
    assert not podrules.tolerates(Toleration(None, "Exists", effect="NoExecute"), taint)
    # an empty key skips the key check; Equal then compares the value (validation forbids it, the
    # matcher does not)
    assert podrules.tolerates(Toleration(None, "Equal", "yes"), taint)
    assert not podrules.tolerates(Toleration(None, "Equal", "no"), taint)


def test_only_noschedule_and_noexecute_taints_filter() -> None:
    soft = (Taint("a", "1", "PreferNoSchedule"),)
    assert podrules.placeable({}, (), (), {}, soft)
    assert not podrules.placeable({}, (), (), {}, (Taint("a", "1", "NoExecute"),))
    assert podrules.untolerated((*soft, Taint("b", "", "NoSchedule")), ()) == Taint("b", "", "NoSchedule")


def test_node_affinity_follows_nodeaffinity_go() -> None:
    labels = {"zone": "a", "size": "12"}
    assert not podrules.affinity_matches(((),), labels)  # an empty term selects nothing
    assert podrules.affinity_matches(((), (MatchExpression("zone", "In", ("a",)),)), labels)
    assert podrules.affinity_matches(((MatchExpression("tier", "NotIn", ("x",)),),), labels)
    assert podrules.affinity_matches(((MatchExpression("tier", "DoesNotExist"),),), labels)
    assert podrules.affinity_matches(((MatchExpression("size", "Gt", ("9",)),),), labels)
    assert not podrules.affinity_matches(((MatchExpression("size", "Lt", ("9",)),),), labels)
    # Go's ParseInt: no underscores or spaces, exactly one value
    assert not podrules.affinity_matches(((MatchExpression("size", "Gt", ("1_0",)),),), labels)
    assert not podrules.affinity_matches(((MatchExpression("size", "Gt", ("1", "2")),),), labels)
    assert not podrules.expression_holds(MatchExpression("size", "Gt", ("1",)), {"size": " 12"})


def test_user_pods_and_protection() -> None:
    bound = {"metadata": {"name": "p"}, "spec": {"nodeName": "n"}, "status": {"phase": "Running"}}
    assert podrules.is_user_pod(bound)
    assert not podrules.is_user_pod({**bound, "status": {"phase": "Succeeded"}})
    assert not podrules.is_user_pod({**bound, "spec": {}})
    daemon = {**bound, "metadata": {"name": "p", "ownerReferences": [{"kind": "DaemonSet"}]}}
    assert not podrules.is_user_pod(daemon)
    mirror = {**bound, "metadata": {"name": "p", "annotations": {podrules.MIRROR_ANNOTATION: "x"}}}
    assert not podrules.is_user_pod(mirror)
    kept = {**bound, "metadata": {"name": "p", "annotations": {"karpenter.sh/do-not-disrupt": "true"}}}
    assert podrules.protecting_annotation(kept) == "karpenter.sh/do-not-disrupt=true"
    assert podrules.protecting_annotation(bound) is None
