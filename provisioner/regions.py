"""AWS partitions: which one a region belongs to, its EC2 endpoint and who publishes Ubuntu there.

libcloud 3.9 knows 23 regions and refuses every other one (``ValueError: Invalid region``), while AWS
keeps adding them (eu-central-2, il-central-1, ca-west-1, mx-central-1, ...). A region's partition and
DNS suffix come from botocore's own ``partitions.json`` (the data the AWS SDKs build endpoints from:
``ec2.<region>.<dnsSuffix>``), read without importing botocore; a copy of its three public partitions
below stands in when botocore is absent.

Canonical publishes Ubuntu under a different account in each partition (Ubuntu's "Find Ubuntu images
on AWS": 099720109477 in ``aws``, 513442679011 in ``aws-us-gov``, 837727238323 in ``aws-cn``).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import re
from pathlib import Path

CANONICAL_OWNERS = {"aws": "099720109477", "aws-us-gov": "513442679011", "aws-cn": "837727238323"}
REGION_NAME = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")

# botocore 1.44's partitions.json, public partitions only: id, DNS suffix, region pattern
_FALLBACK = (
    ("aws", "amazonaws.com", r"^(us|eu|ap|sa|ca|me|af|il|mx)\-\w+\-\d+$"),
    ("aws-cn", "amazonaws.com.cn", r"^cn\-\w+\-\d+$"),
    ("aws-us-gov", "amazonaws.com", r"^us\-gov\-\w+\-\d+$"),
)


@dataclasses.dataclass(frozen=True)
class Partition:
    id: str
    dns_suffix: str
    pattern: str

    @property
    def canonical_owner(self) -> str | None:
        return CANONICAL_OWNERS.get(self.id)


@functools.cache
def partitions() -> tuple[Partition, ...]:
    """The partitions, the most specific region pattern first (``us-gov-`` before ``us-``)."""
    found: list[Partition] = []
    spec = importlib.util.find_spec("botocore")
    if spec is not None and spec.origin is not None:
        path = Path(spec.origin).parent / "data" / "partitions.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            found = [Partition(p["id"], p["outputs"]["dnsSuffix"], p["regionRegex"])
                     for p in data["partitions"]]
        except (OSError, ValueError, KeyError):
            found = []
    if not found:
        found = [Partition(*row) for row in _FALLBACK]
    return tuple(sorted(found, key=lambda p: p.id == "aws"))


def partition_of(region: str) -> Partition | None:
    """The partition whose region pattern ``region`` matches, or None (not an AWS region name)."""
    return next((p for p in partitions() if re.match(p.pattern, region)), None)


def ec2_host(region: str) -> str:
    """EC2's endpoint host in ``region`` (``ec2.<region>.amazonaws.com[.cn]``)."""
    partition = partition_of(region)
    suffix = partition.dns_suffix if partition else "amazonaws.com"
    return f"ec2.{region}.{suffix}"


def canonical_owner(region: str | None) -> str:
    """The account Canonical publishes Ubuntu images from in ``region``'s partition."""
    partition = partition_of(region) if region else None
    return (partition.canonical_owner if partition else None) or CANONICAL_OWNERS["aws"]
