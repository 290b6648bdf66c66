"""Node lifecycle (CLUES's states): what the daemon remembers about each node, and how it moves.

The daemon keeps no database. A node's lifecycle record lives as annotations on its Node object
(``oscar-deploy/state``, ``/since``, ``/group``, ``/powered-on-at``, ``/idle-since``, ``/acted-at``); a
machine that has no Node object yet (a board or instance still booting, a board that failed before
it ever registered) is kept in the status ConfigMap, and cloud instances are found again by their
tags. Any replica that wins the Lease rebuilds the same ``Ledger`` from those.

Transitions here are pure: ``observe`` moves a record on from what the API shows (registered,
Ready, user pods); the actuator moves it through powering_on / powering_off / off / failed; the
operator alone sets and clears ``disabled``. ``next_backoff`` is the group backoff after a failed
power-on (exponential, ``backoff_min_s`` doubling up to ``backoff_max_s``, reset after a success).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from elastic.model import NodeState

PREFIX = "oscar-deploy/"
STATE = PREFIX + "state"
SINCE = PREFIX + "since"
GROUP = PREFIX + "group"
POWERED_ON_AT = PREFIX + "powered-on-at"
IDLE_SINCE = PREFIX + "idle-since"
ACTED_AT = PREFIX + "acted-at"
ANNOTATIONS = (STATE, SINCE, GROUP, POWERED_ON_AT, IDLE_SINCE, ACTED_AT)

EXCLUDE_DISRUPTION = "node.kubernetes.io/exclude-disruption"
"""Label the daemon puts on the boards it powers off: the node lifecycle controller leaves such nodes
out of its zone health (``ComputeZoneState``), so a fleet mostly switched off does not put the zone in
partial disruption, where it stops evicting pods from nodes that really fail."""
EXCLUDE_DISRUPTION_VALUE = "oscar-deploy"
OUT_OF_SERVICE = {"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute"}
"""Taint the daemon puts on a board whose power it cut while pods were still bound to it: the pods
are deleted and podgc force-deletes them (a powered-off kubelet never confirms a graceful deletion)."""


def off_label(state: NodeState) -> str | None:
    """The ``EXCLUDE_DISRUPTION`` value a board's Node should carry in ``state`` (None: none)."""
    return EXCLUDE_DISRUPTION_VALUE if state is NodeState.OFF else None


OPERATOR_STATES = frozenset({NodeState.DISABLED, NodeState.FAILED})
"""States only the operator (``nodes enable|reset``) leaves; the daemon never touches such nodes."""


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    """The daemon's memory of one node (times are epoch seconds)."""

    name: str
    group: str
    state: NodeState
    since: float
    powered_on_at: float | None = None
    idle_since: float | None = None
    acted_at: float | None = None
    """When the daemon last cut or gave a board power. Until the Node is seen not Ready, or its
    kubelet renews its Lease after this moment, a ``Ready=True`` is stale: the node lifecycle
    controller marks a silent Node Unknown only after its grace period (50 s in Kubernetes 1.32)."""

    def moved(self, state: NodeState, now: float, **changes: Any) -> Record:
        """This record in ``state`` (``since`` only changes when the state does)."""
        since = self.since if state is self.state else now
        return dataclasses.replace(self, state=state, since=since, **changes)

    def annotations(self) -> dict[str, str | None]:
        """The Node annotations for this record (None deletes one in a merge patch)."""
        return {
            STATE: self.state.value,
            SINCE: f"{self.since:.3f}",
            GROUP: self.group,
            POWERED_ON_AT: None if self.powered_on_at is None else f"{self.powered_on_at:.3f}",
            IDLE_SINCE: None if self.idle_since is None else f"{self.idle_since:.3f}",
            ACTED_AT: None if self.acted_at is None else f"{self.acted_at:.3f}",
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group, "state": self.state.value, "since": self.since,
            "powered_on_at": self.powered_on_at, "idle_since": self.idle_since, "acted_at": self.acted_at,
        }

    @classmethod
    def from_json(cls, name: str, data: Mapping[str, Any]) -> Record:
        return cls(name, str(data["group"]), NodeState(data["state"]), float(data["since"]),
                   _float(data.get("powered_on_at")), _float(data.get("idle_since")),
                   _float(data.get("acted_at")))


def _float(value: Any) -> float | None:
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


def from_annotations(name: str, annotations: Mapping[str, str], group: str) -> Record | None:
    """The record stored on a Node, or None if it carries none (or a state this version does not know)."""
    raw = annotations.get(STATE)
    if raw is None:
        return None
    try:
        state = NodeState(raw)
    except ValueError:
        return None
    return Record(name, annotations.get(GROUP) or group, state, _float(annotations.get(SINCE)) or 0.0,
                  _float(annotations.get(POWERED_ON_AT)), _float(annotations.get(IDLE_SINCE)),
                  _float(annotations.get(ACTED_AT)))


def trust_ready(record: Record, ready: bool, lease_renewed: float | None) -> tuple[bool, Record]:
    """Whether a ``Ready=True`` can be believed after the daemon's own power action: only once the
    node was seen not Ready since, or its kubelet renewed its ``kube-node-lease`` Lease after the
    action (``lease_renewed``, epoch seconds). Returns the readiness to act on, and the record
    (``acted_at`` cleared once the Node speaks for the machine again)."""
    if record.acted_at is None:
        return ready, record
    if not ready or (lease_renewed is not None and lease_renewed > record.acted_at):
        return ready, dataclasses.replace(record, acted_at=None)
    return False, record


def observe(record: Record, *, ready: bool, user_pods: int, now: float,
            lease_renewed: float | None = None) -> Record:
    """Move a record on from what the API shows; transitional and operator states stay as they are
    (the actuator and the policy's timers end them). A ``Ready=True`` is believed as ``trust_ready``
    says."""
    state = record.state
    if state in OPERATOR_STATES or state is NodeState.POWERING_OFF:
        return record
    ready, record = trust_ready(record, ready, lease_renewed)
    if state in (NodeState.POWERING_ON, NodeState.OFF, NodeState.UNKNOWN):
        if not ready:
            return record
        return _on(record, user_pods, now, fresh=True)
    # IDLE / USED
    if not ready:
        return record.moved(NodeState.UNKNOWN, now)
    return _on(record, user_pods, now, fresh=False)


def _on(record: Record, user_pods: int, now: float, *, fresh: bool) -> Record:
    if user_pods > 0:
        return record.moved(NodeState.USED, now, idle_since=None)
    idle_since = now if fresh or record.idle_since is None else record.idle_since
    return record.moved(NodeState.IDLE, now, idle_since=idle_since)


def first_sight(name: str, group: str, *, ready: bool, user_pods: int, now: float,
                registered_at: float | None = None, fleet: bool = True) -> Record:
    """A node of a group the daemon has no record of (first start, or powered on by hand).

    Ready: idle or used. Not Ready: a board is off (that is how a powered-off board looks); a cloud
    worker (``fleet`` False) is still booting since it registered (``registered_at``), so its
    capacity counts and ``max_wait_poweron`` applies to it."""
    if ready:
        return observe(Record(name, group, NodeState.UNKNOWN, now), ready=True, user_pods=user_pods, now=now)
    if fleet:
        return Record(name, group, NodeState.OFF, now)
    since = registered_at if registered_at is not None else now
    return Record(name, group, NodeState.POWERING_ON, since, powered_on_at=since)


@dataclasses.dataclass(frozen=True, slots=True)
class Backoff:
    failures: int
    until: float


def next_backoff(previous: Backoff | None, now: float, min_s: float, max_s: float) -> Backoff:
    """After a failed power-on: wait ``min_s``, doubling with each failure in a row, at most ``max_s``."""
    failures = (previous.failures if previous else 0) + 1
    return Backoff(failures, now + min(min_s * 2 ** (failures - 1), max_s))


class Ledger:
    """Every record and group backoff, shared by the decision loop and the actuator's workers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, Record] = {}
        self._backoff: dict[str, Backoff] = {}
        self.busy: set[str] = set()
        """Nodes an actuator worker is acting on now: the loop leaves their records alone."""

    def get(self, name: str) -> Record | None:
        with self._lock:
            return self._records.get(name)

    def put(self, record: Record) -> None:
        with self._lock:
            self._records[record.name] = record

    def drop(self, name: str) -> None:
        with self._lock:
            self._records.pop(name, None)

    def records(self) -> list[Record]:
        with self._lock:
            return list(self._records.values())

    def claim(self, name: str) -> bool:
        """Mark a node busy; False if a worker already has it."""
        with self._lock:
            if name in self.busy:
                return False
            self.busy.add(name)
            return True

    def release(self, name: str) -> None:
        with self._lock:
            self.busy.discard(name)

    def is_busy(self, name: str) -> bool:
        with self._lock:
            return name in self.busy

    def backoff(self) -> dict[str, Backoff]:
        with self._lock:
            return dict(self._backoff)

    def backoff_until(self) -> dict[str, float]:
        with self._lock:
            return {group: b.until for group, b in self._backoff.items()}

    def fail_group(self, group: str, now: float, min_s: float, max_s: float) -> Backoff:
        with self._lock:
            backoff = self._backoff[group] = next_backoff(self._backoff.get(group), now, min_s, max_s)
            return backoff

    def succeed_group(self, group: str) -> None:
        with self._lock:
            self._backoff.pop(group, None)

    def replace(self, records: Iterable[Record], backoff: Mapping[str, Backoff]) -> None:
        """Start again from rebuilt state (a replica that just won the Lease)."""
        with self._lock:
            self._records = {r.name: r for r in records}
            self._backoff = dict(backoff)

    # ---- the part kept in the status ConfigMap ------------------------------------------------------
    def dump(self, registered: set[str]) -> str:
        """JSON of what has no Node to live on: unregistered records and the group backoffs."""
        with self._lock:
            records = {n: r.to_json() for n, r in sorted(self._records.items()) if n not in registered}
            backoff = {g: {"failures": b.failures, "until": b.until}
                       for g, b in sorted(self._backoff.items())}
        return json.dumps({"records": records, "backoff": backoff}, sort_keys=True)


def load_dump(text: str | None) -> tuple[list[Record], dict[str, Backoff]]:
    """Read ``Ledger.dump`` back; anything unreadable counts as empty (the cloud and Nodes still say)."""
    try:
        data = json.loads(text or "{}")
        records = [Record.from_json(n, r) for n, r in (data.get("records") or {}).items()]
        backoff = {g: Backoff(int(b["failures"]), float(b["until"]))
                   for g, b in (data.get("backoff") or {}).items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return [], {}
    return records, backoff
