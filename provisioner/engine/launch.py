"""Launching machines: parallel creates, capacity fallback, waiting until they run (Karpenter's
``launch`` phase).

``launch`` creates a batch of named nodes at most ``parallel_creates`` at a time. Each node has a
list of attempts, ``(size, zone)``: the planned size and the next cheapest that fit in the cloud's
default zone, then the same sizes zone by zone (``CloudDriver.list_zones``, asked only once the
default zone has run out, so a launch without capacity errors makes no extra call; the default zone
comes round again by name, one wasted call per size on a path that is already slow). A
``CapacityError`` (EC2's
``InsufficientInstanceCapacity``, Nova's "No valid host") moves to the next attempt; so does a
machine that dies while booting (Nova puts a server it could not place in ERROR): it is destroyed
first, since its name is the idempotency key. Throttled calls were already retried by the driver
(``provisioner.clouds.retry``); any other error, or running out of attempts, fails that node and,
once the others have finished, the batch: ``CloudError`` with the cloud's messages, by node.

Each node is recorded in the state file before its create call and updated as soon as the cloud
answers, so an interrupted run leaves a record that ``destroy`` and resume reconcile with the cloud.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from provisioner.clouds.base import CloudDriver, CloudNode, FirewallRule, NodeRequest
from provisioner.engine.progress import Progress
from provisioner.engine.targets import GroupTarget
from provisioner.errors import BadInput, CapacityError, CloudError, OscarDeployError
from provisioner.mesh import node_wireguard_source
from provisioner.state import StateStore

log = logging.getLogger(__name__)

BAD_STATES = frozenset({"terminated", "unknown", "stopping", "stopped"})
"""States a machine just created must not reach on its way to running."""
POLL_MIN_S = 1.0
POLL_MAX_S = 5.0


@dataclasses.dataclass(frozen=True)
class Site:
    """One cloud and region of the deployment, ready to create machines in."""

    driver: CloudDriver
    key_name: str
    security_group: str

    @property
    def label(self) -> str:
        return f"{self.driver.provider} {self.driver.region}"


@dataclasses.dataclass(frozen=True)
class NodeJob:
    """One machine to bring to running."""

    group: GroupTarget
    name: str
    image: str
    site: Site
    sizes: tuple[str, ...] = ()
    """What to try, in order (``resolve_sizes``); the group's planned sizes when empty."""
    user_data: str | None = None
    """This machine's own cloud-init (``cloudinit.node_user_data``: it names the k3s node ``name``)."""


def addresses_of(node: CloudNode) -> dict[str, list[str]]:
    return {"public": list(node.public_ips), "private": list(node.private_ips)}


def node_wireguard_rules(name: str, addresses: Iterable[str]) -> list[FirewallRule]:
    """The rules that let a hybrid cluster's other nodes reach cloud node ``name``'s WireGuard port
    at its public ``addresses`` (``provisioner.mesh``)."""
    rules = []
    for address in addresses:
        pair = node_wireguard_source(address)
        if pair is not None:
            rules.append(FirewallRule("udp", pair[0], pair[0], pair[1],
                                      f"WireGuard (k3s flannel) from {name}"))
    return rules


def attempts_for(job: NodeJob) -> list[tuple[str, str | None]]:
    """(size, zone) tried first: the sizes in the cloud's default zone (zone None)."""
    return [(s, None) for s in job.sizes or job.group.sizes or ("",)]


def zone_attempts(job: NodeJob, zones: Sequence[str]) -> list[tuple[str, str | None]]:
    """(size, zone) tried once the default zone is out of capacity: the sizes again, zone by zone."""
    sizes = job.sizes or job.group.sizes or ("",)
    return [(s, z) for z in zones for s in sizes]


class Launch:
    """A batch of ``NodeJob`` brought to running; ``run`` returns the nodes by name."""

    def __init__(self, store: StateStore, deployment: str, jobs: Sequence[NodeJob], *, parallel: int,
                 timeout_s: float, progress: Progress, waiting: Sequence[tuple[NodeJob, CloudNode]] = (),
                 after_create: Callable[[NodeJob, CloudNode], None] = lambda _j, _n: None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.store = store
        self.deployment = deployment
        self.jobs = list(jobs)
        self.parallel = max(1, parallel)
        self.timeout_s = timeout_s
        self.progress = progress
        self.after_create = after_create
        self.clock = clock
        self.sleep = sleep
        self._attempts: dict[str, list[tuple[str, str | None]]] = {}
        self._zones: dict[int, list[str]] = {}
        """id(driver) → its zones, listed the first time a node runs out of capacity there"""
        self._zoned: set[str] = set()
        """nodes whose attempts already include every zone"""
        self._failures: dict[str, str] = {}
        self._bad_input: set[str] = set()
        """Nodes the cloud's own settings refused before creating anything (an ambiguous network)."""
        self._ids: dict[str, str] = {}
        """node name → the cloud id of the machine this run created for it"""
        self._lock = threading.Lock()
        self.waiting = [job for job, _node in waiting]
        """Machines an earlier run created that are still booting: waited for, not created."""
        for job, node in waiting:
            self._ids[job.name] = node.id

    # -- creating --------------------------------------------------------------------------------

    def _event(self, kind: str, message: str) -> None:
        self.store.add_event(self.deployment, kind, message)

    def _zones_of(self, site: Site) -> list[str]:
        """The site's zones, asked once per launch and only when some node needs them (no extra call
        on the path without capacity errors); a cloud that cannot list them has none to offer."""
        key = id(site.driver)
        with self._lock:
            if key in self._zones:
                return self._zones[key]
        try:
            zones = [str(z) for z in site.driver.list_zones()]
        except OscarDeployError as error:  # fallback zones are a bonus, not a requirement
            log.warning("cannot list the zones of %s, so no other zone is tried: %s", site.label, error)
            zones = []
        with self._lock:
            return self._zones.setdefault(key, zones)

    def _create(self, job: NodeJob) -> CloudNode | None:
        """Create ``job``'s machine, trying the next (size, zone) on capacity errors: every size in
        the default zone, then every size in each zone the cloud lists."""
        attempts = self._attempts.setdefault(job.name, attempts_for(job))
        last: OscarDeployError | None = None
        unfit = True  # every size refused as unable to hold the image (BadInput), none for capacity
        while True:
            if not attempts and job.name not in self._zoned:
                self._zoned.add(job.name)
                attempts.extend(zone_attempts(job, self._zones_of(job.site)))
            if not attempts:
                break
            size, zone = attempts.pop(0)
            request = NodeRequest(
                deployment=self.deployment, group=job.group.name, name=job.name, size=size,
                image=job.image, key_name=job.site.key_name, security_group=job.site.security_group,
                user_data=job.user_data, public_ip=job.group.public_ip, zone=zone,
                disk_gib=job.group.disk_gib, network=job.group.network, role=job.group.role,
                instance_profile=job.group.instance_profile,
            )
            try:
                node = job.site.driver.create_node(request)
            except CapacityError as error:
                last, unfit = error, unfit and isinstance(error, BadInput)
                where = f"{size} in {zone}" if zone else size
                log.warning("%s: no capacity for %s; trying the next size or zone", job.name, where)
                self._event("capacity", f"{job.name}: {error}")
                continue
            except OscarDeployError as error:
                if isinstance(error, BadInput):
                    with self._lock:
                        self._bad_input.add(job.name)
                self._fail(job, str(error))
                return None
            with self._lock:
                self._ids[job.name] = node.id
            self.store.update_node(self.deployment, job.name, cloud_id=node.id, state=node.state,
                                   addresses=addresses_of(node), size=node.size or size,
                                   zone=node.zone or zone)
            where = node.zone or zone
            self._event("node-created", f"{job.name} is {node.id} ({size}{', ' + where if where else ''})")
            self.after_create(job, node)
            return node
        if last is not None and unfit:
            with self._lock:
                self._bad_input.add(job.name)
            self._fail(job, f"no size can hold the image: {last}")
            return None
        self._fail(job, f"no capacity left to try: {last}" if last else "no size to create it with")
        return None

    def _fail(self, job: NodeJob, message: str) -> None:
        with self._lock:
            self._failures[job.name] = message
        self.store.update_node(self.deployment, job.name, state="failed")
        self._event("node-failed", f"{job.name}: {message}")

    def _create_all(self, jobs: Sequence[NodeJob], description: str) -> None:
        if not jobs:
            return
        with self.progress.phase(description, len(jobs)) as bar, \
                ThreadPoolExecutor(max_workers=min(self.parallel, len(jobs))) as pool:
            def one(job: NodeJob) -> None:
                try:
                    self._create(job)
                except OscarDeployError as error:
                    self._fail(job, str(error))
                bar.advance()

            list(pool.map(one, jobs))

    # -- waiting ---------------------------------------------------------------------------------

    def _listing(self, sites: Sequence[Site]) -> dict[str, CloudNode]:
        """The machines this run created, by name (a replaced one still shutting down is not it)."""
        found: dict[str, CloudNode] = {}
        for site in sites:
            for node in site.driver.list_nodes(self.deployment):
                if self._ids.get(node.name) == node.id:
                    found[node.name] = node
        return found

    def run(self) -> dict[str, CloudNode]:
        """Create every job's machine and wait until all run; ``CloudError`` if any cannot."""
        self._create_all(self.jobs, "creating machines")
        pending = {j.name: j for j in [*self.jobs, *self.waiting] if j.name not in self._failures}
        running: dict[str, CloudNode] = {}
        sites = list({id(j.site): j.site for j in pending.values()}.values())
        deadline = self.clock() + self.timeout_s
        interval = POLL_MIN_S
        with self.progress.phase("waiting until running", len(pending)) as bar:
            while pending:
                listing = self._listing(sites)
                retry: list[NodeJob] = []
                for name, job in list(pending.items()):
                    node = listing.get(name)
                    if node is None:
                        continue  # not listed yet (eventual consistency): keep waiting
                    if node.state == "running":
                        running[name] = node
                        del pending[name]
                        self.store.update_node(self.deployment, name, state="running",
                                               addresses=addresses_of(node))
                        if job.group.hybrid and node.public_ips:  # boards and cloud nodes meet there
                            job.site.driver.ensure_security_group(
                                self.deployment, node_wireguard_rules(name, node.public_ips))
                        bar.advance()
                    elif node.state in BAD_STATES:
                        log.warning("%s went to %s while booting; replacing it", name, node.state)
                        self._event("node-lost", f"{name} ({node.id}) went to {node.state} while booting")
                        job.site.driver.destroy_node(node)
                        del pending[name]
                        retry.append(job)
                if retry:
                    self._create_all(retry, "replacing failed machines")
                    pending.update({j.name: j for j in retry if j.name not in self._failures})
                if not pending:
                    break
                if self.clock() + interval > deadline:
                    names = ", ".join(sorted(pending))
                    for name in pending:
                        self._failures[name] = f"not running after {self.timeout_s:g} s"
                    self._event("timeout", f"not running after {self.timeout_s:g} s: {names}")
                    break
                self.sleep(interval)
                interval = min(POLL_MAX_S, interval * 1.5)
        if self._failures:
            kind = BadInput if set(self._failures) <= self._bad_input else CloudError  # exit 2 when all are
            raise kind(failure_message(self._failures))
        return running


def failure_message(failures: Mapping[str, str]) -> str:
    """One message naming every node that could not be created, with the cloud's reason."""
    lines = [f"{name}: {reason}" for name, reason in sorted(failures.items())]
    head = f"{len(failures)} machine{'s' if len(failures) != 1 else ''} could not be created"
    return head + ":\n  " + "\n  ".join(lines)
