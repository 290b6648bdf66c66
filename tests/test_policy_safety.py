"""``decide()``'s safety rules: the unready brake (the Cluster Autoscaler's
``max-total-unready-percentage``/``ok-total-unready-count``), a node that still runs user pods is
never given up while powering off, pods that ask not to be disrupted keep their node, and every
reason is one of a fixed set (what the metrics label by)."""

from __future__ import annotations

from elastic.model import NodeState, NotTriggeredReason, PolicySettings, PowerOnReason
from elastic.view import pod_info
from tests.test_policy import NOW, S, cloud, edge, node, pending, run, running


def booting_too_long(name: str, group: str, *, registered: bool = True) -> object:
    """Powered on longer than ``max_wait_poweron_s`` ago and still not Ready."""
    since = NOW - S.max_wait_poweron_s - 60
    return node(name, group, NodeState.POWERING_ON, registered=registered, ready=False,
                state_since=since, powered_on_at=since)


def test_the_brake_holds_when_more_than_45_percent_and_more_than_3_are_unready() -> None:
    ready = [node(f"r{i}", "cloud") for i in range(4)]
    stuck = [booting_too_long(f"s{i}", "cloud") for i in range(4)]
    d = run([*ready, *stuck], [], [cloud()])
    assert d.failed == ()
    assert (d.health.braked, d.health.unready, d.health.expected_up) == (True, 4, 8)
    assert "Unhealthy" in d.health.describe()


def test_three_unready_are_always_tolerated_so_they_are_failed() -> None:
    stuck = [booting_too_long(f"s{i}", "cloud") for i in range(3)]
    d = run(stuck, [], [cloud()])  # 3 of 3 unready: not more than ok_total_unready_count
    assert sorted(f.node for f in d.failed) == ["s0", "s1", "s2"]
    assert not d.health.braked


def test_below_the_percentage_the_unready_nodes_are_failed() -> None:
    ready = [node(f"r{i}", "cloud") for i in range(6)]
    stuck = [booting_too_long(f"s{i}", "cloud") for i in range(4)]
    d = run([*ready, *stuck], [], [cloud()])  # 4 of 10: 40 % <= 45 %
    assert len(d.failed) == 4 and not d.health.braked


def test_powered_off_boards_are_not_expected_up() -> None:
    """Ten boards off and two nodes Ready: four unready are 4 of 6 expected up, not 4 of 16."""
    ready = [node(f"r{i}", "cloud") for i in range(2)]
    stuck = [booting_too_long(f"s{i}", "cloud") for i in range(4)]
    off = [node(f"edge-{i}", "edge", NodeState.OFF) for i in range(10)]
    d = run([*ready, *stuck, *off], [], [cloud(), edge(boards=10)])
    assert d.health.braked and d.health.expected_up == 6
    assert d.failed == ()


def test_the_brake_still_gives_up_machines_that_never_registered() -> None:
    """As the autoscaler removes long-unregistered nodes before its health check."""
    ready = [node(f"r{i}", "cloud") for i in range(2)]
    stuck = [booting_too_long(f"s{i}", "cloud") for i in range(4)]
    lost = booting_too_long("never", "cloud", registered=False)
    d = run([*ready, *stuck, lost], [], [cloud()])
    assert d.health.braked
    assert [f.node for f in d.failed] == ["never"]


def test_the_brake_can_be_tuned() -> None:
    stuck = [booting_too_long(f"s{i}", "cloud") for i in range(4)]
    d = run(stuck, [], [cloud()], PolicySettings(ok_total_unready_count=4))
    assert len(d.failed) == 4 and not d.health.braked


def test_a_node_running_user_pods_is_never_given_up_while_powering_off() -> None:
    late = NOW - S.max_wait_poweroff_s - 1
    busy = node("busy", "cloud", NodeState.POWERING_OFF, ready=True, state_since=late)
    quiet = node("quiet", "cloud", NodeState.POWERING_OFF, ready=True, state_since=late)
    daemon = running("agent", "quiet", daemonset=True)
    d = run([busy, quiet], [running("job", "busy"), daemon], [cloud()])
    assert [f.node for f in d.failed] == ["quiet"]


def test_a_pod_that_asks_not_to_be_disrupted_keeps_its_node() -> None:
    """Such a pod is a user pod and not evictable: its node is never idle, so never powered off."""
    for annotation in ({"karpenter.sh/do-not-disrupt": "true"},
                       {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}):
        obj = {"metadata": {"name": "keep", "namespace": "default", "annotations": annotation},
               "spec": {"nodeName": "c1"}, "status": {"phase": "Running"}}
        pod = pod_info(obj)
        assert not pod.evictable
        idle_long = node("c1", "cloud", idle_since=NOW - 10 * S.idle_time_s)
        d = run([idle_long], [pod], [cloud()])
        assert d.power_off == ()


def test_power_on_reasons_are_an_enum() -> None:
    d = run([], [pending("p")], [cloud()])
    assert [p.kind for p in d.power_on] == [PowerOnReason.PENDING_PODS]
    floor = run([], [], [cloud(min=1)])
    assert [p.kind for p in floor.power_on] == [PowerOnReason.MIN_SIZE]
    spare = run([], [], [cloud()], PolicySettings(extra_free=1))
    assert [p.kind for p in spare.power_on] == [PowerOnReason.EXTRA_FREE]
    pinned = run([node("edge-0", "edge", NodeState.OFF)],
                 [pending("p", node_selector={"kubernetes.io/hostname": "edge-0"})], [edge(boards=1)])
    assert [p.kind for p in pinned.power_on] == [PowerOnReason.PINNED]


def test_not_triggered_reasons_are_an_enum() -> None:
    huge = run([], [pending("huge", cpu_m=64_000)], [cloud()])
    assert [t.kind for t in huge.not_triggered] == [NotTriggeredReason.NO_GROUP_FITS]
    full = run([node("c1", "cloud", cpu_m=500)], [running("x", "c1"), pending("p")], [cloud(max=1)])
    assert [t.kind for t in full.not_triggered] == [NotTriggeredReason.MAX_SIZE]
    backoff = run([], [pending("p")], [cloud()], backoff={"cloud": NOW + 60})
    assert [t.kind for t in backoff.not_triggered] == [NotTriggeredReason.BACKOFF]
