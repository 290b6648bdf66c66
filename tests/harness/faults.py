"""Seeded fault injection and latency shared by the cloud test servers.

A cloud that refuses some calls is what the engine's retry and fallback code must survive, so the
servers decide per call, before doing anything, whether to answer with an error instead. The decision
is pure given the random generator's state: the same seed and the same order of calls give the same
faults. Rules are data (JSON-friendly) so they can be set at start, over HTTP at run time, or from
Python.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Call:
    """What a fault rule may look at: the API action and, for instance creation, size and zone."""

    action: str
    mutating: bool
    instance_type: str | None = None
    zone: str | None = None


@dataclass
class FaultRule:
    """Answer a share `rate` of the matching calls with error `code` (and its HTTP `status`).

    `actions` limits the rule to those API actions (default: every mutating call); `instance_type`
    and `zone` limit it further (for capacity errors); `remaining` caps how many times it fires.
    """

    code: str
    rate: float = 1.0
    status: int | None = None
    actions: list[str] | None = None
    instance_type: str | None = None
    zone: str | None = None
    remaining: int | None = None
    message: str | None = None
    performed: bool = False
    """The call is carried out, then answered with the error (an answer lost on the way back)."""

    def matches(self, call: Call) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.actions is None:
            if not call.mutating:
                return False
        elif call.action not in self.actions:
            return False
        if self.instance_type is not None and call.instance_type != self.instance_type:
            return False
        return self.zone is None or call.zone == self.zone


@dataclass
class FaultPlan:
    """The whole fault/latency setting of a server; `latency_s` is added to every API call."""

    seed: int = 0
    latency_s: float = 0.0
    rules: list[FaultRule] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultPlan:
        """Build from JSON data; unknown keys are a caller's mistake and raise TypeError/ValueError."""
        rules = [FaultRule(**r) for r in data.get("rules", [])]
        for r in rules:
            if not 0.0 <= r.rate <= 1.0:
                raise ValueError(f"fault rate must be within [0, 1], got {r.rate}")
        return cls(seed=int(data.get("seed", 0)), latency_s=float(data.get("latency_s", 0.0)), rules=rules)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Fault:
    """An injected error: the cloud's error code, HTTP status and message."""

    code: str
    status: int
    message: str
    performed: bool = False


class FaultInjector:
    """Thread-safe holder of the current plan and its seeded generator; also counts what it did."""

    def __init__(self, plan: FaultPlan | None = None, default_status: dict[str, int] | None = None,
                 default_messages: dict[str, str] | None = None) -> None:
        self._lock = threading.Lock()
        self._default_status = default_status or {}
        self._default_messages = default_messages or {}
        self.injected: list[tuple[str, str]] = []
        self.set_plan(plan or FaultPlan())

    def set_plan(self, plan: FaultPlan) -> None:
        """Replace the plan and reseed, so a test's faults do not depend on earlier tests."""
        with self._lock:
            self._plan = plan
            self._rng = random.Random(plan.seed)

    @property
    def plan(self) -> FaultPlan:
        return self._plan

    @property
    def latency_s(self) -> float:
        return self._plan.latency_s

    def decide(self, call: Call) -> Fault | None:
        """Return the fault to answer `call` with, or None to let it through."""
        with self._lock:
            for rule in self._plan.rules:
                if not rule.matches(call):
                    continue
                if rule.rate < 1.0 and self._rng.random() >= rule.rate:
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                self.injected.append((call.action, rule.code))
                status = rule.status or self._default_status.get(rule.code, 503)
                message = rule.message or self._default_messages.get(rule.code, rule.code)
                return Fault(rule.code, status, message, rule.performed)
        return None
