"""AWS EC2 through libcloud's stock ``EC2NodeDriver`` (SigV4), implementing ``CloudDriver``.

How the contract maps onto EC2 (DESIGN §2, issue 3):

- **Endpoint**: the credential's ``endpoint_url`` (the auth file's ``host``) overrides AWS's with the
  driver's own ``host``/``port``/``secure`` arguments; ``region`` still selects the SigV4 scope.
- **Tags at creation**: instances and volumes are created with ``TagSpecification`` in the same call
  (so a crash cannot leave them untagged), the security group is tagged right after (and is found
  by its name anyway). libcloud's ``create_volume`` tags in a
  second call, which a throttled answer would turn into a duplicate on retry, and imports key pairs
  untagged, so the volume, the key pair and an elastic address are created with one signed
  ``connection.request`` of the stock driver each, tags included.
- **Idempotent retries**: ``RunInstances`` carries a ``ClientToken`` that stays the same across the
  retries of one ``create_node``, so a throttled answer to a call that did run cannot start a
  second machine; key pairs and security groups have unique names, and "already exists" answers
  mean the earlier attempt worked.
- **IMDSv2**: libcloud 3.9's ``create_node`` has no ``MetadataOptions`` parameter, so right after
  ``RunInstances`` the driver calls ``ModifyInstanceMetadataOptions`` (``HttpTokens=required``);
  a failure there is an error of ``create_node`` (the machine is tagged and listed, so the engine's
  resume or ``destroy`` finds it).
- **Network**: a given subnet, else the default VPC's default subnet of the requested zone (or the
  first zone); ``public_ip`` asks ``RunInstances`` for a public address on the primary interface.
- **Zones** (capacity fallback): ``list_zones`` is the region's *available* zones
  (``DescribeAvailabilityZones``) that have a default-VPC subnet, so a ``NodeRequest.zone`` always
  maps to a subnet there; a driver pinned to one subnet has nothing to fall back to (``[]``). A
  request naming its own subnet (``network``) stays in that subnet's zone whatever ``zone`` says.
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
from provisioner.errors import CloudError, NotFound, TemplateError
from provisioner.images import plan_image
from provisioner.spec import GroupSpec, MachineSpec

log = logging.getLogger(__name__)

NAMESPACE = "http://ec2.amazonaws.com/doc/2016-11-15/"
_ARCH = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "arm64", "aarch64": "arm64"}
_STATES: Mapping[str, NodeState] = {"pending": "pending", "running": "running", "shutting-down": "stopping",
                                    "stopping": "stopping", "stopped": "stopped", "terminated": "terminated"}
DATA_DEVICE = "/dev/sdf"
POLL_S = 1.0


def endpoint_kwargs(credentials: AwsCredentials, region: str) -> dict[str, Any]:
    """libcloud ``EC2NodeDriver`` keyword arguments: region, SigV4, and the endpoint override."""
    kwargs: dict[str, Any] = {"region": region, "signature_version": "4"}
    if credentials.endpoint_url:
        url = urlsplit(credentials.endpoint_url if "://" in credentials.endpoint_url
                       else f"https://{credentials.endpoint_url}")
        secure = url.scheme != "http"
        kwargs.update(host=url.hostname, secure=secure, port=url.port or (443 if secure else 80))
    if credentials.session_token:
        kwargs["token"] = credentials.session_token
    return kwargs


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
    params = {"TagSpecification.1.ResourceType": resource_type}
    for n, (key, value) in enumerate(tags.items(), start=1):
        params[f"TagSpecification.1.Tag.{n}.Key"] = key
        params[f"TagSpecification.1.Tag.{n}.Value"] = value
    return params


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

    def __repr__(self) -> str:
        return f"Ec2Driver(region={self.region!r}, credentials={self._credentials!r})"

    # -- plumbing -----------------------------------------------------------------------------------
    @property
    def libcloud(self) -> Any:
        """This thread's stock libcloud driver."""
        driver = getattr(self._local, "driver", None)
        if driver is None:
            from libcloud.compute.drivers.ec2 import EC2NodeDriver

            driver = EC2NodeDriver(self._credentials.access_key_id, self._credentials.secret_access_key,
                                   **endpoint_kwargs(self._credentials, self.region))
            self._local.driver = driver
        return driver

    def _call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """``libcloud.<method>(...)`` with typed errors and retries (the driver looked up per attempt)."""
        return self._calls(what, lambda: getattr(self.libcloud, method)(*args, **kwargs))

    def _action(self, params: dict[str, str]) -> Any:
        """One signed EC2 API action through the stock driver's connection; its parsed XML answer."""
        drv = self.libcloud
        return self._calls(params["Action"], lambda: drv.connection.request(drv.path, params=params).object)

    def _default_subnets(self) -> list[Any]:
        with self._lock:
            if self._subnets is None:
                self._subnets = self._call("DescribeSubnets", "ex_list_subnets",
                                           filters={"default-for-az": "true"})
            return self._subnets

    def _subnet_for(self, wanted: str | None, zone: str | None) -> Any:
        """The given subnet (by id), else the default VPC's default subnet of ``zone`` (or the first)."""
        wanted = wanted or self.subnet
        if wanted:
            if wanted not in self._named_subnets:
                found = self._call("DescribeSubnets", "ex_list_subnets", subnet_ids=[wanted])
                if not found:
                    raise NotFound(f"EC2 {self.region}: no subnet {wanted!r}")
                self._named_subnets[wanted] = found[0]
            return self._named_subnets[wanted]
        subnets = sorted(self._default_subnets(), key=lambda s: s.extra.get("zone") or "")
        in_zone = [s for s in subnets if zone is None or s.extra.get("zone") == zone]
        if not in_zone:
            raise NotFound(f"EC2 {self.region}: the default VPC has no subnet in zone {zone!r} "
                           "(name a subnet)")
        return in_zone[0]

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

    def _find_group(self, name: str) -> Any | None:
        groups = self._call("DescribeSecurityGroups", "ex_get_security_groups",
                            filters={"group-name": name, "vpc-id": self._vpc_id()})
        return groups[0] if groups else None

    def ensure_security_group(self, deployment: str, rules: Sequence[FirewallRule]) -> str:
        name = resource_name(deployment, "sg")
        group = self._find_group(name)
        if group is None:
            try:  # tagged as it is created, so a least-privilege policy can scope it (README, IAM)
                self._action({"Action": "CreateSecurityGroup", "GroupName": name,
                              "GroupDescription": f"oscar-deploy {deployment}", "VpcId": self._vpc_id(),
                              **_tag_params("security-group", {"Name": name, **deployment_tags(deployment)})})
            except CloudError as exc:
                if "Duplicate" not in str(exc):
                    raise
            group = self._find_group(name)
            if group is None:
                raise CloudError(f"EC2 {self.region}: security group {name} vanished after creation")
        if (group.extra.get("tags") or {}).get(TAG_DEPLOYMENT) != deployment:
            self._call("CreateTags", "ex_create_tags", SimpleNamespace(id=group.id),
                       deployment_tags(deployment))
        present = {self._rule_key_of(r) for r in group.ingress_rules}
        for rule in rules:
            if self._rule_key(rule, group.id) in present:
                continue
            protocol = "-1" if rule.protocol == "-1" else rule.protocol
            ports = (-1, -1) if protocol in ("-1", "icmp") and rule.from_port <= 0 else (
                rule.from_port, rule.to_port)
            source = ({"group_pairs": [{"group_id": group.id}]} if rule.source == "cluster"
                      else {"cidr_ips": [rule.source]})
            try:
                self._call("AuthorizeSecurityGroupIngress", "ex_authorize_security_group_ingress",
                           group.id, ports[0], ports[1], protocol=protocol,
                           description=rule.description or None, **source)
            except CloudError as exc:
                if "Duplicate" not in str(exc):
                    raise
        return str(group.id)

    @staticmethod
    def _rule_key(rule: FirewallRule, group_id: str) -> tuple[str, str, str, str]:
        protocol = "-1" if rule.protocol == "-1" else rule.protocol
        ports = ("", "") if protocol == "-1" else (str(rule.from_port), str(rule.to_port))
        return protocol, ports[0], ports[1], group_id if rule.source == "cluster" else rule.source

    @staticmethod
    def _rule_key_of(rule: Mapping[str, Any]) -> tuple[str, str, str, str] | None:
        protocol = str(rule.get("protocol"))
        ports = ("", "") if protocol == "-1" else (str(rule.get("from_port")), str(rule.get("to_port")))
        pairs = [p.get("group_id") for p in rule.get("group_pairs") or []]
        sources = list(rule.get("cidr_ips") or []) + pairs
        return (protocol, ports[0], ports[1], sources[0]) if len(sources) == 1 else None

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
            group = GroupSpec(name="image", role="worker", provider="aws", machine=machine)
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
        name = image.extra.get("root_device_name") if image is not None else None
        return str(name or "/dev/sda1")

    # -- sizes --------------------------------------------------------------------------------------
    def sizes_that_fit(self, cpus: int, memory_mib: int, arch: str = "amd64", disk_gib: int | None = None,
                       explicit: str | None = None) -> list[str]:
        """From libcloud's bundled catalogue and prices (as the planner chooses), cheapest first; the
        root disk is an EBS volume of any size, so ``disk_gib`` never rules a type out."""
        from provisioner import sizes

        catalogue = sizes.region_sizes(self.region) or ()
        if explicit:
            if sizes.find_size(catalogue, explicit) is None and catalogue:
                raise NotFound(f"EC2 {self.region}: no instance type {explicit!r}")
            return [explicit]
        fitting = [s for s in catalogue if s.current and s.price_per_hour is not None
                   and sizes.fits(s, cpus, memory_mib, arch, 0)]  # type: ignore[arg-type]
        fitting.sort(key=lambda s: (s.price_per_hour, s.cpus, s.memory_mib, s.metal, s.name))
        return [s.name for s in fitting]

    # -- machines -----------------------------------------------------------------------------------
    def create_node(self, request: NodeRequest) -> CloudNode:
        from libcloud.compute.base import NodeImage, NodeSize

        drv = self.libcloud
        size = NodeSize(request.size, request.size, 0, 0, None, None, driver=drv)
        image = NodeImage(request.image, request.image, driver=drv)
        subnet = self._subnet_for(request.network, request.zone)
        mappings = None
        if request.disk_gib:
            mappings = [{"DeviceName": self._root_device(request.image),
                         "Ebs": {"VolumeSize": request.disk_gib, "VolumeType": "gp3",
                                 "DeleteOnTermination": "true"}}]
        token = f"{request.name[-27:]}-{uuid.uuid4().hex}"  # same for every retry of this create
        node = self._call(
            "RunInstances", "create_node", name=request.name, size=size, image=image,
            ex_keyname=request.key_name or None, ex_userdata=request.user_data,
            ex_security_group_ids=[request.security_group] if request.security_group else None,
            ex_subnet=subnet, ex_assign_public_ip=request.public_ip, ex_clienttoken=token,
            ex_metadata=deployment_tags(request.deployment, request.group),
            ex_blockdevicemappings=mappings)
        self._action({"Action": "ModifyInstanceMetadataOptions", "InstanceId": node.id,
                      "HttpTokens": "required", "HttpEndpoint": "enabled"})
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
        nodes = (self._to_cloud_node(n, deployment) for n in self._nodes_of(deployment))
        return [n for n in nodes if n.state != "terminated"]

    def destroy_node(self, node: CloudNode) -> None:
        try:
            self._call("TerminateInstances", "destroy_node", SimpleNamespace(id=node.id))
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
        found = self._call("DescribeInstances", "list_nodes", ex_node_ids=[node.id])
        fresh = found[0] if found else None
        if fresh is None:
            raise NotFound(f"EC2 {self.region}: instance {node.id} does not exist")
        public = [ip for ip in fresh.public_ips if ip]
        if public:
            return str(public[0])
        prefix = resource_prefix(deployment)
        own = node.name[len(prefix):] if node.name.startswith(prefix) else node.name
        tags = {"Name": resource_name(deployment, own, "address"), **deployment_tags(deployment, node.group)}
        spare = [a for a in self._addresses_of(deployment)  # allocated before a crash, never associated
                 if not a.instance_id and a.extra.get("tags", {}).get("Name") == tags["Name"]]
        if spare:
            allocation, ip = spare[0].extra["allocation_id"], spare[0].ip
        else:
            answer = self._action({"Action": "AllocateAddress", "Domain": "vpc",
                                   **_tag_params("elastic-ip", tags)})
            allocation = answer.findtext(f"{{{NAMESPACE}}}allocationId")
            ip = answer.findtext(f"{{{NAMESPACE}}}publicIp")
            self._call("CreateTags", "ex_create_tags", SimpleNamespace(id=allocation), tags)
        self._action({"Action": "AssociateAddress", "AllocationId": str(allocation), "InstanceId": node.id})
        return str(ip)

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
                self._call("DeleteVolume", "destroy_volume", volume)
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

    def _until_free(self, what: str, method: str, *args: Any) -> None:
        """Delete something a just-terminated machine may still hold (EC2 answers DependencyViolation
        until its network interfaces are gone): try again until ``create_timeout_s``."""
        deadline = time.monotonic() + self.settings.create_timeout_s
        while True:
            try:
                self._call(what, method, *args)
                return
            except CloudError as exc:
                if "DependencyViolation" not in str(exc) or time.monotonic() > deadline:
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

