"""OpenStack through libcloud's stock ``OpenStack_2_NodeDriver``, implementing ``CloudDriver``.

Keystone v3 with a password, an application credential or an OIDC access token, as
``OpenStackCredentials.libcloud_args`` maps them. The decisions made from what the cloud lists are
pure functions in ``openstack_choices``; this module does the calls. What a real site adds, each
checked against the upstream service's code in the test server:

- **Scope, region, services**: a password scoped by project id or by a domain *name* (libcloud sends
  a project name and a domain id only) is resolved from the projects an unscoped token may use; the
  region (when none is given: the catalog's only one) and each service's catalog name are read from
  the catalog; the IM's ``service_name``/``base_url`` pick the compute service; ``cacert``/``verify``
  give the site's CA per driver.
- **Expiring credentials**: an auth error reads the credentials again from their source and tries
  once more (an OIDC token rewritten by oidc-agent), so the daemon outlives a token.
- **Network**: none configured, the project's own network (Nova would count shared ones too and
  refuse as ambiguous); several: ``BadInput`` naming them.
- **Flavor vs image**: a flavor is checked against the image's size, ``min_disk`` and ``min_ram``
  (``SizeUnfit``, so the engine takes the next); a 0 GB-disk flavor boots from a volume.
- **Soft delete**: a server Nova only soft-deletes is force-deleted; a soft-deleted one is gone.
- **Floating IP**: from the gateway network of the router on the port's subnet.
- **Volume zone**: a Nova zone is passed to Cinder only when Cinder has a zone of that name.
- **Lost answers**: a retried create reuses a same-name server only if it is not failed or going; a
  retried floating IP create first looks for the one the lost answer made.

How the contract maps onto OpenStack:

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
  that does not serve it (404: the extension is off) has none to offer, and a server without a zone
  goes where Nova's scheduler puts it.
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
from provisioner.clouds.openstack_choices import (
    available_zones,
    catalog_choice,
    choose_network,
    ethertype_of,
    fitted_user_data,
    flavor_order,
    image_fit,
    pick_image,
    project_scope,
)
from provisioner.clouds.retry import CloudCalls
from provisioner.config import ProvisionerSettings
from provisioner.credentials import OpenStackCredentials, credentials_from_source
from provisioner.errors import AuthError, BadInput, CapacityError, CloudError, CredentialsError, NotFound

log = logging.getLogger(__name__)

_STATES: Mapping[str, NodeState] = {"BUILD": "pending", "REBUILD": "pending", "ACTIVE": "running",
                                    "SHUTOFF": "stopped", "STOPPED": "stopped", "DELETED": "terminated",
                                    "SOFT_DELETED": "terminated", "REBOOT": "pending",
                                    "HARD_REBOOT": "pending"}
_SCHEDULING_FAULTS = ("no valid host", "exceeded maximum number of retries")
"""Nova's ``NoValidHost`` and its subclass ``MaxRetriesExceeded`` (nova/exception.py): no host could
build the server (a GPU host that fails its builds ends in the second), so: capacity."""


class SizeUnfit(CapacityError, BadInput):
    """This flavor cannot boot this image (its RAM or root disk is smaller than the image needs).

    A ``CapacityError`` so the engine goes on to the next, larger flavor, as for a full one; and bad
    input (exit 2) when no flavor is left, since no waiting makes the template's choice fit."""


def tls_connection_class(cacert: str | None, verify: bool) -> Any:
    """libcloud's HTTP connection class verifying against the site's CA bundle: libcloud reads its
    CA settings from module globals, which would change them for every cloud of the process."""
    from libcloud.http import LibcloudConnection

    class SiteConnection(LibcloudConnection):  # type: ignore[misc]
        def _setup_verify(self) -> None:
            self.verify = verify

        def _setup_ca_cert(self, **kwargs: Any) -> None:
            self.ca_cert = cacert if verify else None

    return SiteConnection


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
        self._secrets: tuple[str | None, ...] = (credentials.secret, credentials.application_credential_id)
        self._calls = CloudCalls("OpenStack", self.settings, self._secrets, sleep=sleep)
        self._poll_s = poll_s
        self._sleep = sleep
        self._local = threading.local()
        self._generation = 0
        self._flavors: list[Mapping[str, Any]] | None = None
        self._zones: list[str] | None = None
        self._images_by_id: dict[str, Mapping[str, Any]] = {}
        self._default_network: Mapping[str, Any] | None = None
        self._site: dict[str, Any] | None = None
        """The region, catalog services and project scope the first driver found (per generation)."""
        self._site_generation = -1
        self._lock = threading.RLock()  # held across cloud calls that may build a driver (which takes it)
        if credentials.auth_type == "oidc_access_token" and credentials.source.kind == "environment":
            log.warning("OpenStack: an OIDC access token lasts about an hour and one from the environment "
                        "cannot be read again: for the elastic daemon and long runs, keep it in an auth file "
                        "or clouds.yaml that oidc-agent rewrites, or use an application credential")

    def __repr__(self) -> str:
        return f"OpenStackDriver(region={self.region!r}, credentials={self._credentials!r})"

    # -- plumbing -----------------------------------------------------------------------------------
    @property
    def libcloud(self) -> Any:
        """This thread's stock libcloud driver."""
        driver = getattr(self._local, "driver", None)
        if driver is None or getattr(self._local, "generation", None) != self._generation:
            driver = self._calls.once("Authenticate", self._new_libcloud)
            self._local.driver, self._local.generation = driver, self._generation
        return driver

    _CONNECTIONS = (("connection", "compute"), ("image_connection", "image"),
                    ("network_connection", "network"), ("volumev3_connection", "volumev3"),
                    ("volumev2_connection", "volumev2"))

    def _new_libcloud(self) -> Any:
        """A stock driver for this thread, scoped and pointed at this site's region and services.

        The first one of a driver authenticates once more to read the catalog (and, for a password
        scoped by domain name or project id, the projects the user may use); the others reuse what it
        found."""
        from libcloud.common.openstack_identity import OpenStackServiceCatalog
        from libcloud.compute.drivers.openstack import OpenStack_2_NodeDriver

        creds = self._credentials
        key, secret, kwargs = creds.libcloud_args()
        kwargs.pop("ex_force_service_region", None)
        tls = tls_connection_class(creds.cacert, creds.verify) if creds.cacert or not creds.verify else None
        with self._lock:
            site = self._site if self._site_generation == self._generation else None
        if site is None and creds.auth_type == "password" and (
                creds.project_id or (creds.project_domain_name or "default").lower() != "default") \
                and not creds.project_domain_id:
            projects = self._unscoped_projects(key, secret, kwargs, tls)
            name, domain_id = project_scope(projects, creds.project_name, creds.project_id,
                                            creds.project_domain_name)
            kwargs.update(ex_tenant_name=name, ex_tenant_domain_id=domain_id)
        elif site is not None:
            kwargs.update(site["scope"])
        driver = OpenStack_2_NodeDriver(key, secret, **kwargs)
        for attr, _kind in self._CONNECTIONS:
            connection = getattr(driver, attr)
            if tls is not None:
                connection.conn_class = tls  # the identity connection takes its parent's class
        if site is None:
            auth = driver.connection.get_auth_class()
            auth.authenticate()
            catalog = OpenStackServiceCatalog(service_catalog=auth.urls,
                                              auth_version=driver.connection._auth_version)
            auth.clear_cached_auth_context()  # the connection's first request authenticates as usual
            entries = [(e.service_type, e.service_name, p.region) for e in catalog.get_entries()
                       for p in e.endpoints if p.endpoint_type == "external"]
            wanted = {kind: (creds.service_name if kind == "compute" else getattr(driver, attr).service_name)
                      for attr, kind in self._CONNECTIONS}
            region, services = catalog_choice(entries, self.region or None, wanted)
            site = {"region": region, "services": services,
                    "scope": {k: kwargs[k] for k in ("ex_tenant_name", "ex_tenant_domain_id") if k in kwargs}}
            with self._lock:
                self._site, self._site_generation, self.region = site, self._generation, region
        for attr, kind in self._CONNECTIONS:
            connection = getattr(driver, attr)
            connection.service_region = site["region"]
            if kind in site["services"]:
                connection.service_type, connection.service_name = site["services"][kind]
        if creds.base_url:
            # the compute endpoint alone, as the IM's base_url (libcloud's ex_force_base_url would
            # point Glance, Neutron and Cinder there too)
            driver.connection._ex_force_base_url = creds.base_url
        return driver

    def _unscoped_projects(self, key: str, secret: str, kwargs: Mapping[str, Any], tls: Any) -> list[Any]:
        """The projects this user may scope to, with an unscoped token (``GET /v3/auth/projects``)."""
        from libcloud.common.openstack_identity import (
            OpenStackIdentity_3_0_Connection,
            OpenStackIdentityTokenScope,
        )

        identity = OpenStackIdentity_3_0_Connection(
            auth_url=kwargs["ex_force_auth_url"], user_id=key, key=secret,
            domain_name=kwargs["ex_domain_name"], token_scope=OpenStackIdentityTokenScope.UNSCOPED)
        if tls is not None:
            identity.conn_class = tls
        identity.authenticate()
        return list(identity.authenticated_request("/v3/auth/projects").object.get("projects") or [])

    def _fresh(self, what: str, fn: Callable[[], Any]) -> Any:
        """``fn`` through the retrying calls; on an auth error, once more with the credentials read
        again from where they came from (an OIDC access token lives about an hour and libcloud
        re-authenticates with the one it was given: a file or ``clouds.yaml`` that oidc-agent or a
        cron job rewrites carries the next one)."""
        generation = self._generation
        try:
            return self._calls(what, fn)
        except AuthError:
            # another thread may have read them again meanwhile: then just try with those
            if generation == self._generation and not self._reread_credentials():
                raise
            return self._calls(what, fn)

    def _reread_credentials(self) -> bool:
        """Read the credentials again; True when they changed (every thread's driver is then new)."""
        try:
            fresh = credentials_from_source("openstack", self._credentials.source)
        except CredentialsError as error:
            log.warning("OpenStack: the credentials cannot be read again: %s", error)
            return False
        if not isinstance(fresh, OpenStackCredentials) or fresh == self._credentials:
            return False
        log.info("OpenStack: authentication refused; using the credentials read again from %s",
                 fresh.source.describe())
        with self._lock:
            self._credentials = fresh
            self._secrets = (*self._secrets, fresh.secret, fresh.application_credential_id)
            self._calls = CloudCalls("OpenStack", self.settings, self._secrets, sleep=self._sleep)
            self._generation += 1
        return True

    def _call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._fresh(what, lambda: getattr(self.libcloud, method)(*args, **kwargs))

    def _json(self, what: str, service: str, path: str, method: str = "GET",
              data: Mapping[str, Any] | None = None) -> Any:
        """One request through the stock driver's authenticated connection to a service."""
        def run() -> Any:
            # "volume": the Cinder v3 connection, else v2, as libcloud itself picks one
            connection = (self.libcloud._get_volume_connection() if service == "volume"
                          else getattr(self.libcloud, service))
            return connection.request(path, method=method, data=data).object
        return self._fresh(what, run)

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

    def ensure_security_group(self, deployment: str, rules: Sequence[FirewallRule], *,
                              revoke_others: bool = False) -> str:
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
        if revoke_others:  # CIDR rules only: one naming a group is the cluster's own
            wanted = {self._rule_key(rule, group.id) for rule in rules}
            for stale in (r for r in group.rules if r.ip_range and self._rule_key_of(r) not in wanted):
                self._json("DeleteSecurityGroupRule", "network_connection",
                           f"/v2.0/security-group-rules/{stale.id}", "DELETE")
                log.info("OpenStack: security group %s no longer allows %s from %s", group.id,
                         self._rule_key_of(stale)[:3], stale.ip_range)
        for rule in rules:
            key = self._rule_key(rule, group.id)
            if key in present:
                continue
            protocol, low, high = (None, None, None) if rule.protocol == "-1" else (
                rule.protocol, rule.from_port, rule.to_port)
            # libcloud's ex_create_security_group_rule sends no ethertype, which Neutron takes as IPv4
            body = {"security_group_rule": {
                "direction": "ingress", "security_group_id": group.id, "protocol": protocol,
                "port_range_min": low, "port_range_max": high,
                **({"remote_group_id": group.id, "ethertype": "IPv4"} if rule.source == "cluster" else
                   {"remote_ip_prefix": rule.source, "ethertype": ethertype_of(rule.source)})}}
            try:
                self._json("CreateSecurityGroupRule", "network_connection", "/v2.0/security-group-rules",
                           "POST", body)
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

    def preflight(self, groups: Sequence[Any]) -> None:
        """What Nova would refuse, asked before anything is recorded or created (``create`` calls it
        for the groups of this location: engine ``GroupTarget``s): the network each goes on (none
        named and several candidates: ``BadInput`` naming them) and a flavor that can hold its image
        (its RAM and root disk against the image's ``min_ram``, size and ``min_disk``; none: ``BadInput``
        naming what each flavor lacks)."""
        for group in groups:
            self._network(group.network)
            if group.image is None:
                continue
            image = group.image
            image_id = self.resolve_image(image["distribution"], image["version"], image["arch"],
                                          image.get("id"))
            explicit = group.sizes[0] if group.size_explicit and group.sizes else None
            flavors = self.sizes_that_fit(group.cpus, group.memory_mib, group.arch, group.disk_gib,
                                          explicit=explicit)
            why = {name: image_fit(self._flavor(name), self._image(image_id), group.disk_gib)[1]
                   for name in flavors}
            if flavors and all(why.values()):
                raise BadInput(f"OpenStack {self.region}: group {group.name}: no flavor can boot image "
                               f"{image_id}: " + "; ".join(str(w) for w in why.values()))

    # -- machines -----------------------------------------------------------------------------------
    def _network(self, wanted: str | None) -> Any:
        wanted = wanted or self.network
        if not wanted:
            with self._lock:
                chosen = self._default_network
            if chosen is None:
                listed = self._json("ListNetworks", "network_connection", "/v2.0/networks")["networks"]
                chosen = choose_network(listed)
                with self._lock:
                    self._default_network = chosen
            wanted = str(chosen["id"])
        for network in self._call("ListNetworks", "ex_list_networks"):
            if wanted in (network.id, network.name):
                return network
        raise NotFound(f"OpenStack: no network {wanted!r}")

    def _image(self, image_id: str) -> Mapping[str, Any]:
        """Glance's record of an image (size, ``min_disk``, ``min_ram``), read once."""
        with self._lock:
            cached = self._images_by_id.get(image_id)
        if cached is None:
            cached = self._json("GetImage", "image_connection", f"/v2/images/{image_id}")
            with self._lock:
                self._images_by_id[image_id] = cached
        return cached

    def _same_name(self, request: NodeRequest) -> Any | None:
        """A server of this request's name that a lost answer may hide: one that is building or
        running is the one asked for; one in ERROR (its build failed) is deleted, one being deleted
        ignored, and a new one is created."""
        for server in self.libcloud.list_nodes():
            if server.name != request.name or not belongs_to(request.deployment, server.name,
                                                             server.extra.get("metadata")):
                continue
            vm_state = str(server.extra.get("vm_state") or "")
            deleting = server.extra.get("task_state") == "deleting"
            if vm_state in ("error", "soft-delete", "deleted") or deleting:
                if vm_state == "error":
                    self.destroy_node(SimpleNamespace(id=server.id))  # type: ignore[arg-type]
                continue
            return server
        return None

    def create_node(self, request: NodeRequest) -> CloudNode:
        from libcloud.compute.base import NodeImage, NodeSize

        drv = self.libcloud
        flavor = self._flavor(request.size)
        size = NodeSize(flavor["id"], flavor["name"], flavor["ram"], flavor.get("disk"), None, None,
                        driver=drv)
        volume_gib, unfit = image_fit(flavor, self._image(request.image), request.disk_gib)
        if unfit:
            raise SizeUnfit(f"OpenStack CreateServer {request.name}: {unfit}")
        user_data = fitted_user_data(request.user_data)
        network = self._network(request.network)
        groups = [g for g in self._call("ListSecurityGroups", "ex_list_security_groups")
                  if g.id == request.security_group] if request.security_group else []
        if request.security_group and not groups:
            raise NotFound(f"OpenStack: no security group {request.security_group}")
        boot_volume = None
        if volume_gib:
            boot_volume = [{"boot_index": 0, "uuid": request.image, "source_type": "image",
                            "destination_type": "volume", "volume_size": volume_gib,
                            "delete_on_termination": True}]
        attempts = 0

        def create() -> Any:
            nonlocal attempts
            attempts += 1
            if attempts > 1:  # an answer lost to a 5xx may hide a server Nova did create: reuse it
                found = self._same_name(request)
                if found is not None:
                    return found
            return self.libcloud.create_node(
                name=request.name, size=size, image=NodeImage(request.image, request.image, driver=drv),
                ex_blockdevicemappings=boot_volume, networks=[network],
                ex_keyname=request.key_name or None, ex_userdata=user_data,
                ex_security_groups=groups or None, ex_availability_zone=request.zone,
                ex_metadata=deployment_tags(request.deployment, request.group))

        node = self._fresh("CreateServer", create)
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
            error = CapacityError if any(f in fault.lower() for f in _SCHEDULING_FAULTS) else CloudError
            raise error(f"OpenStack CreateServer {name}: {fault}")
        return node

    def _to_cloud_node(self, node: Any, deployment: str) -> CloudNode:
        metadata = node.extra.get("metadata") or {}
        raw = str(node.extra.get("vm_state") or "")
        state = _STATES.get(self._status_of(node), "unknown")
        if raw in ("deleted", "soft-delete"):  # a soft-deleted server is gone but for its reclaim
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
        """Delete a server, for good: where Nova only soft-deletes (``reclaim_instance_interval``),
        the server keeps its ports, volumes and security groups until ``forceDelete``."""
        try:
            self._call("DeleteServer", "destroy_node", SimpleNamespace(id=node.id))
            status = self._json("GetServer", "connection", f"/servers/{node.id}")["server"].get("status")
            if status == "SOFT_DELETED":
                self._json("ForceDeleteServer", "connection", f"/servers/{node.id}/action", "POST",
                           {"forceDelete": None})
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
        if zone is not None and zone not in self._volume_zones():
            log.info("OpenStack: zone %s is not a Cinder zone; the volume goes where Cinder puts it "
                     "(Nova attaches across zones by default)", zone)
            zone = None
        volume = self._call("CreateVolume", "create_volume", size_gib, name, location=zone)
        log.info("OpenStack: volume %s is %s", name, volume.id)
        return str(volume.id)

    def _volume_zones(self) -> list[str]:
        """Cinder's zones (``GET /os-availability-zone``, cinder/api/contrib/availability_zones.py),
        which a site names apart from Nova's; none when the cloud does not serve the list."""
        try:
            return available_zones(self._json("ListVolumeZones", "volume", "/os-availability-zone"))
        except NotFound:
            return []

    def attach_volume(self, volume_id: str, node: CloudNode) -> None:
        deadline = time.monotonic() + self.settings.create_timeout_s
        while True:
            volume = self._call("GetVolume", "ex_get_volume", volume_id)
            attached = [a.get("server_id") for a in volume.extra.get("attachments") or []]
            if node.id in attached:
                return
            status = str(volume.extra.get("state") or "")
            if status in ("error", "error_restoring", "error_extending"):
                raise CloudError(f"OpenStack: volume {volume.name or volume_id} is in {status}: Cinder could "
                                 f"not create it; delete it (destroy, or the dashboard) and try again")
            if status == "available" or time.monotonic() > deadline:
                break
            self._sleep(self._poll_s)
        self._call("AttachVolume", "attach_volume", SimpleNamespace(id=node.id), volume)

    def _floating_ips(self) -> list[Mapping[str, Any]]:
        return list(self._json("ListFloatingIps", "network_connection", "/v2.0/floatingips")["floatingips"])

    def _interfaces_of(self, node_id: str) -> list[Mapping[str, Any]]:
        ports = self._json("ListInterfaces", "connection", f"/servers/{node_id}/os-interface")
        return list(ports.get("interfaceAttachments", []))

    def _ports_of(self, node_id: str) -> list[str]:
        return [str(p["port_id"]) for p in self._interfaces_of(node_id)]

    def _floating_network(self, interface: Mapping[str, Any]) -> str:
        """The external network to take a floating IP from for this port: the configured pool, else
        the gateway network of the router on the port's subnet (Neutron answers 404
        ``ExternalGatewayForFloatingIPNotFound`` for any other: neutron/db/l3_db.py
        ``get_router_for_floatingip``), else the only external network."""
        pools = self._call("ListFloatingIpPools", "ex_list_floating_ip_pools")
        if self.floating_pool:
            pool = next((p for p in pools if self.floating_pool in (p.id, p.name)), None)
            if pool is None:
                raise NotFound(f"OpenStack: no external network {self.floating_pool!r} to take a floating IP "
                               f"from (external networks: {', '.join(p.name for p in pools) or 'none'})")
            return str(pool.id)
        subnets = {f.get("subnet_id") for f in interface.get("fixed_ips") or []}
        ports = self._json("ListPorts", "network_connection",
                           "/v2.0/ports?device_owner=network:router_interface")["ports"]
        routers = {p["device_id"] for p in ports
                   if any(f.get("subnet_id") in subnets for f in p.get("fixed_ips") or [])}
        listed = self._json("ListRouters", "network_connection", "/v2.0/routers")["routers"]
        gateways = sorted({str(gateway["network_id"]) for r in listed
                           if r["id"] in routers and (gateway := r.get("external_gateway_info") or {}).get(
                               "network_id")})
        if gateways:
            return gateways[0]
        if len(pools) == 1:
            return str(pools[0].id)
        raise CloudError(f"OpenStack: no router connects the server's subnet to an external network, so it "
                         f"cannot have a floating IP (external networks: "
                         f"{', '.join(p.name for p in pools) or 'none'}); add the subnet to a router with a "
                         f"gateway, or name the network as the template's floating_pool")

    def ensure_public_address(self, deployment: str, node: CloudNode) -> str:
        fresh = self._call("GetServer", "ex_get_node_details", node.id)
        if fresh is None:
            raise NotFound(f"OpenStack: server {node.id} does not exist")
        if fresh.public_ips:
            return str(fresh.public_ips[0])
        interfaces = self._interfaces_of(node.id)
        ports = [str(p["port_id"]) for p in interfaces]
        if not ports:
            raise CloudError(f"OpenStack: server {node.name} has no port for a floating IP (still building?)")

        def existing() -> str | None:
            return next((str(f["floating_ip_address"]) for f in self._floating_ips()
                         if f.get("port_id") in ports), None)

        found = existing()
        if found:
            return found
        body = {"floatingip": {"floating_network_id": self._floating_network(interfaces[0]),
                               "port_id": ports[0],
                               "description": resource_name(deployment, node.group or "node", "address")}}
        attempts = 0

        def create() -> str:
            nonlocal attempts
            attempts += 1
            if attempts > 1:  # a create whose answer was lost may have worked: Neutron would say 409
                again = existing()
                if again:
                    return again
            connection = self.libcloud.network_connection
            answer = connection.request("/v2.0/floatingips", method="POST", data=body).object
            return str(answer["floatingip"]["floating_ip_address"])

        return str(self._fresh("CreateFloatingIp", create))

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
