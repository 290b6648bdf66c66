"""``daemon --deployment ID``: node groups and power managers from a recorded deployment.

The recorded plan gives the cloud worker groups (size, image, min/max, priority, labels) and the edge
fleets (each board's address, SSH login and power settings, ``board_specs`` of the plan JSON); the
engine's own helpers give what a new worker is made of, exactly as ``create`` and ``scale`` make one:
the deployment's key pair and security group (``ensure_*`` are idempotent, so this finds the existing
ones), the image id, the sizes to try on capacity errors, and the cloud-init user data that joins it
to k3s under the name the daemon gave it (rendered per worker: ``LaunchSpec.user_data_for``).
Credentials are read again from where the deployment recorded they came from, or ``--auth``
(DESIGN §2: never from the state file).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from elastic.daemon import DaemonSettings
from elastic.groups import parse_taints
from elastic.model import GroupNode, NodeGroup
from elastic.power import CloudPower, LaunchSpec, PowerManager
from provisioner.errors import BadInput

log = logging.getLogger(__name__)


def groups_from_deployment(deployment: Any, known_hosts: str | None = None) -> tuple[NodeGroup, ...]:
    """The deployment's elastic groups, in plan order: cloud worker groups (``power: {type: cloud}``)
    and edge fleets (their template's power command or Wake-on-LAN, with an SSH shutdown before the
    cut through each board's own login; ``known_hosts`` is the deployment's, where ``configure``
    trusted the boards' host keys)."""
    from provisioner.engine.targets import targets_from_json

    plan = deployment.plan
    targets = {t.name: t for t in targets_from_json(plan.get("targets") or [])}
    groups = []
    for info in plan.get("groups") or []:
        name = str(info["name"])
        target = targets.get(name)
        if info.get("provider") == "fleet":
            if info.get("role") == "edge":
                fleet = _fleet_group(deployment, info, target, known_hosts)
                if fleet is not None:
                    groups.append(fleet)
            continue
        if target is None or not target.cloud or target.role != "worker":
            continue
        labels = {str(k): str(v) for k, v in (target.labels or info.get("labels") or {}).items()}
        groups.append(NodeGroup(
            name=target.name,
            cpus=float(info.get("size_cpus") or target.cpus),
            memory_mib=int(info.get("size_memory_mib") or target.memory_mib),
            min=target.min, max=target.max,
            cost_per_hour=float(info.get("price_per_hour") or 0.0),
            priority=int(info.get("priority") or 0),
            labels={**labels, "kubernetes.io/arch": target.arch},
            taints=parse_taints(list(target.taints), f"deployment {deployment.name}: group {name!r}"),
            power={"type": "cloud", "deployment": deployment.id},
        ))
    if not groups:
        raise BadInput(f"deployment {deployment.name}: no cloud worker group or powered edge fleet for the "
                       f"daemon to scale")
    return tuple(groups)


def deployment_groups(store: Any, ref: str) -> tuple[NodeGroup, ...]:
    """``groups_from_deployment`` of a deployment in ``store`` (a ``StateStore``), with the
    deployment's ``known_hosts`` file when ``configure`` wrote one."""
    from provisioner.inventory import KNOWN_HOSTS_FILE

    deployment = store.get(ref)
    known_hosts = store.deployment_dir(deployment.id) / KNOWN_HOSTS_FILE
    return groups_from_deployment(deployment, str(known_hosts) if known_hosts.is_file() else None)


def _fleet_group(deployment: Any, info: Mapping[str, Any], target: Any,
                 known_hosts: str | None) -> NodeGroup | None:
    """An edge fleet as a daemon group, or None (with a warning) when the daemon cannot power it."""
    name = str(info["name"])
    boards = info.get("board_specs")
    if boards is None:
        log.warning("deployment %s: group %s: its boards' power settings are not recorded (planned by an "
                    "older version); not scaled (run the daemon with --groups for it)", deployment.name, name)
        return None
    if not boards:
        return None
    power = boards[0].get("power") or {}
    kind = power.get("type")
    if kind not in ("command", "wol"):
        log.warning("deployment %s: group %s: its boards have no power_on command nor wol_mac; the daemon "
                    "leaves them on", deployment.name, name)
        return None
    settings: dict[str, Any] = {"type": kind}
    if kind == "command":
        settings["power_on"] = power["power_on"]
    if power.get("power_off"):
        settings["power_off"] = power["power_off"]
    jumped = [str(b["name"]) for b in boards if b.get("proxy_jump")]
    if jumped:  # reached through the front-end: the daemon's own ssh cannot log in directly
        log.warning("deployment %s: group %s: %s reached through the front-end; no SSH shutdown before the "
                    "power cut", deployment.name, name, ", ".join(jumped))
        if "power_off" not in settings:
            log.warning("deployment %s: group %s: no power_off command either; not scaled", deployment.name,
                        name)
            return None
    else:
        settings["shutdown"] = {"known_hosts": known_hosts} if known_hosts else {}
    labels = {str(k): str(v) for k, v in ((target.labels if target else None) or {}).items()}
    arch = str(info.get("arch") or "arm64")
    return NodeGroup(
        name=name,
        cpus=float(info.get("cpus") or 4), memory_mib=int(info.get("memory_mib") or 8192),
        min=int(info.get("min") or 0), max=int(info.get("max") or len(boards)),
        priority=int(info.get("priority") or 0),
        labels={**labels, "kubernetes.io/arch": arch},
        taints=parse_taints(list(target.taints) if target else [], f"deployment {deployment.name}: group "
                            f"{name!r}"),
        nodes=tuple(GroupNode(name=str(b["name"]), address=str(b["address"]),
                              mac=(b.get("power") or {}).get("mac"), ssh_user=b.get("ssh_user") or None,
                              ssh_port=int(b["ssh_port"]) if b.get("ssh_port") else None,
                              ssh_key=b.get("ssh_key") or None) for b in boards),
        power=settings,
    )


def cloud_managers(groups: Sequence[NodeGroup], *, state_path: Path, auth: str | None,
                   settings: Any) -> Mapping[str, PowerManager]:
    """A ``CloudPower`` per cloud group, from the deployments their ``power.deployment`` names."""
    from provisioner.cloudinit import node_user_data, worker_join
    from provisioner.clouds.registry import driver_for, ec2_subnets
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

            subnets = ec2_subnets(dep.plan.get("targets") or [])

            def factory(provider: str, region: str | None, credentials: Any = credentials,
                        subnets: Any = subnets) -> Any:
                return driver_for(provider, credentials[provider], region, settings=settings.provisioner,
                                  network=subnets.get((provider, region)) if provider == "aws" else None)

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
                    user_data_for=functools.partial(node_user_data, worker_join(store, dep, target.name)),
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
