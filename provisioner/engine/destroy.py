"""``destroy``: remove everything a deployment has in every cloud and region it used.

The cloud is the source of truth: each location is swept by the driver, which finds
instances, addresses, volumes (unless ``keep_data``), security groups and key pairs by the
deployment's tag or name prefix, waits until they are gone and says what it removed. Locations are
swept side by side. Adopted boards are only forgotten, never touched. Idempotent: a second run
finds nothing and says so.

When the local record is lost, ``sweep`` takes the deployment id and the locations to look in (the
CLI: ``destroy ID --provider aws --region R``, or every cloud the credentials reach).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from provisioner.clouds.base import CloudResource
from provisioner.engine.progress import NullProgress, Progress
from provisioner.engine.sites import DriverFactory, Drivers, Location
from provisioner.state import StateStore

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Removed:
    """A resource a sweep removed, and where it was."""

    provider: str
    region: str | None
    resource: CloudResource

    def describe(self) -> str:
        r = self.resource
        where = f"{self.provider} {self.region}" if self.region else self.provider
        named = f" ({r.name})" if r.name and r.name != r.id else ""
        return f"{where}: {r.kind.replace('_', ' ')} {r.id}{named}"


def sweep(deployment_id: str, locations: Sequence[Location], driver_factory: DriverFactory, *,
          keep_data: bool = False, progress: Progress | None = None) -> list[Removed]:
    """Sweep every location (side by side); return what was removed, instances first per location."""
    progress = progress or NullProgress()
    clouds = [loc for loc in dict.fromkeys(locations) if loc[0] != "fleet"]
    if not clouds:
        return []
    drivers = Drivers(driver_factory)
    for location in clouds:
        drivers(*location)

    with progress.phase("removing cloud resources", len(clouds)) as bar:
        def one(location: Location) -> list[Removed]:
            found = drivers(*location).sweep(deployment_id, keep_data=keep_data)
            bar.advance()
            return [Removed(location[0], location[1], r) for r in found]

        with ThreadPoolExecutor(max_workers=len(clouds)) as pool:
            results = list(pool.map(one, clouds))
    return [r for batch in results for r in batch]


def forget_access(store: StateStore, deployment_id: str) -> None:
    """A destroyed deployment keeps no way in: its SSH key (secret and file) and the host keys it
    pinned (a cloud reuses addresses) are deleted; its record stays until ``forget``."""
    store.delete_secret(deployment_id, "ssh_private_key")
    directory = store.deployment_dir(deployment_id)
    for name in ("id_ed25519", "known_hosts"):
        (directory / name).unlink(missing_ok=True)


def destroy(store: StateStore, ref: str, driver_factory: DriverFactory, *, keep_data: bool = False,
            progress: Progress | None = None) -> list[Removed]:
    """Destroy the recorded deployment ``ref`` (id or name) under its run lock; return what went."""
    dep = store.get(ref)
    with store.lock(dep.id):
        store.set_status(dep.id, "destroying")
        store.add_event(dep.id, "destroy", "started" + (" (keeping the data volume)" if keep_data else ""))
        try:
            removed = sweep(dep.id, dep.locations, driver_factory, keep_data=keep_data, progress=progress)
        except BaseException:
            store.add_event(dep.id, "destroy-failed", "the sweep did not finish; run destroy again")
            raise
        for item in removed:
            store.add_event(dep.id, "removed", item.describe())
        for node in store.nodes(dep.id):
            store.remove_node(dep.id, node.name)
        store.set_status(dep.id, "destroyed")
        forget_access(store, dep.id)
        store.add_event(dep.id, "destroy", f"done: {len(removed)} resource(s) removed")
    log.debug("destroyed %s: %d resources", dep.id, len(removed))
    return removed
