"""ProvisioningRequests in ``decide``: the conditions an operator (or Kueue) reads on the request, and
the nodes powered on for it, one rule per case (upstream: ``elastic.policy.provreq``'s docstring)."""

from __future__ import annotations

from elastic.model import (
    BEST_EFFORT_ATOMIC,
    CHECK_CAPACITY,
    ClusterView,
    Condition,
    Decision,
    NodeState,
    PodInfo,
    ProvisioningRequestInfo,
)
from elastic.policy import decide
from elastic.policy.provreq import BOOKING_S
from tests.test_policy import NOW, S, cloud, node, pending, running

ACCEPTED_MSG = "ProvisioningRequest is accepted by oscar-deploy-elastic"


def request(name: str, cls: str, count: int, cpu_m: int = 1000, memory_mib: int = 512,
            conditions: dict[str, Condition] | None = None, **kw: object) -> ProvisioningRequestInfo:
    pods = tuple(PodInfo(key=f"default/{name}#0-{j}", namespace="default", cpu_m=cpu_m, memory_mib=memory_mib,
                         created_at=NOW - 5) for j in range(count))
    return ProvisioningRequestInfo(key=f"default/{name}", namespace="default", class_name=cls,
                                   created_at=NOW - 5, pods=pods, conditions=conditions or {}, **kw)  # type: ignore[arg-type]


def go(nodes: list, pods: list, groups: list, prs: list[ProvisioningRequestInfo]) -> Decision:
    return decide(ClusterView(tuple(nodes), tuple(pods), provisioning_requests=tuple(prs)), groups, NOW, S)


def conds(d: Decision, key: str) -> dict[str, tuple[bool, str]]:
    return {c.type: (c.status, c.reason) for u in d.provisioning if u.request == key for c in u.conditions}


def test_check_capacity_books_existing_room_and_never_scales_up() -> None:
    g = cloud(max=5)
    idle = [node("n1", "cloud"), node("n2", "cloud")]
    fits = go(idle, [], [g], [request("fits", CHECK_CAPACITY, 4)])
    assert conds(fits, "default/fits") == {"Accepted": (True, "Accepted"),
                                           "Provisioned": (True, "CapacityIsFound")}
    assert not fits.power_on
    short = go(idle, [], [g], [request("big", CHECK_CAPACITY, 5)])
    assert conds(short, "default/big")["Provisioned"] == (False, "CapacityIsNotFound")
    assert not short.power_on  # check-capacity never asks for nodes
    no_retry = go(idle, [], [g], [request("big", CHECK_CAPACITY, 5, no_retry=True)])
    assert conds(no_retry, "default/big")["Failed"] == (True, "CapacityIsNotFound")


def test_booked_room_is_kept_from_scale_in_and_from_other_pods() -> None:
    g = cloud(max=5)
    booked = request("b", CHECK_CAPACITY, 2, cpu_m=2000, conditions={
        "Provisioned": Condition("Provisioned", True, "CapacityIsFound", "", NOW - 60)})
    idle = [node("n1", "cloud", idle_since=NOW - 3000), node("n2", "cloud", idle_since=NOW - 3000)]
    d = go(idle, [], [g], [booked])
    assert not d.power_off and not d.provisioning  # both idle nodes hold the booking
    # a pending pod does not get the booked room: a node is powered on for it
    d = go(idle, [pending("p", cpu_m=2000)], [g], [booked])
    assert [p.pods for p in d.power_on] == [("default/p",)]
    # once a pod consumed it, its room is no longer held for it
    one = request("one", CHECK_CAPACITY, 1, cpu_m=2000, consumed=1, conditions=booked.conditions)
    d = go(idle, [running("c", "n1", cpu_m=2000)], [g], [one])
    assert [o.node for o in d.power_off] == ["n2"]
    half = request("b", CHECK_CAPACITY, 2, cpu_m=2000, consumed=1, conditions=booked.conditions)
    d = go(idle, [running("c", "n1", cpu_m=2000)], [g], [half])  # one of its two pods still to come
    assert not d.power_off and not d.provisioning


def test_booking_expires_after_ten_minutes() -> None:
    old = request("b", CHECK_CAPACITY, 1, conditions={
        "Provisioned": Condition("Provisioned", True, "CapacityIsFound", "", NOW - BOOKING_S - 1)})
    d = go([node("n1", "cloud")], [], [cloud()], [old])
    assert conds(d, "default/b") == {"BookingExpired": (True, "CapacityReservationTimeExpired")}


def test_capacity_revoked_when_the_booked_room_goes() -> None:
    booked = request("b", BEST_EFFORT_ATOMIC, 2, cpu_m=2000, conditions={
        "Provisioned": Condition("Provisioned", True, "CapacityIsProvisioned", "", NOW - 60)})
    d = go([node("n1", "cloud")], [], [cloud()], [booked])  # one of its two nodes is gone
    assert conds(d, "default/b") == {"CapacityRevoked": (True, "CapacityIsRevoked")}


def test_best_effort_atomic_powers_on_for_all_pods_then_is_provisioned_when_ready() -> None:
    g = cloud(max=5, boot_s=90)
    d = go([], [], [g], [request("a", BEST_EFFORT_ATOMIC, 3, cpu_m=2000)])
    assert len(d.power_on) == 3 and all("ProvisioningRequest default/a" in p.reason for p in d.power_on)
    update = conds(d, "default/a")
    assert update["Provisioned"] == (False, "CapacityIsBeingProvisioned")
    msg = next(c.message for u in d.provisioning for c in u.conditions if c.type == "Provisioned")
    assert "expected Ready by" in msg
    # next pass: the three nodes boot; no more are asked for
    booting = [node(f"b{i}", "cloud", NodeState.POWERING_ON, state_since=NOW - 10) for i in range(3)]
    waiting = request("a", BEST_EFFORT_ATOMIC, 3, cpu_m=2000, conditions={
        "Accepted": Condition("Accepted", True, "Accepted", ACCEPTED_MSG),
        "Provisioned": Condition("Provisioned", False, "CapacityIsBeingProvisioned", msg)})
    d = go(booting, [], [g], [waiting])
    assert not d.power_on
    ready = [node(f"b{i}", "cloud") for i in range(3)]
    d = go(ready, [], [g], [waiting])
    assert conds(d, "default/a") == {"Provisioned": (True, "CapacityIsProvisioned")}


def test_best_effort_atomic_is_all_or_nothing() -> None:
    g = cloud(max=2)
    d = go([], [], [g], [request("a", BEST_EFFORT_ATOMIC, 3, cpu_m=2000)])
    assert not d.power_on  # two nodes would serve only two of its three pods
    assert conds(d, "default/a")["Failed"] == (True, "CapacityIsNotFound")
    # backoff only delays it
    d = decide(ClusterView((), (), backoff_until={"cloud": NOW + 60},
                           provisioning_requests=(request("a", BEST_EFFORT_ATOMIC, 2, cpu_m=2000),)),
               [g], NOW, S)
    assert not d.power_on and conds(d, "default/a")["Provisioned"] == (False, "CapacityIsNotFound")


def test_a_missing_pod_template_fails_the_request() -> None:
    bad = request("x", BEST_EFFORT_ATOMIC, 0, invalid="PodTemplate default/ppt-x of podSet 0 not found")
    young = ProvisioningRequestInfo(**{**bad.__dict__, "created_at": NOW - 1})
    assert not go([], [], [cloud()], [young]).provisioning  # the template may just not be seen yet
    old = ProvisioningRequestInfo(**{**bad.__dict__, "created_at": NOW - 6})
    d = go([], [], [cloud()], [old])
    assert conds(d, "default/x") == {"Failed": (True, "FailedToCreatePods")}


def test_answered_requests_are_not_rewritten() -> None:
    same = request("fits", CHECK_CAPACITY, 1, conditions={
        "Accepted": Condition("Accepted", True, "Accepted", ACCEPTED_MSG),
        "Provisioned": Condition("Provisioned", False, "CapacityIsNotFound",
                                 "Capacity is not found, CA will try to find it later.")})
    d = go([], [], [cloud()], [same])
    assert not d.provisioning
