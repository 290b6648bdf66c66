"""One place that turns (provider, credentials, region) into a ``CloudDriver``.

The engine and the elastic daemon's cloud power manager ask here, so neither imports a provider
module (nor libcloud) until a deployment actually uses that cloud.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from provisioner.clouds.base import CloudDriver
from provisioner.config import ProvisionerSettings
from provisioner.credentials import AwsCredentials, Credentials, OpenStackCredentials
from provisioner.errors import BadInput, CredentialsError
from provisioner.spec import BoardSpec

PROVIDERS = ("aws", "openstack", "fleet")


def ec2_subnets(groups: Iterable[Any]) -> dict[tuple[str, str | None], str]:
    """(``aws``, region) → the subnet its groups name (the ``subnet_id`` input), for ``driver_for``'s
    ``network``: the security group is created in that subnet's VPC. ``groups`` are plan groups,
    engine targets or their recorded JSON (anything with provider, region and network)."""
    found: dict[tuple[str, str | None], str] = {}
    for group in groups:
        get = group.get if isinstance(group, Mapping) else lambda key, g=group: getattr(g, key, None)
        network = get("network") or getattr(getattr(group, "spec", None), "network", None)
        if get("provider") == "aws" and network:
            found.setdefault(("aws", get("region")), str(network))
    return found


def driver_for(provider: str, credentials: Credentials | None, region: str | None, *,
               settings: ProvisionerSettings | None = None, network: str | None = None,
               floating_pool: str | None = None, boards: Mapping[str, Sequence[BoardSpec]] | None = None,
               known_hosts: Path | None = None) -> CloudDriver:
    """The driver for ``provider`` in ``region``.

    ``network`` is the EC2 subnet or the OpenStack network to attach (None: the default VPC's subnet,
    or the project's own network); ``floating_pool`` the OpenStack external network for floating
    IPs; ``boards`` (group → boards) and ``known_hosts`` are the fleet's. Credentials of the wrong kind
    for the provider are a ``CredentialsError`` (exit 2); an unknown provider is ``BadInput``.
    """
    settings = settings or ProvisionerSettings()
    if provider == "aws":
        from provisioner.clouds.ec2 import Ec2Driver

        if not isinstance(credentials, AwsCredentials):
            raise CredentialsError("provider aws needs EC2 credentials (an auth-file line with type = EC2, "
                                   "or AWS_* / ~/.aws/credentials)")
        chosen = region or credentials.region
        if not chosen:
            raise BadInput("provider aws: no region (give -i region=..., the auth file's region, "
                           "or AWS_REGION)")
        return Ec2Driver(credentials, chosen, settings, subnet=network)
    if provider == "openstack":
        from provisioner.clouds.openstack import OpenStackDriver

        if not isinstance(credentials, OpenStackCredentials):
            raise CredentialsError("provider openstack needs OpenStack credentials (an auth-file line with "
                                   "type = OpenStack, OS_* variables or clouds.yaml)")
        return OpenStackDriver(credentials, region, settings, network=network, floating_pool=floating_pool)
    if provider == "fleet":
        from provisioner.clouds.fleet import FleetDriver

        return FleetDriver(boards or {}, known_hosts=known_hosts, timeout_s=min(30.0, settings.ssh_timeout_s))
    raise BadInput(f"unknown provider {provider!r} (known: {', '.join(PROVIDERS)})")
