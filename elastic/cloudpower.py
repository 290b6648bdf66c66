"""``daemon --deployment ID``: node groups and power managers from a deployment's record.

The groups come from ``provisioner.record.daemon_groups`` (the very function that writes the
daemon's ConfigMap at ``configure``), so a daemon run by hand and the one ``create`` installs scale the
same groups the same way. A cloud group's workers are made from its recorded ``LaunchSpec``: the
deployment's key pair and security group (``ensure_*`` are idempotent, so this finds the existing
ones), the image id, the sizes to try on capacity errors, and the cloud-init user data that joins it
to k3s under the name the daemon gave it. Everything arrives as a ``DaemonDeployment`` (record,
where the credentials come from, the join token): this module never opens the operator's state file
(an import-linter contract), and credentials are read again from their source, or ``--auth``.

In its pod the daemon has no state file: ``configure`` writes each cloud group's launch spec into
the ConfigMap (``power.launch``), and the role adds where the Secret's files are (``power.credentials``,
a directory of files named as the credential's environment variables; ``power.token``, the join
token). ``mounted_deployments`` makes the same hand-off from those.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from elastic.daemon import DaemonSettings
from elastic.groups import parse_groups
from elastic.model import NodeGroup
from elastic.power import CloudPower, LaunchSpec, PowerManager
from provisioner.credentials import CredentialSource
from provisioner.errors import BadInput
from provisioner.record import (
    KNOWN_HOSTS_FILE,
    DaemonDeployment,
    DeploymentRecord,
    GroupRecord,
    daemon_groups,
    read_record,
    size_ranking,
)
from provisioner.record import LaunchSpec as RecordedLaunch

log = logging.getLogger(__name__)


def groups_from_deployment(deployment: Any, known_hosts: str | None = None) -> tuple[NodeGroup, ...]:
    """The deployment's elastic groups (``daemon_groups``), in record order; ``deployment`` has the
    recorded ``plan``, its ``id`` and ``name``; ``known_hosts`` is the deployment's, where
    ``configure`` trusted the boards' host keys."""
    record, _migrated = read_record(deployment.plan)
    docs = daemon_groups(record, deployment.id, known_hosts=known_hosts,
                         warn=lambda message: log.warning("deployment %s: %s", deployment.name, message))
    if not docs:
        raise BadInput(f"deployment {deployment.name}: no cloud worker group or powered edge fleet for the "
                       f"daemon to scale")
    return parse_groups(docs, f"deployment {deployment.name}")


def deployment_groups(store: Any, ref: str) -> tuple[NodeGroup, ...]:
    """``groups_from_deployment`` of a deployment in ``store`` (the operator's ``StateStore``, handed
    in by the CLI), with the deployment's ``known_hosts`` file when ``configure`` wrote one."""
    deployment = store.get(ref)
    known_hosts = store.deployment_dir(deployment.id) / KNOWN_HOSTS_FILE
    return groups_from_deployment(deployment, str(known_hosts) if known_hosts.is_file() else None)


def cloud_managers(groups: Sequence[NodeGroup], deployments: Mapping[str, DaemonDeployment], *,
                   auth: str | None, settings: Any) -> Mapping[str, PowerManager]:
    """A ``CloudPower`` per cloud group, from the deployment its ``power.deployment`` names (id or
    name, a key of ``deployments``)."""
    from provisioner.cloudinit import launch_join, node_user_data
    from provisioner.clouds.base import FirewallRule
    from provisioner.clouds.registry import driver_for
    from provisioner.credentials import credentials_from_source, resolve_credentials

    managers: dict[str, PowerManager] = {}
    for ref in dict.fromkeys(str(g.power["deployment"]) for g in groups):
        dep = deployments[ref]
        mine = [g for g in groups if g.power.get("deployment") == ref]
        launches = {g.name: g.launch for g in dep.record.groups if g.launch is not None}
        missing = [g.name for g in mine if g.name not in launches]
        if missing:
            raise BadInput(f"deployment {dep.name}: no cloud group {', '.join(map(repr, missing))}")
        providers = list(dict.fromkeys(launches[g.name].provider for g in mine))
        if auth:
            credentials = resolve_credentials(providers, auth)
        else:
            credentials = {p: (credentials_from_source(p, dep.credentials[p]) if dep.credentials.get(p)
                               else resolve_credentials([p])[p]) for p in providers}
        drivers: dict[tuple[str, str | None], Any] = {}
        for group in mine:
            spec = launches[group.name]
            where = (spec.provider, spec.region)
            if where not in drivers:
                # EC2: the subnet's VPC holds the security group (network is the subnet_id input)
                drivers[where] = driver_for(spec.provider, credentials[spec.provider], spec.region,
                                            settings=settings.provisioner,
                                            network=spec.network if spec.provider == "aws" else None)
            driver = drivers[where]
            image = spec.image
            image_id = driver.resolve_image(image.distribution, image.version, image.arch, image.id) \
                if image is not None else ""
            explicit = spec.sizes[0] if spec.size_explicit and spec.sizes else None
            live = driver.sizes_that_fit(spec.cpus, spec.memory_mib, spec.arch, spec.disk_gib,
                                         explicit=explicit)
            sizes = size_ranking(spec.sizes, live, spec.size_explicit)
            if not sizes:
                raise BadInput(f"deployment {dep.name}: group {group.name}: {spec.provider} {spec.region} "
                               f"offers no size with {spec.cpus} CPUs, {spec.memory_mib} MiB ({spec.arch})")
            if spec.public_key is None or spec.user_data is None:
                raise BadInput(f"deployment {dep.name}: group {group.name}: the record has no key pair or "
                               "cloud-init inputs for new workers")
            rules = [FirewallRule(protocol="-1" if r.protocol == "all" else r.protocol,  # type: ignore[arg-type]
                                  from_port=r.port_from if r.port_from is not None else 0,
                                  to_port=r.port_to if r.port_to is not None else 65535,
                                  source=r.source, description=r.description) for r in spec.security_rules]
            join = launch_join(spec.user_data, dep.token)
            launch = LaunchSpec(
                sizes=sizes, image=image_id, key_name=driver.ensure_key_pair(dep.id, spec.public_key),
                security_group=driver.ensure_security_group(dep.id, rules),
                user_data_for=functools.partial(node_user_data, join),
                network=spec.network, zone=spec.zones[0] if spec.zones else None, disk_gib=spec.disk_gib,
                public_ip=spec.public_ip, wireguard=spec.user_data.external_ip,
            )
            managers[group.name] = CloudPower(driver, dep.id, {group.name: launch})
    return managers


def mounted_deployments(groups: Sequence[NodeGroup]) -> dict[str, DaemonDeployment]:
    """The hand-off of the cloud groups whose ConfigMap entry carries their launch spec (``power:
    {launch, credentials, token}``: the daemon in its pod), by ``power.deployment``: the launch specs,
    the credential as the Secret's files (read when the drivers are made) and the join token from its
    file. Groups without ``launch`` are left to ``daemon --deployment``'s state file."""
    out: dict[str, DaemonDeployment] = {}
    for ref in dict.fromkeys(str(g.power["deployment"]) for g in groups
                             if g.power.get("type") == "cloud" and "launch" in g.power):
        mine = [g for g in groups if g.power.get("deployment") == ref and "launch" in g.power]
        launches = {g.name: RecordedLaunch.from_dict(g.power["launch"]) for g in mine}
        record = DeploymentRecord(groups=tuple(
            GroupRecord(name=name, role="worker", provider=spec.provider, region=spec.region, launch=spec)
            for name, spec in launches.items()))
        first = mine[0].power
        for group in mine:
            absent = [key for key in ("credentials", "token") if key not in group.power]
            if absent:
                needs = " and ".join(map(repr, absent))
                raise BadInput(f"group {group.name!r}: power 'launch' needs {needs} (the Secret's files: "
                               "the cloud credential's directory, the join token)")
        credentials = {spec.provider: CredentialSource("directory", str(first["credentials"])).to_json()
                       for spec in launches.values()}
        token_file = Path(str(first["token"]))
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise BadInput(f"group {mine[0].name!r}: power.token {token_file}: "
                           f"{error.strerror or error}") from None
        if not token:
            raise BadInput(f"group {mine[0].name!r}: power.token {token_file} is empty")
        out[ref] = DaemonDeployment(id=ref, name=ref, record=record, credentials=credentials, token=token)
    return out


def with_deployment_settings(deployment: Any, settings: DaemonSettings) -> DaemonSettings:
    """The daemon's settings with the deployment's recorded elasticity settings (the template's
    values, already merged with ``[elastic]`` at plan time) laid over them: every recorded key the
    policy has (``provisioner.spec.ElasticSpec`` says which a template may give)."""
    recorded = read_record(deployment.plan)[0].elastic or {}
    policy_keys = {f.name for f in dataclasses.fields(settings.policy)}
    changes = {key: type(getattr(settings.policy, key))(value) for key, value in recorded.items()
               if key in policy_keys and value is not None}
    return dataclasses.replace(settings, policy=dataclasses.replace(settings.policy, **changes))
