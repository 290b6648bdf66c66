"""The EC2 size catalogue, offline, from the data libcloud ships, and the cheapest-fit choice.

libcloud 3.x bundles what its EC2 driver's ``list_sizes`` uses: ``INSTANCE_TYPES`` (vCPUs, RAM,
processor, GPUs, generation; ``compute/constants/ec2_instance_types.py``), the types offered per
region (``ec2_region_details_complete.REGION_DETAILS``) and on-demand Linux prices per region
(``data/pricing.json``, driver ``ec2_linux``; libcloud's own ``get_pricing`` honours a custom
``~/.libcloud/pricing.json``). We read those modules, not the driver, which is far slower to import.

Rules taken from the data, as the issue spells out:

- a price of 0.0 means *unknown* (118 of 800 types in us-east-1, m5.xlarge among them): such a type
  is never chosen by price, though it may still be named explicitly;
- ``processorArchitecture`` says "64-bit" for x86 and Graviton alike, so the arch comes from
  ``physicalProcessor`` (Graviton → arm64; "Variable" → unknown, never chosen);
- only ``currentGeneration == "Yes"`` types are chosen; GPU, FPGA and ML-ASIC types only when GPUs
  are asked for.

Building a region's catalogue imports about 1 MB of Python and parses 4.5 MB of JSON (~0.3 s), so
the result is cached per process and, as a small JSON file, in the cache directory, keyed by the
source files' sizes and mtimes: a later ``plan`` reads a few kilobytes instead.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import json
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from provisioner.spec import Arch

log = logging.getLogger(__name__)

CACHE_SCHEMA = 3
_ACCELERATED_FAMILIES = frozenset(
    {"GPU instance", "Machine Learning ASIC Instances", "FPGA Instances", "Media Accelerator Instances"}
)


@dataclasses.dataclass(frozen=True)
class Ec2Size:
    """One EC2 instance type as the planner needs it."""

    name: str
    cpus: int
    memory_mib: int
    arch: Arch | None
    """None when the data cannot tell (``physicalProcessor: Variable``)."""
    gpus: int
    accelerated: bool
    """GPU, FPGA, ML-ASIC or media-accelerator type: only chosen when GPUs are requested."""
    current: bool
    """``currentGeneration == "Yes"``."""
    price_per_hour: float | None
    """On-demand Linux USD/hour in the region; None when libcloud's price is 0.0 or absent."""

    @property
    def metal(self) -> bool:
        return self.name.endswith(".metal") or ".metal-" in self.name


def arch_of(physical_processor: str) -> Arch | None:
    """The CPU architecture from ``physicalProcessor`` (``processorArchitecture`` is "64-bit" for all)."""
    if "graviton" in physical_processor.lower():
        return "arm64"
    if physical_processor.strip().lower() in ("", "variable", "na"):
        return None
    return "amd64"


def fits(size: Ec2Size, cpus: int, memory_mib: int, arch: Arch, gpus: int) -> bool:
    """Can a node of ``size`` host this machine? (Only current-generation, priced types are chosen.)"""
    if size.arch != arch or size.cpus < cpus or size.memory_mib < memory_mib:
        return False
    if gpus > 0:
        return size.gpus >= gpus
    return not size.accelerated


def cheapest_fit(
    sizes: Iterable[Ec2Size], cpus: int, memory_mib: int, arch: Arch, gpus: int = 0
) -> Ec2Size | None:
    """The cheapest current-generation, priced size that fits; ties go to the smaller, non-metal one."""
    candidates = [
        s for s in sizes
        if s.current and s.price_per_hour is not None and fits(s, cpus, memory_mib, arch, gpus)
    ]
    if not candidates:
        return None
    return min(candidates, key=lambda s: (s.price_per_hour, s.cpus, s.memory_mib, s.metal, s.name))


# -- the catalogue: built from libcloud's data, cached in memory and on disk -------------------------


def _libcloud_dir() -> Path:
    """libcloud's package directory, found without importing it (its ``__init__`` costs ~0.1 s)."""
    spec = importlib.util.find_spec("libcloud")
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - a dependency
        raise RuntimeError("apache-libcloud is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _source_files() -> list[Path]:
    root = _libcloud_dir()
    files = [
        root / "compute" / "constants" / "ec2_instance_types.py",
        root / "compute" / "constants" / "ec2_region_details_complete.py",
        root / "data" / "pricing.json",
    ]
    custom = Path("~/.libcloud/pricing.json").expanduser()  # libcloud's CUSTOM_PRICING_FILE_PATH
    if custom.is_file():
        files.append(custom)
    return files


def _cache_key() -> str:
    digest = hashlib.sha256(str(CACHE_SCHEMA).encode())
    for path in _source_files():
        stat = path.stat()
        digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


@functools.cache
def _libcloud_tables() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """libcloud's three tables: instance types, region details, ec2_linux prices."""
    from libcloud.compute.constants.ec2_instance_types import INSTANCE_TYPES
    from libcloud.compute.constants.ec2_region_details_complete import REGION_DETAILS
    from libcloud.pricing import get_pricing

    return INSTANCE_TYPES, REGION_DETAILS, get_pricing("compute", "ec2_linux")


PRICE_REFERENCE_REGION = "us-east-1"


def borrowed_from(region: str, cache_dir: Path | None = None) -> str | None:
    """The region whose prices (and, for a region libcloud has no data for, whose types) rank the
    sizes of ``region``, when libcloud has no prices for ``region`` itself (China, regions newer
    than libcloud's data); None when ``region``'s own data is used. The driver then keeps only the
    types EC2 offers there (``DescribeInstanceTypeOfferings``). Read from the cached catalogue."""
    found = region_catalogue(region, cache_dir)
    return found[1] if found else None


def _borrowed_region(region: str) -> str | None:
    _types, regions, prices = _libcloud_tables()
    if any(region in by_region for by_region in prices.values()):
        return None
    from provisioner.regions import partition_of

    if region not in regions and partition_of(region) is None:
        return None
    return PRICE_REFERENCE_REGION


def _build_region(region: str) -> tuple[list[Ec2Size], str | None] | None:
    """Every type offered in ``region`` with its price, or None if ``region`` is no AWS region.

    Without libcloud data for the region (or without its prices), the reference region's types and
    prices stand in (``borrowed_from``), so a plan can still rank sizes."""
    types, regions, prices = _libcloud_tables()
    borrowed = _borrowed_region(region)
    price_region = borrowed or region
    offered = list(regions[region]["instance_types"]) if region in regions else []
    if not offered:  # libcloud lists no types for GovCloud and China, nor any for newer regions
        offered = sorted(name for name, by_region in prices.items() if price_region in by_region)
        if not offered:
            return None
    sizes = []
    for name in offered:
        data = types.get(name)
        if data is None:
            continue
        extra = data.get("extra", {})
        price = prices.get(name, {}).get(price_region)
        sizes.append(Ec2Size(
            name=name,
            cpus=int(extra.get("vcpu") or 0),
            memory_mib=int(data.get("ram") or 0),
            arch=arch_of(str(extra.get("physicalProcessor", ""))),
            gpus=int(extra.get("gpu") or 0),
            accelerated=extra.get("instanceFamily") in _ACCELERATED_FAMILIES or bool(extra.get("gpu")),
            current=extra.get("currentGeneration") == "Yes",
            price_per_hour=float(price) if price else None,
        ))
    return sizes, borrowed


def _read_cache(path: Path) -> tuple[list[Ec2Size], str | None] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [Ec2Size(**row) for row in data["sizes"]], data.get("borrowed_from")
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _write_cache(path: Path, sizes: list[Ec2Size], borrowed: str | None) -> None:
    """Best effort: a read-only home only costs the next run its 0.3 s."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = {"sizes": [dataclasses.asdict(s) for s in sizes], "borrowed_from": borrowed}
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp",
                                         encoding="utf-8") as tmp:
            json.dump(rows, tmp, separators=(",", ":"))
        os.replace(tmp.name, path)
    except OSError as error:
        log.debug("could not write the EC2 size cache %s: %s", path, error)


def region_sizes(region: str, cache_dir: Path | None = None) -> tuple[Ec2Size, ...] | None:
    """The EC2 types offered in ``region`` (None: no AWS region libcloud or a partition knows)."""
    found = region_catalogue(region, cache_dir)
    return found[0] if found else None


@functools.cache
def region_catalogue(region: str, cache_dir: Path | None = None
                     ) -> tuple[tuple[Ec2Size, ...], str | None] | None:
    """The EC2 types offered in ``region`` and the region whose prices stand in (``borrowed_from``).

    With ``cache_dir``, the catalogue is read from (or written to) ``ec2-sizes-<region>-<key>.json``.
    """
    cache_file = None
    if cache_dir is not None:
        cache_file = cache_dir / f"ec2-sizes-{region}-{_cache_key()}.json"
        cached = _read_cache(cache_file) if cache_file.is_file() else None
        if cached is not None:
            return tuple(cached[0]), cached[1]
    built = _build_region(region)
    if built is None:
        return None
    if cache_file is not None:
        _write_cache(cache_file, *built)
    return tuple(built[0]), built[1]


def find_size(sizes: Iterable[Ec2Size], name: str) -> Ec2Size | None:
    return next((s for s in sizes if s.name == name), None)


def types_listed(region: str) -> bool:
    """Whether libcloud lists the types offered in ``region`` (else they come from its prices or a
    borrowed region's, and EC2 is asked which it offers there)."""
    details = _libcloud_tables()[1].get(region)
    return bool(details and details.get("instance_types"))


def known_family(name: str) -> bool:
    """Whether libcloud's data knows the instance type's family (``m8i`` of ``m8i.large``) at all: an
    unknown size of a known family is a typo, an unknown family is newer than the data."""
    family = name.split(".")[0] + "."
    return any(known.startswith(family) for known in _libcloud_tables()[0])


def known_regions() -> list[str]:
    """Regions libcloud has region details for (for error messages)."""
    return sorted(_libcloud_tables()[1])
