"""The elastic policy: ``decide(view, groups, now, settings) -> Decision``, pure, no I/O.

The daemon, the simulator and the benchmarks call this very function, so a simulated result
predicts production behaviour. It reads only its arguments (``now`` is the only clock) and is
deterministic: the same inputs give the same ``Decision``. One pass, in this order:

1. ``timers``: nodes stuck powering on/off → ``MarkFailed`` (their group gets no power-on now),
   unless ``health``'s unready brake holds (too many nodes unready at once) or, for a power-off, the
   node still runs user pods.
2. ``demand``: one pass over the pods: what runs where, and which pending pods are demand.
3. a group below its ``min`` gets nodes powered on (they take pending pods like any booting node).
4. ``provreq``: booked ProvisioningRequests keep their room; then ``capacity``: pending pods are
   placed on the room of Ready and booting nodes first; then ProvisioningRequests not yet
   provisioned are answered (check-capacity on Ready room, best-effort-atomic all or nothing, on
   new nodes too), ahead of the pending pods that need new nodes.
5. ``waiting``: pods that, by their owners' recorded run times, will get room on a running node
   sooner than a new node boots (or within ``wait_target_s``) wait for it.
   ``scaleup``: pods pinned by hostname get the very board they name; the rest are bin-packed onto
   new nodes of the eligible groups (``packing``), within every max; pods that get nothing are
   reported as ``NotTriggered`` with the reason.
6. ``extra_free`` spare nodes are topped up.
7. ``scalein``: idle nodes beyond ``min`` and ``extra_free`` are powered off, after ``idle_time_s``
   or at once where the recent arrival rate says they will not be needed within a boot (``idle``).

Costs grow with nodes + pods + shapes × nodes, never pods × nodes (see ``capacity``, ``packing``).
"""

from __future__ import annotations

from collections.abc import Sequence

from elastic.model import (
    ClusterView,
    Decision,
    NodeGroup,
    NodeInfo,
    NodeState,
    NotTriggered,
    NotTriggeredReason,
    PolicySettings,
    PowerOn,
    PowerOnReason,
)
from elastic.policy.capacity import Slot, place_on_existing
from elastic.policy.demand import index_pods
from elastic.policy.fit import Shape, node_capacity, node_traits, referenced_keys, shape_of
from elastic.policy.health import health
from elastic.policy.idle import may_go_now
from elastic.policy.provreq import Outcome, reserve_booked, serve_pending, served
from elastic.policy.scalein import power_offs
from elastic.policy.scaleup import ACTIVE_STATES, Budget, GroupInfo, open_pinned_boards, plan_new_nodes
from elastic.policy.timers import overdue
from elastic.policy.waiting import wait_for_room

__all__ = ["decide"]

_ON = (NodeState.IDLE, NodeState.USED)


def _slot(node: NodeInfo, group: NodeGroup | None, used: list[int] | None, keys: frozenset[str]) -> Slot:
    cap = node_capacity(node, group)
    u = used or (0, 0, 0, 0)
    free = [cap.cpu_m - u[0], cap.memory_mib - u[1], cap.gpus - u[2], cap.pods - u[3]]
    return Slot(node.name, node.group, node_traits(node, group, keys), free, node.state_since)


def decide(view: ClusterView, groups: Sequence[NodeGroup], now: float, settings: PolicySettings) -> Decision:
    """What to power on, power off and mark failed now, and which pending pods get no node and why."""
    by_name = {g.name: g for g in groups}
    infos = sorted((GroupInfo.of(g) for g in by_name.values()),
                   key=lambda i: (-i.group.priority, i.group.name))
    nodes = sorted(view.nodes, key=lambda n: n.name)
    index = index_pods(view.pods, now, settings)

    # 1. timers, held back by the unready brake; a node still running user pods is never given up
    # (the actuator's drain undoes its power-off instead).
    state = health(nodes, by_name, now, settings)
    node_of = {n.name: n for n in nodes}
    failed = [f for f in overdue(nodes, by_name, now, settings)
              if not (state.braked and node_of[f.node].registered)
              and not (node_of[f.node].state is NodeState.POWERING_OFF and index.user_pods.get(f.node))]
    failed_nodes = {f.node for f in failed}
    failing = {n.group for n in nodes if n.name in failed_nodes and n.state is NodeState.POWERING_ON}

    requests = served(view.provisioning_requests)
    keys = referenced_keys(shape_of(p) for p in (*index.demand, *(p for r in requests for p in r.pods)))
    ready: list[Slot] = []
    booting: list[Slot] = []
    active = dict.fromkeys(by_name, 0)
    for node in nodes:
        if node.name in failed_nodes:
            continue
        if node.group in active and node.state in ACTIVE_STATES:
            active[node.group] += 1
        group = by_name.get(node.group)
        if node.state is NodeState.POWERING_ON:
            booting.append(_slot(node, group, index.used.get(node.name), keys))
        elif node.state in _ON and node.ready and node.registered and not node.cordoned:
            ready.append(_slot(node, group, index.used.get(node.name), keys))

    budget = Budget.build(nodes, by_name, view.backoff_until, failing, failed_nodes, now, settings)
    power_on: list[PowerOn] = []

    # 3. min: these new nodes join the booting ones, so pending pods are placed on them first.
    min_slots: list[Slot] = []
    for info in infos:
        name = info.group.name
        n = min(info.group.min - active[name], budget.allowance(name))
        if n > 0:
            for node_name in budget.take(name, n):
                cap = info.capacity
                free = [cap.cpu_m, cap.memory_mib, cap.gpus, cap.pods]
                traits = info.traits if node_name is None else info.board_traits(node_name)
                min_slots.append(Slot(node_name, name, traits, free))
            active[name] += n
    booting.extend(min_slots)

    # 4-5. existing room first, then new nodes.
    def groups_fitting(shape: Shape) -> int:
        return sum(1 for info in infos if info.fits(shape))

    provisioning = Outcome()
    if requests:
        reserve_booked(requests, ready, booting, now, provisioning)
    leftover = place_on_existing(index.demand, ready, booting, now, settings.pending_grace_s, groups_fitting)
    if requests:
        budget = serve_pending(requests, ready, booting, infos, budget, by_name, now, provisioning,
                               groups_fitting)
        for new, request in provisioning.new_nodes:
            active[new.group] += 1
            power_on.append(PowerOn(new.group, new.node, f"ProvisioningRequest {request}", new.pods))
    for slot in min_slots:
        group = by_name[slot.group]
        power_on.append(PowerOn(slot.group, slot.name, f"group {slot.group} below its min ({group.min})",
                                tuple(sorted(slot.pods)), PowerOnReason.MIN_SIZE))
    boards = open_pinned_boards(leftover, infos, budget)
    if boards:
        leftover = place_on_existing(leftover, [], boards, now, settings.pending_grace_s)
        for slot in boards:
            if slot.pods:
                active[slot.group] += 1
                reason = f"{len(slot.pods)} pending pod(s) name this node"
                power_on.append(PowerOn(slot.group, slot.name, reason, tuple(sorted(slot.pods)),
                                        PowerOnReason.PINNED))
    waiting, leftover = wait_for_room(leftover, view.pods, ready, infos, view.history, now,
                                      settings.wait_target_s)
    new_nodes, not_triggered = plan_new_nodes(leftover, infos, budget)
    if waiting:
        reason = "expected to get room on a running node sooner than a new node boots or within wait_target_s"
        not_triggered = sorted([*not_triggered,
                                *(NotTriggered(p.key, reason, NotTriggeredReason.WAITING) for p in waiting)],
                               key=lambda t: t.pod)
    for new in new_nodes:
        active[new.group] += 1
        power_on.append(PowerOn(new.group, new.node,
                                f"{len(new.pods)} pending pod(s) fit no existing or booting node", new.pods,
                                PowerOnReason.PENDING_PODS))

    # 6. extra_free: spare = on or booting nodes that will run no user pod.
    spare = sum(1 for s in ready if not s.pods and index.user_pods.get(s.name or "", 0) == 0)
    spare += sum(1 for s in booting if not s.pods)
    if spare < settings.extra_free:
        order = sorted(infos, key=lambda i: (-i.group.priority, bool(i.group.taints), i.group.cost_per_hour,
                                             i.group.name))
        for info in order:
            name = info.group.name
            n = min(settings.extra_free - spare, budget.allowance(name))
            if n > 0:
                reason = f"keep extra_free ({settings.extra_free}) spare nodes"
                power_on.extend(PowerOn(name, node_name, reason, (), PowerOnReason.EXTRA_FREE)
                                for node_name in budget.take(name, n))
                active[name] += n
                spare += n

    # 7. scale in.
    claimed = {s.name for s in ready if s.pods and s.name}
    go_now: set[str] = set()
    if settings.adaptive_idle:
        go_now = may_go_now(nodes, by_name, index.demand, index.used, index.user_pods, view.history, now)
    offs = power_offs(nodes, by_name, index.user_pods, claimed, active, spare, now, settings, go_now)
    return Decision(
        power_on=tuple(power_on),
        power_off=tuple(offs),
        failed=tuple(failed),
        not_triggered=tuple(not_triggered),
        provisioning=tuple(provisioning.updates),
        health=state,
    )
