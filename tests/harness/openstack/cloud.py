"""The state of one OpenStack project and the operations on it, service by service."""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import ipaddress
import re
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.harness.faults import Fault
from tests.harness.openstack.keys import check_public_key, generate_key_pair, key_fingerprint
from tests.harness.openstack.seed import FLAVORS, IMAGES, Credentials
from tests.harness.openstack.wire import (
    Request,
    Response,
    keystone_error,
    neutron_error,
    new_id,
    nova_error,
    now_iso,
)

# nova/compute/vm_states.py and nova/api/openstack/common.py (_STATE_MAP): status <-> vm_state
VM_STATES = {"BUILD": "building", "ACTIVE": "active", "ERROR": "error", "SOFT_DELETED": "soft-delete"}
SCHEDULING_FAULTS = ("NoValidHost", "MaxRetriesExceeded")
"""Faults Nova reports on the server (it accepts the create, then the scheduler or the compute host
gives up): ``MaxRetriesExceeded`` is a ``NoValidHost`` subclass in nova/exception.py."""


class Cloud:
    """The state of one OpenStack project in one region, and the API operations on it.

    Every operation takes the lock, so concurrent requests see a consistent cloud; latency is
    applied by the HTTP layer outside the lock so parallel calls overlap as on a real cloud.
    """

    def __init__(
        self,
        base_url: str,
        region: str = "RegionOne",
        credentials: Credentials | None = None,
        build_delay_s: float = 0.2,
        images_page_size: int = 25,
    ) -> None:
        self.base_url = base_url
        self.seed_region = region
        self.seed_credentials = credentials or Credentials()
        self.build_delay_s = build_delay_s
        self.images_page_size = images_page_size
        self.lock = threading.RLock()
        self.reset()

    # -- seed ---------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to a fresh project: flavors, images, a private and an external network, default SG."""
        with self.lock:
            self.region = self.seed_region
            self.credentials = copy.deepcopy(self.seed_credentials)
            # Knobs a test may turn after a reset (each names the upstream behaviour it stands for):
            self.token_ttl_s = 3600.0
            """Keystone's ``[token] expiration`` (keystone/conf/token.py: 3600 s by default)."""
            self.service_names = {"identity": "keystone", "compute": "nova", "image": "glance",
                                  "network": "neutron", "volumev3": "cinderv3", "block-storage": "cinder"}
            """Catalog names by service type: each site names its services as it likes."""
            self.reclaim_instance_interval_s = 0.0
            """nova.conf ``reclaim_instance_interval``: above 0, DELETE only soft-deletes a server."""
            self.compute_zones = ["nova"]
            self.volume_zones = ["nova"]
            """Nova's and Cinder's zone names are configured apart (nova.conf
            ``default_availability_zone``, cinder.conf ``storage_availability_zone``); Nova attaches a
            volume of any zone by default (nova.conf ``[cinder] cross_az_attach = True``)."""
            self.quotas: dict[str, int] = {}
            """Project quotas by resource (``instances``, ``floatingip``); absent = unlimited."""
            self.project_id = uuid.uuid5(uuid.NAMESPACE_URL, "project/" + self.credentials.project).hex
            self.user_id = uuid.uuid5(uuid.NAMESPACE_URL, "user/demo").hex
            self.tokens: dict[str, dict[str, Any]] = {}
            self.flavors = {
                fid: {
                    "id": fid,
                    "name": name,
                    "vcpus": vcpus,
                    "ram": ram,
                    "disk": disk,
                    "extra_specs": dict(specs),
                }
                for fid, name, vcpus, ram, disk, specs in FLAVORS
            }
            self.images: dict[str, dict[str, Any]] = {}
            for name, distro, version, arch in IMAGES:
                image_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "image/" + name))
                self.images[image_id] = {
                    "id": image_id,
                    "name": name,
                    "status": "active",
                    "visibility": "public",
                    "os_distro": distro,
                    "os_version": version,
                    "architecture": arch,
                    "hw_architecture": arch,
                    "disk_format": "qcow2",
                    "container_format": "bare",
                    "min_disk": 0,
                    "min_ram": 0,
                    "size": 2361393152,
                    "owner": "admin-project",
                    "tags": [],
                    "protected": False,
                    "created_at": "2025-03-05T10:00:00Z",
                    "updated_at": "2025-03-05T10:00:00Z",
                    "self": f"/v2/images/{image_id}",
                    "file": f"/v2/images/{image_id}/file",
                    "schema": "/v2/schemas/image",
                }
            self.networks: dict[str, dict[str, Any]] = {}
            self.subnets: dict[str, dict[str, Any]] = {}
            self.ports: dict[str, dict[str, Any]] = {}
            self.security_groups: dict[str, dict[str, Any]] = {}
            self.floating_ips: dict[str, dict[str, Any]] = {}
            self.servers: dict[str, dict[str, Any]] = {}
            self.keypairs: dict[str, dict[str, Any]] = {}
            self.volumes: dict[str, dict[str, Any]] = {}
            self.routers: dict[str, dict[str, Any]] = {}
            private = self.add_network("private", "10.0.0.0/24")
            public = self.add_network("public", "203.0.113.0/24", external=True, shared=True,
                                      project_id=uuid.uuid5(uuid.NAMESPACE_URL, "project/admin").hex)
            self.router_id = self.add_router("router1", public, private)["id"]
            self._new_security_group("default", "Default security group")

    def add_network(self, name: str, cidr: str, external: bool = False, shared: bool = False,
                    project_id: str | None = None) -> dict[str, Any]:
        """Add a network with one subnet (tests use this to offer several tenant networks). A network
        of another project (``project_id``) is listed only when shared or external, as Neutron's
        policy shows them."""
        with self.lock:
            net_id, subnet_id = new_id(), new_id()
            net = ipaddress.ip_network(cidr)
            self.subnets[subnet_id] = {
                "id": subnet_id,
                "name": f"{name}-subnet",
                "network_id": net_id,
                "cidr": cidr,
                "ip_version": 4,
                "gateway_ip": str(net[1]),
                "enable_dhcp": True,
                "dns_nameservers": [],
                "host_routes": [],
                "allocation_pools": [{"start": str(net[2]), "end": str(net[-2])}],
                "tenant_id": self.project_id,
                "project_id": self.project_id,
                "description": "",
                "tags": [],
                "_next": 10,
            }
            self.networks[net_id] = {
                "id": net_id,
                "name": name,
                "status": "ACTIVE",
                "subnets": [subnet_id],
                "admin_state_up": True,
                "router:external": external,
                "shared": shared,
                "mtu": 1450,
                "tags": [],
                "description": "",
                "tenant_id": project_id or self.project_id,
                "project_id": project_id or self.project_id,
                "is_default": external,
                "availability_zones": ["nova"],
                "port_security_enabled": True,
            }
            return self.networks[net_id]

    def add_router(self, name: str, gateway: dict[str, Any] | None,
                   *interfaces: dict[str, Any]) -> dict[str, Any]:
        """A router with its gateway on an external network and an interface on each network's
        subnet (a port owned by ``network:router_interface`` at the subnet's gateway address), as
        ``openstack router create/set --external-gateway/add subnet`` leave it."""
        with self.lock:
            router = {
                "id": new_id(),
                "name": name,
                "status": "ACTIVE",
                "admin_state_up": True,
                "external_gateway_info": {"network_id": gateway["id"], "enable_snat": True}
                if gateway
                else None,
                "tenant_id": self.project_id,
                "project_id": self.project_id,
                "description": "",
                "tags": [],
            }
            self.routers[router["id"]] = router
            for net in interfaces:
                self.add_router_interface(router["id"], net)
            return router

    def add_router_interface(self, router_id: str, net: dict[str, Any]) -> None:
        with self.lock:
            subnet = self.subnets[net["subnets"][0]]
            taken = subnet["_next"]
            port = self._new_port(net, device_id=router_id, owner="network:router_interface")
            subnet["_next"] = taken  # the interface has the gateway address, not the next free one
            port["fixed_ips"] = [{"subnet_id": subnet["id"], "ip_address": subnet["gateway_ip"]}]

    def set_router_gateway(self, router_id: str, net: dict[str, Any]) -> None:
        with self.lock:
            self.routers[router_id]["external_gateway_info"] = {"network_id": net["id"], "enable_snat": True}

    def add_flavor(self, flavor_id: str, name: str, vcpus: int, ram: int, disk: int) -> None:
        with self.lock:
            self.flavors[flavor_id] = {"id": flavor_id, "name": name, "vcpus": vcpus, "ram": ram,
                                       "disk": disk, "extra_specs": {}}

    def _new_security_group(self, name: str, description: str) -> dict[str, Any]:
        group_id = new_id()
        group = {
            "id": group_id,
            "name": name,
            "description": description,
            "tenant_id": self.project_id,
            "project_id": self.project_id,
            "tags": [],
            "stateful": True,
            "security_group_rules": [],
            "created_at": now_iso(),
            "updated_at": now_iso(),
            "revision_number": 1,
        }
        for ethertype in ("IPv4", "IPv6"):
            group["security_group_rules"].append(
                self._rule(group_id, "egress", None, None, None, None, None, ethertype)
            )
        self.security_groups[group_id] = group
        return group

    def _rule(
        self,
        group_id: str,
        direction: str,
        protocol: str | None,
        port_min: int | None,
        port_max: int | None,
        prefix: str | None,
        remote_group: str | None,
        ethertype: str = "IPv4",
    ) -> dict[str, Any]:
        return {
            "id": new_id(),
            "security_group_id": group_id,
            "direction": direction,
            "protocol": protocol,
            "port_range_min": port_min,
            "port_range_max": port_max,
            "remote_ip_prefix": prefix,
            "remote_group_id": remote_group,
            "ethertype": ethertype,
            "tenant_id": self.project_id,
            "project_id": self.project_id,
            "description": "",
            "created_at": now_iso(),
        }

    # -- keystone -----------------------------------------------------------------------------------
    def catalog(self) -> list[dict[str, Any]]:
        def entry(kind: str, name: str, url: str) -> dict[str, Any]:
            return {
                "type": kind,
                "name": self.service_names.get(kind, name),
                "id": uuid.uuid5(uuid.NAMESPACE_URL, kind).hex,
                "endpoints": [
                    {
                        "id": uuid.uuid5(uuid.NAMESPACE_URL, kind + i).hex,
                        "interface": i,
                        "region": self.region,
                        "region_id": self.region,
                        "url": url,
                    }
                    for i in ("public", "internal")
                ],
            }

        return [
            entry("identity", "keystone", f"{self.base_url}/identity/v3"),
            entry("compute", "nova", f"{self.base_url}/compute/v2.1"),
            entry("image", "glance", f"{self.base_url}/image"),
            entry("network", "neutron", f"{self.base_url}/network"),
            entry("volumev3", "cinderv3", f"{self.base_url}/volume/v3/{self.project_id}"),
            entry("block-storage", "cinder", f"{self.base_url}/volume/v3/{self.project_id}"),
        ]

    def issue_token(self, methods: list[str], scoped: bool) -> Response:
        token = uuid.uuid4().hex
        expires = datetime.now(UTC) + timedelta(seconds=self.token_ttl_s)
        with self.lock:
            self.tokens[token] = {"scoped": scoped, "expires": expires, "methods": methods}
        return 201, self.token_body(token), {"X-Subject-Token": token}

    def token_body(self, token: str) -> dict[str, Any]:
        info = self.tokens[token]
        body: dict[str, Any] = {
            "methods": info["methods"],
            "expires_at": info["expires"].strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "issued_at": now_iso(),
            "audit_ids": [token[:22]],
            "user": {
                "id": self.user_id,
                "name": "demo",
                "domain": {"id": "default", "name": "Default"},
                "password_expires_at": None,
            },
        }
        if info["scoped"]:
            body["project"] = {
                "id": self.project_id,
                "name": self.credentials.project,
                "domain": {"id": self.credentials.project_domain_id,
                           "name": self.credentials.project_domain_name},
            }
            body["roles"] = [{"id": uuid.uuid5(uuid.NAMESPACE_URL, "member").hex, "name": "member"}]
            body["catalog"] = self.catalog()
        return {"token": body}

    def expire_tokens(self) -> None:
        """Every Keystone token issued so far expires now (a long run outlives its token)."""
        with self.lock:
            for info in self.tokens.values():
                info["expires"] = datetime.now(UTC) - timedelta(seconds=1)

    def check_token(self, token: str | None, scoped: bool = True) -> None:
        info = self.tokens.get(token or "")
        if info is None or info["expires"] < datetime.now(UTC) or (scoped and not info["scoped"]):
            raise keystone_error(401, "The request you have made requires authentication.")

    def authenticate(self, req: Request) -> Response:
        try:
            identity = req.body["auth"]["identity"]
            methods = identity["methods"]
        except (KeyError, TypeError) as exc:
            raise keystone_error(400, "Expecting to find auth.identity.methods in the request body.") from exc
        scope = req.body["auth"].get("scope") or {}
        creds = self.credentials
        if methods == ["password"]:
            user = identity["password"]["user"]
            domain = user.get("domain", {})
            domain_name = domain.get("name") or (
                "Default" if domain.get("id") == "default" else domain.get("id")
            )
            if creds.users.get((user.get("name"), domain_name)) != user.get("password"):
                raise keystone_error(401, "The request you have made requires authentication.")
            project = scope.get("project")
            if project is not None:
                self._check_project_scope(project)
            return self.issue_token(methods, scoped=project is not None)
        if methods == ["application_credential"]:
            cred = identity["application_credential"]
            if creds.app_creds.get(cred.get("id")) != cred.get("secret"):
                raise keystone_error(401, "The request you have made requires authentication.")
            return self.issue_token(methods, scoped=True)  # an application credential carries its project
        if methods == ["token"]:
            self.check_token(identity["token"]["id"], scoped=False)
            project = scope.get("project")
            if (
                project is not None
                and project.get("id") != self.project_id
                and project.get("name") != creds.project
            ):
                raise keystone_error(401, "You are not authorized to perform the requested action.")
            return self.issue_token(["token", "openid"], scoped=project is not None)
        raise keystone_error(401, f"Unsupported authentication methods: {methods}")

    def _check_project_scope(self, project: dict[str, Any]) -> None:
        """keystone/auth/core.py ``AuthInfo._lookup_project``: a project by ``id``, or by ``name``
        with its domain given by ``id`` or ``name`` (``_lookup_domain``); a name without a domain is
        a 400, and a domain or project that does not match is a 401."""
        creds = self.credentials
        if "id" in project:
            if project["id"] != self.project_id:
                raise keystone_error(401, f"Could not find project: {project['id']}.")
            return
        domain = project.get("domain")
        if not isinstance(domain, dict) or not (domain.get("id") or domain.get("name")):
            raise keystone_error(400, "Expecting to find domain in project. The server could not comply "
                                      "with the request since it is either malformed or otherwise incorrect.")
        if domain.get("id") and domain["id"] != creds.project_domain_id:
            raise keystone_error(401, f"Could not find domain: {domain['id']}.")
        if domain.get("name") and domain["name"] != creds.project_domain_name:
            raise keystone_error(401, f"Could not find domain: {domain['name']}.")
        if project.get("name") != creds.project:
            raise keystone_error(401, f"Could not find project: {project.get('name')}.")

    def federated_auth(self, req: Request, idp: str, protocol: str) -> Response:
        auth = req.headers.get("authorization", "")
        creds = self.credentials
        if idp != creds.identity_provider or protocol != creds.protocol:
            raise keystone_error(404, f"Could not find Identity Provider or protocol: {idp}/{protocol}.")
        if not auth.startswith("Bearer ") or auth[7:] not in creds.oidc_tokens:
            raise keystone_error(401, "The request you have made requires authentication.")
        return self.issue_token(["openid"], scoped=False)

    def auth_projects(self, req: Request) -> Response:
        self.check_token(req.headers.get("x-auth-token"), scoped=False)
        return (
            200,
            {
                "projects": [
                    {
                        "id": self.project_id,
                        "name": self.credentials.project,
                        "enabled": True,
                        "domain_id": self.credentials.project_domain_id,
                    }
                ]
            },
            {},
        )

    # -- nova: flavors, key pairs -------------------------------------------------------------------
    def flavor_view(self, flavor: dict[str, Any], microversion: tuple[int, int]) -> dict[str, Any]:
        view = {
            "id": flavor["id"],
            "name": flavor["name"],
            "vcpus": flavor["vcpus"],
            "ram": flavor["ram"],
            "disk": flavor["disk"],
            "swap": "",
            "rxtx_factor": 1.0,
            "OS-FLV-EXT-DATA:ephemeral": 0,
            "OS-FLV-DISABLED:disabled": False,
            "os-flavor-access:is_public": True,
            "links": [{"rel": "self", "href": f"{self.base_url}/compute/v2.1/flavors/{flavor['id']}"}],
        }
        if microversion >= (2, 55):
            view["description"] = None
        if microversion >= (2, 61):
            view["extra_specs"] = dict(flavor["extra_specs"])
        return view

    def flavor(self, flavor_id: str) -> dict[str, Any]:
        flavor = self.flavors.get(flavor_id) or next(
            (f for f in self.flavors.values() if f["name"] == flavor_id), None
        )
        if flavor is None:
            raise nova_error(404, f"Flavor {flavor_id} could not be found.")
        return flavor

    def keypair_view(self, kp: dict[str, Any], with_private: bool = False) -> dict[str, Any]:
        view = {
            "name": kp["name"],
            "public_key": kp["public_key"],
            "fingerprint": kp["fingerprint"],
            "type": "ssh",
            "user_id": self.user_id,
        }
        if with_private and kp.get("private_key"):
            view["private_key"] = kp["private_key"]
        return view

    def create_keypair(self, body: dict[str, Any]) -> Response:
        spec = (body or {}).get("keypair") or {}
        name = spec.get("name")
        if not name or not re.fullmatch(r"[\w\-. @]{1,255}", name):
            raise nova_error(400, "Keypair data is invalid: Keypair name contains unsafe characters")
        with self.lock:
            if name in self.keypairs:
                raise nova_error(409, f"Key pair '{name}' already exists.")
            private = None
            public = spec.get("public_key")
            if public is None:
                private, public = generate_key_pair()
            check_public_key(public)
            kp = {
                "name": name,
                "public_key": public.strip(),
                "fingerprint": key_fingerprint(public),
                "private_key": private,
                "created_at": now_iso(),
            }
            self.keypairs[name] = kp
        view = self.keypair_view(kp, with_private=True)
        kp["private_key"] = None  # Nova hands the private key out once
        return 200, {"keypair": view}, {}

    # -- nova: servers ------------------------------------------------------------------------------
    def _network_for_server(self, requested: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        """nova/network/neutron.py ``_get_available_networks``: without a request, the project's own
        unshared networks plus every shared network (an external one too, when shared), and
        ``_validate_requested_network_ids``: more than one is ``NetworkAmbiguous`` (409), none is
        ``InterfaceAttachFailedNoNetwork`` (400); ``_check_external_network_attach``: attaching to an
        external network that is not shared is ``ExternalNetworkAttachForbidden`` (403, admin only)."""
        if not requested:
            own = [n for n in self.networks.values()
                   if n["project_id"] == self.project_id and not n["shared"]]
            available = own + [n for n in self.networks.values() if n["shared"]]
            if len(available) > 1:
                raise nova_error(
                    409, "Multiple possible networks found, use a Network ID to be more specific."
                )
            if not available:
                raise nova_error(400, f"No valid network found in project {self.project_id}.")
            self._check_external_attach(available)
            return available
        chosen = []
        for spec in requested:
            if "port" in spec:
                port = self.ports.get(spec["port"])
                if port is None:
                    raise nova_error(400, f"Port {spec['port']} could not be found.")
                chosen.append(self.networks[port["network_id"]])
                continue
            net = self.networks.get(spec.get("uuid", ""))
            if net is None:
                raise nova_error(400, f"Network {spec.get('uuid')} could not be found.")
            chosen.append(net)
        self._check_external_attach(chosen)
        return chosen

    @staticmethod
    def _check_external_attach(nets: list[dict[str, Any]]) -> None:
        for net in nets:
            if net["router:external"] and not net["shared"]:
                raise nova_error(
                    403, f"It is not allowed to create an interface on external network {net['id']}"
                )

    def _check_flavor_and_image(self, flavor: dict[str, Any], image_id: str,
                                bdms: list[dict[str, Any]]) -> None:
        """nova/compute/api.py ``_validate_flavor_image_nostatus``: the flavor's RAM against the
        image's ``min_ram`` (``FlavorMemoryTooSmall``); a root disk from the flavor against the image's
        size and ``min_disk`` (``FlavorDiskSmallerThanImage``/``...MinDisk``, 400), where a 0 GB flavor
        disk needs the admin-only ``os_compute_api:servers:create:zero_disk_flavor`` policy
        (``BootFromVolumeRequiredForZeroDiskFlavor``, 403, nova/api/openstack/compute/servers.py); a
        root volume against ``min_disk`` (``VolumeSmallerThanMinDisk``)."""
        root = next((b for b in bdms if b.get("boot_index") in (0, "0")), None)
        image_ref = image_id or (root or {}).get("uuid") or ""
        image = self.images.get(image_ref)
        if image is None:
            return
        gib = 1024**3
        if int(flavor["ram"]) < int(image.get("min_ram") or 0):
            raise nova_error(400, "Flavor's memory is too small for requested image.")
        min_disk = int(image.get("min_disk") or 0) * gib
        size = int(image.get("size") or 0)
        if root is not None and root.get("destination_type") == "volume":
            volume = int(root.get("volume_size") or 0) * gib
            if root.get("volume_size") is not None and min_disk > volume:
                raise nova_error(400, f"Volume is smaller than the minimum size specified in image metadata. "
                                      f"Volume size is {volume} bytes, minimum size is {min_disk} bytes.")
            return
        disk = int(flavor["disk"]) * gib
        if disk == 0:
            raise nova_error(403, "Only volume-backed servers are allowed for flavors with zero disk.")
        if size > disk:
            raise nova_error(400, f"Flavor's disk is too small for requested image. Flavor disk is {disk} "
                                  f"bytes, image is {size} bytes.")
        if min_disk > disk:
            raise nova_error(400, f"Flavor's disk is smaller than the minimum size specified in image "
                                  f"metadata. Flavor disk is {disk} bytes, minimum size is {min_disk} bytes.")

    def _check_quota(self, resource: str, used: int, nova: bool = True) -> None:
        """Nova's ``OverQuota`` is a 403 (nova/api/openstack/compute/servers.py), Neutron's a 409
        ``OverQuota`` (neutron_lib/exceptions/__init__.py)."""
        limit = self.quotas.get(resource)
        if limit is None or used < limit:
            return
        if nova:
            raise nova_error(403, f"Quota exceeded for {resource}: Requested 1, but already used {used} of "
                                  f"{limit} {resource}")
        raise neutron_error(409, "OverQuota", f"Quota exceeded for resources: ['{resource}'].")

    def _groups_for_server(self, requested: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        result = []
        for spec in requested or [{"name": "default"}]:
            name = spec.get("name", "")
            matches = [g for g in self.security_groups.values() if name in (g["name"], g["id"])]
            if not matches:
                raise nova_error(400, f"Security group {name} not found for project {self.project_id}.")
            if len(matches) > 1:
                raise nova_error(
                    409,
                    f"Multiple security_group matches found for name '{name}', use an ID to "
                    "be more specific.",
                )
            result.append(matches[0])
        return result

    def create_server(self, body: dict[str, Any], fault: Fault | None) -> Response:
        spec = (body or {}).get("server")
        if not isinstance(spec, dict) or not spec.get("name"):
            raise nova_error(
                400, "Invalid input for field/attribute server. Value: 'name' is a required property"
            )
        with self.lock:
            flavor = self.flavors.get(str(spec.get("flavorRef")))
            if flavor is None:
                raise nova_error(400, f"Flavor {spec.get('flavorRef')} could not be found.")
            image_id = spec.get("imageRef") or ""
            boot_volume = any(
                b.get("boot_index") in (0, "0") for b in spec.get("block_device_mapping_v2") or []
            )
            if not boot_volume and image_id not in self.images:
                raise nova_error(400, f"Image {image_id} could not be found.")
            key_name = spec.get("key_name")
            if key_name is not None and key_name not in self.keypairs:
                raise nova_error(400, "Invalid key_name provided.")
            metadata = spec.get("metadata") or {}
            for k, v in metadata.items():
                if not isinstance(v, str) or len(k) > 255 or len(v) > 255:
                    raise nova_error(400, f"Invalid input for field/attribute metadata. Value: {k}={v!r}")
            user_data = spec.get("user_data")
            if user_data is not None:
                # nova/api/openstack/compute/schemas/servers.py: user_data is a string of at most
                # 65535 characters, and that string is the base64 text, not what it decodes to
                if len(user_data) > 65535:
                    raise nova_error(400, f"Invalid input for field/attribute user_data. Value: "
                                          f"{user_data[:20]}... is too long")
                try:
                    base64.b64decode(user_data, validate=True)
                except binascii.Error as exc:
                    raise nova_error(400, "User data needs to be valid base 64.") from exc
            zone = spec.get("availability_zone")
            if zone is not None and zone not in self.compute_zones:
                raise nova_error(400, "The requested availability zone is not available")
            self._check_flavor_and_image(flavor, image_id, spec.get("block_device_mapping_v2") or [])
            groups = self._groups_for_server(spec.get("security_groups"))
            networks = self._network_for_server(spec.get("networks"))
            self._check_quota("instances", sum(1 for s in self.servers.values() if s["status"] != "DELETED"))
            server_id = new_id()
            now = now_iso()
            server = {
                "id": server_id,
                "name": spec["name"],
                "flavor_id": flavor["id"],
                "image_id": image_id,
                "key_name": key_name,
                "metadata": dict(metadata),
                "user_data": user_data,
                "security_group_ids": [g["id"] for g in groups],
                "network_ids": [n["id"] for n in networks],
                "availability_zone": zone or self.compute_zones[0],
                "created": now,
                "updated": now,
                "ready_at": time.monotonic() + self.build_delay_s,
                "status": "BUILD",
                "fault": fault.message if fault is not None else None,
                "port_ids": [],
                "block_device_mapping_v2": spec.get("block_device_mapping_v2") or [],
            }
            if fault is None:
                for net in networks:
                    port = self._new_port(
                        net, device_id=server_id, owner="compute:nova", group_ids=server["security_group_ids"]
                    )
                    server["port_ids"].append(port["id"])
            self.servers[server_id] = server
        admin_pass = uuid.uuid4().hex[:12]
        return (
            202,
            {
                "server": {
                    "id": server_id,
                    "adminPass": admin_pass,
                    "OS-DCF:diskConfig": "MANUAL",
                    "security_groups": [{"name": g["name"]} for g in groups],
                    "links": self._server_links(server_id),
                }
            },
            {"Location": f"{self.base_url}/compute/v2.1/servers/{server_id}"},
        )

    def _server_links(self, server_id: str) -> list[dict[str, str]]:
        return [
            {"rel": "self", "href": f"{self.base_url}/compute/v2.1/servers/{server_id}"},
            {"rel": "bookmark", "href": f"{self.base_url}/compute/servers/{server_id}"},
        ]

    def _refresh(self, server: dict[str, Any]) -> None:
        if server["status"] == "BUILD" and time.monotonic() >= server["ready_at"]:
            server["status"] = "ERROR" if server["fault"] else "ACTIVE"
            server["updated"] = now_iso()

    def server(self, server_id: str) -> dict[str, Any]:
        server = self.servers.get(server_id)
        if server is None:
            raise nova_error(404, f"Instance {server_id} could not be found.")
        self._refresh(server)
        return server

    def server_view(self, server: dict[str, Any]) -> dict[str, Any]:
        self._refresh(server)
        addresses: dict[str, list[dict[str, Any]]] = {}
        if server["status"] != "BUILD":
            for port_id in server["port_ids"]:
                port = self.ports[port_id]
                entries = addresses.setdefault(self.networks[port["network_id"]]["name"], [])
                for fixed in port["fixed_ips"]:
                    entries.append(
                        {
                            "addr": fixed["ip_address"],
                            "version": 4,
                            "OS-EXT-IPS:type": "fixed",
                            "OS-EXT-IPS-MAC:mac_addr": port["mac_address"],
                        }
                    )
                for fip in self.floating_ips.values():
                    if fip["port_id"] == port_id:
                        entries.append(
                            {
                                "addr": fip["floating_ip_address"],
                                "version": 4,
                                "OS-EXT-IPS:type": "floating",
                                "OS-EXT-IPS-MAC:mac_addr": port["mac_address"],
                            }
                        )
        status = server["status"]
        view = {
            "id": server["id"],
            "name": server["name"],
            "status": status,
            "tenant_id": self.project_id,
            "user_id": self.user_id,
            "metadata": dict(server["metadata"]),
            "hostId": "" if status == "BUILD" else hashlib.sha224(self.project_id.encode()).hexdigest(),
            "image": {"id": server["image_id"], "links": []} if server["image_id"] else "",
            "flavor": {"id": server["flavor_id"], "links": []},
            "created": server["created"],
            "updated": server["updated"],
            "addresses": addresses,
            "accessIPv4": "",
            "accessIPv6": "",
            "links": self._server_links(server["id"]),
            "OS-DCF:diskConfig": "MANUAL",
            "progress": 0 if status == "BUILD" else 100,
            "OS-EXT-AZ:availability_zone": server["availability_zone"],
            "config_drive": "",
            "key_name": server["key_name"],
            "OS-SRV-USG:launched_at": None,
            "OS-SRV-USG:terminated_at": None,
            "security_groups": [
                {"name": self.security_groups[g]["name"]}
                for g in server["security_group_ids"]
                if g in self.security_groups
            ],
            "OS-EXT-STS:task_state": "spawning" if status == "BUILD" else None,
            "OS-EXT-STS:vm_state": VM_STATES[status],
            "OS-EXT-STS:power_state": 1 if status == "ACTIVE" else 0,
            "os-extended-volumes:volumes_attached": [
                {"id": v["id"], "delete_on_termination": False}
                for v in self.volumes.values()
                if v["server_id"] == server["id"]
            ],
        }
        if status == "ERROR":
            view["fault"] = {"code": 500, "created": server["updated"], "message": server["fault"]}
        return view

    def list_servers(self, req: Request) -> list[dict[str, Any]]:
        name, status = req.q("name"), req.q("status")
        with self.lock:
            found = []
            for server in self.servers.values():
                self._refresh(server)
                if name and not re.search(name, server["name"]):
                    continue
                if status and server["status"] != status.upper():
                    continue
                found.append(server)
            return found

    def delete_server(self, server_id: str) -> None:
        """With ``reclaim_instance_interval`` set, Nova's DELETE soft-deletes (nova/api/openstack/
        compute/servers.py ``_delete``: ``compute_api.soft_delete``): the server stays listed as
        SOFT_DELETED, its ports and volumes held, until ``forceDelete`` or the reclaim period."""
        with self.lock:
            server = self.server(server_id)
            if self.reclaim_instance_interval_s > 0:
                server.update(status="SOFT_DELETED", updated=now_iso())
                return
            self.force_delete_server(server_id)

    def force_delete_server(self, server_id: str) -> None:
        """nova/api/openstack/compute/deferred_delete.py ``forceDelete`` (a project member may)."""
        with self.lock:
            server = self.server(server_id)
            for port_id in server["port_ids"]:
                self._delete_port(port_id)
            for volume in self.volumes.values():
                if volume["server_id"] == server_id:
                    volume.update(server_id=None, status="available", device=None)
            del self.servers[server_id]

    # -- neutron ------------------------------------------------------------------------------------
    def _new_port(
        self,
        net: dict[str, Any],
        device_id: str = "",
        owner: str = "",
        group_ids: list[str] | None = None,
        name: str = "",
    ) -> dict[str, Any]:
        subnet = self.subnets[net["subnets"][0]]
        address = ipaddress.ip_network(subnet["cidr"])[subnet["_next"]]
        subnet["_next"] += 1
        port_id = new_id()
        mac = "fa:16:3e:" + ":".join(f"{b:02x}" for b in uuid.uuid4().bytes[:3])
        port = {
            "id": port_id,
            "name": name,
            "network_id": net["id"],
            "mac_address": mac,
            "fixed_ips": [{"subnet_id": subnet["id"], "ip_address": str(address)}],
            "device_id": device_id,
            "device_owner": owner,
            "status": "ACTIVE",
            "admin_state_up": True,
            "security_groups": list(group_ids or []),
            "tenant_id": self.project_id,
            "project_id": self.project_id,
            "binding:vnic_type": "normal",
            "allowed_address_pairs": [],
            "description": "",
            "tags": [],
            "created_at": now_iso(),
            "updated_at": now_iso(),
        }
        self.ports[port_id] = port
        return port

    def _delete_port(self, port_id: str) -> None:
        self.ports.pop(port_id, None)
        for fip in self.floating_ips.values():
            if fip["port_id"] == port_id:
                fip.update(port_id=None, fixed_ip_address=None, router_id=None, status="DOWN")

    def create_security_group_rule(self, spec: dict[str, Any]) -> dict[str, Any]:
        group = self.security_groups.get(spec.get("security_group_id", ""))
        if group is None:
            raise neutron_error(
                404, "SecurityGroupNotFound", f"Security group {spec.get('security_group_id')} does not exist"
            )
        direction = spec.get("direction")
        if direction not in ("ingress", "egress"):
            raise neutron_error(
                400,
                "InvalidInput",
                f"Invalid input for direction. Reason: '{direction}' is not in ['ingress', 'egress'].",
            )
        port_min, port_max = spec.get("port_range_min"), spec.get("port_range_max")
        if port_min is not None and port_max is not None and int(port_min) > int(port_max):
            raise neutron_error(
                400,
                "SecurityGroupInvalidPortRange",
                "For TCP/UDP protocols, port_range_min must be <= port_range_max",
            )
        ethertype = spec.get("ethertype") or "IPv4"  # neutron/extensions/securitygroup.py: default IPv4
        prefix = spec.get("remote_ip_prefix")
        if prefix:
            # neutron/db/securitygroups_db.py _validate_ip_prefix: the CIDR's family must be the ethertype's
            version = ipaddress.ip_network(prefix, strict=False).version
            if ethertype != f"IPv{version}":
                raise neutron_error(
                    400,
                    "SecurityGroupRuleParameterConflict",
                    f"Conflicting value ethertype {ethertype} for CIDR {prefix}",
                )
        remote = spec.get("remote_group_id")
        if remote and remote not in self.security_groups:
            raise neutron_error(404, "SecurityGroupNotFound", f"Security group {remote} does not exist")
        rule = self._rule(
            group["id"],
            direction,
            spec.get("protocol"),
            None if port_min is None else int(port_min),
            None if port_max is None else int(port_max),
            prefix,
            remote,
            ethertype,
        )
        keys = (
            "direction",
            "protocol",
            "port_range_min",
            "port_range_max",
            "remote_ip_prefix",
            "remote_group_id",
            "ethertype",
        )
        for existing in group["security_group_rules"]:
            if all(existing[k] == rule[k] for k in keys):
                raise neutron_error(
                    409,
                    "SecurityGroupRuleExists",
                    f"Security group rule already exists. Rule id is {existing['id']}.",
                )
        group["security_group_rules"].append(rule)
        return rule

    def create_floating_ip(self, spec: dict[str, Any]) -> dict[str, Any]:
        net = self.networks.get(spec.get("floating_network_id", ""))
        if net is None:
            raise neutron_error(
                404, "NetworkNotFound", f"Network {spec.get('floating_network_id')} could not be found."
            )
        if not net["router:external"]:
            raise neutron_error(
                400,
                "BadRequest",
                f"Bad floatingip request: Network {net['id']} is not a valid external network.",
            )
        self._check_quota("floatingip", len(self.floating_ips), nova=False)
        if spec.get("port_id") and spec["port_id"] in self.ports:
            self._router_for(self.ports[spec["port_id"]], net)
        subnet = self.subnets[net["subnets"][0]]
        address = ipaddress.ip_network(subnet["cidr"])[subnet["_next"]]
        subnet["_next"] += 1
        fip = {
            "id": new_id(),
            "floating_ip_address": str(address),
            "floating_network_id": net["id"],
            "port_id": None,
            "fixed_ip_address": None,
            "router_id": None,
            "status": "DOWN",
            "tenant_id": self.project_id,
            "project_id": self.project_id,
            "description": spec.get("description") or "",
            "tags": [],
            "port_details": None,
            "created_at": now_iso(),
            "updated_at": now_iso(),
        }
        self.floating_ips[fip["id"]] = fip
        if spec.get("port_id"):
            self.update_floating_ip(fip["id"], {"port_id": spec["port_id"]})
        return fip

    def _router_for(self, port: dict[str, Any], external: dict[str, Any]) -> str:
        """neutron/db/l3_db.py ``get_router_for_floatingip``: a router with an interface on the
        port's subnet and its gateway on the floating IP's network, else
        ``ExternalGatewayForFloatingIPNotFound`` (404, neutron_lib/exceptions/l3.py)."""
        subnet_id = port["fixed_ips"][0]["subnet_id"]
        for router in self.routers.values():
            gateway = (router["external_gateway_info"] or {}).get("network_id")
            if gateway != external["id"]:
                continue
            if any(p["device_owner"] == "network:router_interface" and p["device_id"] == router["id"]
                   and p["fixed_ips"][0]["subnet_id"] == subnet_id for p in self.ports.values()):
                return str(router["id"])
        raise neutron_error(
            404,
            "ExternalGatewayForFloatingIPNotFound",
            f"External network {external['id']} is not reachable from subnet {subnet_id}.  Therefore, "
            f"cannot associate Port {port['id']} with a Floating IP.",
        )

    def update_floating_ip(self, fip_id: str, spec: dict[str, Any]) -> dict[str, Any]:
        fip = self.floating_ips.get(fip_id)
        if fip is None:
            raise neutron_error(404, "FloatingIPNotFound", f"Floating IP {fip_id} could not be found")
        port_id = spec.get("port_id")
        if port_id is None:
            fip.update(port_id=None, fixed_ip_address=None, router_id=None, status="DOWN", port_details=None)
            return fip
        port = self.ports.get(port_id)
        if port is None:
            raise neutron_error(404, "PortNotFound", f"Port {port_id} could not be found.")
        for other in self.floating_ips.values():
            if other["port_id"] == port_id and other["id"] != fip_id:
                raise neutron_error(
                    409,
                    "FloatingIPPortAlreadyAssociated",
                    f"Cannot associate floating IP {fip['floating_ip_address']} with port "
                    f"{port_id}: it already has floating IP {other['floating_ip_address']}.",
                )
        router_id = self._router_for(port, self.networks[fip["floating_network_id"]])
        fip.update(
            port_id=port_id,
            fixed_ip_address=port["fixed_ips"][0]["ip_address"],
            router_id=router_id,
            status="DOWN",  # the L3 agent (or OVN) sets it ACTIVE once wired: clients must not wait on it
            port_details={
                "name": port["name"],
                "network_id": port["network_id"],
                "mac_address": port["mac_address"],
                "device_id": port["device_id"],
                "device_owner": port["device_owner"],
                "status": "ACTIVE",
                "admin_state_up": True,
            },
        )
        return fip

    # -- cinder -------------------------------------------------------------------------------------
    def volume_view(self, volume: dict[str, Any]) -> dict[str, Any]:
        if volume["status"] == "creating" and time.monotonic() >= volume["ready_at"]:
            volume["status"] = "available"
        attachments = []
        if volume["server_id"]:
            attachments.append(
                {
                    "id": volume["id"],
                    "attachment_id": volume["attachment_id"],
                    "volume_id": volume["id"],
                    "server_id": volume["server_id"],
                    "device": volume["device"],
                    "host_name": None,
                    "attached_at": volume["updated_at"],
                }
            )
        view = {
            k: v for k, v in volume.items() if k not in ("ready_at", "server_id", "device", "attachment_id")
        }
        view.update(attachments=attachments, links=[])
        return view

    def volume(self, volume_id: str) -> dict[str, Any]:
        volume = self.volumes.get(volume_id)
        if volume is None:
            raise nova_error(404, f"Volume {volume_id} could not be found.")
        self.volume_view(volume)
        return volume

    # -- test knobs ---------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything that exists, plainly, for tests to assert on (user data decoded)."""
        with self.lock:
            servers = []
            for s in self.servers.values():
                self._refresh(s)
                servers.append(
                    {
                        "id": s["id"],
                        "name": s["name"],
                        "status": s["status"],
                        "flavor": self.flavors[s["flavor_id"]]["name"],
                        "image": s["image_id"],
                        "key_name": s["key_name"],
                        "metadata": dict(s["metadata"]),
                        "security_groups": [
                            self.security_groups[g]["name"]
                            for g in s["security_group_ids"]
                            if g in self.security_groups
                        ],
                        "networks": [self.networks[n]["name"] for n in s["network_ids"]],
                        "user_data": base64.b64decode(s["user_data"]).decode("utf-8", "replace")
                        if s["user_data"]
                        else None,
                        "fault": s["fault"],
                    }
                )
            return {
                "servers": servers,
                "keypairs": [
                    {"name": k["name"], "fingerprint": k["fingerprint"]} for k in self.keypairs.values()
                ],
                "security_groups": [
                    {"id": g["id"], "name": g["name"], "rules": len(g["security_group_rules"])}
                    for g in self.security_groups.values()
                ],
                "floating_ips": [
                    {
                        "id": f["id"],
                        "address": f["floating_ip_address"],
                        "port_id": f["port_id"],
                        "server_id": self.ports[f["port_id"]]["device_id"] if f["port_id"] else None,
                        "description": f["description"],
                    }
                    for f in self.floating_ips.values()
                ],
                "volumes": [
                    {
                        "id": v["id"],
                        "name": v["name"],
                        "status": self.volume_view(v)["status"],
                        "server_id": v["server_id"],
                        "metadata": dict(v["metadata"]),
                    }
                    for v in self.volumes.values()
                ],
                "ports": [
                    {
                        "id": p["id"],
                        "device_id": p["device_id"],
                        "device_owner": p["device_owner"],
                        "network_id": p["network_id"],
                    }
                    for p in self.ports.values()
                ],
                "networks": [
                    {"id": n["id"], "name": n["name"], "external": n["router:external"]}
                    for n in self.networks.values()
                ],
            }

    def leftovers(self, deployment: str) -> dict[str, list[dict[str, Any]]]:
        """What of `deployment` still exists: servers and volumes with its metadata or name prefix
       , key pairs and security groups with the prefix, and floating IPs attached to those
        servers or described with the prefix. A floating IP attached to nothing and described with
        nothing cannot be told apart, so it counts as leaked too. Empty lists = nothing leaked."""
        prefix = f"oscar-deploy-{deployment}-"

        def ours(item: dict[str, Any]) -> bool:
            meta = item.get("metadata") or {}
            name = item.get("name") or ""
            return meta.get("oscar-deploy:deployment") == deployment or name.startswith(prefix)

        found = self.state()
        servers = [s for s in found["servers"] if ours(s)]
        ids = {s["id"] for s in servers}
        return {
            "servers": servers,
            "keypairs": [k for k in found["keypairs"] if ours(k)],
            "security_groups": [g for g in found["security_groups"] if ours(g)],
            "volumes": [v for v in found["volumes"] if ours(v)],
            "floating_ips": [
                f
                for f in found["floating_ips"]
                if f["server_id"] in ids
                or f["description"].startswith(prefix)
                or (f["server_id"] is None and not f["description"])
            ],
        }
