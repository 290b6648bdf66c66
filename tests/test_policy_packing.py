"""The parts under ``decide``: bin-packing quality and shortcuts, and Kubernetes' matching rules."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from elastic.model import MatchExpression, Taint, Toleration
from elastic.policy.fit import Capacity, Constraints, Shape, Traits, allows
from elastic.policy.packing import Packing, pack, volume_lower_bound
from provisioner.podrules import tolerates

NONE = Constraints()


def shape(cpu_m: int, memory_mib: int, gpus: int = 0) -> Shape:
    return Shape(cpu_m, memory_mib, gpus, NONE)


def check_fits(result: Packing, capacity: Capacity) -> None:
    for fill in result.fills:
        assert fill.times >= 1 and fill.counts
        assert sum(s.cpu_m * n for s, n in fill.counts) <= capacity.cpu_m
        assert sum(s.memory_mib * n for s, n in fill.counts) <= capacity.memory_mib
        assert sum(s.gpus * n for s, n in fill.counts) <= capacity.gpus
        assert sum(n for _, n in fill.counts) <= capacity.pods


def test_complementary_pods_share_nodes() -> None:
    cap = Capacity(8000, 32768, 0, 110)
    demand = {shape(6000, 2048): 50, shape(1000, 24000): 50}
    result = pack(demand, cap)
    check_fits(result, cap)
    assert result.nodes == 50  # the optimum: no node holds two CPU-heavy pods, each takes one of each


def test_pod_slots_and_gpus_bound_the_packing() -> None:
    assert pack({shape(1, 1): 250}, Capacity(64000, 65536, 0, 110)).nodes == 3
    assert pack({shape(100, 100, 1): 9}, Capacity(64000, 65536, 4, 110)).nodes == 3


def test_limit_leaves_the_rest_over_and_unfit_shapes_are_returned() -> None:
    cap = Capacity(2000, 2048, 0, 110)
    result = pack({shape(1000, 1024): 10, shape(4000, 1): 2}, cap, limit=3)
    assert result.nodes == 3 and result.placed == 6
    assert result.leftover == {shape(1000, 1024): 4, shape(4000, 1): 2}


def test_repeated_node_contents_are_one_fill() -> None:
    result = pack({shape(500, 512): 10_000}, Capacity(4000, 16384, 0, 110))
    assert result.nodes == 1250 and len(result.fills) == 1


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 4000), st.integers(0, 16384), st.integers(0, 1), st.integers(1, 40)),
        min_size=1,
        max_size=12,
    )
)
def test_packing_is_valid_complete_and_never_wasteful(items: list[tuple[int, int, int, int]]) -> None:
    cap = Capacity(4000, 16384, 2, 30)
    demand: dict[Shape, int] = {}
    for c, m, g, n in items:
        demand[shape(c, m, g)] = demand.get(shape(c, m, g), 0) + n
    result = pack(demand, cap)
    check_fits(result, cap)
    assert result.placed == sum(demand.values()) and not result.leftover
    assert volume_lower_bound(demand, cap) <= result.nodes <= sum(demand.values())


def test_quality_on_a_random_mix_is_within_five_percent_of_the_bound() -> None:
    rng = random.Random(11)
    cap = Capacity(16000, 65536, 0, 110)
    demand: dict[Shape, int] = {}
    for _ in range(3000):
        s = shape(rng.choice([100, 250, 500, 1000, 2000, 4000]), rng.choice([128, 512, 1024, 4096, 16384]))
        demand[s] = demand.get(s, 0) + 1
    result = pack(demand, cap)
    assert result.nodes <= 1.05 * volume_lower_bound(demand, cap)


# --- Kubernetes matching -----------------------------------------------------------------------------


def traits(labels: dict[str, str], *taints: Taint) -> Traits:
    return Traits(tuple(sorted(labels.items())), taints)


def test_affinity_operators() -> None:
    node = traits({"arch": "arm64", "cores": "8"})

    def ok(*exprs: MatchExpression) -> bool:
        return allows(Constraints(affinity=(exprs,)), node)

    assert ok(MatchExpression("arch", "In", ("arm64", "riscv")))
    assert not ok(MatchExpression("arch", "NotIn", ("arm64",)))
    assert ok(MatchExpression("zone", "NotIn", ("a",)))
    assert ok(MatchExpression("arch", "Exists")) and not ok(MatchExpression("zone", "Exists"))
    assert ok(MatchExpression("zone", "DoesNotExist"))
    assert ok(MatchExpression("cores", "Gt", ("4",))) and not ok(MatchExpression("cores", "Lt", ("4",)))
    assert not ok(MatchExpression("arch", "Gt", ("4",)))  # not a number
    assert not ok(MatchExpression("arch", "In", ("arm64",)), MatchExpression("zone", "Exists"))


def test_toleration_rules() -> None:
    taint = Taint("gpu", "yes", "NoSchedule")
    assert tolerates(Toleration("gpu", "Equal", "yes"), taint)
    assert not tolerates(Toleration("gpu", "Equal", "no"), taint)
    assert tolerates(Toleration("gpu", "Exists"), taint)
    assert tolerates(Toleration(None, "Exists"), taint)
    assert not tolerates(Toleration("gpu", "Exists", effect="NoExecute"), taint)
    soft = traits({}, Taint("x", "", "PreferNoSchedule"))
    assert allows(NONE, soft)  # a preference does not forbid
    assert not allows(NONE, traits({}, Taint("x", "", "NoExecute")))
