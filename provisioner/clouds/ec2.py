"""AWS EC2 through libcloud's stock ``EC2NodeDriver`` (SigV4), implementing ``CloudDriver``.

How the contract maps onto EC2:

- **Endpoint**: the credential's ``endpoint_url`` (the auth file's ``host``) overrides AWS's with the
  driver's own ``host``/``port``/``secure`` arguments; ``region`` still selects the SigV4 scope. A
  region libcloud does not list (it knows 23) gets its endpoint from its partition
  (``provisioner.regions``: ``ec2.<region>.amazonaws.com[.cn]``) and the driver's SigV4 scope set to it.
- **One launch request**: ``RunInstances`` is built here (``ec2_requests``: subnet, security group,
  public address as planned, IMDSv2 with hop limit 1, tags on instance, volumes and network
  interface, encrypted gp3 root volume, standard CPU credits for burstable types, a ``ClientToken``
  that stays the same across the retries of one ``create_node``), sent through the stock driver's
  signed connection, as are the calls libcloud cannot make with tags at creation (volume, key pair,
  security group, elastic address). A resume's adopted machines launched without those metadata
  options get them (``require_imdsv2``) before the engine uses them.
- **VPC**: the given subnet's (``subnet_id`` input) else the default VPC's; an account without a
  default VPC and no subnet given is ``BadInput`` (``preflight`` says so before anything exists).
  The security group is created in that VPC.
- **Errors as EC2 means them** (``ec2_errors``): ``Unsupported`` and ``InsufficientFreeAddressesInSubnet``
  are capacity for that (type, zone) like ``InsufficientInstanceCapacity``; an instance EC2 terminates
  during launch (state reason ``Server.InsufficientInstanceCapacity``, ...) is listed as terminated
  by the driver that launched it, so the engine moves to its next attempt instead of waiting; a
  ``*.NotFound`` for an id just created is retried for about a minute (EC2 is eventually consistent).
- **Zones** (capacity fallback): the region's available zones (``DescribeAvailabilityZones``) that
  offer the type (``DescribeInstanceTypeOfferings``) and have a default-VPC subnet, so a
  ``NodeRequest.zone`` always maps to a subnet there; a driver pinned to one subnet has nothing to
  fall back to (``[]``). A request naming its own subnet stays in that subnet's zone.
- libcloud drivers are not thread-safe (one HTTP connection each), so each thread gets its own.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

from provisioner import regions
from provisioner.clouds import ec2_errors, ec2_requests
from provisioner.clouds.base import (
    TAG_DEPLOYMENT,
    TAG_GROUP,
    CloudNode,
    CloudResource,
    FirewallRule,
    NodeRequest,
    NodeState,
    belongs_to,
    deployment_tags,
    resource_name,
    resource_prefix,
)
from provisioner.clouds.retry import CloudCalls
from provisioner.config import ProvisionerSettings
from provisioner.credentials import AwsCredentials
from provisioner.errors import BadInput, CloudError, NotFound, OscarDeployError, TemplateError, Throttled
from provisioner.images import plan_image
from provisioner.spec import GroupSpec, MachineSpec

log = logging.getLogger(__name__)

NAMESPACE = "http://ec2.amazonaws.com/doc/2016-11-15/"
_ARCH = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "arm64", "aarch64": "arm64"}
_STATES: Mapping[str, NodeState] = {"pending": "pending", "running": "running", "shutting-down": "stopping",
                                    "stopping": "stopping", "stopped": "stopped", "terminated": "terminated"}
DATA_DEVICE = "/dev/sdf"
POLL_S = 1.0
CONSISTENCY_S = 60.0
"""How long a ``NotFound`` for an id just created is taken for EC2's eventual consistency."""


def endpoint_kwargs(credentials: AwsCredentials, region: str, token: str | None = None) -> dict[str, Any]:
    """libcloud ``EC2NodeDriver`` keyword arguments: region, SigV4, the session token (``token``, else
    the credential's), and the endpoint override (for a region libcloud does not know, its
    partition's endpoint: ``make_libcloud_driver`` sets the scope)."""
    kwargs: dict[str, Any] = {"region": region, "signature_version": "4"}
    if not credentials.endpoint_url and not libcloud_knows(region):
        kwargs["host"] = regions.ec2_host(region)
    if credentials.endpoint_url:
        url = urlsplit(credentials.endpoint_url if "://" in credentials.endpoint_url
                       else f"https://{credentials.endpoint_url}")
        secure = url.scheme != "http"
        kwargs.update(host=url.hostname, secure=secure, port=url.port or (443 if secure else 80))
    token = token or credentials.session_token
    if token:
        kwargs["token"] = token
    return kwargs


def libcloud_knows(region: str) -> bool:
    from libcloud.compute.drivers.ec2 import VALID_EC2_REGIONS

    return region in VALID_EC2_REGIONS


def make_libcloud_driver(credentials: AwsCredentials, region: str,
                         current: tuple[str, str, str | None] | None = None) -> Any:
    """The stock ``EC2NodeDriver`` for any region: one libcloud does not list is built as us-east-1
    with the region's endpoint, then given the region as its SigV4 scope (``region_name``, which
    libcloud's signer reads), so it signs as AWS expects there."""
    from libcloud.compute.drivers.ec2 import EC2NodeDriver

    key, secret, token = current or credentials.current()
    kwargs = endpoint_kwargs(credentials, region, token)
    known = libcloud_knows(region)
    if not known:
        if not regions.REGION_NAME.fullmatch(region):
            raise BadInput(f"EC2 region {region!r} is not an AWS region name (like eu-west-1)")
        kwargs["region"] = "us-east-1"
    driver = EC2NodeDriver(key, secret, **kwargs)
    if not known:
        driver.region_name = region
    return driver


def newest_image(images: Sequence[Any], owner: str, arch: str) -> Any | None:
    """The newest available image of ``owner`` for ``arch`` (by creation date, then name)."""
    fitting = [i for i in images if i.extra.get("owner_id") == owner
               and i.extra.get("architecture") == _ARCH.get(arch, arch)
               and i.extra.get("state") in (None, "available")]
    return max(fitting, key=lambda i: (i.extra.get("creation_date") or "", i.name or ""), default=None)


def _launch_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _tag_params(resource_type: str, tags: Mapping[str, str]) -> dict[str, str]:
    return ec2_requests.tag_specifications({resource_type: tags})


class Ec2Driver:
    """``CloudDriver`` for one AWS region (or an EC2-compatible endpoint)."""

    provider = "aws"

    def __init__(self, credentials: AwsCredentials, region: str,
                 settings: ProvisionerSettings | None = None, *, subnet: str | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.region = region
        self.settings = settings or ProvisionerSettings()
        self.subnet = subnet
        self._credentials = credentials
        self._calls = CloudCalls("EC2", self.settings, (credentials.access_key_id,
                                                        credentials.secret_access_key,
                                                        credentials.session_token), sleep=sleep)
        self._sleep = sleep
        self._local = threading.local()
        self._lock = threading.Lock()
        self._subnets: list[Any] | None = None
        self._zones: list[str] | None = None
        self._named_subnets: dict[str, Any] = {}
        self._images: dict[str, Any] = {}
        self._offerings: dict[str, set[str]] = {}
        """instance type → the zones that offer it"""
        self._launched: set[str] = set()
        """ids of the instances this driver launched"""
        self._launch_failures: dict[str, str | None] = {}
        """terminated instance id → the capacity state reason it was terminated for (None: another)"""

    def __repr__(self) -> str:
        return f"Ec2Driver(region={self.region!r}, credentials={self._credentials!r})"

    # -- plumbing -----------------------------------------------------------------------------------
    @property
    def libcloud(self) -> Any:
        """This thread's stock libcloud driver, made again when the credentials were renewed (an
        assumed role's or an SSO session's keys last an hour or so: the elastic daemon runs longer)."""
        current = self._credentials.current()
        driver = getattr(self._local, "driver", None)
        if driver is None or getattr(self._local, "signed_with", None) != current:
            driver = make_libcloud_driver(self._credentials, self.region, current)
            self._local.driver, self._local.signed_with = driver, current
            self._calls.add_secrets(current)
        return driver

    def _call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """``libcloud.<method>(...)`` with typed errors and retries (the driver looked up per attempt)."""
        try:
            return self._calls(what, lambda: getattr(self.libcloud, method)(*args, **kwargs))
        except OscarDeployError as error:
            raise ec2_errors.refine(error) from None

    def _action(self, params: dict[str, str], *, once: bool = False) -> Any:
        """One signed EC2 API action through the stock driver's connection; its parsed XML answer
        (retried while throttled, unless ``once``: a call that cannot be made idempotent)."""
        def request() -> Any:  # the driver looked up per attempt: credentials may have been renewed
            drv = self.libcloud
            return drv.connection.request(drv.path, params=params).object

        run = self._calls.once if once else self._calls
        try:
            return run(params["Action"], request)
        except OscarDeployError as error:
            raise ec2_errors.refine(error) from None

    def _eventually(self, fn: Callable[[], Any], code: str) -> Any:
        """``fn()``, again while EC2 answers ``code`` (``InvalidGroup.NotFound``,
        ``InvalidInstanceID.NotFound``) for an id just created: EC2 is eventually consistent ("you
        might get a resource not found error ... right after you create it", EC2 API reference,
        "Eventual consistency") for up to ``CONSISTENCY_S``."""
        deadline = time.monotonic() + CONSISTENCY_S
        delay = max(0.05, self.settings.retry_base_s)
        while True:
            try:
                return fn()
            except (CloudError, NotFound) as error:
                if code not in str(error) or time.monotonic() + delay > deadline:
                    raise
            self._sleep(delay)
            delay = min(delay * 2, max(self.settings.retry_max_s, 0.1), 5.0)

    def _default_subnets(self) -> list[Any]:
        with self._lock:
            if self._subnets is None:
                self._subnets = self._call("DescribeSubnets", "ex_list_subnets",
                                           filters={"default-for-az": "true"})
            return self._subnets

    def _named_subnet(self, wanted: str) -> Any:
        if wanted not in self._named_subnets:
            try:
                found = self._call("DescribeSubnets", "ex_list_subnets", subnet_ids=[wanted])
            except NotFound:
                found = []
            if not found:
                raise BadInput(f"EC2 {self.region}: there is no subnet {wanted!r} (the subnet_id input); "
                               "list them with: aws ec2 describe-subnets --region " + self.region)
            self._named_subnets[wanted] = found[0]
        return self._named_subnets[wanted]

    def _subnet_for(self, wanted: str | None, zone: str | None) -> Any:
        """The given subnet (by id), else the default VPC's default subnet of ``zone`` (or the first)."""
        wanted = wanted or self.subnet
        if wanted:
            return self._named_subnet(wanted)
        subnets = sorted(self._default_subnets(), key=lambda s: s.extra.get("zone") or "")
        if not subnets:
            raise BadInput(f"EC2 {self.region}: the account has no default VPC here, so oscar-deploy cannot "
                           "choose a network: give a subnet with -i subnet_id=subnet-... (its VPC gets the "
                           "security group)")
        in_zone = [s for s in subnets if zone is None or s.extra.get("zone") == zone]
        if not in_zone:
            raise NotFound(f"EC2 {self.region}: the default VPC has no subnet in zone {zone!r} "
                           "(name a subnet)")
        return in_zone[0]

    def preflight(self) -> None:
        """Check, before anything is created, that a VPC can be chosen: the given subnet exists, or
        the account has a default VPC in the region. ``BadInput`` (exit 2) otherwise."""
        self._subnet_for(None, None)

    def routes_through_nat(self, subnet_id: str) -> bool:
        """Whether the subnet's route table (its own, else its VPC's main one) sends 0.0.0.0/0 to a
        NAT gateway or a NAT instance: then a machine there reaches the internet without a public
        address."""
        subnet = self._named_subnet(subnet_id)
        vpc = subnet.extra.get("vpc_id")
        ns = f"{{{NAMESPACE}}}"
        for filters in ({"association.subnet-id": subnet_id}, {"vpc-id": vpc, "association.main": "true"}):
            params = {"Action": "DescribeRouteTables"}
            for n, (name, value) in enumerate(filters.items(), start=1):
                params[f"Filter.{n}.Name"], params[f"Filter.{n}.Value.1"] = name, str(value)
            tables = self._action(params).findall(f"{ns}routeTableSet/{ns}item")
            if tables:
                return any(route.findtext(f"{ns}destinationCidrBlock") == "0.0.0.0/0"
                           and bool(route.findtext(f"{ns}natGatewayId") or route.findtext(f"{ns}instanceId"))
                           for table in tables for route in table.findall(f"{ns}routeSet/{ns}item"))
        return False

    def list_zones(self) -> list[str]:
        """Available zones with a default subnet, by name (asked once per driver)."""
        if self.subnet:
            return []
        with self._lock:
            cached = self._zones
        if cached is None:
            found = self._call("DescribeAvailabilityZones", "ex_list_availability_zones", only_available=True)
            with_subnet = {s.extra.get("zone") for s in self._default_subnets()}
            cached = sorted(str(z.name) for z in found
                            if z.zone_state == "available" and z.name in with_subnet)
            with self._lock:
                self._zones = cached
        return list(cached)

    def zones_offering(self, instance_type: str) -> set[str] | None:
        """The zones of the region that offer ``instance_type`` (``DescribeInstanceTypeOfferings``,
        as Karpenter checks before it launches), or None when EC2 cannot say."""
        params = {"Action": "DescribeInstanceTypeOfferings", "LocationType": "availability-zone",
                  "Filter.1.Name": "instance-type", "Filter.1.Value.1": instance_type}
        try:
            answer = self._action(params)
        except CloudError as error:
            log.debug("EC2 %s: cannot list the zones offering %s: %s", self.region, instance_type, error)
            return None
        return {str(e.text) for e in answer.iter(f"{{{NAMESPACE}}}location") if e.text}

    def _vpc_id(self) -> str:
        return str(self._subnet_for(None, None).extra["vpc_id"])

    # -- key pair and security group ----------------------------------------------------------------
    def ensure_key_pair(self, deployment: str, public_key: str) -> str:
        name = resource_name(deployment, "key")
        existing = {k.name for k in self._call("DescribeKeyPairs", "list_key_pairs")}
        if name in existing:
            return name
        material = base64.b64encode(public_key.strip().encode()).decode()
        try:  # as libcloud's import_key_pair_from_string, plus the tags it cannot give
            self._action({"Action": "ImportKeyPair", "KeyName": name, "PublicKeyMaterial": material,
                          **_tag_params("key-pair", {"Name": name, **deployment_tags(deployment)})})
        except CloudError as exc:
            if "Duplicate" not in str(exc):
                raise
        log.info("EC2 %s: key pair %s imported", self.region, name)
        return name

    def _find_group(self, name: str, vpc_id: str) -> Any | None:
        groups = self._call("DescribeSecurityGroups", "ex_get_security_groups",
                            filters={"group-name": name, "vpc-id": vpc_id})
        return groups[0] if groups else None

    def ensure_security_group(self, deployment: str, rules: Sequence[FirewallRule], *,
                              revoke_others: bool = False) -> str:
        """The deployment's group in the VPC of its subnet (or the default VPC), tagged at creation,
        with one ingress call per missing rule (descriptions cleaned to EC2's character set) and,
        with ``revoke_others``, one revoke call per CIDR rule no longer wanted."""
        name = resource_name(deployment, "sg")
        vpc_id = self._vpc_id()
        group = self._find_group(name, vpc_id)
        if group is None:
            try:
                answer = self._action({
                    "Action": "CreateSecurityGroup", "GroupName": name, "VpcId": vpc_id,
                    "GroupDescription": ec2_requests.clean_description(f"oscar-deploy {deployment}"),
                    **_tag_params("security-group", {"Name": name, **deployment_tags(deployment)})})
                created = answer.findtext(f"{{{NAMESPACE}}}groupId")
            except CloudError as exc:
                if "Duplicate" not in str(exc):
                    raise
                created = None
            group = self._find_group(name, vpc_id)
            if group is None and created:
                group = SimpleNamespace(id=created, ingress_rules=[],
                                        extra={"tags": deployment_tags(deployment)})
            if group is None:
                raise CloudError(f"EC2 {self.region}: security group {name} vanished after creation")
        if (group.extra.get("tags") or {}).get(TAG_DEPLOYMENT) != deployment:
            self._eventually(lambda: self._call("CreateTags", "ex_create_tags", SimpleNamespace(id=group.id),
                                                deployment_tags(deployment)), "InvalidGroup.NotFound")
        present = {key for r in group.ingress_rules for key in self._rule_keys_of(r)}
        if revoke_others:
            self._revoke_unwanted(str(group.id), present, {self._rule_key(r, group.id) for r in rules})
        for rule in rules:
            if self._rule_key(rule, group.id) in present:
                continue
            params = ec2_requests.ingress_params(str(group.id), rule)
            try:
                self._eventually(lambda params=params: self._action(params), "InvalidGroup.NotFound")
            except CloudError as exc:
                if "Duplicate" not in str(exc):
                    raise
        return str(group.id)

    @staticmethod
    def _rule_key(rule: FirewallRule, group_id: str) -> tuple[str, str, str, str]:
        protocol = "-1" if rule.protocol == "-1" else rule.protocol
        ports = ("", "") if protocol == "-1" else (str(rule.from_port), str(rule.to_port))
        return protocol, ports[0], ports[1], group_id if rule.source == "cluster" else rule.source

    def _revoke_unwanted(self, group_id: str, present: set[tuple[str, str, str, str]],
                         wanted: set[tuple[str, str, str, str]]) -> None:
        """Revoke each CIDR rule of the group that is not wanted (rules naming a group stay)."""
        for protocol, low, high, source in sorted(present - wanted):
            if source.startswith("sg-"):
                continue
            rule = FirewallRule(protocol, int(low or 0), int(high or 0), source)  # type: ignore[arg-type]
            params = ec2_requests.revoke_params(group_id, rule)
            self._eventually(lambda params=params: self._action(params), "InvalidGroup.NotFound")
            log.info("EC2 %s: security group %s no longer allows %s %s-%s from %s", self.region, group_id,
                     protocol, low, high, source)

    @staticmethod
    def _rule_keys_of(rule: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
        """One key per source of a rule as libcloud lists it (EC2 groups sources by protocol and ports)."""
        protocol = str(rule.get("protocol"))
        ports = ("", "") if protocol == "-1" else (str(rule.get("from_port")), str(rule.get("to_port")))
        pairs = [p.get("group_id") for p in rule.get("group_pairs") or []]
        sources = list(rule.get("cidr_ips") or []) + pairs
        return [(protocol, ports[0], ports[1], str(source)) for source in sources]

    # -- images -------------------------------------------------------------------------------------
    def resolve_image(self, distribution: str, version: str, arch: str, explicit: str | None) -> str:
        if explicit:
            found = self._call("DescribeImages", "list_images", ex_image_ids=[explicit])
            if not found:
                raise NotFound(f"EC2 {self.region}: image {explicit} does not exist")
            self._images[found[0].id] = found[0]
            return str(found[0].id)
        machine = MachineSpec(cpus=1, memory_mib=1, arch=arch,  # type: ignore[arg-type]
                              os_distribution=distribution, os_version=version)
        try:  # the planner's table of owners and AMI name patterns, and its version spelling
            group = GroupSpec(name="image", role="worker", provider="aws", machine=machine,
                              region=self.region)
            planned = plan_image(group, arch)  # type: ignore[arg-type]
        except TemplateError as exc:
            raise NotFound(f"EC2 {self.region}: {exc}") from None
        if planned is None or not planned.owner or not planned.name_pattern:
            raise NotFound(f"EC2 {self.region}: no image pattern known for {distribution} {version}")
        owner, name = planned.owner, planned.name_pattern
        images = self._call("DescribeImages", "list_images", ex_owner=owner,
                            ex_filters={"name": name, "architecture": _ARCH.get(arch, arch),
                                        "state": "available"})
        image = newest_image(images, owner, arch)
        if image is None:
            raise NotFound(f"EC2 {self.region}: no image of {owner} named {name}")
        self._images[image.id] = image
        return str(image.id)

    def _root_device(self, image_id: str) -> str:
        image = self._images.get(image_id)
        if image is None:
            found = self._call("DescribeImages", "list_images", ex_image_ids=[image_id])
            image = found[0] if found else None
            if image is not None:
                self._images[image_id] = image
        name = image.extra.get("root_device_name") if image is not None else None
        return str(name or "/dev/sda1")

    # -- sizes --------------------------------------------------------------------------------------
    def sizes_that_fit(self, cpus: int, memory_mib: int, arch: str = "amd64", disk_gib: int | None = None,
                       explicit: str | None = None) -> list[str]:
        """From libcloud's bundled catalogue and prices (as the planner chooses), cheapest first; the
        root disk is an EBS volume of any size, so ``disk_gib`` never rules a type out. A type the
        catalogue lacks (newer than libcloud's data) is asked of EC2; in a region libcloud has no
        data for, the borrowed catalogue is cut to what EC2 offers there."""
        from provisioner import sizes

        catalogue = sizes.region_sizes(self.region) or ()
        if explicit:
            if sizes.find_size(catalogue, explicit) is None and not self._offered_in_region(explicit):
                raise NotFound(f"EC2 {self.region}: instance type {explicit!r} is not offered here")
            return [explicit]
        fitting = [s for s in catalogue if s.current and s.price_per_hour is not None
                   and sizes.fits(s, cpus, memory_mib, arch, 0)]  # type: ignore[arg-type]
        fitting.sort(key=lambda s: (s.price_per_hour, s.cpus, s.memory_mib, s.metal, s.name))
        names = [s.name for s in fitting]
        if not sizes.types_listed(self.region):
            offered = self._region_offerings()
            names = [n for n in names if offered is None or n in offered]
        return names

    def _offered_in_region(self, instance_type: str) -> bool:
        offered = self._region_offerings(instance_type)
        return offered is None or instance_type in offered

    def _region_offerings(self, instance_type: str | None = None) -> set[str] | None:
        """The instance types EC2 offers in the region (``DescribeInstanceTypeOfferings``), or None
        when it cannot say."""
        params = {"Action": "DescribeInstanceTypeOfferings", "LocationType": "region"}
        if instance_type:
            params.update({"Filter.1.Name": "instance-type", "Filter.1.Value.1": instance_type})
        offered: set[str] = set()
        try:
            while True:
                answer = self._action(params)
                offered |= {str(e.text) for e in answer.iter(f"{{{NAMESPACE}}}instanceType") if e.text}
                token = answer.findtext(f"{{{NAMESPACE}}}nextToken")
                if not token:
                    return offered
                params["NextToken"] = token
        except CloudError as error:
            log.debug("EC2 %s: cannot list the instance types offered: %s", self.region, error)
            return None

    # -- machines -----------------------------------------------------------------------------------
    def _launch_subnet(self, request: NodeRequest) -> Any:
        """The request's subnet; without one or a zone, the default subnet of the first zone that
        offers the type (not merely the alphabetically first zone)."""
        if request.network or self.subnet or request.zone:
            return self._subnet_for(request.network, request.zone)
        subnets = sorted(self._default_subnets(), key=lambda s: s.extra.get("zone") or "")
        if len(subnets) > 1:
            with self._lock:
                offered = self._offerings.get(request.size)
            if offered is None:
                offered = self.zones_offering(request.size) or set()
                with self._lock:
                    self._offerings[request.size] = offered
            fitting = [s for s in subnets if s.extra.get("zone") in offered]
            if fitting:
                return fitting[0]
        return self._subnet_for(None, None)

    def create_node(self, request: NodeRequest) -> CloudNode:
        """One ``RunInstances`` with everything (``ec2_requests.run_instances_params``); retried while
        throttled with the same ``ClientToken``, and while the security group just created is not
        yet visible."""
        subnet = self._launch_subnet(request)
        token = f"{request.name[-27:]}-{uuid.uuid4().hex}"  # same for every retry of this create
        user_data = base64.b64encode(request.user_data.encode()).decode() if request.user_data else None
        params = ec2_requests.run_instances_params(
            request, subnet_id=str(subnet.id), root_device=self._root_device(request.image),
            client_token=token, user_data_b64=user_data)
        answer = self._eventually(lambda: self._action(params), "InvalidGroup.NotFound")
        nodes = self.libcloud._to_nodes(answer, "instancesSet/item")
        if not nodes:
            raise CloudError(f"EC2 {self.region} RunInstances: no instance in the answer")
        node = nodes[0]
        with self._lock:
            self._launched.add(str(node.id))
        log.info("EC2 %s: %s is %s", self.region, request.name, node.id)
        return self._to_cloud_node(node, request.deployment)

    def _to_cloud_node(self, node: Any, deployment: str) -> CloudNode:
        tags = node.extra.get("tags") or {}
        return CloudNode(
            id=str(node.id), name=str(tags.get("Name") or node.name or node.id), deployment=deployment,
            group=tags.get(TAG_GROUP), state=_STATES.get(str(node.extra.get("status")), "unknown"),
            size=node.extra.get("instance_type"), public_ips=tuple(ip for ip in node.public_ips if ip),
            private_ips=tuple(ip for ip in node.private_ips if ip), zone=node.extra.get("availability"),
            created_at=_launch_time(node.extra.get("launch_time")))

    def _nodes_of(self, deployment: str) -> list[Any]:
        by_tag = self._call("DescribeInstances", "list_nodes",
                            ex_filters={f"tag:{TAG_DEPLOYMENT}": deployment})
        by_name = self._call("DescribeInstances", "list_nodes",
                             ex_filters={"tag:Name": f"{resource_prefix(deployment)}*"})
        found = {n.id: n for n in [*by_tag, *by_name]
                 if belongs_to(deployment, (n.extra.get("tags") or {}).get("Name"), n.extra.get("tags"))}
        return sorted(found.values(), key=lambda n: n.extra.get("launch_time") or "")

    def list_nodes(self, deployment: str) -> list[CloudNode]:
        """Every machine of the deployment not terminated; and, of the machines this driver launched,
        one EC2 terminated during launch for want of capacity (state ``terminated``), so a launch
        waiting for it moves to its next attempt at once instead of waiting for it to appear."""
        out = []
        for raw in self._nodes_of(deployment):
            node = self._to_cloud_node(raw, deployment)
            if node.state != "terminated" or (node.id in self._launched
                                              and self._terminated_for_capacity(node.id)):
                out.append(node)
        return out

    def require_imdsv2(self, deployment: str, instance_ids: Sequence[str]) -> list[str]:
        """Of ``instance_ids`` (machines a resume adopts), those tagged for ``deployment`` whose
        metadata options fall short of what ``RunInstances`` sets (an older version launched them
        with IMDSv1 allowed or a hop limit above 1) get ``ModifyInstanceMetadataOptions``; the ids
        modified. Untagged machines are left alone (the IAM policy scopes the call by that tag)."""
        if not instance_ids:
            return []
        params = {"Action": "DescribeInstances", "Filter.1.Name": f"tag:{TAG_DEPLOYMENT}",
                  "Filter.1.Value.1": deployment,
                  **{f"InstanceId.{i}": ident for i, ident in enumerate(instance_ids, start=1)}}
        answer = self._action(params)
        modified = []
        for item in answer.findall(f".//{{{NAMESPACE}}}instancesSet/{{{NAMESPACE}}}item"):
            ident = item.findtext(f"{{{NAMESPACE}}}instanceId")
            state = item.findtext(f"{{{NAMESPACE}}}instanceState/{{{NAMESPACE}}}name")
            options = item.find(f"{{{NAMESPACE}}}metadataOptions")

            def option(name: str, options: Any = options) -> str | None:
                return None if options is None else options.findtext(f"{{{NAMESPACE}}}{name}")

            if not ident or state in ("shutting-down", "terminated") or not ec2_requests.needs_imdsv2(
                    option("httpTokens"), option("httpPutResponseHopLimit"), option("httpEndpoint")):
                continue
            log.warning("EC2 %s: %s allowed IMDSv1 or more than %d hop(s): requiring IMDSv2", self.region,
                        ident, ec2_requests.HOP_LIMIT)
            request = ec2_requests.modify_metadata_options_params(ident)
            # a machine still pending refuses it (IncorrectInstanceState) until it runs
            self._eventually(lambda request=request: self._action(request), "IncorrectInstanceState")
            modified.append(ident)
        return modified

    def _terminated_for_capacity(self, instance_id: str) -> bool:
        """Whether EC2 terminated the instance during launch for a reason another attempt may not
        meet (its ``stateReason``, which libcloud does not parse); asked once per instance."""
        with self._lock:
            if instance_id in self._launch_failures:
                return self._launch_failures[instance_id] is not None
        try:
            answer = self._action({"Action": "DescribeInstances", "InstanceId.1": instance_id})
            code = answer.findtext(f".//{{{NAMESPACE}}}stateReason/{{{NAMESPACE}}}code")
        except NotFound:
            code = None
        reason = code if ec2_errors.state_reason_is_capacity(code) else None
        if reason:
            log.warning("EC2 %s: %s was terminated during launch: %s", self.region, instance_id, reason)
        with self._lock:
            self._launch_failures[instance_id] = reason
        return reason is not None

    def destroy_node(self, node: CloudNode) -> None:
        """Terminate; a NotFound is "already gone", except for a machine this driver launched a
        moment ago, which EC2 may not know yet (waited for, so it cannot be left running)."""
        def terminate() -> None:
            self._call("TerminateInstances", "destroy_node", SimpleNamespace(id=node.id))

        try:
            if node.id in self._launched:
                self._eventually(terminate, "InvalidInstanceID.NotFound")
            else:
                terminate()
        except NotFound:
            log.info("EC2 %s: %s was already gone", self.region, node.id)

    # -- storage and addresses ----------------------------------------------------------------------
    def _volumes_of(self, deployment: str) -> list[Any]:
        by_tag = self._call("DescribeVolumes", "list_volumes",
                            ex_filters={f"tag:{TAG_DEPLOYMENT}": deployment})
        by_name = self._call("DescribeVolumes", "list_volumes",
                             ex_filters={"tag:Name": f"{resource_prefix(deployment)}*"})
        found = {v.id: v for v in [*by_tag, *by_name]
                 if belongs_to(deployment, (v.extra.get("tags") or {}).get("Name"), v.extra.get("tags"))}
        return list(found.values())

    def ensure_volume(self, deployment: str, group: str, size_gib: int, zone: str | None) -> str:
        name = resource_name(deployment, group, "data")
        for volume in self._volumes_of(deployment):
            if (volume.extra.get("tags") or {}).get("Name") == name:
                return str(volume.id)
        zone = zone or self._subnet_for(None, None).extra.get("zone")
        tags = {"Name": name, **deployment_tags(deployment, group)}
        answer = self._action({"Action": "CreateVolume", "Size": str(size_gib), "AvailabilityZone": str(zone),
                               "VolumeType": "gp3", "ClientToken": f"{name[-27:]}-{uuid.uuid4().hex}",
                               **_tag_params("volume", tags)})
        volume_id = answer.findtext(f"{{{NAMESPACE}}}volumeId")
        if not volume_id:
            raise CloudError(f"EC2 {self.region} CreateVolume: no volume id in the answer")
        log.info("EC2 %s: volume %s is %s", self.region, name, volume_id)
        return str(volume_id)

    def attach_volume(self, volume_id: str, node: CloudNode) -> None:
        found = self._call("DescribeVolumes", "list_volumes", ex_filters={"volume-id": volume_id})
        volume = found[0] if found else None
        if volume is None:
            raise NotFound(f"EC2 {self.region}: volume {volume_id} does not exist")
        if volume.extra.get("instance_id") == node.id:
            return
        self._call("AttachVolume", "attach_volume", SimpleNamespace(id=node.id), volume, DATA_DEVICE)

    def _addresses_of(self, deployment: str) -> list[Any]:
        """Elastic addresses tagged for the deployment (libcloud does not parse their tags: one
        DescribeTags each). One merely associated with a machine of ours is not ours to release."""
        out = []
        for address in self._call("DescribeAddresses", "ex_describe_all_addresses"):
            allocation = address.extra.get("allocation_id")
            if allocation:
                tags = self._call("DescribeTags", "ex_describe_tags", SimpleNamespace(id=allocation))
                if belongs_to(deployment, tags.get("Name"), tags):
                    address.extra["tags"] = tags
                    out.append(address)
        return out

    def ensure_public_address(self, deployment: str, node: CloudNode) -> str:
        found = self._eventually(lambda: self._call("DescribeInstances", "list_nodes", ex_node_ids=[node.id]),
                                 "InvalidInstanceID.NotFound")
        fresh = found[0] if found else None
        if fresh is None:
            raise NotFound(f"EC2 {self.region}: instance {node.id} does not exist")
        public = [ip for ip in fresh.public_ips if ip]
        if public:
            return str(public[0])
        prefix = resource_prefix(deployment)
        own = node.name[len(prefix):] if node.name.startswith(prefix) else node.name
        tags = {"Name": resource_name(deployment, own, "address"), **deployment_tags(deployment, node.group)}
        allocation, ip = self._allocate_address(deployment, tags)
        self._eventually(lambda: self._action({"Action": "AssociateAddress", "AllocationId": str(allocation),
                                               "InstanceId": node.id}), "InvalidInstanceID.NotFound")
        return str(ip)

    def _allocate_address(self, deployment: str, tags: Mapping[str, str]) -> tuple[str, str]:
        """An elastic address tagged ``tags``: one left unassociated by an earlier attempt, else a new
        one. ``AllocateAddress`` takes no client token, so a throttled or failed answer is never
        simply retried (the address may exist): the tagged addresses are listed again first."""
        last: OscarDeployError | None = None
        for attempt in range(max(1, self.settings.api_retries)):
            spare = [a for a in self._addresses_of(deployment)  # allocated before a crash or a lost answer
                     if not a.instance_id and a.extra.get("tags", {}).get("Name") == tags["Name"]]
            if spare:
                return str(spare[0].extra["allocation_id"]), str(spare[0].ip)
            try:
                answer = self._action({"Action": "AllocateAddress", "Domain": "vpc",
                                       **_tag_params("elastic-ip", tags)}, once=True)
            except Throttled as error:
                last = error
                self._sleep(min(self.settings.retry_max_s, self.settings.retry_base_s * 2 ** attempt))
                continue
            allocation = str(answer.findtext(f"{{{NAMESPACE}}}allocationId"))
            ip = str(answer.findtext(f"{{{NAMESPACE}}}publicIp"))
            if not self._tags_of(allocation).get("Name"):  # an endpoint that ignores TagSpecification
                self._call("CreateTags", "ex_create_tags", SimpleNamespace(id=allocation), dict(tags))
            return allocation, ip
        raise last or CloudError(f"EC2 {self.region} AllocateAddress: no address")

    def _tags_of(self, resource_id: str) -> dict[str, str]:
        return dict(self._call("DescribeTags", "ex_describe_tags", SimpleNamespace(id=resource_id)) or {})

    # -- sweep --------------------------------------------------------------------------------------
    def sweep(self, deployment: str, *, keep_data: bool = False) -> list[CloudResource]:
        removed: list[CloudResource] = []
        nodes = [n for n in self._nodes_of(deployment) if n.extra.get("status") != "terminated"]
        node_ids = {n.id for n in nodes}
        addresses = self._addresses_of(deployment)
        for node in nodes:
            self.destroy_node(self._to_cloud_node(node, deployment))
            name = (node.extra.get("tags") or {}).get("Name")
            removed.append(CloudResource("instance", str(node.id), name))
        self._wait_terminated(deployment, node_ids)
        for address in addresses:
            allocation = address.extra.get("allocation_id")
            if address.extra.get("association_id"):
                with contextlib.suppress(NotFound):
                    self._action({"Action": "DisassociateAddress",
                                  "AssociationId": address.extra["association_id"]})
            self._action({"Action": "ReleaseAddress", "AllocationId": str(allocation)})
            removed.append(CloudResource("address", str(allocation), address.ip))
        if not keep_data:
            for volume in self._volumes_of(deployment):
                if volume.extra.get("instance_id"):
                    self._call("DetachVolume", "detach_volume", volume, ex_force=True)
                # a force-detach takes a while: EC2 answers VolumeInUse until the volume is available
                self._until_free("DeleteVolume", "destroy_volume", volume,
                                 codes=("VolumeInUse", "IncorrectState"))
                removed.append(CloudResource("volume", str(volume.id), (volume.extra.get("tags") or {})
                                             .get("Name")))
        for group in self._call("DescribeSecurityGroups", "ex_get_security_groups"):
            if group.name != "default" and belongs_to(deployment, group.name, group.extra.get("tags")):
                self._until_free("DeleteSecurityGroup", "ex_delete_security_group_by_id", group.id)
                removed.append(CloudResource("security_group", str(group.id), group.name))
        for key in self._call("DescribeKeyPairs", "list_key_pairs"):
            if belongs_to(deployment, key.name, None):
                self._call("DeleteKeyPair", "delete_key_pair", key)
                removed.append(CloudResource("key_pair", str(key.name), key.name))
        return removed

    def _until_free(self, what: str, method: str, *args: Any,
                    codes: tuple[str, ...] = ("DependencyViolation",)) -> None:
        """Delete something a just-terminated machine may still hold (EC2 answers DependencyViolation
        until its network interfaces are gone, VolumeInUse until a volume is detached): try again
        until ``create_timeout_s``."""
        deadline = time.monotonic() + self.settings.create_timeout_s
        while True:
            try:
                self._call(what, method, *args)
                return
            except CloudError as exc:
                if not any(code in str(exc) for code in codes) or time.monotonic() > deadline:
                    raise
            self._sleep(POLL_S)

    def _wait_terminated(self, deployment: str, node_ids: set[str]) -> None:
        deadline = time.monotonic() + self.settings.create_timeout_s
        while node_ids:
            left = [n.id for n in self._nodes_of(deployment)
                    if n.id in node_ids and n.extra.get("status") != "terminated"]
            if not left:
                return
            if time.monotonic() > deadline:
                raise CloudError(f"EC2 {self.region}: instances still not terminated after "
                                 f"{self.settings.create_timeout_s:.0f} s: {', '.join(left)}")
            self._sleep(POLL_S)

