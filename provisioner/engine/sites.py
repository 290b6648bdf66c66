"""The per-cloud groundwork every launch needs: a driver per (provider, region), the deployment's
key pair and security group there, and each group's image id.

The engine never builds drivers itself: it is handed a ``DriverFactory`` (the CLI's reads the
credentials again from where the deployment recorded them; tests point it at the emulators), so
this package stays free of credentials and of any one cloud.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

from provisioner.clouds.base import CloudDriver, FirewallRule
from provisioner.engine.launch import Site
from provisioner.engine.targets import MAX_SIZES, GroupTarget
from provisioner.errors import CloudError
from provisioner.record import Rule, size_ranking
from provisioner.state import StateStore

log = logging.getLogger(__name__)

DriverFactory = Callable[[str, "str | None"], CloudDriver]
"""``factory(provider, region)`` → a driver for that cloud and region."""

Location = tuple[str, "str | None"]


class Drivers:
    """One driver per (provider, region), made on first use by the factory (thread-safe enough:
    the engine asks from one thread)."""

    def __init__(self, factory: DriverFactory) -> None:
        self._factory = factory
        self._made: dict[Location, CloudDriver] = {}

    def __call__(self, provider: str, region: str | None) -> CloudDriver:
        key = (provider, region)
        if key not in self._made:
            self._made[key] = self._factory(provider, region)
        return self._made[key]


def firewall_rules(rules: Iterable[Rule]) -> list[FirewallRule]:
    """The record's security rules as the drivers take them."""
    return [FirewallRule(
        protocol="-1" if rule.protocol == "all" else rule.protocol,  # type: ignore[arg-type]
        from_port=rule.port_from if rule.port_from is not None else 0,
        to_port=rule.port_to if rule.port_to is not None else 65535,
        source=rule.source, description=rule.description) for rule in rules]


def cloud_locations(targets: Sequence[GroupTarget]) -> list[Location]:
    """Every (provider, region) a cloud group of the deployment lives in, in plan order."""
    return list(dict.fromkeys((t.provider, t.region) for t in targets if t.cloud))


def prepare_sites(store: StateStore, deployment: str, locations: Sequence[Location], drivers: Drivers,
                  public_key: str, rules: Sequence[FirewallRule]) -> dict[Location, Site]:
    """Key pair and security group in every location, the locations side by side (cloud calls are
    slow; none of these depend on each other)."""
    def one(location: Location) -> Site:
        driver = drivers(*location)
        with ThreadPoolExecutor(max_workers=1) as side:  # the key pair while the group is made
            key = side.submit(driver.ensure_key_pair, deployment, public_key)
            group_id = driver.ensure_security_group(deployment, rules)
            key_name = key.result()
        store.add_event(deployment, "site-ready",
                        f"{driver.provider} {driver.region}: key pair {key_name}, security group {group_id}")
        return Site(driver, key_name, group_id)

    for location in locations:  # make the drivers here: the factory need not be thread-safe
        drivers(*location)
    if not locations:
        return {}
    with ThreadPoolExecutor(max_workers=len(locations)) as pool:
        return dict(zip(locations, pool.map(one, locations), strict=True))


def resolve_images(targets: Sequence[GroupTarget], drivers: Drivers) -> dict[str, str]:
    """Each cloud group's image id, looked up side by side; groups with the same image ask once."""
    wanted = {}
    for t in targets:
        if t.cloud and t.image is not None:
            image = t.image
            wanted[t.name] = (t.provider, t.region, image["distribution"], image["version"], image["arch"],
                              image.get("id"))
    unique = list(dict.fromkeys(wanted.values()))
    for provider, region, *_ in unique:
        drivers(provider, region)

    def one(key: tuple[str, str | None, str, str, str, str | None]) -> str:
        provider, region, distribution, version, arch, explicit = key
        return drivers(provider, region).resolve_image(distribution, version, arch, explicit)

    if not unique:
        return {}
    with ThreadPoolExecutor(max_workers=len(unique)) as pool:
        found = dict(zip(unique, pool.map(one, unique), strict=True))
    return {group: found[key] for group, key in wanted.items()}


def ordered_sizes(planned: Sequence[str], live: Sequence[str], explicit: bool,
                  limit: int = MAX_SIZES) -> tuple[str, ...]:
    """The sizes to try (``provisioner.record.size_ranking``, shared with the elastic daemon)."""
    return size_ranking(planned, live, explicit, limit)


def resolve_sizes(targets: Sequence[GroupTarget], drivers: Drivers) -> dict[str, tuple[str, ...]]:
    """Each cloud group's sizes to try on capacity errors, from the cloud's ``sizes_that_fit``
    (live flavors on OpenStack), side by side."""
    cloud = [t for t in targets if t.cloud]
    for t in cloud:
        drivers(t.provider, t.region)

    def one(t: GroupTarget) -> tuple[str, ...]:
        driver = drivers(t.provider, t.region)
        explicit = t.sizes[0] if t.size_explicit and t.sizes else None
        live = driver.sizes_that_fit(t.cpus, t.memory_mib, t.arch, t.disk_gib, explicit=explicit)
        found = ordered_sizes(t.sizes, live, t.size_explicit)
        if not found:
            disk = f", {t.disk_gib} GiB disk" if t.disk_gib else ""
            raise CloudError(f"{driver.provider} {driver.region}: no size offers group {t.name}'s "
                             f"{t.cpus} CPUs, {t.memory_mib} MiB{disk} ({t.arch})")
        return found

    if not cloud:
        return {}
    with ThreadPoolExecutor(max_workers=len(cloud)) as pool:
        return dict(zip((t.name for t in cloud), pool.map(one, cloud), strict=True))
