"""Which resource a REST path names, and the discovery documents (``/api``, ``/apis``, ``/version``).

Paths are those the ``kubernetes`` client builds: ``/api/v1/namespaces/{ns}/pods/{name}/eviction``,
``/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}``, ``/api/v1/nodes/{name}/status``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.harness.kube.store import RESOURCES, NotFound, Resource

Obj = dict[str, Any]

_BY_PATH: dict[tuple[str, str], tuple[str, Resource]] = {
    (res.group_version, res.plural): (key, res) for key, res in RESOURCES.items()
}


@dataclass(frozen=True)
class Route:
    """A parsed request path: which resource, which namespace/object, which subresource."""

    key: str
    resource: Resource
    namespace: str | None
    name: str | None
    sub: str | None


def parse_route(path: str) -> Route | None:
    """Map a REST path onto a resource; None for discovery and health paths."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        gv, rest = "v1", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        gv, rest = f"{parts[1]}/{parts[2]}", parts[3:]
    else:
        return None
    if not rest:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    found = _BY_PATH.get((gv, rest[0]))
    if found is None or len(rest) > 3:
        raise NotFound("the server could not find the requested resource")
    key, res = found
    if res.namespaced is False and namespace is not None:
        raise NotFound("the server could not find the requested resource")
    return Route(key, res, namespace, rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None)


def discovery(path: str) -> Obj | None:
    """The discovery document at ``path`` (None: not a discovery path)."""
    parts = [p for p in path.split("/") if p]
    if parts == ["version"]:
        return {"major": "1", "minor": "33", "gitVersion": "v1.33.0-harness", "platform": "linux/amd64"}
    if parts == ["api"]:
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if parts == ["apis"]:
        groups = sorted({r.group_version for r in RESOURCES.values() if "/" in r.group_version})
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": gv.split("/")[0],
                    "versions": [{"groupVersion": gv, "version": gv.split("/")[1]}],
                    "preferredVersion": {"groupVersion": gv, "version": gv.split("/")[1]},
                }
                for gv in groups
            ],
        }
    gv = (
        "v1"
        if parts == ["api", "v1"]
        else "/".join(parts[1:])
        if len(parts) == 3 and parts[0] == "apis"
        else None
    )
    if gv is None:
        return None
    listed = [r for r in RESOURCES.values() if r.group_version == gv]
    if not listed:
        return None
    verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
    resources = [
        {
            "name": r.plural,
            "singularName": r.kind.lower(),
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": verbs,
        }
        for r in listed
    ]
    resources += [
        {
            "name": f"{r.plural}/status",
            "singularName": "",
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": ["get", "patch", "update"],
        }
        for r in listed
        if r.has_status
    ]
    if gv == "v1":
        resources += [
            {
                "name": "pods/eviction",
                "singularName": "",
                "namespaced": True,
                "kind": "Eviction",
                "group": "policy",
                "version": "v1",
                "verbs": ["create"],
            },
            {
                "name": "pods/binding",
                "singularName": "",
                "namespaced": True,
                "kind": "Binding",
                "verbs": ["create"],
            },
        ]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}
