"""CustomResourceDefinitions the test server serves, read from upstream's own CRD files.

Only what the product and the tests use: the ProvisioningRequest CRD of kubernetes/autoscaler
(``tests/upstream/autoscaler/``, see ``tests/upstream/PROVENANCE.md``). Its storage version becomes
a ``Resource`` (plural, kind, group/version, scope, status subresource as the CRD declares them) and
every write is checked against the version's ``openAPIV3Schema`` with ``jsonschema``, as the API
server's structural-schema validation rejects an object missing a required field or of a wrong type
(``x-kubernetes-*`` extensions and CEL rules are not evaluated).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

Obj = dict[str, Any]

UPSTREAM = Path(__file__).resolve().parents[2] / "upstream"
FILES = (UPSTREAM / "autoscaler" / "autoscaling.x-k8s.io_provisioningrequests.yaml",)


def _load(path: Path) -> tuple[dict[str, Any], Obj]:
    crd = yaml.safe_load(path.read_text())
    spec = crd["spec"]
    version = next(v for v in spec["versions"] if v.get("storage"))
    return {
        "plural": spec["names"]["plural"],
        "kind": spec["names"]["kind"],
        "group_version": f"{spec['group']}/{version['name']}",
        "namespaced": spec["scope"] == "Namespaced",
        "has_status": "status" in (version.get("subresources") or {}),
    }, version["schema"]["openAPIV3Schema"]


LOADED = [_load(path) for path in FILES]
SCHEMAS: dict[str, Obj] = {fields["plural"]: schema for fields, schema in LOADED}


def validate(resource: str, obj: Obj) -> str | None:
    """The first schema violation of ``obj`` as the API server words a field error, or None."""
    schema = SCHEMAS.get(resource)
    if schema is None:
        return None
    body = {k: v for k, v in obj.items() if k != "metadata"}
    error = jsonschema.exceptions.best_match(jsonschema.Draft4Validator(schema).iter_errors(body))
    if error is None:
        return None
    path = ".".join(str(p) for p in error.absolute_path) or "<root>"
    return f"{path}: {error.message}"
