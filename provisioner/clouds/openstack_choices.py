"""What the OpenStack driver decides from what the cloud lists, without talking to it: flavors and
images, how a flavor boots an image, the network, the project scope, the catalog's region and
services, user data and rule ethertypes. Each follows the upstream service's own check, named in
its docstring, so the driver sends only what the service accepts."""

from __future__ import annotations

import base64
import gzip
import ipaddress
import math
from collections.abc import Mapping, Sequence
from typing import Any

from provisioner.errors import BadInput, CredentialsError

_ARCHES = {"amd64": ("x86_64", "amd64"), "arm64": ("aarch64", "arm64")}
_GIB = 1024**3
ROOT_VOLUME_GIB = 20
"""The root volume of a 0 GB-disk flavor when the template asks no disk size: room for k3s and images."""
USER_DATA_MAX = 65535
"""Nova's limit on ``user_data``, counted on its base64 text (nova/api/openstack/compute/schemas/
servers.py ``maxLength``)."""


def flavor_order(flavors: Sequence[Mapping[str, Any]], cpus: int, memory_mib: int,
                 disk_gib: int | None) -> list[Mapping[str, Any]]:
    """Flavors that give at least this, cheapest first: fewest vCPUs, then RAM, then disk.

    A flavor with a 0 GB root disk boots from a volume of any size, so it fits any disk request."""
    def fits(f: Mapping[str, Any]) -> bool:
        disk = int(f.get("disk") or 0)
        return (int(f.get("vcpus") or 0) >= cpus and int(f.get("ram") or 0) >= memory_mib
                and (not disk_gib or disk == 0 or disk >= disk_gib))

    return sorted((f for f in flavors if fits(f)),
                  key=lambda f: (int(f["vcpus"]), int(f["ram"]), int(f.get("disk") or 0), str(f["name"])))


def pick_image(images: Sequence[Mapping[str, Any]], distribution: str, version: str,
               arch: str) -> Mapping[str, Any] | None:
    """The newest active image for an OS: by Glance properties when set, else by name."""
    arch_names = _ARCHES.get(arch, (arch,))
    other_arches = [a for key, names in _ARCHES.items() if key != arch for a in names]

    def by_properties(image: Mapping[str, Any]) -> bool:
        image_arch = str(image.get("architecture") or image.get("hw_architecture") or "x86_64").lower()
        return (str(image.get("os_distro") or "").lower() == distribution.lower()
                and str(image.get("os_version") or "") == version and image_arch in arch_names)

    def by_name(image: Mapping[str, Any]) -> bool:
        name = str(image.get("name") or "").lower()
        if distribution.lower() not in name or version not in name or any(a in name for a in other_arches):
            return False
        return arch == "amd64" or any(a in name for a in arch_names)  # an unmarked name is x86_64

    active = [i for i in images if i.get("status", "active") == "active"]
    chosen = [i for i in active if by_properties(i)] or [
        i for i in active if not i.get("os_distro") and by_name(i)]
    return max(chosen, key=lambda i: (str(i.get("created_at") or ""), str(i.get("name") or "")), default=None)


def image_fit(flavor: Mapping[str, Any], image: Mapping[str, Any],
              disk_gib: int | None) -> tuple[int | None, str | None]:
    """How this flavor boots this image, as Nova's ``_validate_flavor_image_nostatus`` checks it
    (nova/compute/api.py): ``(root volume GiB or None for the flavor's own disk, why it cannot)``.

    The flavor's RAM must reach the image's ``min_ram``; a flavor root disk must hold the image's
    size and ``min_disk``; a 0 GB flavor disk needs an admin-only policy to boot from the image, so
    such a flavor (and one whose disk is smaller than ``disk_gib``) boots from a volume instead."""
    need = max(int(image.get("min_disk") or 0), math.ceil(int(image.get("size") or 0) / _GIB))
    name = flavor.get("name")
    if int(flavor.get("ram") or 0) < int(image.get("min_ram") or 0):
        return None, (f"flavor {name} has {flavor.get('ram')} MiB of RAM, the image needs "
                      f"{image.get('min_ram')}")
    disk = int(flavor.get("disk") or 0)
    if disk == 0:
        return max(disk_gib or ROOT_VOLUME_GIB, need), None
    if disk_gib and disk < disk_gib:
        return max(disk_gib, need), None
    if disk < need:
        return None, f"flavor {name}'s {disk} GB disk cannot hold the image ({need} GB)"
    return None, None


def choose_network(networks: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The network a server goes on when none is configured: the project's own (unshared, not
    external) network when there is one, else the only shared internal one.

    Nova would count the project's networks *and* every shared one, external included, and refuse
    with ``NetworkAmbiguous`` when that is more than one (nova/network/neutron.py); most real
    projects have a private network and a shared public one. Several candidates: ``BadInput``
    naming them, so the operator sets the template's ``network``."""
    internal = [n for n in networks if not n.get("router:external")]
    own = [n for n in internal if not n.get("shared")]
    candidates = own or internal
    if len(candidates) == 1:
        return candidates[0]
    names = ", ".join(sorted(f"{n.get('name') or '?'} ({n.get('id')})" for n in candidates or networks))
    if not candidates:
        raise BadInput(f"OpenStack: the project has no network of its own to put servers on (networks: "
                       f"{names or 'none'}); create one with a router, or name one as the template's network")
    raise BadInput(f"OpenStack: several networks could take the servers: {names}; name one as the "
                   f"template's network")


def fitted_user_data(text: str | None) -> str | bytes | None:
    """User data within Nova's limit: as is when its base64 fits, else gzip-compressed (cloud-init
    reads gzip user data); ``BadInput`` when even that is too long."""
    if text is None or len(base64.b64encode(text.encode())) <= USER_DATA_MAX:
        return text
    packed = gzip.compress(text.encode(), mtime=0)
    if len(base64.b64encode(packed)) > USER_DATA_MAX:
        raise BadInput(f"OpenStack: user data of {len(text)} characters is over Nova's {USER_DATA_MAX}-"
                       f"character limit even compressed")
    return packed


def ethertype_of(cidr: str) -> str:
    """Neutron's ``ethertype`` for a CIDR: it defaults to IPv4 and refuses an IPv6 CIDR under it
    (neutron/db/securitygroups_db.py ``_validate_ip_prefix``)."""
    return f"IPv{ipaddress.ip_network(cidr, strict=False).version}"


def project_scope(projects: Sequence[Mapping[str, Any]], name: str | None, project_id: str | None,
                  domain: str | None) -> tuple[str, str]:
    """``(project name, its domain id)`` for libcloud's password scope, which names the project and
    gives its domain by id only (a domain *name* sent there is a 401 from Keystone, and a project id
    alone a ``ValueError`` in libcloud), chosen from the projects the user's unscoped token may
    use (Keystone's ``GET /v3/auth/projects``)."""
    if project_id:
        found = [p for p in projects if p.get("id") == project_id]
    else:
        found = [p for p in projects if p.get("name") == name]
        if len(found) > 1 and domain:
            found = [p for p in found if domain in (p.get("domain_id"), p.get("domain_name"))] or found
    if len(found) == 1:
        return str(found[0]["name"]), str(found[0]["domain_id"])
    listed = ", ".join(sorted(f"{p.get('name')} (id {p.get('id')}, domain {p.get('domain_id')})"
                              for p in found or projects)) or "none"
    wanted = project_id or name
    if not found:
        raise CredentialsError(f"OpenStack: project {wanted!r} is not one this user may use "
                               f"(projects: {listed})")
    raise CredentialsError(f"OpenStack: several projects are named {wanted!r}: {listed}; give the project id "
                           "or project_domain_id")


def catalog_choice(entries: Sequence[tuple[str, str, str]], region: str | None,
                   wanted: Mapping[str, str | None]) -> tuple[str, dict[str, tuple[str, str]]]:
    """The region, and per service type libcloud looks for the ``(type, name)`` to use, from the
    catalog's public endpoints ``(type, name, region)``: sites name regions (``WAW4-1``) and services
    (``compute``, ``cinder``, ``block-storage``) as they like, and libcloud's defaults are
    ``RegionOne``, ``nova``, ``glance``, ``neutron``, ``cinderv3``. ``wanted`` maps a type to a name
    the user gave (``None``: libcloud's default name, if the catalog has it)."""
    regions = sorted({r for t, _, r in entries if t == "compute" and r})
    if region is None:
        if len(regions) != 1:
            raise BadInput(f"OpenStack: the catalog has {len(regions)} regions with compute "
                           f"({', '.join(regions) or 'none'}); choose one (region in the auth file, "
                           "OS_REGION_NAME or region_name)")
        region = regions[0]
    elif region not in regions:
        raise BadInput(f"OpenStack: no region {region!r} in the catalog (regions with compute: "
                       f"{', '.join(regions) or 'none'})")
    aliases = {"volumev3": ("volumev3", "block-storage", "volume"), "volumev2": ("volumev2",)}
    chosen: dict[str, tuple[str, str]] = {}
    for kind, name in wanted.items():
        for alias in aliases.get(kind, (kind,)):
            names = sorted({n for t, n, r in entries if t == alias and r == region})
            if not names:
                continue
            if name and name not in names and kind == "compute":
                raise BadInput(f"OpenStack: no compute service named {name!r} in region {region} "
                               f"(named: {', '.join(names)})")
            chosen[kind] = (alias, name if name in names else names[0])
            break
    return region, chosen


def available_zones(answer: Mapping[str, Any]) -> list[str]:
    """Zone names from Nova's ``GET /os-availability-zone`` answer, available ones only, sorted."""
    zones = answer.get("availabilityZoneInfo") or []
    return sorted(str(z["zoneName"]) for z in zones
                  if z.get("zoneName") and (z.get("zoneState") or {}).get("available"))
