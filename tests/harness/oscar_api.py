"""Stand-ins for OSCAR's REST API and MinIO, on 127.0.0.1, for ``oscar-deploy check --deep``.

``MinioStandIn``: moto's S3 server (as the EC2 emulator runs moto) with MinIO's unauthenticated
liveness probe in front: ``/minio/health/live`` answers 200 with an empty body, as MinIO documents
(docs/metrics/healthcheck/README.md: "This probe always responds with '200 OK'"). Everything else is
moto's S3.

``OscarStandIn`` follows grycap/oscar v4.1.2 (``main.go``, ``pkg/handlers``) for what the check uses:

- ``GET /health`` → 200 ``Ok`` (``HealthHandler``), no authentication;
- ``/system/...`` behind basic auth (401 otherwise);
- ``POST /system/services``: ``name``, ``image`` and ``script`` required (``binding:"required"``,
  else 400 "The service specification is not valid: ..."), a taken name → 400 "A service with the
  provided name already exists"; MinIO paths without a ``/`` get the service name as bucket
  (``normalizeStoragePaths``); the input and output buckets are created (``createBuckets``); 201;
- ``GET /system/services/NAME`` → 200 with the definition, 404 if unknown;
- ``DELETE /system/services/NAME`` → 204, the service's buckets removed (``deleteBuckets``), 404 if
  unknown.

What it does NOT do: no Kubernetes Job, no container, no script. It does what OSCAR and its
FaaS Supervisor do for the check's service (whose script copies ``$INPUT_FILE_PATH`` into
``$TMP_OUTPUT_DIR``): a file that appears under an input path is copied to the output path under
its own name. No MinIO webhook, no OIDC, no quotas, no visibility or isolation levels, no
synchronous invocations, no logs.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class MinioStandIn:
    """moto's S3 on 127.0.0.1 plus MinIO's ``/minio/health/live``."""

    def __init__(self, live: bool = True) -> None:
        self.live = live
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> MinioStandIn:
        from moto.server import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import WSGIRequestHandler, make_server

        moto = DomainDispatcherApplication(create_backend_app)

        def app(environ: dict[str, Any], start_response: Any) -> Any:
            if environ.get("PATH_INFO") == "/minio/health/live":
                status = "200 OK" if self.live else "503 Service Unavailable"
                start_response(status, [("Content-Length", "0")])
                return [b""]
            return moto(environ, start_response)

        class Quiet(WSGIRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                pass

        self._server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever, name="minio-stand-in", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> MinioStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def s3(self) -> Any:
        import botocore.session
        from botocore.config import Config

        return botocore.session.get_session().create_client(
            "s3", endpoint_url=self.url, region_name="us-east-1", aws_access_key_id="minio",
            aws_secret_access_key="minio-secret", config=Config(s3={"addressing_style": "path"}))


class OscarStandIn:
    """OSCAR's API as far as the check uses it (see the module docstring)."""

    def __init__(self, minio: MinioStandIn, user: str = "oscar", password: str = "oscar-password",
                 run: bool = True, tls: Any = None) -> None:
        """``tls``: a ``tests.harness.kube.tls.ServingCert`` to serve HTTPS with (as OSCAR's ingress)."""
        self.minio, self.user, self.password, self.run, self.tls = minio, user, password, run, tls
        self.services: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # --- what OSCAR does with a service's files ------------------------------------------------------
    def _runner(self) -> None:
        s3 = self.minio.s3()
        done: set[tuple[str, str]] = set()
        while not self._stop.wait(0.05):
            with self._lock:
                services = list(self.services.values())
            for service in services:
                if not self.run:
                    continue
                for source in service.get("input") or []:
                    bucket, _, prefix = source["path"].partition("/")
                    try:
                        listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents") or []
                    except Exception:  # the bucket went with the service
                        continue
                    for item in listed:
                        if (bucket, item["Key"]) in done:
                            continue
                        done.add((bucket, item["Key"]))
                        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                        for target in service.get("output") or []:
                            out_bucket, _, out_prefix = target["path"].partition("/")
                            name = item["Key"].rsplit("/", 1)[-1]
                            key = f"{out_prefix}/{name}".lstrip("/")
                            s3.put_object(Bucket=out_bucket, Key=key, Body=body)

    @staticmethod
    def _buckets(service: dict[str, Any]) -> list[str]:
        paths = [p["path"] for key in ("input", "output") for p in service.get(key) or []]
        return sorted({path.split("/", 1)[0] for path in paths})

    def _normalise(self, service: dict[str, Any]) -> None:
        for key in ("input", "output"):
            for storage in service.get(key) or []:
                path = str(storage.get("path", "")).strip(" /")
                if "/" not in path:
                    path = f"{service['name']}/{path}"
                storage["path"] = path

    # --- HTTP ---------------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: Any = b"", kind: str = "text/plain; charset=utf-8") -> None:
                data = body if isinstance(body, bytes) else (
                    json.dumps(body).encode() if not isinstance(body, str) else body.encode())
                if not isinstance(body, bytes | str):
                    kind = "application/json; charset=utf-8"
                stand_in.requests.append((self.command, self.path, code))
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self) -> bool:
                expected = base64.b64encode(f"{stand_in.user}:{stand_in.password}".encode()).decode()
                return self.headers.get("Authorization") == f"Basic {expected}"

            def _route(self) -> None:
                if self.path == "/health" and self.command == "GET":
                    return self._send(200, "Ok")
                if not self.path.startswith("/system/"):
                    return self._send(404, "404 page not found")
                if not self._authorised():
                    return self._send(401, "")
                parts = self.path.strip("/").split("/")
                if parts[:2] != ["system", "services"]:
                    return self._send(404, "404 page not found")
                if len(parts) == 2 and self.command == "POST":
                    return self._create()
                if len(parts) == 3 and self.command in ("GET", "DELETE"):
                    with stand_in._lock:
                        service = stand_in.services.get(parts[2])
                        if service is None:
                            return self._send(404)
                        if self.command == "GET":
                            return self._send(200, service)
                        del stand_in.services[parts[2]]
                    s3 = stand_in.minio.s3()
                    for bucket in stand_in._buckets(service):
                        for item in s3.list_objects_v2(Bucket=bucket).get("Contents") or []:
                            s3.delete_object(Bucket=bucket, Key=item["Key"])
                        s3.delete_bucket(Bucket=bucket)
                    return self._send(204)
                return self._send(404, "404 page not found")

            def _create(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    service = json.loads(self.rfile.read(length) or b"null")
                    missing = [f for f in ("name", "image", "script")
                               if not isinstance(service, dict) or not service.get(f)]
                    if missing:
                        raise ValueError(f"Key: 'Service.{missing[0].capitalize()}' Error:Field validation "
                                         f"for '{missing[0].capitalize()}' failed on the 'required' tag")
                except ValueError as error:
                    return self._send(400, f"The service specification is not valid: {error}")
                with stand_in._lock:
                    if service["name"] in stand_in.services:
                        return self._send(400, "A service with the provided name already exists")
                    stand_in._normalise(service)
                    stand_in.services[service["name"]] = service
                s3 = stand_in.minio.s3()
                for bucket in stand_in._buckets(service):
                    s3.create_bucket(Bucket=bucket)
                return self._send(201)

            do_GET = do_POST = do_DELETE = do_PUT = _route

        return Handler

    def start(self) -> OscarStandIn:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        if self.tls is not None:
            self._server.socket = self.tls.server_context().wrap_socket(self._server.socket, server_side=True)
        self._threads = [
            threading.Thread(target=self._server.serve_forever, name="oscar-stand-in", daemon=True),
            threading.Thread(target=self._runner, name="oscar-stand-in-runner", daemon=True)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> OscarStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}/"

    def wait_idle(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.services:
            time.sleep(0.05)
