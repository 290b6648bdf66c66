"""The HTTP face of the test server: the Kubernetes REST paths, verbs and wire formats.

Paths are those the ``kubernetes`` client builds (``/api/v1/namespaces/{ns}/pods/{name}/eviction``,
``/apis/coordination.k8s.io/v1/...``); lists carry ``metadata.resourceVersion``; a watch is a
chunked stream of ``{"type", "object"}`` JSON lines that ends at ``timeoutSeconds`` and reports an
expired version as an ``ERROR`` event with a ``410`` Status, like the real API server. Writes to a
resource with a status subresource keep the old status (and ``/status`` writes keep the old spec),
so a product that patches the wrong endpoint fails here as it would on a cluster (``strategy.py``);
paths map onto resources in ``routes.py``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import select
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from tests.harness.kube import crds, disruption
from tests.harness.kube.objects import with_pod_defaults
from tests.harness.kube.patch import PatchError, apply_patch
from tests.harness.kube.routes import Route, discovery, parse_route
from tests.harness.kube.selectors import SelectorError, parse_field_selector, parse_label_selector
from tests.harness.kube.store import (
    ApiError,
    BadRequest,
    Conflict,
    Gone,
    Invalid,
    NotFound,
    Store,
    timestamp,
)
from tests.harness.kube.strategy import delete_pod, prepare_update

Obj = dict[str, Any]
log = logging.getLogger(__name__)


class MethodNotAllowed(ApiError):
    code, reason = 405, "MethodNotAllowed"


class UnsupportedMediaType(ApiError):
    code, reason = 415, "UnsupportedMediaType"


class Unauthorized(ApiError):
    code, reason = 401, "Unauthorized"


class Forbidden(ApiError):
    code, reason = 403, "Forbidden"


USER = "system:serviceaccount:oscar-deploy:oscar-deploy-elastic"
"""Who the harness says is asking, in a 403's message (the daemon's service account)."""


def _selectors(query: dict[str, str], resource: str) -> tuple[list[Any], list[Any]]:
    try:
        return (
            parse_label_selector(query.get("labelSelector")),
            parse_field_selector(query.get("fieldSelector"), resource),
        )
    except SelectorError as exc:
        raise BadRequest(str(exc)) from exc


def _flag(query: dict[str, str], name: str) -> bool:
    return query.get(name, "").lower() in ("true", "1")


class Control(Protocol):
    """What the ``/harness/v1`` control endpoint may do (implemented by ``KubeApiServer``)."""

    def register_node(self, name: str, *, ready_after_s: float | None = None, **kwargs: Any) -> Obj: ...

    def restart_node(self, name: str, *, ready_after_s: float | None = None) -> None: ...

    def set_node_ready(self, name: str, ready: bool) -> None: ...

    def delete_node(self, name: str) -> None: ...

    def compact(self) -> int: ...


class ApiServer(ThreadingHTTPServer):
    """A threaded HTTP server that can close its keep-alive and watch connections on shutdown."""

    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], store: Store, watch_timeout_s: float) -> None:
        super().__init__(address, ApiHandler)
        self.store = store
        self.watch_timeout_s = watch_timeout_s
        self.expired_watch_as_status = False
        """Answer a watch from a compacted resourceVersion with an HTTP 410 Status instead of a 200
        stream whose only event is an ERROR 410. Both reach clients: the API server's watch handler
        writes an error that ``Watch()`` returns itself as the response status
        (k8s.io/apiserver pkg/endpoints/handlers/get.go, ``ListResource``), and client-go's reflector
        relists on either (client-go v0.32 tools/cache/reflector.go, ``isExpiredError`` on the error
        of ``Watch()`` and of the event stream alike)."""
        self.control: Control | None = None  # the harness handle, for /harness/v1 (set by its owner)
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self.token: str | None = None  # set (by ``KubeApiServer(serving=...)``): requests must bear it
        self.denied: set[tuple[str, str]] = set()
        """(verb, resource[/subresource]) an RBAC Role lacks: answered 403 as the authorization
        filter does (k8s.io/apiserver pkg/endpoints/handlers/responsewriters/errors.go ``Forbidden``)."""

    def close_connections(self) -> None:
        with self.connections_lock:
            for conn in list(self.connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)


class ApiHandler(BaseHTTPRequestHandler):
    """One HTTP/1.1 connection (keep-alive, as urllib3's pool expects)."""

    protocol_version = "HTTP/1.1"
    server: ApiServer

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # ---- plumbing ----------------------------------------------------------------------------
    def _send_json(self, code: int, obj: Obj) -> None:
        data = json.dumps(obj, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise BadRequest(f"the body of the request was in an unknown format: {exc}") from exc

    def _alive(self) -> bool:
        """False once the client has hung up (a readable socket that reads EOF)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if isinstance(self.connection, ssl.SSLSocket):  # TLS cannot peek: a watch's client sends
                return not readable                          # nothing more, so readable means it left
            return not readable or self.connection.recv(1, socket.MSG_PEEK) != b""
        except OSError:
            return False

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            body = self._body()
            parts = [p for p in url.path.split("/") if p]
            if self.server.token is not None and parts[:1] != ["harness"] and not self._bears_token():
                # kube-apiserver's authentication filter (k8s.io/apiserver pkg/endpoints/filters/
                # authentication.go, ``Unauthorized``): 401 with Status reason Unauthorized
                raise Unauthorized("Unauthorized")
            if (
                method == "POST"
                and len(parts) == 5
                and parts[:3] == ["api", "v1", "namespaces"]
                and (parts[4] == "bindings")
            ):  # the Binding collection: what create_namespaced_binding posts to
                name = ((body or {}).get("metadata") or {}).get("name") if isinstance(body, dict) else None
                if not name:
                    raise Invalid("Binding is invalid: metadata.name: Required value")
                self._bind(parts[3], name, body)
                return
            if parts[:2] == ["harness", "v1"]:
                self._control(method, parts[2:], body)
                return
            route = parse_route(url.path)
            if route is None:
                doc = discovery(url.path) if method == "GET" else None
                if url.path.rstrip("/") in ("/healthz", "/readyz", "/livez") and method == "GET":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                    return
                if doc is None:
                    raise NotFound("the server could not find the requested resource")
                self._send_json(200, doc)
                return
            self._serve(method, route, query, body)
        except ApiError as exc:
            self._send_json(exc.code, exc.status())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except (PatchError, ValueError) as exc:
            self._send_json(400, BadRequest(f"bad request: {exc}").status())
        except Exception as exc:  # a harness bug: answer 500 like an API server would, and log it
            log.exception("internal error serving %s %s", method, self.path)
            self._send_json(500, ApiError(f"internal error: {exc!r}").status())

    def _bears_token(self) -> bool:
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and token.strip() == self.server.token

    def _control(self, method: str, parts: list[str], body: Any) -> None:
        """``/harness/v1/...``: what a test's shell commands do to the cluster's environment.

        POST nodes {name, cpus, memory_mib, ..., ready_after_s}: a machine boots and registers (or,
        if the node exists, its kubelet starts again); PUT nodes/NAME/kubelet {running}: the
        machine powers off/on without the node object going away; DELETE nodes/NAME: it is gone.
        """
        control = self.server.control
        if control is None:
            raise NotFound("this server has no harness control endpoint")
        if method == "POST" and parts == ["nodes"] and isinstance(body, dict) and body.get("name"):
            options = dict(body)
            name = options.pop("name")
            ready_after = options.pop("ready_after_s", None)
            if self.server.store.find("nodes", "", name) is not None:
                control.restart_node(name, ready_after_s=ready_after)
                self._send_json(200, self.server.store.get("nodes", "", name))
            else:
                try:
                    node = control.register_node(name, ready_after_s=ready_after, **options)
                except TypeError as exc:
                    raise BadRequest(f"unknown node option: {exc}") from exc
                self._send_json(201, node)
        elif (
            method == "PUT"
            and len(parts) == 3
            and parts[::2] == ["nodes", "kubelet"]
            and isinstance(body, dict)
        ):
            self.server.store.get("nodes", "", parts[1])
            control.set_node_ready(parts[1], bool(body.get("running")))
            self._send_json(200, {"name": parts[1], "running": bool(body.get("running"))})
        elif method == "DELETE" and len(parts) == 2 and parts[0] == "nodes":
            control.delete_node(parts[1])
            self._send_json(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
        elif method == "POST" and parts == ["compact"]:
            self._send_json(200, {"resourceVersion": str(control.compact())})
        else:
            raise NotFound(f"no harness control endpoint for {method} /harness/v1/{'/'.join(parts)}")

    # ---- verbs -------------------------------------------------------------------------------
    def _serve(self, method: str, route: Route, query: dict[str, str], body: Any) -> None:
        store, key, res = self.server.store, route.key, route.resource
        ns = route.namespace or ""
        if route.name is None:
            if method == "GET" and _flag(query, "watch"):
                return self._watch(route, query)
            if method == "GET":
                return self._send_json(200, self._list(route, query))
            if method == "POST":
                if not isinstance(body, dict):
                    raise BadRequest("the body of the request was not a Kubernetes object")
                if res.namespaced and route.namespace is None:
                    raise MethodNotAllowed(
                        f"the server does not allow this method on {res.plural} across namespaces"
                    )
                obj = with_pod_defaults(body) if key == "pods" else body
                return self._send_json(201, store.create(key, obj, route.namespace))
            if method == "DELETE":
                listed = self._list(route, query)
                for item in listed["items"]:
                    item_ns, item_name = item["metadata"].get("namespace", ""), item["metadata"]["name"]
                    if key == "pods":
                        delete_pod(store, item_ns, item_name, None)
                    else:
                        store.delete(key, item_ns, item_name)
                return self._send_json(200, listed)
            raise MethodNotAllowed(
                f"the server does not allow this method on the requested resource ({method})"
            )
        name = route.name
        if route.sub not in (None, "status", "eviction", "binding") or (
            route.sub in ("eviction", "binding") and (key != "pods" or method != "POST")
        ):
            raise NotFound("the server could not find the requested resource")
        if route.sub == "status" and not res.has_status:
            raise NotFound("the server could not find the requested resource")
        if method == "GET":
            return self._send_json(200, store.get(key, ns, name))
        if method == "POST" and route.sub == "eviction":
            if ("create", "pods/eviction") in self.server.denied:
                where = f'in the namespace "{ns}"' if ns else "at the cluster scope"
                raise Forbidden(f'pods "{name}" is forbidden: User "{USER}" cannot create resource '
                                f'"pods/eviction" in API group "" {where}', {"name": name, "kind": "pods"})
            disruption.evict(store, ns, name)
            return self._send_json(
                201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
            )
        if method == "POST" and route.sub == "binding":
            return self._bind(ns, name, body)
        if method == "PUT":
            if not isinstance(body, dict) or (body.get("metadata") or {}).get("name") not in (None, name):
                raise BadRequest("the name of the object does not match the name on the URL")
            expect = (body.get("metadata") or {}).get("resourceVersion") or None
            if expect is None and not res.unconditional_update:
                raise Invalid(
                    f'{res.qualified} "{name}" is invalid: metadata.resourceVersion: Invalid value: 0x0: '
                    "must be specified for an update",
                    {"name": name, "kind": res.plural},
                )
            return self._send_json(
                200,
                store.write(key, ns, name, lambda old: prepare_update(route, old, body), expect_rv=expect),
            )
        if method == "PATCH":
            content_type = self.headers.get("Content-Type", "application/strategic-merge-patch+json")
            if key in crds.SCHEMAS and "strategic-merge" in content_type:
                # custom resources have no Go struct tags to merge by: the API server refuses
                raise UnsupportedMediaType(
                    "the body of the request was in an unknown format - accepted media types include: "
                    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")

            def patched(old: Obj) -> Obj:
                current = old["metadata"]["resourceVersion"]
                new = apply_patch(old, body, content_type)
                wanted = (new.get("metadata") or {}).get("resourceVersion")
                if wanted and wanted != current:
                    raise Conflict(
                        f'Operation cannot be fulfilled on {res.qualified} "{name}": the object has '
                        "been modified; please apply your changes to the latest version and try "
                        "again",
                        {"name": name, "kind": res.plural},
                    )
                return prepare_update(route, old, new)

            return self._send_json(200, store.write(key, ns, name, patched))
        if method == "DELETE":
            preconditions = (body or {}).get("preconditions") or {} if isinstance(body, dict) else {}
            if (
                preconditions.get("resourceVersion")
                and preconditions["resourceVersion"]
                != store.get(key, ns, name)["metadata"]["resourceVersion"]
            ):
                raise Conflict(
                    f"Precondition failed: ResourceVersion in precondition: "
                    f"{preconditions['resourceVersion']}",
                    {"name": name, "kind": res.plural},
                )
            if key == "pods":  # graceful; the pod registry returns the object, others a Status
                grace = query.get("gracePeriodSeconds")
                if grace is None and isinstance(body, dict):
                    grace = body.get("gracePeriodSeconds")
                grace_s = None if grace in (None, "") else int(grace)
                return self._send_json(200, delete_pod(store, ns, name, grace_s, preconditions.get("uid")))
            deleted = store.delete(key, ns, name, expect_uid=preconditions.get("uid"))
            return self._send_json(
                200,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {
                        "name": name,
                        "group": res.group_version.rpartition("/")[0],
                        "kind": res.plural,
                        "uid": deleted["metadata"]["uid"],
                    },
                },
            )
        raise MethodNotAllowed(f"the server does not allow this method on the requested resource ({method})")

    def _list(self, route: Route, query: dict[str, str]) -> Obj:
        labels, fields = _selectors(query, route.key)
        items, rv = self.server.store.list(route.key, route.namespace, labels, fields)
        meta: Obj = {"resourceVersion": str(rv)}
        if query.get("continue"):
            try:
                after = json.loads(base64.urlsafe_b64decode(query["continue"].encode()))
            except ValueError as exc:
                raise BadRequest(
                    "continue key is not valid: incorrect encoded start resourceVersion"
                ) from exc
            items = [i for i in items if [i["metadata"].get("namespace", ""), i["metadata"]["name"]] > after]
        limit = int(query.get("limit") or 0)
        if 0 < limit < len(items):
            last = items[limit - 1]["metadata"]
            meta["continue"] = base64.urlsafe_b64encode(
                json.dumps([last.get("namespace", ""), last["name"]]).encode()
            ).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return {
            "kind": f"{route.resource.kind}List",
            "apiVersion": route.resource.api_version,
            "metadata": meta,
            "items": items,
        }

    def _bind(self, namespace: str, name: str, body: Any) -> None:
        target = ((body or {}).get("target") or {}).get("name") if isinstance(body, dict) else None
        if not target:
            raise Invalid("Binding is invalid: target.name: Required value")

        def bind(old: Obj) -> Obj:
            current = (old.get("spec") or {}).get("nodeName")
            if current:
                raise Conflict(
                    f'pod {name} is already assigned to node "{current}"', {"name": name, "kind": "pods"}
                )
            old["spec"]["nodeName"] = target
            status = old.setdefault("status", {})
            status["conditions"] = [
                c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"
            ]
            status["conditions"].append(
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": timestamp(),
                }
            )
            return old

        self.server.store.write("pods", namespace, name, bind)
        self._send_json(
            201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
        )

    def _watch(self, route: Route, query: dict[str, str]) -> None:
        labels, fields = _selectors(query, route.key)
        rv_text = query.get("resourceVersion") or "0"
        if not rv_text.isdigit():
            raise BadRequest(f"invalid resource version: {rv_text}")
        if self.server.expired_watch_as_status and self.server.store.expired(int(rv_text)):
            raise Gone(f"too old resource version: {rv_text}")
        timeout = float(query.get("timeoutSeconds") or self.server.watch_timeout_s)
        events = self.server.store.watch(
            route.key,
            route.namespace,
            labels,
            fields,
            int(rv_text) or None,
            deadline=time.monotonic() + min(timeout, self.server.watch_timeout_s),
            alive=self._alive,
            bookmark_every=1.0 if _flag(query, "allowWatchBookmarks") else None,
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            try:
                for etype, obj in events:
                    self._chunk({"type": etype, "object": obj})
            except ApiError as exc:  # 410 Gone reaches the client as an ERROR event, as from the watch cache
                if not self.server.expired_watch_as_status:
                    self._chunk({"type": "ERROR", "object": exc.status()})
                # else the stream just ends: the client's next watch request gets the 410 status
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    def _chunk(self, event: Obj) -> None:
        data = json.dumps(event, separators=(",", ":")).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
