"""``create --update``: which changed inputs a running deployment can take in place.

An input is judged by what it changes in the plan, not by its name: the plan of the recorded
inputs is compared with the plan where only that input differs. It can be applied in place when all
it changes is the security group's rules (``admin_cidr``: rules authorized and revoked) or the count
of a cloud worker group (as ``scale`` does). Anything else (sizes, images, region, provider,
components, outputs, the elasticity settings, a group's bounds) would leave the machines or the
cluster other than the record says, so such an input is refused by name, before anything changes.
Pure: the CLI makes the plans, the engine (``provisioner.engine.update``) applies the result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from provisioner.errors import BadInput
from provisioner.plan import Plan, plan_to_json

_IGNORED = frozenset({"warnings", "cost_per_hour", "max_cost_per_hour", "cost_complete"})
"""What follows from a change without being one (a count changes the cost)."""
_RULES = frozenset({"admin_cidr", "security_rules"})


@dataclasses.dataclass(frozen=True)
class Update:
    """What ``--update`` applies: the new security rules (None: unchanged) and worker counts."""

    security_rules: bool = False
    counts: Mapping[str, int] = dataclasses.field(default_factory=dict)
    """Cloud worker group → its new count."""


def _group_changes(base: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``groups.NAME.FIELD`` for each field that differs, ``groups`` if groups come or go."""
    if [g["name"] for g in base["groups"]] != [g["name"] for g in new["groups"]]:
        return ["groups"]
    return [f"groups.{b['name']}.{key}" for b, n in zip(base["groups"], new["groups"], strict=True)
            for key in sorted(set(b) | set(n)) if b.get(key) != n.get(key)]


def plan_changes(base: Plan, new: Plan) -> list[str]:
    """What differs between two plans: top-level fields of ``plan -o json`` and, for groups,
    ``groups.NAME.FIELD``."""
    a, b = plan_to_json(base), plan_to_json(new)
    changes = [key for key in a if key not in _IGNORED and key != "groups" and a[key] != b.get(key)]
    return changes + _group_changes(a, b)


def in_place(base: Plan, change: str) -> bool:
    """Whether one plan change can be applied to the running deployment."""
    if change in _RULES:
        return True
    parts = change.split(".")
    if len(parts) == 3 and parts[2] == "count":
        group = next(g for g in base.groups if g.name == parts[1])
        return group.role == "worker" and group.provider != "fleet"
    return False


def decide_update(deployment: str, base: Plan, by_input: Mapping[str, Plan], final: Plan,
                  secrets_changed: list[str]) -> Update:
    """The update that takes the deployment from ``base`` (its recorded inputs) to ``final`` (with
    every given input), or ``BadInput`` naming each input that cannot change in place (what it
    would change) and each changed secret. ``by_input``: input → the plan with only it changed."""
    refused = [f"{name} (a secret)" for name in secrets_changed]
    for name, plan in by_input.items():
        fixed = [c for c in plan_changes(base, plan) if not in_place(base, c)]
        if fixed:
            refused.append(f"{name} (changes {', '.join(fixed)})")
    if refused:
        raise BadInput(f"deployment {deployment}: --update cannot change {'; '.join(refused)} in place: "
                       "leave them out, or destroy the deployment and create it again")
    changes = plan_changes(base, final)
    counts = {g.name: g.count for g, old in zip(final.groups, base.groups, strict=True)
              if g.count != old.count}
    return Update(security_rules=any(c in _RULES for c in changes), counts=counts)
