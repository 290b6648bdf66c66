"""A small evaluator of the IAM policy features ``iam/oscar-deploy-ec2-policy.json`` uses, and the
translation of recorded EC2 API calls into the authorization requests EC2 makes for them.

It is not AWS's policy simulator (none ran: it needs an AWS account). What it follows, from AWS's
documentation:

- IAM policy evaluation logic: a request is allowed when some Allow statement matches its action,
  its resource and all of its conditions, and no Deny does (this policy has none); a condition
  key absent from the request fails every operator except ``...IfExists`` and ``ForAllValues:``
  (which is true for an empty set).
- Amazon EC2's service authorization reference: each resource a call touches is authorized on its
  own (``RunInstances``: the image, subnet, security groups, key pair, and the instance, volume and
  network interface it creates); ``aws:RequestTag/K`` is the tag ``K`` the request puts on that
  resource type (``TagSpecification`` per resource type), ``aws:ResourceTag/K`` the tag the
  existing resource carries, ``aws:TagKeys`` the keys the request sets.
- "Grant permission to tag resources during creation": a create call with ``TagSpecification``
  also needs ``ec2:CreateTags`` on the new resource, with ``ec2:CreateAction`` the creating call.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections.abc import Mapping, Sequence
from typing import Any


@dataclasses.dataclass(frozen=True)
class Request:
    """One authorization request: an action on one resource with its condition context."""

    action: str
    resource: str
    context: Mapping[str, Any]

    def __str__(self) -> str:
        return f"{self.action} on {self.resource}"


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _matches(patterns: Any, value: str, *, case: bool = True) -> bool:
    return any(fnmatch.fnmatchcase(value if case else value.lower(), p if case else p.lower())
               for p in _as_list(patterns))


def _condition_holds(operator: str, key: str, wanted: Any, context: Mapping[str, Any]) -> bool:
    qualifier, _, op = operator.rpartition(":")
    present = key in context
    values = _as_list(context[key]) if present else []
    if op.endswith("IfExists"):
        if not present:
            return True
        op = op.removesuffix("IfExists")
    if op == "StringEquals":
        test = lambda v: str(v) in [str(w) for w in _as_list(wanted)]  # noqa: E731
    elif op == "StringLike":
        test = lambda v: any(fnmatch.fnmatchcase(str(v), str(w)) for w in _as_list(wanted))  # noqa: E731
    else:
        raise NotImplementedError(f"condition operator {operator} (add it before the policy uses it)")
    if qualifier == "ForAllValues":
        return all(test(v) for v in values)
    if qualifier == "ForAnyValue":
        return any(test(v) for v in values)
    return present and all(test(v) for v in values)


def allowed(policy: Mapping[str, Any], request: Request) -> bool:
    """Whether ``policy`` allows ``request`` (no Deny statements are supported: the policy has none)."""
    for statement in policy["Statement"]:
        if statement["Effect"] != "Allow":
            raise NotImplementedError("Deny statements")
        if not _matches(statement["Action"], request.action, case=False):
            continue
        if not _matches(statement["Resource"], request.resource):
            continue
        conditions = statement.get("Condition") or {}
        if all(_condition_holds(op, key, wanted, request.context)
               for op, pairs in conditions.items() for key, wanted in pairs.items()):
            return True
    return False


# --- recorded EC2 calls → authorization requests -----------------------------------------------------

_PREFIX_TYPE = {"i-": "instance", "vol-": "volume", "eipalloc-": "elastic-ip", "sg-": "security-group",
                "eni-": "network-interface", "key-": "key-pair"}


def _numbered(params: Mapping[str, str], stem: str) -> list[str]:
    """``Stem.1``, ``Stem.2``, ... (and a bare ``Stem``) in order."""
    found = [(int(k[len(stem) + 1:]), v) for k, v in params.items()
             if re.fullmatch(rf"{re.escape(stem)}\.\d+", k)]
    return ([params[stem]] if stem in params else []) + [v for _, v in sorted(found)]


def _tag_specs(params: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """``TagSpecification.N``: resource type → tags the request puts on it."""
    specs: dict[str, dict[str, str]] = {}
    for key, kind in params.items():
        match = re.fullmatch(r"TagSpecification\.(\d+)\.ResourceType", key)
        if match:
            n = match[1]
            tags = specs.setdefault(kind, {})
            for tkey, tvalue in params.items():
                tag = re.fullmatch(rf"TagSpecification\.{n}\.Tag\.(\d+)\.Key", tkey)
                if tag:
                    tags[tvalue] = params.get(f"TagSpecification.{n}.Tag.{tag[1]}.Value", "")
    return specs


def _arn(kind: str, ident: str, region: str) -> str:
    account = "" if kind in ("image", "snapshot") else "123456789012"
    return f"arn:aws:ec2:{region}:{account}:{kind}/{ident}"


def _request_tags(tags: Mapping[str, str]) -> dict[str, Any]:
    return {**{f"aws:RequestTag/{k}": v for k, v in tags.items()}, "aws:TagKeys": list(tags)}


def _resource_tags(tags: Mapping[str, str] | None) -> dict[str, Any]:
    return {f"aws:ResourceTag/{k}": v for k, v in (tags or {}).items()}


def requests_of(action: str, params: Mapping[str, str], region: str,
                tags_of: Mapping[str, Mapping[str, str]],
                profile_roles: Mapping[str, str] | None = None) -> list[Request]:
    """The authorization requests EC2 makes for one API call. ``tags_of``: resource id (or key pair
    name) → the tags it carries (for ``aws:ResourceTag``); ``profile_roles``: instance profile → the
    role in it (launching with a profile passes its role to EC2: ``iam:PassRole``)."""
    ec2 = f"ec2:{action}"

    def existing(kind: str, ident: str) -> Request:
        return Request(ec2, _arn(kind, ident, region), _resource_tags(tags_of.get(ident)))

    def created(kinds: Sequence[str]) -> list[Request]:
        specs = _tag_specs(params)
        out = []
        for kind in kinds:
            tags = specs.get(kind, {})
            out.append(Request(ec2, _arn(kind, "*", region), _request_tags(tags) if tags else {}))
            if tags:  # tagging on creation is a CreateTags too
                out.append(Request("ec2:CreateTags", _arn(kind, "*", region),
                                   {**_request_tags(tags), "ec2:CreateAction": action}))
        return out

    if action.startswith("Describe"):
        return [Request(ec2, "*", {})]
    if action == "RunInstances":
        out = [existing("image", params["ImageId"])]
        if "SubnetId" in params:
            out.append(existing("subnet", params["SubnetId"]))
        out += [existing("security-group", g) for g in _numbered(params, "SecurityGroupId")]
        if "KeyName" in params:
            out.append(existing("key-pair", params["KeyName"]))
        profile = params.get("IamInstanceProfile.Name")
        if profile:
            role = (profile_roles or {})[profile]
            out.append(Request("iam:PassRole", f"arn:aws:iam::123456789012:role/{role}",
                               {"iam:PassedToService": "ec2.amazonaws.com"}))
        return out + created(["instance", "volume", "network-interface"])
    if action == "CreateVolume":
        return created(["volume"])
    if action == "AllocateAddress":
        return created(["elastic-ip"])
    if action == "ImportKeyPair":
        return created(["key-pair"])
    if action == "CreateSecurityGroup":
        vpc = [Request(ec2, _arn("vpc", params["VpcId"], region), {})] if "VpcId" in params else []
        return vpc + created(["security-group"])
    if action == "CreateTags":
        tags = dict(zip(_numbered(params, "Tag.Key") or [v for k, v in sorted(params.items())
                                                           if re.fullmatch(r"Tag\.\d+\.Key", k)],
                        [v for k, v in sorted(params.items()) if re.fullmatch(r"Tag\.\d+\.Value", k)],
                        strict=False))
        out = []
        for ident in _numbered(params, "ResourceId"):
            kind = next(k for p, k in _PREFIX_TYPE.items() if ident.startswith(p))
            out.append(Request(ec2, _arn(kind, ident, region),
                               {**_request_tags(tags), **_resource_tags(tags_of.get(ident))}))
        return out
    ids = {"InstanceId": "instance", "VolumeId": "volume", "AllocationId": "elastic-ip",
           "GroupId": "security-group", "KeyName": "key-pair"}
    out = [existing(kind, ident) for stem, kind in ids.items() for ident in _numbered(params, stem)]
    if "AssociationId" in params:  # DisassociateAddress: the address it belongs to
        out.append(existing("elastic-ip", str(tags_of.get(params["AssociationId"], {}).get("allocation"))))
    if not out:
        raise NotImplementedError(f"{action}: which resources it authorizes ({sorted(params)})")
    return out
