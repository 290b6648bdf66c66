"""EC2 emulator: moto's EC2 on 127.0.0.1 behind a WSGI layer that makes it answer like real EC2.

The product talks to it with libcloud's stock, unpatched driver; the endpoint override is the
driver's own constructor arguments (libcloud 3.9, `EC2NodeDriver.__init__`):

    EC2NodeDriver(key, secret, region="eu-west-1", host="127.0.0.1", port=N, secure=False,
                  signature_version="4")

`region` still selects the SigV4 credential scope, which is what moto reads to pick the service and
region, so every region works against one emulator. Any key and secret are accepted.

What the WSGI layer (`Ec2Fixups`) corrects, each found by running the driver against plain moto:
- moto answers with namespace `http://ec2.amazonaws.com/doc/2016-11-15` (no trailing slash);
  AWS and libcloud use `.../2016-11-15/`, so libcloud's namespaced XPaths would find nothing.
- moto rejects list parameters numbered from 0 (`ResourceId.0`, `Filter.0.Value.0`), which AWS
  accepts and libcloud sends; they are renumbered from 1 before moto sees them.
- moto's error documents carry that namespace too; EC2's do not, and libcloud looks for a plain
  `Errors/Error` (with the namespace every error surfaced as an empty message).
- moto answers CreateTags, ReleaseAddress, DisassociateAddress, ... with only a request id; EC2 adds
  `<return>true</return>` and libcloud returns False without it.
- DetachVolume may name only the volume (libcloud does so); moto needs the instance, filled in here
  from the volume's attachment.
- libcloud signs with SigV2 in some regions (eu-west-1 among them) unless told otherwise; moto then
  cannot tell the service and answers as S3. The emulator answers such requests with `AuthFailure`
  saying to pass `signature_version="4"` (the product's driver uses SigV4).

Where moto is more lenient than EC2, `ec2_strict.Strictness` answers as EC2 would (rule-description
characters, IPv6 ranges, security group and subnet of one VPC, default subnets, network-interface
tags, T instances' credit option), and its knobs give an account without a default VPC, eventual
consistency and instances terminated during launch (`POST /_harness/strict`, `set_strict`).

Current Canonical images (Ubuntu 22.04 and 24.04, amd64 and arm64, owner 099720109477, plus
look-alikes a careless lookup would pick) come from `amis.json` through moto's `MOTO_AMIS_PATH`,
merged with moto's own defaults. moto reads that variable when `moto.ec2` is imported, so this module
sets it before importing moto (and fills moto's list in place if moto was imported earlier).

Test knobs, over HTTP (`/_harness/...`) and from Python (`Ec2Emulator`):
- `POST /_harness/faults` a `FaultPlan` as JSON (seed, latency_s, rules): a share of mutating calls
  answered with `RequestLimitExceeded` (503), `Unavailable` (503), `InternalError` (500) or
  `InsufficientInstanceCapacity` (500, optionally only for an instance type or zone) without being
  performed; `latency_s` delays every API call. `GET` shows the plan.
- `GET /_harness/inventory?region=R` everything that exists (instances with state, key pairs,
  security groups, volumes, addresses, with tags), to assert "zero left"; with `&deployment=ID`
  only what carries that deployment's tag or name prefix and is not terminated (`leftovers`).
- `GET /_harness/calls` the API actions received, in order, with the injected fault if any.
- `POST /_harness/reset` empties moto and clears faults and the call log.

Run by hand: `python -m tests.harness.ec2 --port 5000 [--seed S --latency 1 --fault-rate 0.2]
[--no-default-vpc --not-found-calls 3]`.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode
from xml.etree import ElementTree

from tests.harness.ec2_strict import Strictness, StrictSettings

AMIS_JSON = Path(__file__).with_name("amis.json")
CANONICAL_OWNER = "099720109477"
ACCOUNT_ID = "123456789012"  # moto's default account: what any access key maps to
NAMESPACE = "http://ec2.amazonaws.com/doc/2016-11-15/"

ERROR_STATUS = {
    "RequestLimitExceeded": 503,
    "Unavailable": 503,
    "InternalError": 500,
    "InsufficientInstanceCapacity": 500,
    "Unsupported": 400,
    "InsufficientFreeAddressesInSubnet": 400,
    "VcpuLimitExceeded": 400,
    "UnauthorizedOperation": 403,
}
ERROR_MESSAGES = {
    "RequestLimitExceeded": "Request limit exceeded.",
    "Unavailable": "The server is overloaded and can't handle the request.",
    "InternalError": "An internal error has occurred.",
    "InsufficientInstanceCapacity": "We currently do not have sufficient capacity in the Availability "
    "Zone you requested.",
    # AWS's wording for these (EC2 API reference, "Error codes for the Amazon EC2 API")
    "Unsupported": "Your requested instance type is not supported in your requested Availability Zone.",
    "InsufficientFreeAddressesInSubnet": "There are not enough free addresses in subnet to satisfy the "
    "requested number of instances.",
    "VcpuLimitExceeded": "You have requested more vCPU capacity than your current vCPU limit of 32 allows "
    "for the instance bucket that the specified instance type belongs to.",
    "UnauthorizedOperation": "You are not authorized to perform this operation. Encoded authorization "
    "failure message: AbCdEf0123-encoded-blob",
}
READ_PREFIXES = ("Describe", "Get", "List")

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _merged_amis_file() -> str:
    """Write moto's default AMIs plus ours to a temp file once per process, for MOTO_AMIS_PATH."""
    import importlib.util

    spec = importlib.util.find_spec("moto")
    assert spec is not None and spec.origin is not None, "moto is not installed"
    defaults_gz = Path(spec.origin).parent / "ec2" / "resources" / "amis.json.gz"
    with gzip.open(defaults_gz, "rt", encoding="utf-8") as f:
        amis = json.load(f)
    amis += json.loads(AMIS_JSON.read_text(encoding="utf-8"))
    fd, path = tempfile.mkstemp(prefix="harness-amis-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(amis, f)
    return path


def _load_moto() -> None:
    """Import moto with our AMIs in place, whatever was imported before."""
    import sys

    if "MOTO_AMIS_PATH" not in os.environ:
        os.environ["MOTO_AMIS_PATH"] = _merged_amis_file()
    already = "moto.ec2.models.amis" in sys.modules
    from moto.ec2.models import amis as moto_amis

    ours = json.loads(AMIS_JSON.read_text(encoding="utf-8"))
    known = {a["ami_id"] for a in moto_amis.AMIS}
    if already or not all(a["ami_id"] in known for a in ours):
        moto_amis.AMIS.extend(a for a in ours if a["ami_id"] not in known)


def renumber_zero_based(params: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Shift every list numbered from 0 (`Foo.0`, `Filter.0.Value.0`) to start at 1, as AWS allows."""
    tree: dict[str, Any] = {}
    for key, value in params:
        node = tree
        for part in key.split("."):
            node = node.setdefault(part, {})
        node.setdefault("", []).append(value)

    def flatten(node: dict[str, Any], prefix: str) -> list[tuple[str, str]]:
        out = [(prefix, v) for v in node.get("", [])]
        children = {k: v for k, v in node.items() if k != ""}
        shift = 1 if children and "0" in children and all(k.isdigit() for k in children) else 0
        for k, child in children.items():
            name = str(int(k) + shift) if shift else k
            out += flatten(child, f"{prefix}.{name}" if prefix else name)
        return out

    return flatten(tree, "")


def region_of(environ: dict[str, Any]) -> str:
    """The region of a SigV4-signed request, from its credential scope."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    try:
        scope = auth.split(",")[0].split()[1]
        return scope.split("/")[2]
    except IndexError:
        return "us-east-1"


def access_key_of(environ: dict[str, Any]) -> str | None:
    """The access key id a SigV4-signed request was signed with (its credential scope's first part)."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    try:
        return auth.split(",")[0].split()[1].removeprefix("Credential=").split("/")[0]
    except IndexError:
        return None


def error_xml(code: str, message: str) -> bytes:
    """EC2's error document: exactly Code and Message in each Error, as libcloud unpacks them."""
    from xml.sax.saxutils import escape

    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Errors><Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"</Error></Errors><RequestID>{uuid.uuid4()}</RequestID></Response>"
    ).encode()


def fix_response_body(status: int, body: bytes) -> bytes:
    """Make a moto EC2 answer look like EC2's, as libcloud parses it.

    - namespace `.../2016-11-15` gets its trailing slash;
    - error documents carry no namespace on EC2 (libcloud looks for plain `Errors/Error`);
    - answers that carry nothing but a request id get EC2's `<return>true</return>`
      (CreateTags, ReleaseAddress, ...; libcloud reports False without it).
    """
    ours = b'xmlns="' + NAMESPACE.encode() + b'"'
    body = body.replace(b'xmlns="http://ec2.amazonaws.com/doc/2016-11-15"', ours)
    if not body.lstrip().startswith(b"<"):
        return body
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return body
    if status >= 400 and root.tag == f"{{{NAMESPACE}}}Response":
        return body.replace(b"<Response " + ours, b"<Response", 1)
    if status < 300 and len(root) == 1 and root[0].tag.endswith("requestId"):
        return body.replace(b"</requestId>", b"</requestId><return>true</return>", 1)
    return body


@dataclass
class CallRecord:
    action: str
    region: str
    fault: str | None
    at: float = field(default_factory=time.monotonic)
    refused: str | None = None
    """The error code the stricter layer answered with (as AWS would have), if any."""
    params: dict[str, str] = field(default_factory=dict)
    """The request's parameters (what an IAM policy is evaluated against)."""
    access_key: str | None = None
    """The access key id it was signed with."""
    session_token: str | None = None
    """Its ``X-Amz-Security-Token`` (temporary credentials: a role's)."""


class Ec2Fixups:
    """WSGI middleware in front of moto: EC2 wire fixes, faults, latency and the control endpoints."""

    def __init__(self, app: WsgiApp, injector: Any) -> None:
        self.app = app
        self.injector = injector
        self.strict = Strictness()
        self.calls: list[CallRecord] = []
        self._lock = threading.Lock()
        # moto's backends are not thread-safe (a subnet's IP iterator raised "generator already
        # executing" under parallel RunInstances), so its work runs one request at a time; injected
        # latency is slept before, outside this lock, so parallel clients still overlap as on EC2.
        self._moto_lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_harness/"):
            return self._control(environ, start_response, path)
        if path.startswith("/moto-api"):
            return self.app(environ, start_response)
        if "HTTP_AUTHORIZATION" not in environ and "AWSAccessKeyId=" in environ.get("QUERY_STRING", ""):
            body = error_xml("AuthFailure", "The EC2 emulator needs SigV4 (the region comes from its scope): "
                             "create EC2NodeDriver with signature_version='4'.")
            start_response("401 Unauthorized", [("Content-Type", "text/xml"),
                                                ("Content-Length", str(len(body)))])
            return [body]
        region = region_of(environ)
        params = self._rewrite_params(environ, region)
        action = params.get("Action", "")
        if self.injector.latency_s:
            time.sleep(self.injector.latency_s)
        fault = self.injector.decide(self._call_of(action, params, region))
        with self._lock:
            record = CallRecord(action, region, fault.code if fault else None, params=dict(params),
                                access_key=access_key_of(environ),
                                session_token=environ.get("HTTP_X_AMZ_SECURITY_TOKEN")
                                or params.get("x-amz-security-token"))
            self.calls.append(record)
        if fault is not None:
            if fault.performed:  # done, but the answer is lost: the client sees only the error
                list(self._fixed_response(environ, lambda *_a, **_k: None, action, params, region))
            body = error_xml(fault.code, fault.message)
            start_response(f"{fault.status} Harness", [("Content-Type", "text/xml"),
                                                         ("Content-Length", str(len(body)))])
            return [body]
        return self._fixed_response(environ, start_response, action, params, region, record)

    # -- requests -----------------------------------------------------------------------------------
    @staticmethod
    def _rewrite_params(environ: dict[str, Any], region: str) -> dict[str, str]:
        """Renumber zero-based lists in the query string and in a form body; return all params.

        Also: EC2 lets DetachVolume name only the volume (libcloud sends just that); moto needs the
        instance too, so it is filled in from the volume's attachment.
        """
        query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        fixed_query = renumber_zero_based(query)
        given = dict(fixed_query)
        if given.get("Action") == "DetachVolume" and "InstanceId" not in given and "VolumeId" in given:
            instance = _attached_instance(region, given["VolumeId"])
            if instance:
                fixed_query.append(("InstanceId", instance))
        environ["QUERY_STRING"] = urlencode(fixed_query)
        fixed_form: list[tuple[str, str]] = []
        if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(length) if length else b""
            fixed_form = renumber_zero_based(parse_qsl(raw.decode(), keep_blank_values=True))
            body = urlencode(fixed_form).encode()
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return dict(fixed_query + fixed_form)

    @staticmethod
    def _call_of(action: str, params: dict[str, str], region: str) -> Any:
        from tests.harness.faults import Call

        zone = params.get("Placement.AvailabilityZone")
        subnet = params.get("SubnetId") or params.get("NetworkInterface.1.SubnetId")
        if zone is None and subnet and action == "RunInstances":
            zone = _subnet_zone(region, subnet)
        return Call(action=action, mutating=not action.startswith(READ_PREFIXES),
                    instance_type=params.get("InstanceType"), zone=zone)

    # -- responses ----------------------------------------------------------------------------------
    def _fixed_response(self, environ: dict[str, Any], start_response: StartResponse, action: str,
                        params: dict[str, str], region: str, record: CallRecord | None = None
                        ) -> Iterable[bytes]:
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda _chunk: None

        with self._moto_lock:
            refused = self.strict.before(action, params, region)
            if isinstance(refused, bytes):
                start_response("200 OK", [("Content-Type", "text/xml"),
                                          ("Content-Length", str(len(refused)))])
                return [refused]
            if refused is not None:
                status, code, message = refused
                if record is not None:
                    record.refused = code
                body = error_xml(code, message)
                start_response(f"{status} Strict", [("Content-Type", "text/xml"),
                                                    ("Content-Length", str(len(body)))])
                return [body]
            result = self.app(environ, capture)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close:
                    close()
            status_code = int(captured["status"].split()[0])
            body = fix_response_body(status_code, body)
            body = self.strict.after(action, params, region, status_code, body)
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
        start_response(captured["status"], headers)
        return [body]

    # -- control ------------------------------------------------------------------------------------
    def _control(self, environ: dict[str, Any], start_response: StartResponse, path: str) -> Iterable[bytes]:
        from tests.harness.faults import FaultPlan

        method = environ.get("REQUEST_METHOD", "GET")
        status, payload = "200 OK", {}
        try:
            if path == "/_harness/faults" and method == "POST":
                length = int(environ.get("CONTENT_LENGTH") or 0)
                data = json.loads(environ["wsgi.input"].read(length) or b"{}")
                self.injector.set_plan(FaultPlan.from_dict(data))
                payload = self.injector.plan.to_dict()
            elif path == "/_harness/faults":
                payload = self.injector.plan.to_dict()
            elif path == "/_harness/inventory":
                query = parse_qs(environ.get("QUERY_STRING", ""))
                region = query.get("region", ["us-east-1"])[0]
                deployment = query.get("deployment", [None])[0]
                payload = leftovers(region, deployment) if deployment else inventory(region)
            elif path == "/_harness/strict" and method == "POST":
                length = int(environ.get("CONTENT_LENGTH") or 0)
                self.strict.configure(StrictSettings.from_dict(json.loads(environ["wsgi.input"].read(length)
                                                                          or b"{}")))
                payload = self.strict.settings.to_dict()
            elif path == "/_harness/strict":
                payload = self.strict.settings.to_dict()
            elif path == "/_harness/calls":
                with self._lock:
                    payload = {"calls": [c.__dict__ for c in self.calls]}
            elif path == "/_harness/reset" and method == "POST":
                self.reset()
                payload = {"reset": True}
            else:
                status, payload = "404 Not Found", {"error": f"no such control endpoint: {method} {path}"}
        except (ValueError, TypeError) as exc:
            status, payload = "400 Bad Request", {"error": str(exc)}
        body = json.dumps(payload).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def reset(self) -> None:
        """Forget every resource, fault rule and recorded call."""
        from moto.core.base_backend import BackendDict  # noqa: F401  (imported for its side effects)
        from moto.moto_api._internal.models import moto_api_backend

        from tests.harness.faults import FaultPlan

        moto_api_backend.reset()
        self.injector.set_plan(FaultPlan())
        self.strict.reset()
        with self._lock:
            self.calls.clear()


def _backend(region: str) -> Any:
    from moto.ec2.models import ec2_backends

    return ec2_backends[ACCOUNT_ID][region]


def _subnet_zone(region: str, subnet_id: str) -> str | None:
    try:
        return _backend(region).get_subnet(subnet_id).availability_zone
    except Exception:  # an unknown subnet: moto itself will answer with the right error
        return None


def _attached_instance(region: str, volume_id: str) -> str | None:
    volume = _backend(region).volumes.get(volume_id)
    return volume.attachment.instance.id if volume is not None and volume.attachment else None


def _user_data(instance: Any) -> str | None:
    """The instance's user data as text (moto keeps it base64-encoded, as EC2 receives it)."""
    import base64

    raw = instance.user_data
    if not raw:
        return None
    encoded = raw.as_bytes() if hasattr(raw, "as_bytes") else str(raw).encode()
    return base64.b64decode(encoded).decode("utf-8", "replace")


def _instance_profile(be: Any, instance_id: str) -> str | None:
    """The name of the IAM instance profile an instance runs with (None: none)."""
    association = be.iam_instance_profile_associations.get(instance_id)
    return association.iam_instance_profile.name if association is not None else None


def create_instance_profile(name: str, role: str) -> str:
    """An IAM role and an instance profile holding it in the emulator's account (what an operator
    makes once for the daemon); the profile's ARN."""
    from moto.iam.models import iam_backends

    iam = iam_backends[ACCOUNT_ID]["aws"]
    trust = ('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", '
             '"Principal": {"Service": "ec2.amazonaws.com"}}]}')
    iam.create_role(role, trust, "/", None, "the elasticity daemon role", [], None)
    profile = iam.create_instance_profile(name, "/", [], [])
    iam.add_role_to_instance_profile(name, role)
    return str(profile.arn)


def _tags(resource: Any) -> dict[str, str]:
    return {t["key"]: t["value"] for t in resource.get_tags()}


_STRICT: list[Strictness] = []
"""The running emulator's stricter layer (one per process), for the inventory's credit options."""


def _credits(instance_id: str) -> str | None:
    return _STRICT[-1].credits_of(instance_id) if _STRICT else None


def _root_volume(be: Any, instance: Any) -> dict[str, Any] | None:
    device = instance.root_device_name
    for volume in be.volumes.values():
        attached = volume.attachment
        if attached and attached.instance.id == instance.id and attached.device == device:
            return {"id": volume.id, "size": volume.size, "type": volume.volume_type,
                    "encrypted": bool(volume.encrypted), "tags": _tags(volume)}
    return None


def inventory(region: str) -> dict[str, list[dict[str, Any]]]:
    """Everything that exists in `region` of the emulator, read from moto's state (no API call)."""
    be = _backend(region)
    instances = [
        {"id": i.id, "state": i._state.name, "type": i.instance_type, "zone": i.placement.zone,
         "image": i.image_id, "key_name": i.key_name, "tags": _tags(i),
         # a launch that names its groups on the network interface (as ours does) leaves
         # moto's instance-level list empty: the instance is in its interfaces' groups
         "security_groups": sorted({g.id for g in i.security_groups}
                                   | {g.id for n in i.nics.values() for g in n.group_set}),
         "subnet": i.subnet_id,
         "user_data": _user_data(i), "http_tokens": i.metadata_options.http_tokens,
         "http_hop_limit": i.metadata_options.http_put_response_hop_limit, "public_ip": i.public_ip,
         "instance_profile": _instance_profile(be, i.id),
         "state_reason": i.state_reason.code or None, "cpu_credits": _credits(i.id),
         "network_interfaces": [{"id": n.id, "tags": _tags(n)} for n in i.nics.values()],
         "root_volume": _root_volume(be, i)}
        for i in be.all_instances()
    ]
    key_pairs = [{"name": name, "fingerprint": kp.key_fingerprint, "id": getattr(kp, "id", None),
                  "tags": _tags(kp)} for name, kp in be.key_pairs.items()]
    groups = [{"id": g.id, "name": g.name, "vpc": g.vpc_id, "tags": _tags(g)}
              for vpc in be.groups.values() for g in vpc.values()]
    volumes = [{"id": v.id, "status": v.status, "size": v.size, "zone": v.zone.name if v.zone else None,
                "attached_to": v.attachment.instance.id if v.attachment else None, "tags": _tags(v)}
               for v in be.volumes.values()]
    addresses = [{"public_ip": a.public_ip, "allocation_id": a.allocation_id,
                  "instance": a.instance.id if a.instance else None, "tags": _tags(a)}
                 for a in be.addresses]
    return {"instances": instances, "key_pairs": key_pairs, "security_groups": groups,
            "volumes": volumes, "addresses": addresses}


def leftovers(region: str, deployment: str) -> dict[str, list[dict[str, Any]]]:
    """What of `deployment` still exists in `region`: tagged `oscar-deploy:deployment=<id>` or named
    `oscar-deploy-<id>-...`; terminated instances do not count. Empty lists = nothing leaked."""
    prefix = f"oscar-deploy-{deployment}-"

    def ours(item: dict[str, Any]) -> bool:
        tags = item.get("tags") or {}
        name = item.get("name") or tags.get("Name") or ""
        return tags.get("oscar-deploy:deployment") == deployment or name.startswith(prefix)

    found = inventory(region)
    found["instances"] = [i for i in found["instances"] if i["state"] not in ("terminated", "shutting-down")]
    return {kind: [item for item in items if ours(item)] for kind, items in found.items()}


def _quiet_handler() -> type:
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class Quiet(MotoRequestHandler):  # type: ignore[misc, valid-type]
        """No access log: under pytest it would bury the failure being looked for."""

        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    return Quiet


class Ec2Emulator:
    """A running emulator: threaded werkzeug server in a daemon thread, with a Python handle.

    Use as a context manager or call `start()`/`stop()`. `driver_kwargs(region)` gives the libcloud
    endpoint override; `set_faults`, `inventory`, `calls` and `reset` are the test knobs.
    """

    def __init__(self, port: int = 0, plan: Any = None, quiet: bool = True) -> None:
        from tests.harness.faults import FaultInjector

        _load_moto()
        self.injector = FaultInjector(plan, ERROR_STATUS, ERROR_MESSAGES)
        self._port = port
        self._quiet = quiet
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.app: Ec2Fixups | None = None

    def start(self) -> Ec2Emulator:
        from moto.moto_server.werkzeug_app import MotoRequestHandler
        from moto.server import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        self.app = Ec2Fixups(DomainDispatcherApplication(create_backend_app), self.injector)
        _STRICT.append(self.app.strict)
        handler = _quiet_handler() if self._quiet else MotoRequestHandler
        self._server = make_server("127.0.0.1", self._port, self.app, threaded=True, request_handler=handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="ec2-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Ec2Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        """The URL an auth file's `host` names for this emulator."""
        return f"http://127.0.0.1:{self.port}"

    def driver_kwargs(self, region: str = "us-east-1") -> dict[str, Any]:
        """Keyword arguments that point libcloud's stock `EC2NodeDriver` here."""
        return {"region": region, "host": "127.0.0.1", "port": self.port, "secure": False,
                "signature_version": "4"}

    def set_faults(self, plan: Any) -> None:
        """Replace the fault plan (a `FaultPlan` or its dict form) and reseed."""
        from tests.harness.faults import FaultPlan

        self.injector.set_plan(plan if isinstance(plan, FaultPlan) else FaultPlan.from_dict(plan))

    def set_strict(self, settings: StrictSettings | dict[str, Any]) -> None:
        """The account's shape and EC2's timing (`ec2_strict.StrictSettings`): no default VPC,
        eventual consistency, instances terminated during launch."""
        assert self.app is not None
        self.app.strict.configure(settings if isinstance(settings, StrictSettings)
                                  else StrictSettings.from_dict(settings))

    def inventory(self, region: str = "us-east-1") -> dict[str, list[dict[str, Any]]]:
        return inventory(region)

    def leftovers(self, deployment: str, region: str = "us-east-1") -> dict[str, list[dict[str, Any]]]:
        return leftovers(region, deployment)

    @property
    def calls(self) -> list[CallRecord]:
        assert self.app is not None
        with self.app._lock:
            return list(self.app.calls)

    def reset(self) -> None:
        assert self.app is not None
        self.app.reset()


def main(argv: list[str] | None = None) -> None:
    """Run the emulator in the foreground until Ctrl-C."""
    from tests.harness.faults import FaultPlan, FaultRule

    parser = argparse.ArgumentParser(prog="python -m tests.harness.ec2", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every API call")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of mutating calls refused")
    parser.add_argument("--fault-code", default="RequestLimitExceeded", choices=sorted(ERROR_STATUS))
    parser.add_argument("--no-default-vpc", action="store_true", help="an account without a default VPC")
    parser.add_argument("--not-found-calls", type=int, default=0,
                        help="a new instance or security group is not found by this many calls")
    args = parser.parse_args(argv)
    rules = [FaultRule(code=args.fault_code, rate=args.fault_rate)] if args.fault_rate else []
    plan = FaultPlan(seed=args.seed, latency_s=args.latency, rules=rules)
    emulator = Ec2Emulator(args.port, plan, quiet=False).start()
    emulator.set_strict(StrictSettings(default_vpc=not args.no_default_vpc,
                                       not_found_calls=args.not_found_calls))
    print(f"EC2 emulator on {emulator.endpoint} (control: {emulator.endpoint}/_harness/faults)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        emulator.stop()


if __name__ == "__main__":
    main()
