"""The object store behind the Kubernetes API test server: etcd + the API server's storage layer.

Every write bumps one global resourceVersion (as etcd's revision does), stamps it on the object and
appends a watch event to a *bounded* history. A watch that asks for a version older than the
history reaches answers ``410 Gone``, exactly the condition a real client must recover from by
relisting; ``compact()`` forces it on demand (as an etcd compaction does).

Stored objects are treated as immutable: every write stores a fresh dict, so readers may share
references under the lock without copying (this keeps lists of thousands of pods cheap).
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import random
import re
import string
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tests.harness.kube import crds
from tests.harness.kube.selectors import Requirement, fields_match, labels_match

Obj = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    """One REST resource the server serves (plural name, kind, group/version, scope)."""

    plural: str
    kind: str
    group_version: str
    namespaced: bool
    has_status: bool = False  # writes to the main resource keep the old status (status subresource)
    unconditional_update: bool = True  # False: a PUT must carry metadata.resourceVersion (leases)

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def qualified(self) -> str:
        group = self.group_version.rpartition("/")[0]
        return f"{self.plural}.{group}" if group else self.plural


RESOURCES: dict[str, Resource] = {
    r.plural if r.plural != "events" or r.group_version == "v1" else "events.k8s.io": r
    for r in (
        Resource("pods", "Pod", "v1", True, has_status=True),
        Resource("nodes", "Node", "v1", False, has_status=True),
        Resource("namespaces", "Namespace", "v1", False, has_status=True),
        Resource("configmaps", "ConfigMap", "v1", True),
        Resource("secrets", "Secret", "v1", True),
        Resource("events", "Event", "v1", True),
        Resource("leases", "Lease", "coordination.k8s.io/v1", True, unconditional_update=False),
        Resource("poddisruptionbudgets", "PodDisruptionBudget", "policy/v1", True, has_status=True),
        Resource("events", "Event", "events.k8s.io/v1", True),
        # read by `oscar-deploy check` (no controller acts on them here: tests write their status)
        Resource("deployments", "Deployment", "apps/v1", True, has_status=True),
        Resource("jobs", "Job", "batch/v1", True, has_status=True),
        Resource("helmcharts", "HelmChart", "helm.cattle.io/v1", True, has_status=True),
        Resource("podtemplates", "PodTemplate", "v1", True),
        *(Resource(**fields) for fields, _ in crds.LOADED),
    )
}

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class ApiError(Exception):
    """An API failure, rendered as a ``Status`` object with this HTTP code and reason."""

    code = 500
    reason = "InternalError"

    def __init__(self, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def status(self) -> Obj:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }


class BadRequest(ApiError):
    code, reason = 400, "BadRequest"


class NotFound(ApiError):
    code, reason = 404, "NotFound"


class AlreadyExists(ApiError):
    code, reason = 409, "AlreadyExists"


class Conflict(ApiError):
    code, reason = 409, "Conflict"


class Gone(ApiError):
    code, reason = 410, "Expired"


class Invalid(ApiError):
    code, reason = 422, "Invalid"


class TooManyRequests(ApiError):
    code, reason = 429, "TooManyRequests"


def timestamp(seconds: float | None = None) -> str:
    """RFC 3339 in UTC with second precision, as the API server writes ``metav1.Time``."""
    moment = dt.datetime.fromtimestamp(time.time() if seconds is None else seconds, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Change:
    """One entry of the watch history: the object before (None on create) and after the write."""

    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    resource: str
    old: Obj | None
    new: Obj


class Store:
    """Thread-safe objects by resource, with a global resourceVersion and a bounded change history."""

    def __init__(self, history: int = 1000) -> None:
        self.cond = threading.Condition(threading.RLock())
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {name: {} for name in RESOURCES}
        self._rv = 0
        self._history: deque[Change] = deque(maxlen=max(1, history))
        self._compacted = 0  # a watch from a version older than this is answered 410 Gone
        self._created: dict[str, int] = {}  # uid → resourceVersion of its creation (creation order)
        self.closed = False

    # ---- reads -----------------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        with self.cond:
            return self._rv

    def get(self, resource: str, namespace: str, name: str) -> Obj:
        with self.cond:
            obj = self._objects[resource].get((namespace, name))
            if obj is None:
                raise NotFound(
                    f'{RESOURCES[resource].qualified} "{name}" not found',
                    {"name": name, "kind": RESOURCES[resource].plural},
                )
            return obj

    def created(self, uid: str) -> int:
        """The order in which an object was created (its resourceVersion at creation)."""
        with self.cond:
            return self._created.get(uid, 0)

    def find(self, resource: str, namespace: str, name: str) -> Obj | None:
        with self.cond:
            return self._objects[resource].get((namespace, name))

    def list(
        self,
        resource: str,
        namespace: str | None = None,
        labels: list[Requirement] | None = None,
        fields: list[Any] | None = None,
        ordered: bool = True,
    ) -> tuple[list[Obj], int]:
        """Matching objects (sorted by namespace/name when ``ordered``) and the store's version then."""
        with self.cond:
            objects = self._objects[resource]
            pairs = sorted(objects.items()) if ordered else objects.items()
            items = [
                obj
                for (ns, _), obj in pairs
                if (namespace is None or ns == namespace)
                and (not labels or labels_match(labels, obj))
                and (not fields or fields_match(fields, obj))
            ]
            return items, self._rv

    # ---- writes ----------------------------------------------------------------------------
    def _commit(self, resource: str, kind: str, old: Obj | None, new: Obj) -> Obj:
        self._rv += 1
        new = dict(new)
        new["metadata"] = {**new["metadata"], "resourceVersion": str(self._rv)}
        key = (new["metadata"].get("namespace", ""), new["metadata"]["name"])
        if kind == "DELETED":
            self._objects[resource].pop(key, None)
        else:
            self._objects[resource][key] = new
        if len(self._history) == self._history.maxlen:
            self._compacted = self._history[0].rv
        self._history.append(Change(self._rv, kind, resource, old, new))
        self.cond.notify_all()
        return new

    def create(self, resource: str, obj: Obj, namespace: str | None = None) -> Obj:
        """Store a new object, filling the server-set metadata; 409 if the name is taken."""
        res = RESOURCES[resource]
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {}) or {}
        obj["metadata"] = meta
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
            meta["name"] = meta["generateName"] + suffix
        name = meta.get("name") or ""
        if not name:
            raise Invalid(
                f"{res.kind} is invalid: metadata.name: Required value: name or generateName is required",
                {"kind": res.plural},
            )
        if not _NAME_RE.match(name) or len(name) > 253:
            raise Invalid(
                f'{res.kind} "{name}" is invalid: metadata.name: Invalid value: "{name}": a '
                "lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                "'-' or '.'",
                {"name": name, "kind": res.plural},
            )
        problem = crds.validate(resource, obj)
        if problem is not None:
            raise Invalid(f'{res.kind} "{name}" is invalid: {problem}', {"name": name, "kind": res.plural})
        with self.cond:
            if res.namespaced:
                namespace = namespace or meta.get("namespace") or "default"
                if meta.get("namespace") not in (None, "", namespace):
                    raise BadRequest(
                        "the namespace of the provided object does not match the namespace "
                        "sent on the request"
                    )
                if ("", namespace) not in self._objects["namespaces"]:
                    raise NotFound(
                        f'namespaces "{namespace}" not found', {"name": namespace, "kind": "namespaces"}
                    )
                meta["namespace"] = namespace
            else:
                meta.pop("namespace", None)
            if (meta.get("namespace", ""), name) in self._objects[resource]:
                raise AlreadyExists(
                    f'{res.qualified} "{name}" already exists', {"name": name, "kind": res.plural}
                )
            obj["apiVersion"], obj["kind"] = res.api_version, res.kind
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = timestamp()
            meta.setdefault("generation", 1)
            meta.pop("resourceVersion", None)
            added = self._commit(resource, "ADDED", None, obj)
            self._created[meta["uid"]] = self._rv
            return added

    def write(
        self,
        resource: str,
        namespace: str,
        name: str,
        change: Callable[[Obj], Obj | None],
        expect_rv: str | None = None,
    ) -> Obj:
        """Replace an object with ``change(copy)``; 409 if ``expect_rv`` is stale. No-op writes are free.

        ``change`` gets a deep copy it may edit and return (or return None for "no change").
        """
        with self.cond:
            old = self.get(resource, namespace, name)
            if expect_rv and expect_rv != old["metadata"]["resourceVersion"]:
                raise Conflict(
                    f'Operation cannot be fulfilled on {RESOURCES[resource].qualified} "{name}": the object '
                    "has been modified; please apply your changes to the latest version and try again",
                    {"name": name, "kind": RESOURCES[resource].plural},
                )
            new = change(copy.deepcopy(old))
            if new is None:
                return old
            problem = crds.validate(resource, new)
            if problem is not None:
                raise Invalid(f'{RESOURCES[resource].kind} "{name}" is invalid: {problem}',
                              {"name": name, "kind": RESOURCES[resource].plural})
            # Server-owned metadata cannot be changed by a client.
            meta = dict(new.get("metadata") or {})
            for key in ("name", "namespace", "uid", "creationTimestamp"):
                if key in old["metadata"]:
                    meta[key] = old["metadata"][key]
            meta["resourceVersion"] = old["metadata"]["resourceVersion"]
            new["metadata"] = meta
            new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
            if _same(new, old):
                return old
            if new.get("spec") != old.get("spec"):
                meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
            return self._commit(resource, "MODIFIED", old, new)

    def delete(self, resource: str, namespace: str, name: str, expect_uid: str | None = None) -> Obj:
        with self.cond:
            old = self.get(resource, namespace, name)
            if expect_uid and expect_uid != old["metadata"]["uid"]:
                raise Conflict(
                    f"Precondition failed: UID in precondition: {expect_uid}, UID in object meta: "
                    f"{old['metadata']['uid']}",
                    {"name": name, "kind": RESOURCES[resource].plural},
                )
            deleted = self._commit(resource, "DELETED", old, old)
            self._created.pop(old["metadata"]["uid"], None)
            if resource == "namespaces":
                for other, objects in self._objects.items():
                    if RESOURCES[other].namespaced:
                        for ns, obj_name in [key for key in objects if key[0] == name]:
                            self.delete(other, ns, obj_name)
            return deleted

    def expired(self, version: int | None) -> bool:
        """True if a watch from ``version`` can no longer be served (its history was compacted)."""
        with self.cond:
            return bool(version) and version < self._compacted

    def compact(self) -> int:
        """Forget the whole change history (as an etcd compaction); older watches then get 410."""
        with self.cond:
            self._history.clear()
            self._compacted = self._rv
            return self._rv

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    # ---- watch -----------------------------------------------------------------------------
    def watch(
        self,
        resource: str,
        namespace: str | None,
        labels: list[Requirement],
        fields: list[Any],
        since: int | None,
        deadline: float,
        alive: Callable[[], bool],
        bookmark_every: float | None = None,
    ) -> Iterator[tuple[str, Obj]]:
        """Yield ``(type, object)`` for matching changes after ``since`` until ``deadline`` (monotonic).

        ``since=None`` (or 0) first yields every current object as ADDED, as the API server does for
        a watch without a resourceVersion. A change that moves an object into (out of) the selection
        is reported as ADDED (DELETED), like the watch cache does.
        """

        def selected(obj: Obj | None) -> bool:
            return (
                obj is not None
                and (namespace is None or obj["metadata"].get("namespace") == namespace)
                and labels_match(labels, obj)
                and fields_match(fields, obj)
            )

        with self.cond:
            if since and since < self._compacted:
                raise Gone(f"too old resource version: {since} ({self._compacted + 1})")
            if not since:
                items, last = self.list(resource, namespace, labels, fields)
                initial = [("ADDED", obj) for obj in items]
            else:
                last, initial = since, []
        yield from initial
        last_sent_at = time.monotonic()
        while True:
            with self.cond:
                if last < self._compacted:
                    raise Gone(f"too old resource version: {last} ({self._compacted + 1})")
                start = max(0, last + 1 - self._history[0].rv) if self._history else 0
                changes = [c for c in itertools.islice(self._history, start, None) if c.resource == resource]
                if not changes:
                    last = max(last, self._rv)
                    now = time.monotonic()
                    if self.closed or now >= deadline:
                        return
                    self.cond.wait(min(0.5, deadline - now))
            if not alive():
                return
            for change in changes:
                last = change.rv
                was, now_in = selected(change.old), selected(change.new)
                if change.type == "DELETED":
                    kind = "DELETED" if was else None
                elif was and now_in:
                    kind = "MODIFIED"
                elif now_in:
                    kind = "ADDED"
                elif was:
                    kind = "DELETED"
                else:
                    kind = None
                if kind:
                    last_sent_at = time.monotonic()
                    yield kind, change.new
            if bookmark_every and not changes and time.monotonic() - last_sent_at >= bookmark_every:
                last_sent_at = time.monotonic()
                res = RESOURCES[resource]
                yield (
                    "BOOKMARK",
                    {
                        "kind": res.kind,
                        "apiVersion": res.api_version,
                        "metadata": {"resourceVersion": str(last)},
                    },
                )


def _same(a: Obj, b: Obj) -> bool:
    return a == b
