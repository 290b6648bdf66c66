"""HTTP routes of Keystone, Nova, Glance, Neutron and Cinder onto `Cloud` operations."""

from __future__ import annotations

import copy
import re
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

from tests.harness.faults import Call, Fault, FaultInjector
from tests.harness.openstack.cloud import SCHEDULING_FAULTS, VM_STATES, Cloud
from tests.harness.openstack.wire import (
    ApiError,
    Handler,
    Request,
    Response,
    neutron_error,
    new_id,
    nova_error,
    now_iso,
)


class Api:
    """Routes HTTP requests to `Cloud` operations, one small function per API call."""

    def __init__(self, cloud: Cloud, injector: FaultInjector) -> None:
        self.cloud = cloud
        self.injector = injector
        self.calls: list[dict[str, Any]] = []
        self.calls_lock = threading.Lock()
        c = cloud
        # (service, method, path regex, action name, handler)
        self.routes: list[tuple[str, str, re.Pattern[str], str, Handler]] = []
        add = self._add
        # keystone
        add(
            "identity",
            "GET",
            r"/v3/?",
            "GetVersion",
            lambda r: (
                200,
                {
                    "version": {
                        "id": "v3.14",
                        "status": "stable",
                        "links": [{"rel": "self", "href": f"{c.base_url}/identity/v3/"}],
                    }
                },
                {},
            ),
        )
        add("identity", "POST", r"/v3/auth/tokens", "IssueToken", c.authenticate)
        add("identity", "GET", r"/v3/auth/tokens", "ValidateToken", self.validate_token)
        add(
            "identity",
            "GET",
            r"/v3/OS-FEDERATION/identity_providers/([^/]+)/protocols/([^/]+)/auth",
            "FederatedAuth",
            c.federated_auth,
        )
        add(
            "identity",
            "POST",
            r"/v3/OS-FEDERATION/identity_providers/([^/]+)/protocols/([^/]+)/auth",
            "FederatedAuth",
            c.federated_auth,
        )
        add("identity", "GET", r"/v3/auth/projects", "ListAuthProjects", c.auth_projects)
        add("identity", "GET", r"/v3/OS-FEDERATION/projects", "ListAuthProjects", c.auth_projects)
        # nova
        add("compute", "GET", r"/flavors(/detail)?", "ListFlavors", self.list_flavors)
        add("compute", "GET", r"/flavors/([^/]+)", "GetFlavor", self.get_flavor)
        add(
            "compute",
            "GET",
            r"/flavors/([^/]+)/os-extra_specs",
            "GetFlavorExtraSpecs",
            self.flavor_extra_specs,
        )
        add("compute", "GET", r"/os-keypairs", "ListKeypairs", self.list_keypairs)
        add("compute", "POST", r"/os-keypairs", "CreateKeypair", lambda r: c.create_keypair(r.body))
        add("compute", "GET", r"/os-keypairs/([^/]+)", "GetKeypair", self.get_keypair)
        add("compute", "DELETE", r"/os-keypairs/([^/]+)", "DeleteKeypair", self.delete_keypair)
        add("compute", "GET", r"/servers/detail", "ListServersDetail", self.list_servers_detail)
        add("compute", "GET", r"/servers", "ListServers", self.list_servers)
        add("compute", "POST", r"/servers", "CreateServer", self.create_server)
        add("compute", "GET", r"/servers/([^/]+)", "GetServer", self.get_server)
        add("compute", "DELETE", r"/servers/([^/]+)", "DeleteServer", self.delete_server)
        add("compute", "POST", r"/servers/([^/]+)/action", "ServerAction", self.server_action)
        add("compute", "GET", r"/os-availability-zone", "ListAvailabilityZones", self.compute_zones)
        add("compute", "GET", r"/servers/([^/]+)/metadata", "GetServerMetadata", self.get_metadata)
        add("compute", "PUT", r"/servers/([^/]+)/metadata", "ReplaceServerMetadata", self.set_metadata)
        add("compute", "POST", r"/servers/([^/]+)/metadata", "UpdateServerMetadata", self.set_metadata)
        add("compute", "GET", r"/servers/([^/]+)/os-interface", "ListServerInterfaces", self.interfaces)
        add(
            "compute",
            "GET",
            r"/servers/([^/]+)/os-security-groups",
            "ListServerSecurityGroups",
            self.server_security_groups,
        )
        add("compute", "POST", r"/servers/([^/]+)/os-volume_attachments", "AttachVolume", self.attach_volume)
        add(
            "compute",
            "GET",
            r"/servers/([^/]+)/os-volume_attachments",
            "ListVolumeAttachments",
            self.list_attachments,
        )
        add(
            "compute",
            "DELETE",
            r"/servers/([^/]+)/os-volume_attachments/([^/]+)",
            "DetachVolume",
            self.detach_volume,
        )
        # glance
        add("image", "GET", r"/v2/images", "ListImages", self.list_images)
        add("image", "GET", r"/v2/images/([^/]+)", "GetImage", self.get_image)
        # neutron
        add("network", "GET", r"/v2.0/networks", "ListNetworks", self.lister("networks", lambda: c.networks))
        add(
            "network",
            "GET",
            r"/v2.0/networks/([^/]+)",
            "GetNetwork",
            self.getter("network", lambda: c.networks),
        )
        add("network", "GET", r"/v2.0/subnets", "ListSubnets", self.lister("subnets", lambda: c.subnets))
        add("network", "GET", r"/v2.0/subnets/([^/]+)", "GetSubnet", self.getter("subnet", lambda: c.subnets))
        add("network", "GET", r"/v2.0/ports", "ListPorts", self.lister("ports", lambda: c.ports))
        add("network", "GET", r"/v2.0/ports/([^/]+)", "GetPort", self.getter("port", lambda: c.ports))
        add("network", "DELETE", r"/v2.0/ports/([^/]+)", "DeletePort", self.delete_port)
        add(
            "network",
            "GET",
            r"/v2.0/security-groups",
            "ListSecurityGroups",
            self.lister("security_groups", lambda: c.security_groups),
        )
        add(
            "network",
            "GET",
            r"/v2.0/security-groups/([^/]+)",
            "GetSecurityGroup",
            self.getter("security_group", lambda: c.security_groups),
        )
        add("network", "POST", r"/v2.0/security-groups", "CreateSecurityGroup", self.create_security_group)
        add(
            "network",
            "DELETE",
            r"/v2.0/security-groups/([^/]+)",
            "DeleteSecurityGroup",
            self.delete_security_group,
        )
        add("network", "GET", r"/v2.0/security-group-rules", "ListSecurityGroupRules", self.list_rules)
        add("network", "POST", r"/v2.0/security-group-rules", "CreateSecurityGroupRule", self.create_rule)
        add(
            "network",
            "DELETE",
            r"/v2.0/security-group-rules/([^/]+)",
            "DeleteSecurityGroupRule",
            self.delete_rule,
        )
        add(
            "network",
            "GET",
            r"/v2.0/floatingips",
            "ListFloatingIps",
            self.lister("floatingips", lambda: c.floating_ips),
        )
        add(
            "network",
            "GET",
            r"/v2.0/floatingips/([^/]+)",
            "GetFloatingIp",
            self.getter("floatingip", lambda: c.floating_ips),
        )
        add("network", "POST", r"/v2.0/floatingips", "CreateFloatingIp", self.create_floating_ip)
        add("network", "PUT", r"/v2.0/floatingips/([^/]+)", "UpdateFloatingIp", self.update_floating_ip)
        add("network", "DELETE", r"/v2.0/floatingips/([^/]+)", "DeleteFloatingIp", self.delete_floating_ip)
        add("network", "GET", r"/v2.0/routers", "ListRouters", self.lister("routers", lambda: c.routers))
        # cinder
        add("volume", "GET", r"/os-availability-zone", "ListVolumeZones", self.volume_zones)
        add("volume", "GET", r"/volumes(/detail)?", "ListVolumes", self.list_volumes)
        add("volume", "POST", r"/volumes", "CreateVolume", self.create_volume)
        add("volume", "GET", r"/volumes/([^/]+)", "GetVolume", self.get_volume)
        add("volume", "DELETE", r"/volumes/([^/]+)", "DeleteVolume", self.delete_volume)

    def _add(self, service: str, method: str, pattern: str, action: str, handler: Handler) -> None:
        self.routes.append((service, method, re.compile(pattern + r"$"), action, handler))

    # -- dispatch -----------------------------------------------------------------------------------
    SERVICE_PREFIXES: ClassVar[list[tuple[str, re.Pattern[str]]]] = [
        ("identity", re.compile(r"^(?:/identity)?(/v3(?:/.*)?)$")),
        ("compute", re.compile(r"^/compute/v2\.1(/.*)$")),
        ("image", re.compile(r"^/image(/v2/.*)$")),
        ("network", re.compile(r"^/network(/v2\.0/.*?)(?:\.json)?$")),
        ("volume", re.compile(r"^/volume/v3/[^/]+(/.*)$")),
    ]

    def handle(self, req: Request) -> Response:
        for service, prefix in self.SERVICE_PREFIXES:
            m = prefix.match(req.path.rstrip("/"))
            if m:
                return self._dispatch(service, m.group(1), req)
        raise ApiError(404, {"error": {"code": 404, "message": f"No service at {req.path}"}})

    def _dispatch(self, service: str, subpath: str, req: Request) -> Response:
        allowed = False
        for svc, method, pattern, action, handler in self.routes:
            if svc != service:
                continue
            m = pattern.match(subpath)
            if not m:
                continue
            allowed = True
            if method != req.method:
                continue
            if service != "identity":
                self.cloud.check_token(req.headers.get("x-auth-token"))
            if self.injector.latency_s:
                time.sleep(self.injector.latency_s)
            call = self._call_of(action, req)
            fault = self.injector.decide(call)
            with self.calls_lock:
                self.calls.append(
                    {
                        "action": action,
                        "method": req.method,
                        "path": req.path,
                        "fault": fault.code if fault else None,
                        "at": time.monotonic(),
                    }
                )
            if fault is not None and fault.code not in (*SCHEDULING_FAULTS, "LostAnswer"):
                raise self._fault_error(service, fault)
            req_args = [g for g in m.groups() if g is not None and not g.startswith("/")]
            lost = fault is not None and fault.code == "LostAnswer"
            if action == "CreateServer":
                answer = handler(req, None if lost else fault)
            else:
                answer = handler(req, *req_args)
            if lost:  # the service did it; the caller only hears of a timeout on the way back
                raise self._fault_error(service, fault)
            return answer
        if allowed:
            raise ApiError(405, {"error": {"code": 405, "message": f"Method {req.method} not allowed"}})
        if service == "network":
            raise neutron_error(404, "HTTPNotFound", f"The resource could not be found: {req.path}")
        raise nova_error(404, f"The resource could not be found: {req.path}")

    def _call_of(self, action: str, req: Request) -> Call:
        mutating = req.method in ("POST", "PUT", "PATCH", "DELETE") and action not in (
            "IssueToken",
            "FederatedAuth",
        )
        flavor = zone = None
        if action == "CreateServer" and isinstance(req.body, dict):
            spec = req.body.get("server") or {}
            known = self.cloud.flavors.get(str(spec.get("flavorRef")))
            flavor = known["name"] if known else None
            zone = spec.get("availability_zone") or "nova"
        return Call(action=action, mutating=mutating, instance_type=flavor, zone=zone)

    @staticmethod
    def _fault_error(service: str, fault: Fault) -> ApiError:
        headers = {"Retry-After": "1"} if fault.status == 429 else {}
        if service == "network":
            error = neutron_error(fault.status, fault.code, fault.message)
        elif fault.code == "overLimit":
            error = ApiError(
                fault.status,
                {"overLimit": {"code": fault.status, "message": fault.message, "retryAfter": "1"}},
            )
        else:
            error = nova_error(fault.status, fault.message)
        error.headers.update(headers)
        return error

    # -- keystone -----------------------------------------------------------------------------------
    def validate_token(self, req: Request) -> Response:
        self.cloud.check_token(req.headers.get("x-auth-token"), scoped=False)
        subject = req.headers.get("x-subject-token", "")
        self.cloud.check_token(subject, scoped=False)
        return 200, self.cloud.token_body(subject), {"X-Subject-Token": subject}

    # -- nova ---------------------------------------------------------------------------------------
    @staticmethod
    def microversion(req: Request) -> tuple[int, int]:
        raw = req.headers.get("openstack-api-version", "").replace("compute", "").strip() or req.headers.get(
            "x-openstack-nova-api-version", "2.1"
        )
        if raw == "latest":
            return (2, 96)
        major, _, minor = raw.partition(".")
        try:
            return int(major), int(minor or 0)
        except ValueError as exc:
            raise nova_error(400, f"Version {raw} is not supported by the API.") from exc

    def list_flavors(self, req: Request) -> Response:
        mv = self.microversion(req)
        with self.cloud.lock:
            return 200, {"flavors": [self.cloud.flavor_view(f, mv) for f in self.cloud.flavors.values()]}, {}

    def get_flavor(self, req: Request, flavor_id: str) -> Response:
        with self.cloud.lock:
            return (
                200,
                {"flavor": self.cloud.flavor_view(self.cloud.flavor(flavor_id), self.microversion(req))},
                {},
            )

    def flavor_extra_specs(self, req: Request, flavor_id: str) -> Response:
        with self.cloud.lock:
            return 200, {"extra_specs": dict(self.cloud.flavor(flavor_id)["extra_specs"])}, {}

    def list_keypairs(self, req: Request) -> Response:
        with self.cloud.lock:
            return (
                200,
                {"keypairs": [{"keypair": self.cloud.keypair_view(k)} for k in self.cloud.keypairs.values()]},
                {},
            )

    def get_keypair(self, req: Request, name: str) -> Response:
        with self.cloud.lock:
            kp = self.cloud.keypairs.get(name)
            if kp is None:
                raise nova_error(404, f"Keypair {name} not found for user {self.cloud.user_id}")
            return 200, {"keypair": self.cloud.keypair_view(kp)}, {}

    def delete_keypair(self, req: Request, name: str) -> Response:
        with self.cloud.lock:
            if self.cloud.keypairs.pop(name, None) is None:
                raise nova_error(404, f"Keypair {name} not found for user {self.cloud.user_id}")
        return 202, None, {}

    def list_servers_detail(self, req: Request) -> Response:
        with self.cloud.lock:
            return 200, {"servers": [self.cloud.server_view(s) for s in self.cloud.list_servers(req)]}, {}

    def list_servers(self, req: Request) -> Response:
        with self.cloud.lock:
            return (
                200,
                {
                    "servers": [
                        {"id": s["id"], "name": s["name"], "links": self.cloud._server_links(s["id"])}
                        for s in self.cloud.list_servers(req)
                    ]
                },
                {},
            )

    def create_server(self, req: Request, fault: Fault | None) -> Response:
        return self.cloud.create_server(req.body, fault)

    def get_server(self, req: Request, server_id: str) -> Response:
        with self.cloud.lock:
            return 200, {"server": self.cloud.server_view(self.cloud.server(server_id))}, {}

    def delete_server(self, req: Request, server_id: str) -> Response:
        self.cloud.delete_server(server_id)
        return 204, None, {}

    def server_action(self, req: Request, server_id: str) -> Response:
        """nova/api/openstack/compute/deferred_delete.py: ``forceDelete`` and ``restore`` of a
        SOFT_DELETED server (409 in any other state, as ``check_instance_state`` answers)."""
        body = req.body if isinstance(req.body, dict) else {}
        with self.cloud.lock:
            server = self.cloud.server(server_id)
            if "forceDelete" in body or "restore" in body:
                action = "forceDelete" if "forceDelete" in body else "restore"
                if server["status"] != "SOFT_DELETED":
                    raise nova_error(409, f"Cannot '{action}' instance {server_id} while it is in vm_state "
                                          f"{VM_STATES.get(server['status'], 'active')}")
                if action == "forceDelete":
                    self.cloud.force_delete_server(server_id)
                else:
                    server.update(status="ACTIVE", updated=now_iso())
                return 202, None, {}
        raise nova_error(400, f"There is no such action: {', '.join(body) or '(none)'}")

    def compute_zones(self, req: Request) -> Response:
        """nova/api/openstack/compute/availability_zone.py ``index``."""
        zones = [{"zoneName": z, "zoneState": {"available": True}, "hosts": None}
                 for z in self.cloud.compute_zones]
        return 200, {"availabilityZoneInfo": zones}, {}

    def volume_zones(self, req: Request) -> Response:
        """cinder/api/contrib/availability_zones.py and cinder/api/views/availability_zones.py: the
        same shape as Nova's."""
        zones = [{"zoneName": z, "zoneState": {"available": True}} for z in self.cloud.volume_zones]
        return 200, {"availabilityZoneInfo": zones}, {}

    def get_metadata(self, req: Request, server_id: str) -> Response:
        with self.cloud.lock:
            return 200, {"metadata": dict(self.cloud.server(server_id)["metadata"])}, {}

    def set_metadata(self, req: Request, server_id: str) -> Response:
        metadata = (req.body or {}).get("metadata")
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise nova_error(400, "Malformed request body: metadata must be an object of strings")
        with self.cloud.lock:
            server = self.cloud.server(server_id)
            if req.method == "PUT":
                server["metadata"] = dict(metadata)
            else:
                server["metadata"].update(metadata)
            return 200, {"metadata": dict(server["metadata"])}, {}

    def interfaces(self, req: Request, server_id: str) -> Response:
        with self.cloud.lock:
            server = self.cloud.server(server_id)
            ports = [self.cloud.ports[p] for p in server["port_ids"] if p in self.cloud.ports]
            return (
                200,
                {
                    "interfaceAttachments": [
                        {
                            "port_id": p["id"],
                            "net_id": p["network_id"],
                            "mac_addr": p["mac_address"],
                            "port_state": "ACTIVE",
                            "fixed_ips": [dict(f) for f in p["fixed_ips"]],
                        }
                        for p in ports
                    ]
                },
                {},
            )

    def server_security_groups(self, req: Request, server_id: str) -> Response:
        with self.cloud.lock:
            server = self.cloud.server(server_id)
            groups = [
                self.cloud.security_groups[g]
                for g in server["security_group_ids"]
                if g in self.cloud.security_groups
            ]
            return (
                200,
                {
                    "security_groups": [
                        {
                            "id": g["id"],
                            "name": g["name"],
                            "description": g["description"],
                            "tenant_id": g["tenant_id"],
                            "rules": [],
                        }
                        for g in groups
                    ]
                },
                {},
            )

    def attach_volume(self, req: Request, server_id: str) -> Response:
        spec = (req.body or {}).get("volumeAttachment") or {}
        with self.cloud.lock:
            server = self.cloud.server(server_id)
            if server["status"] != "ACTIVE":
                raise nova_error(
                    409,
                    f"Cannot 'attach_volume' instance {server_id} while it is in vm_state "
                    f"{VM_STATES[server['status']]}",
                )
            volume = self.cloud.volumes.get(spec.get("volumeId", ""))
            if volume is None:
                raise nova_error(404, f"Volume {spec.get('volumeId')} could not be found.")
            if self.cloud.volume_view(volume)["status"] != "available":
                raise nova_error(400, f"Invalid volume: volume {volume['id']} status must be 'available'.")
            taken = {v["device"] for v in self.cloud.volumes.values() if v["server_id"] == server_id}
            device = spec.get("device") or next(
                f"/dev/vd{c}" for c in "bcdefghijklmnop" if f"/dev/vd{c}" not in taken
            )
            volume.update(
                server_id=server_id,
                device=device,
                status="in-use",
                attachment_id=new_id(),
                updated_at=now_iso(),
            )
            return (
                200,
                {
                    "volumeAttachment": {
                        "id": volume["id"],
                        "serverId": server_id,
                        "volumeId": volume["id"],
                        "device": device,
                    }
                },
                {},
            )

    def list_attachments(self, req: Request, server_id: str) -> Response:
        with self.cloud.lock:
            self.cloud.server(server_id)
            return (
                200,
                {
                    "volumeAttachments": [
                        {"id": v["id"], "serverId": server_id, "volumeId": v["id"], "device": v["device"]}
                        for v in self.cloud.volumes.values()
                        if v["server_id"] == server_id
                    ]
                },
                {},
            )

    def detach_volume(self, req: Request, server_id: str, volume_id: str) -> Response:
        with self.cloud.lock:
            self.cloud.server(server_id)
            volume = self.cloud.volumes.get(volume_id)
            if volume is None or volume["server_id"] != server_id:
                raise nova_error(404, f"Volume {volume_id} is not attached to {server_id}.")
            volume.update(
                server_id=None, device=None, status="available", attachment_id=None, updated_at=now_iso()
            )
        return 202, None, {}

    # -- glance -------------------------------------------------------------------------------------
    def list_images(self, req: Request) -> Response:
        limit = int(req.q("limit") or self.cloud.images_page_size)
        marker = req.q("marker")
        filters = {
            k: v[0]
            for k, v in req.query.items()
            if k not in ("limit", "marker", "sort", "sort_key", "sort_dir")
        }
        with self.cloud.lock:
            images = [
                i for i in self.cloud.images.values() if all(str(i.get(k)) == v for k, v in filters.items())
            ]
            start = 0
            if marker:
                ids = [i["id"] for i in images]
                if marker not in ids:
                    raise ApiError(400, {"error": {"code": 400, "message": f"Invalid marker {marker}"}})
                start = ids.index(marker) + 1
            page = images[start : start + limit]
            body: dict[str, Any] = {
                "images": copy.deepcopy(page),
                "first": "/v2/images",
                "schema": "/v2/schemas/images",
            }
            if start + limit < len(images):
                body["next"] = f"/v2/images?marker={page[-1]['id']}&limit={limit}"
            return 200, body, {}

    def get_image(self, req: Request, image_id: str) -> Response:
        with self.cloud.lock:
            image = self.cloud.images.get(image_id)
            if image is None:
                raise ApiError(404, {"error": {"code": 404, "message": f"No image found with ID {image_id}"}})
            return 200, copy.deepcopy(image), {}

    # -- neutron ------------------------------------------------------------------------------------
    @staticmethod
    def _public(item: dict[str, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in item.items() if not k.startswith("_")}

    def _filter(self, req: Request, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        fields = req.query.get("fields")
        result = []
        for item in items:
            # Neutron filters are equality on any attribute; booleans arrive as "True"/"true".
            if all(
                key == "fields" or key not in item or any(str(item[key]).lower() == v.lower() for v in values)
                for key, values in req.query.items()
            ):
                view = self._public(item)
                result.append({k: v for k, v in view.items() if k in fields} if fields else view)
        return result

    def lister(self, key: str, table: Callable[[], dict[str, dict[str, Any]]]) -> Handler:
        def handler(req: Request) -> Response:
            with self.cloud.lock:
                return 200, {key: self._filter(req, list(table().values()))}, {}

        return handler

    def getter(self, key: str, table: Callable[[], dict[str, dict[str, Any]]]) -> Handler:
        def handler(req: Request, item_id: str) -> Response:
            with self.cloud.lock:
                item = table().get(item_id)
                if item is None:
                    kind = "".join(p.capitalize() for p in key.split("_"))
                    raise neutron_error(404, f"{kind}NotFound", f"{kind} {item_id} could not be found.")
                return 200, {key: self._public(item)}, {}

        return handler

    def delete_port(self, req: Request, port_id: str) -> Response:
        with self.cloud.lock:
            if port_id not in self.cloud.ports:
                raise neutron_error(404, "PortNotFound", f"Port {port_id} could not be found.")
            self.cloud._delete_port(port_id)
            for server in self.cloud.servers.values():
                if port_id in server["port_ids"]:
                    server["port_ids"].remove(port_id)
        return 204, None, {}

    def create_security_group(self, req: Request) -> Response:
        spec = (req.body or {}).get("security_group") or {}
        name = spec.get("name")
        if not isinstance(name, str):
            raise neutron_error(
                400, "BadRequest", "Failed to parse request. Required attribute 'name' not specified"
            )
        if name == "default":
            raise neutron_error(
                409, "SecurityGroupDefaultAlreadyExists", "Default security group already exists."
            )
        with self.cloud.lock:
            group = self.cloud._new_security_group(name, spec.get("description", ""))
            return 201, {"security_group": self._public(group)}, {}

    def delete_security_group(self, req: Request, group_id: str) -> Response:
        with self.cloud.lock:
            group = self.cloud.security_groups.get(group_id)
            if group is None:
                raise neutron_error(404, "SecurityGroupNotFound", f"Security group {group_id} does not exist")
            if group["name"] == "default":
                raise neutron_error(
                    409,
                    "SecurityGroupCannotRemoveDefault",
                    "Insufficient rights for removing default security group.",
                )
            if any(group_id in p["security_groups"] for p in self.cloud.ports.values()):
                raise neutron_error(409, "SecurityGroupInUse", f"Security Group {group_id} in use.")
            for other in self.cloud.security_groups.values():
                other["security_group_rules"] = [
                    r
                    for r in other["security_group_rules"]
                    if r["remote_group_id"] != group_id or other is group
                ]
            del self.cloud.security_groups[group_id]
        return 204, None, {}

    def list_rules(self, req: Request) -> Response:
        with self.cloud.lock:
            rules = [r for g in self.cloud.security_groups.values() for r in g["security_group_rules"]]
            return 200, {"security_group_rules": self._filter(req, rules)}, {}

    def create_rule(self, req: Request) -> Response:
        spec = (req.body or {}).get("security_group_rule") or {}
        with self.cloud.lock:
            return 201, {"security_group_rule": dict(self.cloud.create_security_group_rule(spec))}, {}

    def delete_rule(self, req: Request, rule_id: str) -> Response:
        with self.cloud.lock:
            for group in self.cloud.security_groups.values():
                for rule in group["security_group_rules"]:
                    if rule["id"] == rule_id:
                        group["security_group_rules"].remove(rule)
                        return 204, None, {}
        raise neutron_error(404, "SecurityGroupRuleNotFound", f"Security group rule {rule_id} does not exist")

    def create_floating_ip(self, req: Request) -> Response:
        spec = (req.body or {}).get("floatingip") or {}
        with self.cloud.lock:
            return 201, {"floatingip": self._public(self.cloud.create_floating_ip(spec))}, {}

    def update_floating_ip(self, req: Request, fip_id: str) -> Response:
        spec = (req.body or {}).get("floatingip")
        if not isinstance(spec, dict):
            raise neutron_error(400, "BadRequest", "Failed to parse request. Required attribute 'floatingip'")
        with self.cloud.lock:
            return 200, {"floatingip": self._public(self.cloud.update_floating_ip(fip_id, spec))}, {}

    def delete_floating_ip(self, req: Request, fip_id: str) -> Response:
        with self.cloud.lock:
            if self.cloud.floating_ips.pop(fip_id, None) is None:
                raise neutron_error(404, "FloatingIPNotFound", f"Floating IP {fip_id} could not be found")
        return 204, None, {}

    # -- cinder -------------------------------------------------------------------------------------
    def list_volumes(self, req: Request) -> Response:
        with self.cloud.lock:
            return 200, {"volumes": [self.cloud.volume_view(v) for v in self.cloud.volumes.values()]}, {}

    def create_volume(self, req: Request) -> Response:
        spec = (req.body or {}).get("volume") or {}
        try:
            size = int(spec["size"])
            if size < 1:
                raise ValueError(size)
        except (KeyError, TypeError, ValueError) as exc:
            raise ApiError(
                400, {"badRequest": {"code": 400, "message": "Invalid input for field/attribute size."}}
            ) from exc
        zone = spec.get("availability_zone")
        if zone is not None and zone not in self.cloud.volume_zones:
            # cinder/volume/flows/api/create_volume.py _extract_availability_zone: InvalidAvailabilityZone
            message = f"Availability zone '{zone}' is invalid."
            raise ApiError(400, {"badRequest": {"code": 400, "message": message}})
        now = now_iso()
        volume = {
            "id": new_id(),
            "name": spec.get("name"),
            "description": spec.get("description"),
            "size": size,
            "status": "creating",
            "availability_zone": zone or self.cloud.volume_zones[0],
            "volume_type": spec.get("volume_type") or "__DEFAULT__",
            "metadata": dict(spec.get("metadata") or {}),
            "bootable": "false",
            "encrypted": False,
            "multiattach": False,
            "snapshot_id": spec.get("snapshot_id"),
            "source_volid": None,
            "user_id": self.cloud.user_id,
            "os-vol-tenant-attr:tenant_id": self.cloud.project_id,
            "created_at": now,
            "updated_at": now,
            "ready_at": time.monotonic() + self.cloud.build_delay_s,
            "server_id": None,
            "device": None,
            "attachment_id": None,
        }
        with self.cloud.lock:
            self.cloud.volumes[volume["id"]] = volume
            return 202, {"volume": self.cloud.volume_view(volume)}, {}

    def get_volume(self, req: Request, volume_id: str) -> Response:
        with self.cloud.lock:
            return 200, {"volume": self.cloud.volume_view(self.cloud.volume(volume_id))}, {}

    def delete_volume(self, req: Request, volume_id: str) -> Response:
        with self.cloud.lock:
            volume = self.cloud.volume(volume_id)
            status = self.cloud.volume_view(volume)["status"]
            if status not in ("available", "error"):
                raise ApiError(
                    400,
                    {
                        "badRequest": {
                            "code": 400,
                            "message": "Invalid volume: Volume status must be "
                            f"available or error or ..., but current status is: {status}.",
                        }
                    },
                )
            del self.cloud.volumes[volume_id]
        return 202, None, {}
