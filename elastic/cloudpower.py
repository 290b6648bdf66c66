"""``daemon --deployment ID``: node groups and cloud power managers from a recorded deployment.

The recorded plan gives the cloud worker groups (size, image, min/max, priority, labels); the engine's
own helpers give what a new worker is made of, exactly as ``create`` and ``scale`` make one: the
deployment's key pair and security group (``ensure_*`` are idempotent, so this finds the existing
ones), the image id, the sizes to try on capacity errors, and the cloud-init user data that joins it
to k3s. Credentials are read again from where the deployment recorded they came from, or ``--auth``
(DESIGN §2: never from the state file).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from elastic.daemon import DaemonSettings
from elastic.model import NodeGroup
from elastic.power import CloudPower, LaunchSpec, PowerManager
from provisioner.errors import BadInput


def groups_from_deployment(deployment: Any) -> tuple[NodeGroup, ...]:
    """The deployment's cloud worker groups as daemon groups with ``power: {type: cloud}``."""
    from provisioner.engine.targets import targets_from_json

    plan = deployment.plan
    planned = {str(g["name"]): g for g in plan.get("groups") or []}
    groups = []
    for target in targets_from_json(plan.get("targets") or []):
        if not target.cloud or target.role != "worker":
            continue
        info = planned.get(target.name, {})
        labels = {str(k): str(v) for k, v in (info.get("labels") or {}).items()}
        groups.append(NodeGroup(
            name=target.name,
            cpus=float(info.get("size_cpus") or target.cpus),
            memory_mib=int(info.get("size_memory_mib") or target.memory_mib),
            min=target.min, max=target.max,
            cost_per_hour=float(info.get("price_per_hour") or 0.0),
            priority=int(info.get("priority") or 0),
            labels={**labels, "kubernetes.io/arch": target.arch},
            power={"type": "cloud", "deployment": deployment.id},
        ))
    if not groups:
        raise BadInput(f"deployment {deployment.name}: no cloud worker group for the daemon to scale")
    return tuple(groups)


def cloud_managers(groups: Sequence[NodeGroup], *, state_path: Path, auth: str | None,
                   settings: Any) -> Mapping[str, PowerManager]:
    """A ``CloudPower`` per cloud group, from the deployments their ``power.deployment`` names."""
    from provisioner.cloudinit import worker_user_data
    from provisioner.clouds.registry import driver_for
    from provisioner.credentials import credentials_from_source, resolve_credentials
    from provisioner.engine.create import key_path
    from provisioner.engine.keys import public_key_of
    from provisioner.engine.sites import Drivers, firewall_rules, resolve_images, resolve_sizes
    from provisioner.engine.targets import targets_from_json
    from provisioner.state import StateStore

    managers: dict[str, PowerManager] = {}
    with StateStore.open(state_path) as store:
        for ref in dict.fromkeys(str(g.power["deployment"]) for g in groups):
            dep = store.get(ref)
            mine = [g for g in groups if g.power.get("deployment") == ref]
            targets = {t.name: t for t in targets_from_json(dep.plan.get("targets") or [])}
            missing = [g.name for g in mine if g.name not in targets or not targets[g.name].cloud]
            if missing:
                raise BadInput(f"deployment {dep.name}: no cloud group {', '.join(map(repr, missing))}")
            providers = list(dict.fromkeys(targets[g.name].provider for g in mine))
            if auth:
                credentials = resolve_credentials(providers, auth)
            else:
                credentials = {p: (credentials_from_source(p, dep.credentials[p]) if dep.credentials.get(p)
                                   else resolve_credentials([p])[p]) for p in providers}

            def factory(provider: str, region: str | None, credentials: Any = credentials) -> Any:
                return driver_for(provider, credentials[provider], region, settings=settings.provisioner)

            drivers = Drivers(factory)
            chosen = [targets[g.name] for g in mine]
            images = resolve_images(chosen, drivers)
            sizes = resolve_sizes(chosen, drivers)
            public_key = public_key_of(key_path(store, dep.id).read_text())
            rules = firewall_rules(dep.plan.get("security_rules") or [])
            for target in chosen:
                driver = drivers(target.provider, target.region)
                launch = LaunchSpec(
                    sizes=sizes[target.name], image=images[target.name],
                    key_name=driver.ensure_key_pair(dep.id, public_key),
                    security_group=driver.ensure_security_group(dep.id, rules),
                    user_data=worker_user_data(store, dep, target.name),
                    network=target.network, disk_gib=target.disk_gib,
                )
                managers[target.name] = CloudPower(driver, dep.id, {target.name: launch})
    return managers


POLICY_KEYS = ("idle_time_s", "max_wait_poweron_s", "max_wait_poweroff_s", "extra_free", "max_booting",
               "max_nodes")
"""The elasticity settings a template may give (``provisioner.spec.ElasticSpec``), recorded in the plan."""


def with_deployment_settings(deployment: Any, settings: DaemonSettings) -> DaemonSettings:
    """The daemon's settings with the deployment's recorded elasticity settings (the template's
    values, already merged with ``[elastic]`` at plan time) laid over them."""
    recorded = deployment.plan.get("elastic") or {}
    changes = {key: type(getattr(settings.policy, key))(recorded[key]) for key in POLICY_KEYS
               if recorded.get(key) is not None}
    return dataclasses.replace(settings, policy=dataclasses.replace(settings.policy, **changes))
