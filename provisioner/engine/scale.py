"""``scale ID GROUP COUNT``: add or remove cloud workers of a created deployment.

Works from the recorded plan (no template needed) and from what the cloud lists. Growing creates
the lowest free node indices with the same launch machinery as ``create`` (parallel, capacity
fallback); shrinking removes idle nodes before busy ones and, among those, the newest first, and
waits until they are gone. Which nodes are busy is given, or asked of a ``BusyProbe`` (the CLI's
asks the cluster, ``provisioner.engine.cluster``) only when the group shrinks; the nodes to remove
are cordoned and drained (``Drainer``) before they go. A probe that fails refuses the shrink unless
forced (then newest-first, undrained, and the result says why). The recorded plan's count
follows, so a resumed ``create`` or the elastic daemon see the new size.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Sequence

from provisioner.clouds.base import CloudDriver, CloudNode
from provisioner.config import Settings
from provisioner.engine.keys import public_key_of
from provisioner.engine.launch import Launch, NodeJob
from provisioner.engine.progress import NullProgress, Progress
from provisioner.engine.sites import (
    DriverFactory,
    Drivers,
    firewall_rules,
    prepare_sites,
    resolve_images,
    resolve_sizes,
)
from provisioner.engine.targets import (
    GroupTarget,
    names_to_add,
    node_index,
    pick_removals,
    record_targets,
)
from provisioner.errors import BadInput, CloudError, NotFound, OscarDeployError
from provisioner.record import DeploymentRecord
from provisioner.state import Deployment, StateStore

log = logging.getLogger(__name__)

BusyProbe = Callable[[Sequence[CloudNode]], Iterable[str]]
"""``probe(members)`` → the names of the members that run user work; ``OscarDeployError`` if it
cannot tell."""
Drainer = Callable[[Sequence[CloudNode]], object]
"""``drain(victims)``: cordon their Kubernetes nodes and evict their user pods before they are removed;
``OscarDeployError`` (nothing removed) if that cannot be done."""


@dataclasses.dataclass(frozen=True)
class ScaleResult:
    group: str
    before: int
    after: int
    added: tuple[str, ...]
    removed: tuple[str, ...]
    busy: tuple[str, ...] = ()
    """Members that run user work (a shrink removes them last)."""
    busy_unknown: str | None = None
    """Why a shrink could not tell busy from idle (then the newest went first); None if it could."""


def scalable_group(dep: Deployment, record: DeploymentRecord, group: str, count: int) -> GroupTarget:
    """The group to scale, checked before any cloud call (``BadInput`` naming the culprit)."""
    targets = record_targets(record)
    found = next((t for t in targets if t.name == group), None)
    if found is None:
        names = ", ".join(t.name for t in targets if t.cloud and t.role == "worker") or "none"
        raise BadInput(f"deployment {dep.name}: no group {group!r} (cloud worker groups: {names})")
    if not found.cloud:
        raise BadInput(f"deployment {dep.name}: group {group!r} is edge boards, which are adopted, not "
                       "created; the elasticity daemon powers them on and off")
    if found.role != "worker":
        raise BadInput(f"deployment {dep.name}: group {group!r} is the {found.role}; only workers scale")
    if not found.min <= count <= found.max:
        raise BadInput(f"deployment {dep.name}: group {group!r} takes {found.min} to {found.max} nodes, "
                       f"not {count} (the template's min/max)")
    return found


def _user_data_for(store: StateStore, dep: Deployment, group: str) -> Callable[[str], str | None]:
    """Cloud-init that makes a new worker join the front-end's k3s under its own name
    (``provisioner.cloudinit``); the deployment is read once, each machine's name rendered in."""
    from provisioner.cloudinit import node_user_data, worker_join

    try:
        join = worker_join(store, dep, group)
    except NotFound as error:
        log.warning("group %s: new workers boot without cloud-init user data: %s", group, error)
        return lambda _name: None
    return lambda name: node_user_data(join, name)


def _members(driver: CloudDriver, deployment: str, group: str) -> list[CloudNode]:
    return [n for n in driver.list_nodes(deployment)
            if n.group == group or node_index(deployment, group, n.name) is not None]


def scale(store: StateStore, ref: str, group: str, count: int, driver_factory: DriverFactory,
          settings: Settings, *, progress: Progress | None = None, busy: Iterable[str] | BusyProbe = (),
          drain: Drainer | None = None, force: bool = False,
          clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
          ) -> ScaleResult:
    """Bring ``group`` of deployment ``ref`` to ``count`` nodes. ``busy`` names nodes that run
    user work (removed last), or is a probe asked only when the group shrinks; ``drain`` empties the
    nodes to remove first. A shrink that cannot tell busy from idle is refused (``BadInput``,
    nothing changed) unless ``force``: then the newest go first, undrained."""
    progress = progress or NullProgress()
    dep = store.get(ref)
    record = store.record(dep.id)
    target = scalable_group(dep, record, group, count)
    with store.lock(dep.id):
        drivers = Drivers(driver_factory)
        driver = drivers(target.provider, target.region)
        members = _members(driver, dep.id, group)
        added: list[str] = []
        removed: list[str] = []
        busy_names: list[str] = []
        unknown: str | None = None
        if count > len(members):
            rules = firewall_rules(record.security_rules)
            public_key = public_key_of(store.secret(dep.id, "ssh_private_key"), f"oscar-deploy-{dep.id}")
            site = prepare_sites(store, dep.id, [(target.provider, target.region)], drivers, public_key,
                                 rules)[(target.provider, target.region)]
            image = resolve_images([target], drivers)[group]
            sizes = resolve_sizes([target], drivers)[group]
            user_data = _user_data_for(store, store.get(dep.id), group)
            jobs = []
            for name in names_to_add(dep.id, group, [m.name for m in members], count):
                store.record_node(dep.id, group=group, name=name, provider=target.provider,
                                  region=target.region, state="creating")
                jobs.append(NodeJob(target, name, image, site, sizes, user_data(name)))
            store.add_event(dep.id, "scale", f"{group}: {len(members)} → {count}")
            Launch(store, dep.id, jobs, parallel=settings.provisioner.parallel_creates,
                   timeout_s=settings.provisioner.create_timeout_s, progress=progress,
                   clock=clock, sleep=sleep).run()
            added = [j.name for j in jobs]
        elif count < len(members):
            busy_names, unknown = _busy_members(busy, members)
            if unknown is not None and not force:
                raise BadInput(f"deployment {dep.name}: cannot tell idle {group} workers from busy ones "
                               f"({unknown}); nothing removed. Use --force to remove the newest anyway "
                               "(their pods stop)")
            victims = pick_removals(members, count, busy_names)
            if drain is not None and unknown is None:
                with progress.phase(f"draining {len(victims)} {group} node(s)", 1) as bar:
                    drain(victims)
                    bar.advance()
            store.add_event(dep.id, "scale", f"{group}: {len(members)} → {count}")
            with progress.phase(f"removing {len(victims)} {group} node(s)", len(victims)) as bar:
                for node in victims:
                    driver.destroy_node(node)
                    bar.advance()
                _wait_gone(driver, dep.id, {n.id for n in victims}, settings.provisioner.create_timeout_s,
                           clock, sleep)
            for node in victims:
                store.remove_node(dep.id, node.name)
                store.add_event(dep.id, "node-removed", f"{node.name} ({node.id})")
            removed = [n.name for n in victims]
        store.set_plan(dep.id, store.record(dep.id).with_count(group, count).to_dict())
    return ScaleResult(group, len(members), count, tuple(added), tuple(removed), tuple(busy_names), unknown)


def _busy_members(busy: Iterable[str] | BusyProbe,
                  members: Sequence[CloudNode]) -> tuple[list[str], str | None]:
    """The members that are busy, and why that is unknown when the probe could not tell."""
    if not callable(busy):
        names = set(busy)
        return [m.name for m in members if m.name in names], None
    try:
        names = set(busy(members))
    except OscarDeployError as error:
        log.debug("cannot tell idle workers from busy ones: %s", error)  # the caller says it
        return [], str(error)
    return [m.name for m in members if m.name in names], None


def _wait_gone(driver: CloudDriver, deployment: str, ids: set[str], timeout_s: float,
               clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
    deadline = clock() + timeout_s
    while True:
        left = [n.id for n in driver.list_nodes(deployment) if n.id in ids]
        if not left:
            return
        if clock() > deadline:
            raise CloudError(f"{driver.provider} {driver.region}: still not gone after {timeout_s:g} s: "
                             + ", ".join(left))
        sleep(1.0)
