"""New nodes: which groups, how many, and which pods each is for; and why a pod gets none.

Groups are tried by ``priority``, higher first (edge boards get the higher number); among groups of
equal priority each one packs the pods it can take and the least wasteful packing wins (unused CPU
share + unused memory share, the Cluster Autoscaler's least-waste expander; then lower cost, then
name). Its nodes are committed, and the pods left over go round again to the remaining groups, so a
group that is full, at its max or backing off passes its pods on to the next eligible one.

Every power-on is bounded by a ``Budget``: the group's ``max`` (every node of the group that is not
OFF counts, FAILED ones too until they are removed), the cluster's ``max_nodes``, ``max_booting``,
the group's backoff, and for fleets (edge boards) the named machines that are OFF.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from elastic.model import (
    NodeGroup,
    NodeInfo,
    NodeState,
    NotTriggered,
    NotTriggeredReason,
    PodInfo,
    PolicySettings,
)
from elastic.policy.capacity import Slot, room_for
from elastic.policy.fit import (
    HOSTNAME_LABEL,
    Capacity,
    Shape,
    Traits,
    allows,
    group_capacity,
    group_traits,
    shape_of,
)
from elastic.policy.packing import Packing, pack

ACTIVE_STATES = frozenset({NodeState.POWERING_ON, NodeState.IDLE, NodeState.USED, NodeState.UNKNOWN})
"""States that count towards a group's ``min`` (a node that serves or will serve pods)."""


@dataclasses.dataclass(frozen=True)
class GroupInfo:
    """A group with the derived facts the policy needs over and over."""

    group: NodeGroup
    traits: Traits
    capacity: Capacity

    @classmethod
    def of(cls, group: NodeGroup) -> GroupInfo:
        return cls(group, group_traits(group), group_capacity(group))

    def fits(self, shape: Shape) -> bool:
        return self.capacity.holds(shape) and allows(shape.constraints, self.traits)

    def board_traits(self, board: str) -> Traits:
        """One named machine of a fleet: the group's traits plus its hostname."""
        labels = {**dict(self.traits.labels), HOSTNAME_LABEL: board}
        return Traits(tuple(sorted(labels.items())), self.traits.taints)

    def any_board_fits(self, shape: Shape) -> bool:
        return self.capacity.holds(shape) and any(
            allows(shape.constraints, self.board_traits(n.name)) for n in self.group.nodes
        )


def pinned(shape: Shape) -> bool:
    """Does the pod name a node by hostname (typically an edge board with a sensor attached)?"""
    c = shape.constraints
    return any(k == HOSTNAME_LABEL for k, _ in c.selector) or any(
        e.key == HOSTNAME_LABEL for term in c.affinity for e in term
    )


@dataclasses.dataclass
class Budget:
    """How many more nodes each group may power on now, and why not when it may not."""

    group_left: dict[str, int]
    boards: dict[str, list[str]]
    """Fleet groups only: names of OFF machines that may be powered on, in order."""
    cluster_left: int | None
    booting_left: int | None
    backoff: dict[str, str]
    """Groups that must not power on now, with the reason."""
    settings: PolicySettings

    @classmethod
    def build(
        cls,
        nodes: Sequence[NodeInfo],
        groups: Mapping[str, NodeGroup],
        backoff_until: Mapping[str, float],
        failing: set[str],
        failed_nodes: set[str],
        now: float,
        settings: PolicySettings,
    ) -> Budget:
        occupied = dict.fromkeys(groups, 0)
        states: dict[str, NodeState] = {}
        total = booting = 0
        for node in nodes:
            states[node.name] = node.state
            if node.state is NodeState.OFF:
                continue
            total += 1
            if node.group in occupied:
                occupied[node.group] += 1
            if node.state is NodeState.POWERING_ON and node.name not in failed_nodes:
                booting += 1
        boards = {
            name: sorted(n.name for n in g.nodes if states.get(n.name, NodeState.OFF) is NodeState.OFF)
            for name, g in groups.items() if g.nodes
        }
        backoff = {}
        for name in groups:
            if name in failing:
                backoff[name] = f"group {name} has a node failing to power on now"
            elif backoff_until.get(name, float("-inf")) > now:
                backoff[name] = f"group {name} backing off for {backoff_until[name] - now:.0f}s more"
        return cls(
            group_left={name: g.max - occupied[name] for name, g in groups.items()},
            boards=boards,
            cluster_left=settings.max_nodes - total if settings.max_nodes > 0 else None,
            booting_left=settings.max_booting - booting if settings.max_booting > 0 else None,
            backoff=backoff,
            settings=settings,
        )

    def allowance(self, group: str) -> int:
        if group in self.backoff:
            return 0
        left = self.group_left.get(group, 0)
        if group in self.boards:
            left = min(left, len(self.boards[group]))
        for cap in (self.cluster_left, self.booting_left):
            if cap is not None:
                left = min(left, cap)
        return max(left, 0)

    def take(self, group: str, n: int) -> list[str | None]:
        """Commit ``n`` power-ons in ``group``: the named machines for fleets, None for cloud nodes."""
        assert 0 < n <= self.allowance(group)
        self.group_left[group] -= n
        if self.cluster_left is not None:
            self.cluster_left -= n
        if self.booting_left is not None:
            self.booting_left -= n
        if group in self.boards:
            names: list[str | None] = list(self.boards[group][:n])
            del self.boards[group][:n]
            return names
        return [None] * n

    def take_board(self, group: str, board: str) -> None:
        """Commit the power-on of one named machine of a fleet."""
        assert self.allowance(group) > 0 and board in self.boards[group]
        self.group_left[group] -= 1
        if self.cluster_left is not None:
            self.cluster_left -= 1
        if self.booting_left is not None:
            self.booting_left -= 1
        self.boards[group].remove(board)

    def why_not(self, group: NodeGroup, pinned: bool = False) -> tuple[NotTriggeredReason, str]:
        name = group.name
        if name in self.backoff:
            return NotTriggeredReason.BACKOFF, self.backoff[name]
        if self.group_left.get(name, 0) <= 0:
            return NotTriggeredReason.MAX_SIZE, f"group {name} at its max ({group.max})"
        if pinned:
            return (NotTriggeredReason.NODE_NOT_OFF,
                    f"the node of group {name} it names is not off (on, failed or disabled)")
        if name in self.boards and not self.boards[name]:
            return NotTriggeredReason.NO_NODE_LEFT, f"group {name} has no powered-off node left"
        if self.cluster_left is not None and self.cluster_left <= 0:
            return NotTriggeredReason.MAX_NODES, f"cluster max_nodes ({self.settings.max_nodes}) reached"
        if self.booting_left is not None and self.booting_left <= 0:
            return (NotTriggeredReason.MAX_BOOTING,
                    f"max_booting ({self.settings.max_booting}) nodes already powering on")
        return NotTriggeredReason.NO_ROOM, f"group {name} has room for no more of these pods"


@dataclasses.dataclass(frozen=True, slots=True)
class NewNode:
    group: str
    node: str | None
    pods: tuple[str, ...]


def open_pinned_boards(pods: Sequence[PodInfo], infos: Sequence[GroupInfo], budget: Budget) -> list[Slot]:
    """Power on the very boards that pods pinned by hostname name (generic packing cannot: it picks
    any off board). Returns the opened boards as empty slots; the caller places the pods on them."""
    counts: dict[Shape, int] = {}
    for pod in pods:
        shape = shape_of(pod)
        if pinned(shape):
            counts[shape] = counts.get(shape, 0) + 1
    opened: list[Slot] = []
    for shape in sorted(counts, key=lambda s: (-s.gpus, -s.cpu_m, -s.memory_mib, repr(s.constraints))):
        want = counts[shape] - sum(
            room_for(shape, o.free) for o in opened if allows(shape.constraints, o.traits)
        )
        for info in infos:
            name = info.group.name
            if not info.group.nodes or not info.capacity.holds(shape):
                continue
            for board in list(budget.boards.get(name, ())):
                if want <= 0 or budget.allowance(name) <= 0:
                    break
                traits = info.board_traits(board)
                if allows(shape.constraints, traits):
                    budget.take_board(name, board)
                    cap = info.capacity
                    slot = Slot(board, name, traits, [cap.cpu_m, cap.memory_mib, cap.gpus, cap.pods])
                    opened.append(slot)
                    want -= room_for(shape, slot.free)
    return opened


def plan_new_nodes(
    pods: Sequence[PodInfo], infos: Sequence[GroupInfo], budget: Budget
) -> tuple[list[NewNode], list[NotTriggered]]:
    """Bin-pack ``pods`` onto new nodes of the eligible groups; the rest get a ``NotTriggered``."""
    keys: dict[Shape, list[str]] = {}
    for pod in pods:
        keys.setdefault(shape_of(pod), []).append(pod.key)
    remaining = {s: len(k) for s, k in keys.items()}
    taken = dict.fromkeys(keys, 0)
    # pods pinned to a hostname were given their boards already (open_pinned_boards): never any node
    fits = {(i.group.name, s): i.fits(s) and not pinned(s) for i in infos for s in keys}
    new: list[NewNode] = []
    while True:
        candidates = [
            i for i in infos
            if budget.allowance(i.group.name) > 0
            and any(n > 0 and fits[(i.group.name, s)] for s, n in remaining.items())
        ]
        if not candidates:
            break
        top = max(i.group.priority for i in candidates)
        best: tuple[tuple[float, float, str], GroupInfo, Packing] | None = None
        for info in candidates:
            if info.group.priority != top:
                continue
            name = info.group.name
            demand = {s: n for s, n in remaining.items() if n > 0 and fits[(name, s)]}
            packing = pack(demand, info.capacity, budget.allowance(name))
            rank = (packing.waste(info.capacity), info.group.cost_per_hour * packing.nodes, name)
            if best is None or rank < best[0]:
                best = (rank, info, packing)
        assert best is not None
        _, info, packing = best
        names = budget.take(info.group.name, packing.nodes)
        at = 0
        for fill in packing.fills:
            for _ in range(fill.times):
                assigned: list[str] = []
                for shape, n in fill.counts:
                    start = taken[shape]
                    assigned.extend(keys[shape][start:start + n])
                    taken[shape] = start + n
                    remaining[shape] -= n
                new.append(NewNode(info.group.name, names[at], tuple(sorted(assigned))))
                at += 1

    not_triggered: list[NotTriggered] = []
    for shape, n in remaining.items():
        if n <= 0:
            continue
        if pinned(shape):
            eligible = [i.group for i in infos if i.group.nodes and i.any_board_fits(shape)]
        else:
            eligible = [i.group for i in infos if fits[(i.group.name, shape)]]
        if not eligible:
            kind = NotTriggeredReason.NO_GROUP_FITS
            reason = f"no node group fits the pod ({shape.describe()})"
        else:
            whys = [budget.why_not(g, pinned(shape)) for g in eligible]
            kind, reason = whys[0][0], "; ".join(text for _, text in whys)  # the first group tried
        not_triggered.extend(NotTriggered(k, reason, kind) for k in keys[shape][taken[shape]:])
    not_triggered.sort(key=lambda t: t.pod)
    return new, not_triggered
