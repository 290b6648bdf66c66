"""The threaded HTTP server, its `/_harness/` control endpoints and the Python handle."""

from __future__ import annotations

import argparse
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.harness.faults import FaultInjector, FaultPlan, FaultRule
from tests.harness.openstack.api import Api
from tests.harness.openstack.cloud import Cloud
from tests.harness.openstack.seed import Credentials
from tests.harness.openstack.wire import ERROR_MESSAGES, ERROR_STATUS, ApiError, Request, Response


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)

    def _respond(self, status: int, body: Any, headers: dict[str, str]) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._respond(400, {"badRequest": {"code": 400, "message": "Malformed request body"}}, {})
            return
        req = Request(
            self.command,
            url.path,
            parse_qs(url.query, keep_blank_values=True),
            {k.lower(): v for k, v in self.headers.items()},
            body,
        )
        if url.path.startswith("/_harness/"):
            self._respond(*self.server.harness.control(req))
            return
        try:
            status, payload, headers = self.server.harness.api.handle(req)
        except ApiError as err:
            status, payload, headers = err.status, err.body, err.headers
        self._respond(status, payload, headers)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    quiet: bool
    harness: OpenStackServer


class OpenStackServer:
    """A running OpenStack test server (threaded, in a daemon thread) and its test handle."""

    def __init__(
        self,
        port: int = 0,
        plan: FaultPlan | None = None,
        region: str = "RegionOne",
        credentials: Credentials | None = None,
        build_delay_s: float = 0.2,
        quiet: bool = True,
        tls: tuple[str, str] | None = None,
    ) -> None:
        """``tls``: ``(certificate, key)`` files to serve HTTPS with (``tests.harness.openstack.tls``)."""
        self.injector = FaultInjector(plan, ERROR_STATUS, ERROR_MESSAGES)
        self._server = _Server(("127.0.0.1", port), _Handler)
        self.scheme = "https" if tls else "http"
        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.quiet = quiet
        self._server.harness = self
        self.cloud = Cloud(self.endpoint, region, credentials, build_delay_s)
        self.api = Api(self.cloud, self.injector)
        self._thread: threading.Thread | None = None

    def start(self) -> OpenStackServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="openstack-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OpenStackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        """The Keystone auth URL (what an auth file's `host` names)."""
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def driver_kwargs(self, auth: str = "password") -> dict[str, Any]:
        """`key`, `secret` and keyword arguments for libcloud's `OpenStack_2_NodeDriver` against this server.

        `auth` is `password`, `appcred` or `oidc`; use as `OpenStack_2_NodeDriver(**server.driver_kwargs())`.
        """
        creds = self.cloud.credentials
        common = {"ex_force_auth_url": self.endpoint, "ex_force_service_region": self.cloud.region}
        if auth == "password":
            (user, domain), password = next(iter(creds.users.items()))
            return {
                "key": user,
                "secret": password,
                "ex_force_auth_version": "3.x_password",
                "ex_tenant_name": creds.project,
                "ex_domain_name": domain,
                **common,
            }
        if auth == "appcred":
            cred_id, secret = next(iter(creds.app_creds.items()))
            return {"key": cred_id, "secret": secret, "ex_force_auth_version": "3.x_appcred", **common}
        if auth == "oidc":
            return {
                "key": creds.identity_provider,
                "secret": next(iter(creds.oidc_tokens)),
                "ex_force_auth_version": "3.x_oidc_access_token",
                "ex_tenant_name": creds.protocol,
                "ex_domain_name": creds.project,
                **common,
            }
        raise ValueError(f"unknown auth kind {auth!r}: password, appcred or oidc")

    def set_faults(self, plan: FaultPlan | dict[str, Any]) -> None:
        self.injector.set_plan(plan if isinstance(plan, FaultPlan) else FaultPlan.from_dict(plan))

    def state(self) -> dict[str, Any]:
        return self.cloud.state()

    def leftovers(self, deployment: str) -> dict[str, list[dict[str, Any]]]:
        return self.cloud.leftovers(deployment)

    @property
    def calls(self) -> list[dict[str, Any]]:
        with self.api.calls_lock:
            return list(self.api.calls)

    def reset(self) -> None:
        """Fresh project, no faults, empty call log (tokens are forgotten too)."""
        self.cloud.reset()
        self.injector.set_plan(FaultPlan())
        with self.api.calls_lock:
            self.api.calls.clear()

    def control(self, req: Request) -> Response:
        """The `/_harness/` endpoints: faults (GET/POST), state, calls, reset (POST)."""
        try:
            if req.path == "/_harness/faults" and req.method == "POST":
                self.set_faults(req.body or {})
                return 200, self.injector.plan.to_dict(), {}
            if req.path == "/_harness/faults":
                return 200, self.injector.plan.to_dict(), {}
            if req.path == "/_harness/state":
                deployment = req.q("deployment")
                return 200, self.leftovers(deployment) if deployment else self.state(), {}
            if req.path == "/_harness/calls":
                return 200, {"calls": self.calls}, {}
            if req.path == "/_harness/reset" and req.method == "POST":
                self.reset()
                return 200, {"reset": True}, {}
        except (TypeError, ValueError) as exc:
            return 400, {"error": str(exc)}, {}
        return 404, {"error": f"no such control endpoint: {req.method} {req.path}"}, {}


def main(argv: list[str] | None = None) -> None:
    """Run the server in the foreground until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.harness.openstack", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--region", default="RegionOne")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every API call")
    parser.add_argument("--build-delay", type=float, default=0.2, help="seconds a server stays in BUILD")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of mutating calls refused")
    parser.add_argument("--fault-code", default="overLimit", choices=sorted(ERROR_STATUS))
    args = parser.parse_args(argv)
    rules = [FaultRule(code=args.fault_code, rate=args.fault_rate)] if args.fault_rate else []
    plan = FaultPlan(seed=args.seed, latency_s=args.latency, rules=rules)
    server = OpenStackServer(
        args.port, plan, args.region, build_delay_s=args.build_delay, quiet=False
    ).start()
    print(
        f"OpenStack test server on {server.endpoint} (region {args.region}; user demo/secret, project demo; "
        f"control: {server.endpoint}/_harness/faults)",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
