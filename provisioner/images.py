"""Which operating-system image a group boots: decided at plan time, resolved to an id at create time.

For EC2 the plan names Canonical's (or Debian's) owner account and AMI name pattern, the way the
official docs say to find the current image; ``create`` asks DescribeImages for the newest match.
For OpenStack the plan keeps distribution/version/arch and ``create`` matches the cloud's image list
(``os_distro``/``os_version`` properties, else the name). An explicit image always wins; the IM's
URL forms (``aws://REGION/ami-…``, ``ost://HOST/ID``) are accepted.
"""

from __future__ import annotations

import dataclasses
import re

from provisioner.errors import TemplateError
from provisioner.spec import Arch, GroupSpec

CANONICAL_OWNER = "099720109477"
DEBIAN_OWNER = "136693071363"

# (distribution, version) -> (owner, name pattern with {arch})
_EC2_PATTERNS: dict[tuple[str, str], tuple[str, str]] = {
    ("ubuntu", "20.04"): (CANONICAL_OWNER, "ubuntu/images/hvm-ssd/ubuntu-focal-20.04-{arch}-server-*"),
    ("ubuntu", "22.04"): (CANONICAL_OWNER, "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-{arch}-server-*"),
    ("ubuntu", "24.04"): (CANONICAL_OWNER, "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-{arch}-server-*"),
    ("debian", "12"): (DEBIAN_OWNER, "debian-12-{arch}-*"),
    ("debian", "13"): (DEBIAN_OWNER, "debian-13-{arch}-*"),
}
_AMI = re.compile(r"^ami-[0-9a-f]{8,17}$")
_IM_URL = re.compile(r"^(aws|ost|gce|azr|one)://([^/]*)/(.+)$")


@dataclasses.dataclass(frozen=True)
class ImagePlan:
    """The image of a group's machines."""

    distribution: str
    version: str
    arch: Arch
    id: str | None = None
    """An explicit image (AMI id, OpenStack image name or id): used as is."""
    owner: str | None = None
    """EC2: the account that publishes the image (Canonical's 099720109477 for Ubuntu)."""
    name_pattern: str | None = None
    """EC2: DescribeImages ``name`` filter; the newest match is used at create time."""


def _normalise_version(version: str) -> str:
    text = str(version).strip()
    return text[:-2] if text.endswith(".0") and text.count(".") == 1 and len(text) <= 4 else text


def plan_image(group: GroupSpec, arch: Arch) -> ImagePlan | None:
    """The image for ``group`` on its provider (None for adopted boards: they run what they run)."""
    machine = group.machine
    where = group.source_node or group.name
    distribution = (machine.os_distribution or "ubuntu").strip().lower()
    version = _normalise_version(machine.os_version or "24.04")
    if group.provider == "fleet":
        return None
    if machine.image:
        image = machine.image.strip()
        match = _IM_URL.match(image)
        if match:
            image = match.group(3)
        if group.provider == "aws" and not _AMI.match(image):
            raise TemplateError(
                f"image {machine.image!r} is not an EC2 AMI id (ami-… or aws://REGION/ami-…)",
                culprit=f"node {where}",
            )
        return ImagePlan(distribution, version, arch, id=image)
    if group.provider == "aws":
        known = _EC2_PATTERNS.get((distribution, version))
        if known is None:
            choices = ", ".join(f"{d} {v}" for d, v in _EC2_PATTERNS)
            raise TemplateError(
                f"no EC2 image is known for {distribution} {version} (known: {choices}); "
                "name an image (ami-…) in the os capability",
                culprit=f"node {where}",
            )
        owner, pattern = known
        if owner == CANONICAL_OWNER:  # Canonical publishes from another account in GovCloud and China
            from provisioner.regions import canonical_owner

            owner = canonical_owner(group.region)
        return ImagePlan(distribution, version, arch, owner=owner, name_pattern=pattern.format(arch=arch))
    return ImagePlan(distribution, version, arch)
