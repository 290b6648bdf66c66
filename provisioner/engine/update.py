"""``create --update``: apply the inputs ``provisioner.update`` found changeable in place.

The security group's rules in every location of the deployment become the new plan's (missing ones
authorized, CIDR rules no longer wanted revoked), and so do the record's, its launch specs' (what
``scale`` and the daemon launch with) and the recorded inputs; a changed worker count is ``scale``.
The rules are changed first and recorded after, so an interrupted update is finished by running it
again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from provisioner.config import Settings
from provisioner.engine.progress import NullProgress, Progress
from provisioner.engine.scale import BusyProbe, ScaleResult, scale
from provisioner.engine.sites import DriverFactory, Drivers, firewall_rules
from provisioner.plan import Plan
from provisioner.record import Rule, self_reach_rules
from provisioner.state import StateStore
from provisioner.update import Update


@dataclasses.dataclass(frozen=True)
class UpdateResult:
    security_groups: tuple[str, ...] = ()
    """The security groups whose rules were brought to the new plan's."""
    scaled: tuple[ScaleResult, ...] = ()


def update(store: StateStore, ref: str, plan: Plan, change: Update, inputs: Mapping[str, Any],
           driver_factory: DriverFactory, settings: Settings, *, progress: Progress | None = None,
           busy: Iterable[str] | BusyProbe = ()) -> UpdateResult:
    """Apply ``change`` (decided from ``plan``, made with every input) to deployment ``ref``, then
    record ``inputs`` (the non-secret ones, as resolved) as the deployment's."""
    progress = progress or NullProgress()
    dep = store.get(ref)
    groups: list[str] = []
    with store.lock(dep.id):
        if change.security_rules:
            record = store.record(dep.id)
            rules = tuple(Rule(r.protocol, r.port_from, r.port_to, r.source, r.description)
                          for r in plan.security_rules)
            front = record.front_end
            addresses = [n.addresses.get("public") or [] for n in store.nodes(dep.id, front.name)] \
                if front is not None and front.cloud else []
            rules += self_reach_rules(rules, addresses[0][0] if addresses and addresses[0] else None)
            drivers = Drivers(driver_factory)
            for provider, region in dict.fromkeys((g.provider, g.region) for g in record.groups if g.cloud):
                group_id = drivers(provider, region).ensure_security_group(dep.id, firewall_rules(rules),
                                                                          revoke_others=True)
                store.add_event(dep.id, "update", f"{provider} {region}: security group {group_id} "
                                f"rules set (admin CIDR {plan.admin_cidr})")
                groups.append(group_id)
            store.set_plan(dep.id, record.with_security(rules, plan.admin_cidr).to_dict())
        scaled = tuple(scale(store, dep.id, group, count, driver_factory, settings, progress=progress,
                             busy=busy) for group, count in change.counts.items())
        store.set_inputs(dep.id, inputs)
        store.add_event(dep.id, "update", "done")
    return UpdateResult(tuple(groups), scaled)
