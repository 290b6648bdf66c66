"""ProvisioningRequests: demand the scheduler cannot see, answered as the Cluster Autoscaler does.

Kueue's provisioning admission check (kubernetes-sigs/kueue ``pkg/controller/admissionchecks/
provisioning/controller.go``, tag v0.19.2) holds a Job back until the ProvisioningRequest it created
is ``Provisioned``, so no pod of it is pending and only the request shows the demand. The classes and
conditions follow kubernetes/autoscaler at tag cluster-autoscaler-1.36.1:
``cluster-autoscaler/provisioningrequest/checkcapacity/provisioningclass.go``,
``.../besteffortatomic/provisioning_class.go``, ``.../conditions/conditions.go`` (reasons and
messages) and ``cluster-autoscaler/processors/provreq/processor.go`` (10 min booking, 7 day expiry).

- Every request not yet answered gets ``Accepted``.
- check-capacity: ``Provisioned=True`` (CapacityIsFound) when all its pods fit the free room of Ready
  nodes, which it then books; otherwise ``Provisioned=False`` (CapacityIsNotFound: never a scale-up),
  or ``Failed`` with ``parameters.noRetry: "true"``.
- best-effort-atomic: its pods go on Ready room, then booting nodes, then new nodes, all or none
  (a trial on a copy of the budget). ``Provisioned=True`` once all of them fit Ready nodes
  (CapacityIsProvisioned after a power-on, CapacityIsFound without); while nodes boot,
  ``Provisioned=False`` with reason ``CapacityIsBeingProvisioned`` and when the nodes are expected
  Ready in the message (Kueue copies that message into the workload). Where the groups' max or
  ``max_nodes`` leave no room for all of them, ``Failed`` (Kueue retries with a new request after
  its backoff); a backoff or ``max_booting`` only delays it (``Provisioned=False``).
- A booked request (``Provisioned=True``) keeps the room of its pods no pod has consumed yet, so
  neither other pods' placement nor scale-in takes it, until ``BookingExpired`` 10 min after
  ``Provisioned``. If that room is gone (a node failed or went away), ``CapacityRevoked``; Kueue then
  deactivates the workload. The Cluster Autoscaler declares that condition but never sets it.
- A request unanswered for 7 days gets ``Failed`` (Expired); one whose PodTemplate is missing gets
  ``Failed`` (FailedToCreatePods).

Pure: the conditions to write come out as ``SetConditions``; the daemon writes them.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Sequence

from elastic.model import (
    BEST_EFFORT_ATOMIC,
    CHECK_CAPACITY,
    Condition,
    NodeGroup,
    PodInfo,
    ProvisioningRequestInfo,
    SetConditions,
)
from elastic.policy.capacity import Room, Slot, place_on_existing
from elastic.policy.fit import Shape
from elastic.policy.scaleup import Budget, GroupInfo, NewNode, plan_new_nodes

ACCEPTED, PROVISIONED, FAILED = "Accepted", "Provisioned", "Failed"
BOOKING_EXPIRED, CAPACITY_REVOKED = "BookingExpired", "CapacityRevoked"
BOOKING_S = 600.0
"""``defaultReservationTime`` (processors/provreq/processor.go)."""
EXPIRY_S = 7 * 24 * 3600.0
"""``defaultExpirationTime``: a request never provisioned is Failed after this."""
BEING_PROVISIONED = "CapacityIsBeingProvisioned"
"""Our reason while nodes boot for a best-effort-atomic request (upstream has none: it answers
Provisioned=True as soon as the scale-up is asked for)."""
TEMPLATE_GRACE_S = 5.0
"""A PodTemplate missing this long after its request was created is missing, not merely not yet
seen: Kueue creates it first, but the daemon watches the two resources apart."""
SERVED = frozenset({CHECK_CAPACITY, BEST_EFFORT_ATOMIC})
_TERMINAL = (FAILED, BOOKING_EXPIRED, CAPACITY_REVOKED)


def _true(pr: ProvisioningRequestInfo, kind: str) -> bool:
    c = pr.conditions.get(kind)
    return c is not None and c.status


def served(prs: Sequence[ProvisioningRequestInfo]) -> list[ProvisioningRequestInfo]:
    """Requests of our classes that still matter (not Failed, expired or revoked), oldest first."""
    live = [p for p in prs if p.class_name in SERVED and not any(_true(p, t) for t in _TERMINAL)]
    return sorted(live, key=lambda p: (p.created_at, p.key))


@dataclasses.dataclass
class Outcome:
    """What serving the requests adds to the decision."""

    updates: list[SetConditions] = dataclasses.field(default_factory=list)
    new_nodes: list[tuple[NewNode, str]] = dataclasses.field(default_factory=list)
    """New nodes for best-effort-atomic requests, with the request's key."""

    def set(self, pr: ProvisioningRequestInfo, now: float, *conds: tuple[str, bool, str, str]) -> None:
        """Queue the conditions that differ from what the request has."""
        changed = []
        for kind, status, reason, message in conds:
            old = pr.conditions.get(kind)
            if old is None or (old.status, old.reason, old.message) != (status, reason, message):
                changed.append(Condition(kind, status, reason, message, now))
        if changed:
            self.updates.append(SetConditions(pr.key, tuple(changed)))


def reserve_booked(prs: Sequence[ProvisioningRequestInfo], ready: Sequence[Slot], booting: Sequence[Slot],
                   now: float, out: Outcome) -> None:
    """Booked requests keep the room of their unconsumed pods; expired or revoked ones let it go."""
    wanted: dict[str, tuple[ProvisioningRequestInfo, int]] = {}
    pods: list[PodInfo] = []
    for pr in prs:
        if not _true(pr, PROVISIONED):
            continue
        if now - pr.conditions[PROVISIONED].since > BOOKING_S:
            out.set(pr, now, (BOOKING_EXPIRED, True, "CapacityReservationTimeExpired",
                              "Capacity reservation time is expired"))
            continue
        want = pr.pods[pr.consumed:]
        if want:
            wanted[pr.key] = (pr, len(want))
            pods.extend(want)
    if not pods:
        return
    short: dict[str, int] = {}
    for pod in place_on_existing(pods, ready, booting, now, 0.0):
        request = pod.key.partition("#")[0]
        short[request] = short.get(request, 0) + 1
    for request, n in sorted(short.items()):
        pr, want_n = wanted[request]
        out.set(pr, now, (CAPACITY_REVOKED, True, "CapacityIsRevoked",
                          f"{n} of the {want_n} booked pods no longer fit the nodes"))


def _utc(epoch: float) -> str:
    """A whole-second RFC 3339 time: stable from pass to pass, so the message is written once."""
    return datetime.datetime.fromtimestamp(round(epoch), datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _trial(budget: Budget, *, relaxed: bool = False) -> Budget:
    """A copy of the budget to try an all-or-nothing scale-up on; ``relaxed`` ignores what only
    delays a power-on (backoff, ``max_booting``)."""
    return dataclasses.replace(
        budget, group_left=dict(budget.group_left), boards={k: list(v) for k, v in budget.boards.items()},
        backoff={} if relaxed else dict(budget.backoff),
        booting_left=None if relaxed else budget.booting_left)


def serve_pending(prs: Sequence[ProvisioningRequestInfo], ready: Sequence[Slot], booting: Sequence[Slot],
                  infos: Sequence[GroupInfo], budget: Budget, groups: dict[str, NodeGroup], now: float,
                  out: Outcome, groups_fitting: Callable[[Shape], int] | None = None) -> Budget:
    """Answer the requests not yet provisioned; return the budget left for the pending pods."""
    on_ready: Room | None = None
    on_booting: Room | None = None
    for pr in prs:
        if _true(pr, PROVISIONED):
            continue
        if pr.invalid:
            if now - pr.created_at >= TEMPLATE_GRACE_S:
                out.set(pr, now, (FAILED, True, "FailedToCreatePods", pr.invalid))
            continue
        if now - pr.created_at > EXPIRY_S:
            out.set(pr, now, (FAILED, True, "Expired", "ProvisioningRequest is expired"))
            continue
        accepted = (ACCEPTED, True, "Accepted", "ProvisioningRequest is accepted by oscar-deploy-elastic")
        if on_ready is None or on_booting is None:  # pooled once, after the pending pods took their room
            on_ready, on_booting = Room(ready), Room(booting)
        ready_mark, booting_mark = on_ready.mark(), on_booting.mark()
        left = on_ready.place(pr.pods, groups_fitting)
        if not left:
            before = pr.conditions.get(PROVISIONED)
            powered = before is not None and before.reason == BEING_PROVISIONED
            reason = "CapacityIsProvisioned" if powered else "CapacityIsFound"
            out.set(pr, now, accepted, (PROVISIONED, True, reason, "Capacity is found in the cluster"))
            continue
        if pr.class_name == CHECK_CAPACITY:
            on_ready.undo(ready_mark)
            if pr.no_retry:
                out.set(pr, now, accepted,
                        (FAILED, True, "CapacityIsNotFound", "CA could not find requested capacity"))
            else:
                out.set(pr, now, accepted, (PROVISIONED, False, "CapacityIsNotFound",
                                            "Capacity is not found, CA will try to find it later."))
            continue
        # best-effort-atomic: booting room, then new nodes, all or nothing
        left = on_booting.place(left, groups_fitting)
        trial = _trial(budget)
        new, missed = plan_new_nodes(left, infos, trial) if left else ([], [])
        if missed:
            on_ready.undo(ready_mark)
            on_booting.undo(booting_mark)
            _, never = plan_new_nodes(left, infos, _trial(budget, relaxed=True))
            why = missed[0].reason
            if never:
                out.set(pr, now, accepted, (FAILED, True, "CapacityIsNotFound",
                                            f"{len(missed)} of its {len(pr.pods)} pods get no node: {why}"))
            else:
                out.set(pr, now, accepted, (PROVISIONED, False, "CapacityIsNotFound",
                                            f"scale-up delayed: {why}"))
            continue
        budget = trial
        eta = 0.0
        for slot in on_booting.touched(booting_mark):
            group = groups.get(slot.group)
            if group is not None:
                eta = max(eta, group.boot_s - (now - slot.since) if slot.name is not None else group.boot_s)
        for node in new:
            eta = max(eta, groups[node.group].boot_s)
            out.new_nodes.append((node, pr.key))
        ready_by = _utc(now + max(eta, 0.0))
        out.set(pr, now, accepted, (PROVISIONED, False, BEING_PROVISIONED,
                                    f"nodes are powering on for its pods, expected Ready by {ready_by}"))
    return budget
