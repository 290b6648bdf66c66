"""OpenStack through libcloud's stock ``OpenStack_2_NodeDriver``, implementing ``CloudDriver``.

Keystone v3 with a password, an application credential or an OIDC access token, as
``OpenStackCredentials.libcloud_args`` maps them; project, domain and region come with it.

How the contract maps onto OpenStack (DESIGN §2, issue 3):

- **Tags**: servers carry the deployment and group as Nova metadata; key pairs, security groups and
  volumes carry the name prefix (libcloud sets no tags on them); a floating IP is created already
  bound to the front-end's port (one Neutron call, so no crash leaves one unbound and unnamed) and
  is found again through that port, or by its ``description`` (the resource name).
- **Flavors**: from the live list (read as JSON: libcloud's ``list_sizes`` looks up a price per
  flavor, which OpenStack never has), cheapest that fits = fewest vCPUs, then RAM, then disk.
- **Images**: Glance properties ``os_distro``/``os_version``/``architecture`` when the cloud sets
  them, else the image name; newest first; an explicit id or name wins.
- **Capacity**: Nova accepts a server and only later puts it in ERROR with "No valid host was
  found", so ``create_node`` waits until the server has left BUILD (bounded by
  ``create_timeout_s``) and turns that fault into ``CapacityError`` after deleting the server.
- **Zones**: ``list_zones`` reads Nova's ``os-availability-zone`` (available zones only); a cloud
  that does not serve it (404: the extension is off, as on the test server) has none to offer, and a
  server without a zone goes where Nova's scheduler puts it.
- **Sweep** order: floating IPs of the deployment's servers first (found through their ports, which
  vanish with the servers), then servers (waiting until gone), volumes, security groups, key pairs.
- libcloud drivers are not thread-safe (one HTTP connection each), so each thread gets its own;
  they share nothing but the immutable credentials.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

from provisioner.clouds.base import (
    TAG_GROUP,
    CloudNode,
    CloudResource,
    FirewallRule,
    NodeRequest,
    NodeState,
    belongs_to,
    deployment_tags,
    resource_name,
)
from provisioner.clouds.retry import CloudCalls
from provisioner.config import ProvisionerSettings
from provisioner.credentials import OpenStackCredentials
from provisioner.errors import CapacityError, CloudError, NotFound

log = logging.getLogger(__name__)

_STATES: Mapping[str, NodeState] = {"BUILD": "pending", "REBUILD": "pending", "ACTIVE": "running",
                                    "SHUTOFF": "stopped", "STOPPED": "stopped", "DELETED": "terminated",
                                    "SOFT_DELETED": "terminated", "REBOOT": "pending",
                                    "HARD_REBOOT": "pending"}
_ARCHES = {"amd64": ("x86_64", "amd64"), "arm64": ("aarch64", "arm64")}


def flavor_order(flavors: Sequence[Mapping[str, Any]], cpus: int, memory_mib: int,
                 disk_gib: int | None) -> list[Mapping[str, Any]]:
    """Flavors that give at least this, cheapest first: fewest vCPUs, then RAM, then disk.

    A flavor with a 0 GB root disk boots from a volume of any size, so it fits any disk request."""
    def fits(f: Mapping[str, Any]) -> bool:
        disk = int(f.get("disk") or 0)
        return (int(f.get("vcpus") or 0) >= cpus and int(f.get("ram") or 0) >= memory_mib
                and (not disk_gib or disk == 0 or disk >= disk_gib))

    return sorted((f for f in flavors if fits(f)),
                  key=lambda f: (int(f["vcpus"]), int(f["ram"]), int(f.get("disk") or 0), str(f["name"])))


def pick_image(images: Sequence[Mapping[str, Any]], distribution: str, version: str,
               arch: str) -> Mapping[str, Any] | None:
    """The newest active image for an OS: by Glance properties when set, else by name."""
    arch_names = _ARCHES.get(arch, (arch,))
    other_arches = [a for key, names in _ARCHES.items() if key != arch for a in names]

    def by_properties(image: Mapping[str, Any]) -> bool:
        image_arch = str(image.get("architecture") or image.get("hw_architecture") or "x86_64").lower()
        return (str(image.get("os_distro") or "").lower() == distribution.lower()
                and str(image.get("os_version") or "") == version and image_arch in arch_names)

    def by_name(image: Mapping[str, Any]) -> bool:
        name = str(image.get("name") or "").lower()
        if distribution.lower() not in name or version not in name or any(a in name for a in other_arches):
            return False
        return arch == "amd64" or any(a in name for a in arch_names)  # an unmarked name is x86_64

    active = [i for i in images if i.get("status", "active") == "active"]
    chosen = [i for i in active if by_properties(i)] or [
        i for i in active if not i.get("os_distro") and by_name(i)]
    return max(chosen, key=lambda i: (str(i.get("created_at") or ""), str(i.get("name") or "")), default=None)


def available_zones(answer: Mapping[str, Any]) -> list[str]:
    """Zone names from Nova's ``GET /os-availability-zone`` answer, available ones only, sorted."""
    zones = answer.get("availabilityZoneInfo") or []
    return sorted(str(z["zoneName"]) for z in zones
                  if z.get("zoneName") and (z.get("zoneState") or {}).get("available"))


class OpenStackDriver:
    """``CloudDriver`` for one OpenStack project and region."""

    provider = "openstack"

    def __init__(self, credentials: OpenStackCredentials, region: str | None = None,
                 settings: ProvisionerSettings | None = None, *, network: str | None = None,
                 floating_pool: str | None = None, poll_s: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.region = region or credentials.region or ""
        self.settings = settings or ProvisionerSettings()
        self.network = network
        self.floating_pool = floating_pool
        self._credentials = credentials
        self._calls = CloudCalls("OpenStack", self.settings,
                                 (credentials.secret, credentials.application_credential_id), sleep=sleep)
        self._poll_s = poll_s
        self._sleep = sleep
        self._local = threading.local()
        self._flavors: list[Mapping[str, Any]] | None = None
        self._zones: list[str] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenStackDriver(region={self.region!r}, credentials={self._credentials!r})"

    # -- plumbing -----------------------------------------------------------------------------------
    @property
    def libcloud(self) -> Any:
        """This thread's stock libcloud driver."""
        driver = getattr(self._local, "driver", None)
        if driver is None:
            from libcloud.compute.drivers.openstack import OpenStack_2_NodeDriver

            key, secret, kwargs = self._credentials.libcloud_args()
            if self.region:
                kwargs["ex_force_service_region"] = self.region
            driver = OpenStack_2_NodeDriver(key, secret, **kwargs)
            self._local.driver = driver
        return driver

    def _call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._calls(what, lambda: getattr(self.libcloud, method)(*args, **kwargs))

    def _json(self, what: str, service: str, path: str, method: str = "GET",
              data: Mapping[str, Any] | None = None) -> Any:
        """One request through the stock driver's authenticated connection to a service."""
        def run() -> Any:
            connection = getattr(self.libcloud, service)
            return connection.request(path, method=method, data=data).object
        return self._calls(what, run)

    # -- key pair and security group ----------------------------------------------------------------
    def ensure_key_pair(self, deployment: str, public_key: str) -> str:
        name = resource_name(deployment, "key")
        if name in {k.name for k in self._call("ListKeypairs", "list_key_pairs")}:
            return name
        try:
            self._call("ImportKeypair", "import_key_pair_from_string", name, public_key.strip())
        except CloudError as exc:
            if "already exists" not in str(exc):
                raise
        log.info("OpenStack: key pair %s imported", name)
        return name

    def _groups_named(self, name: str) -> list[Any]:
        groups = self._call("ListSecurityGroups", "ex_list_security_groups")
        return sorted((g for g in groups if g.name == name), key=lambda g: g.id)

    def ensure_security_group(self, deployment: str, rules: Sequence[FirewallRule]) -> str:
        name = resource_name(deployment, "sg")
        groups = self._groups_named(name)
        if not groups:
            self._call("CreateSecurityGroup", "ex_create_security_group", name, f"oscar-deploy {deployment}")
            groups = self._groups_named(name)
            if not groups:
                raise CloudError(f"OpenStack: security group {name} vanished after creation")
        group, twins = groups[0], groups[1:]
        for twin in twins:  # a retried create that had worked: Nova refuses an ambiguous name
            self._call("DeleteSecurityGroup", "ex_delete_security_group", twin)
        present = {self._rule_key_of(r) for r in group.rules}
        for rule in rules:
            key = self._rule_key(rule, group.id)
            if key in present:
                continue
            protocol, low, high = (None, None, None) if rule.protocol == "-1" else (
                rule.protocol, rule.from_port, rule.to_port)
            source = ({"source_security_group": group} if rule.source == "cluster" else {"cidr": rule.source})
            try:
                self._call("CreateSecurityGroupRule", "ex_create_security_group_rule", group, protocol, low,
                           high, **source)
            except CloudError as exc:
                if "already exists" not in str(exc):
                    raise
        return str(group.id)

    @staticmethod
    def _rule_key(rule: FirewallRule, group_id: str) -> tuple[str, str, str, str]:
        if rule.protocol == "-1":
            protocol, ports = "any", ("", "")
        else:
            protocol, ports = rule.protocol, (str(rule.from_port), str(rule.to_port))
        return protocol, ports[0], ports[1], group_id if rule.source == "cluster" else rule.source

    @staticmethod
    def _rule_key_of(rule: Any) -> tuple[str, str, str, str]:
        protocol = str(rule.ip_protocol or "any")
        ports = ("", "") if protocol == "any" else (str(rule.from_port), str(rule.to_port))
        source = rule.ip_range or (rule.group or {}).get("name") or ""
        return protocol, ports[0], ports[1], str(source)

    # -- images and flavors -------------------------------------------------------------------------
    def _images(self, query: str = "") -> list[Mapping[str, Any]]:
        images: list[Mapping[str, Any]] = []
        path: str | None = f"/v2/images{query}"
        while path:
            page = self._json("ListImages", "image_connection", path)
            images += page.get("images", [])
            path = page.get("next")
        return images

    def resolve_image(self, distribution: str, version: str, arch: str, explicit: str | None) -> str:
        if explicit:
            matches = [i for i in self._images() if explicit in (i.get("id"), i.get("name"))]
            if not matches:
                raise NotFound(f"OpenStack: image {explicit!r} does not exist")
            return str(max(matches, key=lambda i: str(i.get("created_at") or ""))["id"])
        image = pick_image(self._images(), distribution, version, arch)
        if image is None:
            raise NotFound(f"OpenStack: no active image of {distribution} {version} for {arch}")
        return str(image["id"])

    def _flavor_list(self) -> list[Mapping[str, Any]]:
        with self._lock:
            if self._flavors is None:
                self._flavors = list(self._json("ListFlavors", "connection", "/flavors/detail")["flavors"])
            return self._flavors

    def _flavor(self, wanted: str) -> Mapping[str, Any]:
        for flavor in self._flavor_list():
            if wanted in (flavor["id"], flavor["name"]):
                return flavor
        raise NotFound(f"OpenStack: no flavor {wanted!r}")

    def sizes_that_fit(self, cpus: int, memory_mib: int, arch: str = "amd64", disk_gib: int | None = None,
                       explicit: str | None = None) -> list[str]:
        if explicit:
            return [str(self._flavor(explicit)["name"])]
        return [str(f["name"]) for f in flavor_order(self._flavor_list(), cpus, memory_mib, disk_gib)]

    def list_zones(self) -> list[str]:
        with self._lock:
            cached = self._zones
        if cached is None:
            try:
                cached = available_zones(self._json("ListAvailabilityZones", "connection",
                                                    "/os-availability-zone"))
            except NotFound:
                log.info("OpenStack: no os-availability-zone API here; no other zone to fall back to")
                cached = []
            with self._lock:
                self._zones = cached
        return list(cached)

    # -- machines -----------------------------------------------------------------------------------
    def _network(self, wanted: str | None) -> Any | None:
        wanted = wanted or self.network
        if not wanted:
            return None  # Nova picks the project's only network (and says so when there are several)
        for network in self._call("ListNetworks", "ex_list_networks"):
            if wanted in (network.id, network.name):
                return network
        raise NotFound(f"OpenStack: no network {wanted!r}")

    def create_node(self, request: NodeRequest) -> CloudNode:
        from libcloud.compute.base import NodeImage, NodeSize

        drv = self.libcloud
        flavor = self._flavor(request.size)
        size = NodeSize(flavor["id"], flavor["name"], flavor["ram"], flavor.get("disk"), None, None,
                        driver=drv)
        network = self._network(request.network)
        groups = [g for g in self._call("ListSecurityGroups", "ex_list_security_groups")
                  if g.id == request.security_group] if request.security_group else []
        if request.security_group and not groups:
            raise NotFound(f"OpenStack: no security group {request.security_group}")
        boot_volume = None
        if request.disk_gib and int(flavor.get("disk") or 0) < request.disk_gib:
            boot_volume = [{"boot_index": 0, "uuid": request.image, "source_type": "image",
                            "destination_type": "volume", "volume_size": request.disk_gib,
                            "delete_on_termination": True}]
        attempts = 0

        def create() -> Any:
            nonlocal attempts
            attempts += 1
            if attempts > 1:  # an answer lost to a 5xx may hide a server Nova did create: reuse it
                for server in self.libcloud.list_nodes():
                    if server.name == request.name and belongs_to(request.deployment, server.name,
                                                                  server.extra.get("metadata")):
                        return server
            return self.libcloud.create_node(
                name=request.name, size=size, image=NodeImage(request.image, request.image, driver=drv),
                ex_blockdevicemappings=boot_volume, networks=[network] if network is not None else None,
                ex_keyname=request.key_name or None, ex_userdata=request.user_data,
                ex_security_groups=groups or None, ex_availability_zone=request.zone,
                ex_metadata=deployment_tags(request.deployment, request.group))

        node = self._calls("CreateServer", create)
        node = self._settled(node.id, request.name)
        log.info("OpenStack: %s is %s", request.name, node.id)
        return self._to_cloud_node(node, request.deployment)

    def _settled(self, node_id: str, name: str) -> Any:
        """Wait until Nova has scheduled the server (left BUILD); a scheduling fault is an error."""
        deadline = time.monotonic() + self.settings.create_timeout_s
        while True:
            node = self._call("GetServer", "ex_get_node_details", node_id)
            if node is None:
                raise CloudError(f"OpenStack: server {name} ({node_id}) vanished while building")
            status = node.extra.get("vm_state") or ""
            if str(node.state) != "pending" and status != "building":
                break
            if time.monotonic() > deadline:
                return node
            self._sleep(self._poll_s)
        if str(node.state) == "error":
            fault = (node.extra.get("fault") or {}).get("message") or "the server went into ERROR"
            self.destroy_node(SimpleNamespace(id=node_id))  # type: ignore[arg-type]
            error = CapacityError if "no valid host" in fault.lower() else CloudError
            raise error(f"OpenStack CreateServer {name}: {fault}")
        return node

    def _to_cloud_node(self, node: Any, deployment: str) -> CloudNode:
        metadata = node.extra.get("metadata") or {}
        raw = str(node.extra.get("vm_state") or "")
        state = _STATES.get(self._status_of(node), "unknown")
        if raw == "deleted":
            state = "terminated"
        flavor = node.extra.get("flavorId")
        names = {f["id"]: f["name"] for f in self._flavor_list()}  # listed once per driver
        created = node.created_at.timestamp() if getattr(node, "created_at", None) else None
        return CloudNode(id=str(node.id), name=str(node.name), deployment=deployment,
                         group=metadata.get(TAG_GROUP), state=state, size=names.get(flavor, flavor),
                         public_ips=tuple(node.public_ips), private_ips=tuple(node.private_ips),
                         zone=node.extra.get("availability_zone"), created_at=created)

    @staticmethod
    def _status_of(node: Any) -> str:
        state = str(node.state)
        return {"pending": "BUILD", "running": "ACTIVE", "stopped": "SHUTOFF", "terminated": "DELETED",
                "rebooting": "REBOOT"}.get(state, state.upper())

    def _servers_of(self, deployment: str) -> list[Any]:
        return [n for n in self._call("ListServers", "list_nodes")
                if belongs_to(deployment, n.name, n.extra.get("metadata"))]

    def list_nodes(self, deployment: str) -> list[CloudNode]:
        nodes = (self._to_cloud_node(n, deployment) for n in self._servers_of(deployment))
        return sorted((n for n in nodes if n.state != "terminated"), key=lambda n: n.created_at or 0.0)

    def destroy_node(self, node: CloudNode) -> None:
        try:
            self._call("DeleteServer", "destroy_node", SimpleNamespace(id=node.id))
        except NotFound:
            log.info("OpenStack: server %s was already gone", node.id)

    # -- storage and addresses ----------------------------------------------------------------------
    def _volumes_of(self, deployment: str) -> list[Any]:
        return [v for v in self._call("ListVolumes", "list_volumes")
                if belongs_to(deployment, v.name, (v.extra or {}).get("metadata"))]

    def ensure_volume(self, deployment: str, group: str, size_gib: int, zone: str | None) -> str:
        name = resource_name(deployment, group, "data")
        for volume in self._volumes_of(deployment):
            if volume.name == name:
                return str(volume.id)
        volume = self._call("CreateVolume", "create_volume", size_gib, name, location=zone)
        log.info("OpenStack: volume %s is %s", name, volume.id)
        return str(volume.id)

    def attach_volume(self, volume_id: str, node: CloudNode) -> None:
        deadline = time.monotonic() + self.settings.create_timeout_s
        while True:
            volume = self._call("GetVolume", "ex_get_volume", volume_id)
            attached = [a.get("server_id") for a in volume.extra.get("attachments") or []]
            if node.id in attached:
                return
            if volume.extra.get("state") == "available" or time.monotonic() > deadline:
                break
            self._sleep(self._poll_s)
        self._call("AttachVolume", "attach_volume", SimpleNamespace(id=node.id), volume)

    def _floating_ips(self) -> list[Mapping[str, Any]]:
        return list(self._json("ListFloatingIps", "network_connection", "/v2.0/floatingips")["floatingips"])

    def _ports_of(self, node_id: str) -> list[str]:
        ports = self._json("ListInterfaces", "connection", f"/servers/{node_id}/os-interface")
        return [str(p["port_id"]) for p in ports.get("interfaceAttachments", [])]

    def ensure_public_address(self, deployment: str, node: CloudNode) -> str:
        fresh = self._call("GetServer", "ex_get_node_details", node.id)
        if fresh is None:
            raise NotFound(f"OpenStack: server {node.id} does not exist")
        if fresh.public_ips:
            return str(fresh.public_ips[0])
        ports = self._ports_of(node.id)
        if not ports:
            raise CloudError(f"OpenStack: server {node.name} has no port for a floating IP (still building?)")
        for fip in self._floating_ips():
            if fip.get("port_id") in ports:
                return str(fip["floating_ip_address"])
        pools = self._call("ListFloatingIpPools", "ex_list_floating_ip_pools")
        pool = next((p for p in pools if self.floating_pool in (None, p.id, p.name)), None)
        if pool is None:
            raise NotFound(f"OpenStack: no external network {self.floating_pool or ''} to take a floating "
                           "IP from")
        body = {"floatingip": {"floating_network_id": pool.id, "port_id": ports[0],
                               "description": resource_name(deployment, node.group or "node", "address")}}
        fip = self._json("CreateFloatingIp", "network_connection", "/v2.0/floatingips", "POST", body)
        return str(fip["floatingip"]["floating_ip_address"])

    # -- sweep --------------------------------------------------------------------------------------
    def sweep(self, deployment: str, *, keep_data: bool = False) -> list[CloudResource]:
        removed: list[CloudResource] = []
        servers = self._servers_of(deployment)
        ports = {p for s in servers for p in self._ports_of(s.id)}
        for fip in self._floating_ips():
            if fip.get("port_id") in ports or belongs_to(deployment, fip.get("description"), None):
                self._json("DeleteFloatingIp", "network_connection", f"/v2.0/floatingips/{fip['id']}",
                           "DELETE")
                removed.append(CloudResource("address", str(fip["id"]), fip.get("floating_ip_address")))
        for server in servers:
            self.destroy_node(SimpleNamespace(id=server.id))  # type: ignore[arg-type]
            removed.append(CloudResource("instance", str(server.id), server.name))
        self._wait_gone(deployment, {s.id for s in servers})
        if not keep_data:
            for volume in self._volumes_of(deployment):
                self._until_free("DeleteVolume", "destroy_volume", volume)
                removed.append(CloudResource("volume", str(volume.id), volume.name))
        for group in self._call("ListSecurityGroups", "ex_list_security_groups"):
            if belongs_to(deployment, group.name, None):
                self._until_free("DeleteSecurityGroup", "ex_delete_security_group", group)
                removed.append(CloudResource("security_group", str(group.id), group.name))
        for key in self._call("ListKeypairs", "list_key_pairs"):
            if belongs_to(deployment, key.name, None):
                self._call("DeleteKeypair", "delete_key_pair", key)
                removed.append(CloudResource("key_pair", str(key.name), key.name))
        return removed

    def _until_free(self, what: str, method: str, *args: Any) -> None:
        """Delete something a just-deleted server may still hold (Neutron: "in use" while its ports
        go; Cinder: the volume detaches after the server): try again until ``create_timeout_s``."""
        deadline = time.monotonic() + self.settings.create_timeout_s
        while True:
            try:
                self._call(what, method, *args)
                return
            except CloudError as exc:
                text = str(exc).lower()
                if not ("in use" in text or "in-use" in text or "status must be" in text) \
                        or time.monotonic() > deadline:
                    raise
            self._sleep(self._poll_s)

    def _wait_gone(self, deployment: str, ids: set[str]) -> None:
        deadline = time.monotonic() + self.settings.create_timeout_s
        while ids:
            left = [s.id for s in self._servers_of(deployment) if s.id in ids]
            if not left:
                return
            if time.monotonic() > deadline:
                raise CloudError(f"OpenStack: servers still there after "
                                 f"{self.settings.create_timeout_s:.0f} s: {', '.join(left)}")
            self._sleep(self._poll_s)
