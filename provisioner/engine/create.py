"""``create``: execute a plan, resumably.

Order: the deployment is recorded first (with where its credentials came from, never the values,
and every cloud/region it will use), then, under the deployment's run lock: the secrets (generated
once, reused by a resumed run), the SSH key file, per cloud/region the key pair and security group,
the images, then the machines in parallel (``launch``), the front-end's data volume and public
address, adopted boards, and, unless ``configure`` is off, the SSH wait for the front-end and the
boards and the configuration step.

Resume: ``create`` with the ``name`` of a deployment that exists continues it. What exists is read
from the cloud (by tag or name prefix, ``list_nodes``), and node names are deterministic per group
index, so a node that exists is adopted, never created twice, whatever the local record says.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from provisioner.cloudinit import WorkerJoin, node_user_data, worker_join
from provisioner.clouds.base import CloudNode
from provisioner.config import Settings
from provisioner.credentials import choose_region
from provisioner.engine.handoff import with_launch_inputs
from provisioner.engine.keys import SSH_KEY_SECRET, new_private_key, public_key_of
from provisioner.engine.launch import Launch, NodeJob, Site, addresses_of, node_wireguard_rules
from provisioner.engine.progress import NullProgress, Progress
from provisioner.engine.reach import SshHost, wait_for_ssh
from provisioner.engine.sites import (
    DriverFactory,
    Drivers,
    cloud_locations,
    firewall_rules,
    prepare_sites,
    resolve_images,
    resolve_sizes,
)
from provisioner.engine.targets import (
    GroupTarget,
    group_targets,
    plan_record,
    recorded_components,
    wanted_names,
)
from provisioner.errors import CloudError, NotFound, OscarDeployError, RemoteError
from provisioner.k3sca import ensure_cluster_ca
from provisioner.plan import Plan
from provisioner.record import self_reach_rules
from provisioner.spec import ClusterSpec
from provisioner.state import Deployment, StateStore, generate_secret, write_private_file

log = logging.getLogger(__name__)

KEY_FILE = "id_ed25519"


@dataclasses.dataclass(frozen=True)
class CreateRequest:
    """Everything ``create`` needs besides the clouds; holds no credential value."""

    plan: Plan
    name: str | None = None
    templates: tuple[str, ...] = ()
    credentials: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    """Provider → ``CredentialSource.to_json()``: where the credentials came from."""
    configure: bool = True
    configure_step: Callable[..., None] | None = None
    """The configuration step (keyword arguments ``store``, ``deployment``, ``plan``, ``settings``,
    ``progress``); None: ``provisioner.configure.configure_deployment`` when that module exists."""


def recorded_plan(plan: Plan, targets: Sequence[GroupTarget]) -> dict[str, Any]:
    """The deployment record as the state file keeps it (``provisioner.record``)."""
    return plan_record(plan, targets).to_dict()


def key_path(store: StateStore, deployment_id: str) -> Path:
    return store.deployment_dir(deployment_id) / KEY_FILE


def _record(store: StateStore, request: CreateRequest, targets: Sequence[GroupTarget],
            settings: Settings) -> tuple[Deployment, bool]:
    """The deployment's record, new or (same name) the one to resume."""
    plan_doc = recorded_plan(request.plan, targets)
    locations = cloud_locations(targets)
    existing = store.find(request.name) if request.name else None
    if existing is not None and existing.status == "destroyed":
        store.forget(existing.id)  # the name is free again: a new deployment
        existing = None
    if existing is None:
        dep = store.create_deployment(
            request.name, plan=plan_doc, templates=request.templates,
            inputs=dict(request.plan.spec.inputs), credentials=request.credentials, locations=locations)
        return dep, False
    with store.lock(existing.id):
        store.set_plan(existing.id, plan_doc)
        for provider, region in locations:
            store.add_location(existing.id, provider, region)
    return store.get(existing.id), True


def _secrets(store: StateStore, dep: Deployment, plan: Plan) -> dict[str, str]:
    """Every secret of the plan: generated once (never a default) or as the user gave it."""
    given = {s.name: s.value for s in plan.spec.secrets if s.value is not None}
    values = {}
    for secret in plan.secrets:
        if secret.name in given:
            store.set_secret(dep.id, secret.name, str(given[secret.name]))
            values[secret.name] = str(given[secret.name])
        else:
            generate = new_private_key if secret.name == SSH_KEY_SECRET else generate_secret
            values[secret.name] = store.ensure_secret(dep.id, secret.name, generate)
    for name, value in recorded_components(plan.spec)[1].items():  # literal secrets of the template
        store.set_secret(dep.id, name, value)
        values[name] = value
    if SSH_KEY_SECRET in values:
        write_private_file(key_path(store, dep.id), values[SSH_KEY_SECRET])
    # the cluster's CAs, before k3s first starts, and the agent token that lets joining nodes check them
    values.update(ensure_cluster_ca(store, dep.id))
    return values


def _adopt_boards(store: StateStore, dep: Deployment, targets: Sequence[GroupTarget]) -> None:
    for group in targets:
        for board in group.boards:
            store.record_node(dep.id, group=group.name, name=board.name, provider="fleet",
                              addresses={"public": [board.address]}, state="adopted")


def _front_end_hosts(store: StateStore, dep: Deployment, targets: Sequence[GroupTarget]) -> list[SshHost]:
    """The cloud front-end(s): with the boards, the only machines ever reached over SSH."""
    hosts = []
    for group in targets:
        if group.cloud and group.role == "front-end":
            for node in store.nodes(dep.id, group.name):
                address = (node.addresses.get("public") or node.addresses.get("private") or [None])[0]
                if address:
                    hosts.append(SshHost(node.name, str(address)))
    return hosts


def wait_for_boards(driver: Any, timeout_s: float, *, interval_s: float = 2.0,
                    report_every_s: float = 30.0,
                    clock: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], None] = time.sleep, known_hosts: Path | None = None) -> None:
    """Until every board answers over SSH (the fleet driver's check: TCP, then ``ssh … true``);
    ``RemoteError`` naming the boards that never did, with why. Which boards it still waits for,
    and why, is logged every ``report_every_s``."""
    started = clock()
    deadline = started + timeout_s
    reported = started
    while True:
        failed = driver.check_reachable(known_hosts=known_hosts) if known_hosts else driver.check_reachable()
        if not failed:
            return
        detail = "; ".join(f"{u.name} ({u.reason})" for u in failed)
        if clock() + interval_s > deadline:
            raise RemoteError(f"{len(failed)} edge board(s) unreachable over SSH after {timeout_s:g} s: "
                              f"{detail}")
        if clock() - reported >= report_every_s:
            reported = clock()
            log.info("still waiting for SSH on %s: %.0f s of %g s", detail, reported - started, timeout_s)
        sleep(interval_s)


def _wait_reachable(store: StateStore, dep: Deployment, targets: Sequence[GroupTarget], drivers: Drivers,
                    settings: Settings, progress: Progress) -> None:
    """The front-end and the boards answer over SSH (cloud workers never are asked)."""
    hosts = _front_end_hosts(store, dep, targets)
    boards = [b for t in targets for b in t.boards]
    timeout = settings.provisioner.ssh_timeout_s
    names = [h.name for h in hosts] + [b.name for b in boards]
    if names:
        log.info("waiting for SSH on %s (up to %g s)", ", ".join(names), timeout)
    started = time.monotonic()

    def ready(host: SshHost) -> None:
        log.info("%s answers over SSH (%.0f s)", host.name, time.monotonic() - started)
        bar.advance()

    def waiting(host: SshHost, seconds: float) -> None:
        log.info("still waiting for SSH on %s (%s:%d): %.0f s of %g s", host.name, host.address, host.port,
                 seconds, timeout)

    with progress.phase(f"waiting for SSH on {', '.join(names)}" if names else "waiting for SSH",
                        len(hosts) + len(boards)) as bar:
        wait_for_ssh(hosts, timeout, on_ready=ready, on_waiting=waiting)
        if boards:
            fleet = drivers("fleet", None)
            if hasattr(fleet, "check_reachable"):
                # the deployment's own known_hosts, as Ansible and `ssh ID NODE` use afterwards
                wait_for_boards(fleet, timeout, known_hosts=store.deployment_dir(dep.id) / "known_hosts")
            else:
                wait_for_ssh([SshHost(b.name, b.address, b.port) for b in boards], timeout,
                             on_waiting=waiting)
            log.info("every edge board answers over SSH (%.0f s)", time.monotonic() - started)
            bar.advance(len(boards))


def _configure_step() -> Any:
    """``provisioner.configure.configure_deployment`` when the configuration step exists."""
    if importlib.util.find_spec("provisioner.configure") is None:
        return None
    module = importlib.import_module("provisioner.configure")
    return getattr(module, "configure_deployment", None)


class _Creator:
    """One ``create`` run: the deployment's record, drivers and progress."""

    def __init__(self, store: StateStore, dep: Deployment, targets: Sequence[GroupTarget],
                 drivers: Drivers, settings: Settings, progress: Progress, spec: ClusterSpec | None = None
                 ) -> None:
        self.store = store
        self.dep = dep
        self.targets = targets
        self.drivers = drivers
        self.settings = settings
        self.progress = progress
        self.spec = spec
        self.volumes: dict[str, str] = {}

    def machines(self, public_key: str) -> None:
        """Key pairs, security groups, images, sizes; then the front-end, then (told by cloud-init
        where the front-end is) the workers: each stage's missing machines launched in parallel."""
        cloud = [t for t in self.targets if t.cloud]
        if not cloud:
            return
        rules = firewall_rules(self.store.record(self.dep.id).security_rules)
        locations = cloud_locations(cloud)
        for location in locations:  # made here: the factory need not be thread-safe
            self.drivers(*location)
        with self.progress.phase("preparing key pairs, security groups, images, sizes", 4) as bar, \
                ThreadPoolExecutor(max_workers=4) as pool:  # none depends on another: side by side
            def step(fn: Callable[..., Any], *args: Any) -> Any:
                result = fn(*args)
                bar.advance()
                return result

            pending_sites = pool.submit(step, prepare_sites, self.store, self.dep.id, locations, self.drivers,
                                        public_key, rules)
            pending_images = pool.submit(step, resolve_images, cloud, self.drivers)
            pending_sizes = pool.submit(step, resolve_sizes, cloud, self.drivers)
            pending_existing = pool.submit(step, self._existing, locations)
            sites, images, sizes = pending_sites.result(), pending_images.result(), pending_sizes.result()
            existing = pending_existing.result()
        if existing:
            log.info("resuming: %d machine(s) of the deployment already exist", len(existing))
            self.store.add_event(self.dep.id, "resume", f"{len(existing)} machine(s) found in the cloud")
        fronts = [g for g in cloud if g.role == "front-end"]
        workers = [g for g in cloud if g.role != "front-end"]
        running = self._stage(fronts, sites, images, sizes, existing, with_user_data=False) if fronts else {}
        # workers only need the front-end's private address (recorded at its create call), so its
        # volume and public address are seen to while they launch
        with ThreadPoolExecutor(max_workers=1) as pool:
            finishing = pool.submit(self._finish_front_ends, sites, running)
            if workers:
                self._stage(workers, sites, images, sizes, existing, with_user_data=True)
            finishing.result()

    def _existing(self, locations: Sequence[tuple[str, str | None]]) -> dict[str, CloudNode]:
        """What the cloud already has of the deployment, by node name (resume adopts these); on EC2,
        those an older version launched allowing IMDSv1 are made to require IMDSv2 first."""
        found: dict[str, CloudNode] = {}
        for location in locations:
            driver = self.drivers(*location)
            nodes = driver.list_nodes(self.dep.id)
            if nodes and hasattr(driver, "require_imdsv2"):  # before anything uses them (EC2 only)
                driver.require_imdsv2(self.dep.id, [n.id for n in nodes])
            for node in nodes:
                found.setdefault(node.name, node)
        return found

    def _join(self, group: GroupTarget) -> WorkerJoin | None:
        """How the group's workers join the front-end's k3s (``provisioner.cloudinit``): read once per
        group, rendered per machine (each registers under its own name)."""
        try:
            return worker_join(self.store, self.store.get(self.dep.id), group.name, spec=self.spec)
        except NotFound as error:
            log.warning("group %s: workers boot without cloud-init user data: %s", group.name, error)
            return None

    def _stage(self, groups: Sequence[GroupTarget], sites: Mapping[tuple[str, str | None], Site],
               images: Mapping[str, str], sizes: Mapping[str, tuple[str, ...]],
               existing: Mapping[str, CloudNode], *, with_user_data: bool) -> dict[str, CloudNode]:
        """Launch the groups' missing machines, wait for the booting ones; every machine by name."""
        jobs: list[NodeJob] = []
        booting: list[tuple[NodeJob, CloudNode]] = []
        running: dict[str, CloudNode] = {}
        for group in groups:
            site = sites[(group.provider, group.region)]
            join = self._join(group) if with_user_data and group.count else None
            for name in wanted_names(self.dep.id, group):
                node = existing.get(name)
                user_data = node_user_data(join, name) if join is not None and node is None else None
                job = NodeJob(group, name, images[group.name], site, sizes[group.name], user_data)
                if node is not None:  # resume: the cloud has it; adopt it, never a second copy
                    self.store.record_node(self.dep.id, group=group.name, name=name, provider=group.provider,
                                           region=group.region, cloud_id=node.id,
                                           addresses=addresses_of(node), state=node.state, size=node.size,
                                           zone=node.zone)
                    if node.state == "running":
                        running[name] = node
                    else:
                        booting.append((job, node))
                    continue
                self.store.record_node(self.dep.id, group=group.name, name=name, provider=group.provider,
                                       region=group.region, state="creating")
                jobs.append(job)
        launch = Launch(self.store, self.dep.id, jobs, waiting=booting,
                        parallel=self.settings.provisioner.parallel_creates,
                        timeout_s=self.settings.provisioner.create_timeout_s, progress=self.progress,
                        after_create=self._after_create)
        return {**running, **launch.run()}

    def _after_create(self, job: NodeJob, node: CloudNode) -> None:
        """Right after the front-end's create call: its data volume, in the zone it landed in."""
        if job.group.volume_gib and job.group.role == "front-end":
            volume = job.site.driver.ensure_volume(self.dep.id, job.group.name, job.group.volume_gib,
                                                   node.zone)
            self.volumes[job.name] = volume
            self.store.add_event(self.dep.id, "volume", f"{job.group.name} data volume {volume} "
                                 f"({job.group.volume_gib} GiB)")

    def _finish_front_ends(self, sites: Mapping[tuple[str, str | None], Site],
                           nodes: Mapping[str, CloudNode]) -> None:
        """Attach the data volume and give the front-end its public address."""
        for group in self.targets:
            if not group.cloud or group.role != "front-end":
                continue
            driver = sites[(group.provider, group.region)].driver
            for name in wanted_names(self.dep.id, group):
                node = nodes.get(name)
                if node is None:
                    continue
                if group.volume_gib:
                    volume = self.volumes.get(name) or driver.ensure_volume(
                        self.dep.id, group.name, group.volume_gib, node.zone)
                    _attach(driver, volume, node)
                    self.store.add_event(self.dep.id, "volume-attached", f"{volume} attached to {name}")
                address = driver.ensure_public_address(self.dep.id, node)
                addresses = addresses_of(node)
                if address and address not in addresses["public"]:
                    addresses["public"].insert(0, address)
                self.store.update_node(self.dep.id, name, addresses=addresses)
                if group.hybrid and address:  # a floating IP given only now (OpenStack)
                    driver.ensure_security_group(self.dep.id, node_wireguard_rules(name, [address]))
                self._admit_own_address(driver, address)

    def _admit_own_address(self, driver: Any, address: str | None) -> None:
        """MinIO's NodePorts from the front-end's own public address too (``self_reach_rules``),
        in the security group and in the record."""
        record = self.store.record(self.dep.id)
        extra = self_reach_rules(record.security_rules, address)
        if not extra:
            return
        rules = (*record.security_rules, *extra)
        driver.ensure_security_group(self.dep.id, firewall_rules(rules))
        self.store.set_plan(self.dep.id, record.with_security(rules, record.admin_cidr).to_dict())


def _record_launch_inputs(store: StateStore, deployment_id: str) -> None:
    """Write what a new worker needs and ``create`` only now knows into the record's launch specs:
    the key pair's public key and the k3s server's URL (the front-end's private address)."""
    record = store.record(deployment_id)
    updated = with_launch_inputs(store, deployment_id, record)
    if updated != record:
        store.set_plan(deployment_id, updated.to_dict())


def _attach(driver: Any, volume: str, node: CloudNode) -> None:
    """Attach, accepting a volume a previous (interrupted) run already attached."""
    try:
        driver.attach_volume(volume, node)
    except CloudError as error:
        text = str(error).lower()
        if "in-use" in text or "volumeinuse" in text or "already attached" in text:
            log.info("volume %s was already attached to %s", volume, node.name)
            return
        raise


def create(store: StateStore, request: CreateRequest, driver_factory: DriverFactory, settings: Settings,
           progress: Progress | None = None) -> Deployment:
    """Build (or resume) the deployment ``request`` describes; return its record.

    Raises ``StateError`` when another run holds the deployment, ``CloudError`` (exit 1) when a
    machine cannot be created (what was created stays recorded), ``RemoteError`` when the
    front-end or a board never answers over SSH.
    """
    progress = progress or NullProgress()
    cache_dir = Path(settings.general.cache_dir).expanduser()
    targets = group_targets(request.plan, cache_dir)
    dep, resumed = _record(store, request, targets, settings)
    with store.lock(dep.id):
        store.set_status(dep.id, "creating")
        store.add_event(dep.id, "create", "resumed" if resumed else "started")
        try:
            secrets = _secrets(store, dep, request.plan)
            public_key = public_key_of(secrets[SSH_KEY_SECRET], f"oscar-deploy-{dep.id}") \
                if SSH_KEY_SECRET in secrets else ""
            drivers = Drivers(driver_factory)
            _adopt_boards(store, dep, targets)  # first: an edge front-end's address is a board's
            creator = _Creator(store, dep, targets, drivers, settings, progress, request.plan.spec)
            creator.machines(public_key)
            _record_launch_inputs(store, dep.id)
            if request.configure:
                _wait_reachable(store, dep, targets, drivers, settings, progress)
                step = request.configure_step or _configure_step()
                if step is not None:
                    step(store=store, deployment=store.get(dep.id), plan=request.plan, settings=settings,
                         progress=progress)
        except BaseException as error:
            store.set_status(dep.id, "failed")
            reason = str(error) if isinstance(error, OscarDeployError) else type(error).__name__
            store.add_event(dep.id, "create-failed", reason)
            raise
        store.set_status(dep.id, "created")
        store.add_event(dep.id, "create", "done")
    return store.get(dep.id)


def with_credential_regions(spec: ClusterSpec, regions: Mapping[str, str | None],
                            explicit_inputs: Mapping[str, Any]) -> ClusterSpec:
    """The region order for every cloud group: an input given with ``-i`` (or ``--inputs``)
    wins, then the credential's region (``regions``: provider → region), then the template's."""
    given = {str(v) for k, v in explicit_inputs.items() if "region" in k.lower()}
    groups = []
    for group in spec.groups:
        if group.provider in regions and group.region not in given:
            region = choose_region(None, regions[group.provider], group.region)
            group = dataclasses.replace(group, region=region)
        groups.append(group)
    return dataclasses.replace(spec, groups=tuple(groups))
