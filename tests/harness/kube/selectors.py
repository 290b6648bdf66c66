"""Label and field selectors, parsed and matched the way the API server does.

Field selectors are restricted per resource to the fields the real API server indexes, so a product
query that would fail against a real cluster (``400 field label not supported``) fails here too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


class SelectorError(ValueError):
    """A selector the API server would reject with 400 Bad Request."""


@dataclass(frozen=True)
class Requirement:
    """One clause of a label selector: ``key op values``."""

    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return present and value == self.values[0]
        if self.op == "!=":
            return not present or value != self.values[0]
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        if self.op == "exists":
            return present
        return not present  # "!"


_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9./_-]+)\s*(?:\s(in|notin)\s*\(([^)]*)\))?\s*$")


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside ``( )`` (set-based values contain commas)."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in (part.strip() for part in parts) if p]


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse ``a=b,c!=d,e in (x,y),!f,g`` into requirements (all must match)."""
    requirements: list[Requirement] = []
    for clause in _split_top_level(text or ""):
        for op in ("==", "!=", "="):
            if op in clause and not re.search(r"\s(in|notin)\s*\(", clause):
                key, _, value = clause.partition(op)
                requirements.append(Requirement(key.strip(), "=" if op == "==" else op, (value.strip(),)))
                break
        else:
            match = _SET_RE.match(clause)
            if not match:
                raise SelectorError(f"unable to parse requirement: {clause!r}")
            negate, key, set_op, values = match.groups()
            if set_op:
                if negate:
                    raise SelectorError(f"unable to parse requirement: {clause!r}")
                vals = tuple(v.strip() for v in values.split(",") if v.strip())
                requirements.append(Requirement(key, set_op, vals))
            else:
                requirements.append(Requirement(key, "!" if negate else "exists"))
    return requirements


def label_selector_from_dict(selector: Obj | None) -> list[Requirement]:
    """Turn a ``metav1.LabelSelector`` (matchLabels + matchExpressions) into requirements."""
    if not selector:
        return []
    reqs = [Requirement(k, "=", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in selector.get("matchExpressions") or []:
        reqs.append(Requirement(expr["key"], ops[expr["operator"]], tuple(expr.get("values") or ())))
    return reqs


def labels_match(requirements: list[Requirement], obj: Obj) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(req.matches(labels) for req in requirements)


def _path(*keys: str) -> Callable[[Obj], Any]:
    def get(obj: Obj) -> Any:
        value: Any = obj
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    return get


_COMMON = {"metadata.name": _path("metadata", "name"), "metadata.namespace": _path("metadata", "namespace")}

# What the real API server accepts per resource (pkg/registry/*/strategy.go, ...FieldsSet).
FIELDS: dict[str, dict[str, Callable[[Obj], Any]]] = {
    "pods": {
        **_COMMON,
        "spec.nodeName": _path("spec", "nodeName"),
        "spec.restartPolicy": _path("spec", "restartPolicy"),
        "spec.schedulerName": _path("spec", "schedulerName"),
        "spec.serviceAccountName": _path("spec", "serviceAccountName"),
        "spec.hostNetwork": lambda o: bool(_path("spec", "hostNetwork")(o)),
        "status.phase": _path("status", "phase"),
        "status.podIP": _path("status", "podIP"),
        "status.nominatedNodeName": _path("status", "nominatedNodeName"),
    },
    "nodes": {**_COMMON, "spec.unschedulable": lambda o: bool(_path("spec", "unschedulable")(o))},
    "events": {
        **_COMMON,
        **{
            f"involvedObject.{k}": _path("involvedObject", k)
            for k in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
        },
        "reason": _path("reason"),
        "reportingComponent": _path("reportingComponent"),
        "source": _path("source", "component"),
        "type": _path("type"),
    },
}


def parse_field_selector(text: str | None, resource: str) -> list[tuple[Callable[[Obj], Any], bool, str]]:
    """Parse ``a=b,c!=d`` into (getter, equal?, value) triples, rejecting unindexed fields."""
    allowed = FIELDS.get(resource, _COMMON)
    clauses = []
    for clause in _split_top_level(text or ""):
        for op in ("==", "!=", "="):
            if op in clause:
                key, _, value = clause.partition(op)
                key = key.strip()
                if key not in allowed:
                    raise SelectorError(f"field label not supported: {key}")
                clauses.append((allowed[key], op != "!=", value.strip()))
                break
        else:
            raise SelectorError(f"invalid selector: '{clause}'; can't understand '{clause}'")
    return clauses


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def fields_match(clauses: list[tuple[Callable[[Obj], Any], bool, str]], obj: Obj) -> bool:
    return all((_as_text(get(obj)) == value) == equal for get, equal, value in clauses)
