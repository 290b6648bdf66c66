"""The engine's decisions with a recording fake driver (Karpenter's fake cloud provider pattern):
capacity fallback order, replacing a machine that dies while booting, failing with the cloud's
message, resume without duplicates, scale-in order, outputs. The real drivers against the cloud
emulators are in test_engine_clouds.py and test_cli_lifecycle.py.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from provisioner.clouds.base import CloudNode, CloudResource, FirewallRule, NodeRequest, belongs_to
from provisioner.config import GeneralSettings, ProvisionerSettings, Settings
from provisioner.engine import CreateRequest, create, destroy, scale, with_credential_regions
from provisioner.engine.targets import names_to_add, node_index, node_name, pick_removals
from provisioner.engine.views import fill, outputs
from provisioner.errors import BadInput, CapacityError, CloudError, StateError, Throttled
from provisioner.plan import MASK, make_plan
from provisioner.resources import tosca_dir
from provisioner.state import StateStore
from provisioner.template import load_cluster_spec

AWS_TEMPLATE = tosca_dir() / "templates" / "oscar-aws.yaml"


class FakeDriver:
    """An in-memory cloud that records every create call and fails when told to."""

    provider = "aws"

    def __init__(self, region: str = "us-east-1") -> None:
        self.region = region
        self.nodes: dict[str, CloudNode] = {}
        self.create_calls: list[NodeRequest] = []
        self.no_capacity: set[tuple[str, str | None]] = set()
        """(size, zone) pairs that answer with a capacity error; zone None = the default zone."""
        self.next_create_errors: dict[str, list[Exception]] = {}
        """Group → errors its next create calls raise."""
        self.die_first_of_group: str | None = None
        """The next machine of this group goes to 'unknown' (Nova's ERROR) instead of running."""
        self.zones = ["us-east-1a", "us-east-1b"]
        self.volumes: dict[str, str] = {}
        self.attached: list[tuple[str, str]] = []
        self.rules: list[FirewallRule] = []
        """Every rule ``ensure_security_group`` was asked for, in order."""
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    offered = ("t3.medium", "t3a.medium", "t2.medium", "m5.large")
    """What ``sizes_that_fit`` answers (the plan's t3a.medium deliberately not first)."""

    def list_zones(self) -> list[str]:
        return list(self.zones)

    def sizes_that_fit(self, cpus: int, memory_mib: int, arch: str = "amd64", disk_gib: int | None = None,
                       explicit: str | None = None) -> list[str]:
        return [explicit] if explicit else list(self.offered)

    def ensure_key_pair(self, deployment: str, public_key: str) -> str:
        assert public_key.startswith("ssh-ed25519 ")
        return f"oscar-deploy-{deployment}-key"

    def ensure_security_group(self, deployment: str, rules: Sequence[FirewallRule]) -> str:
        self.rules.extend(r for r in rules if r not in self.rules)
        return "sg-1"

    def resolve_image(self, distribution: str, version: str, arch: str, explicit: str | None) -> str:
        return explicit or f"ami-{distribution}-{version}-{arch}"

    def create_node(self, request: NodeRequest) -> CloudNode:
        with self._lock:
            self.create_calls.append(request)
            if self.next_create_errors.get(request.group):
                raise self.next_create_errors[request.group].pop(0)
            if (request.size, request.zone) in self.no_capacity:
                raise CapacityError(f"EC2 RunInstances: InsufficientInstanceCapacity: no {request.size}")
            dies = request.group == self.die_first_of_group
            if dies:
                self.die_first_of_group = None
            node = CloudNode(id=f"i-{next(self._ids)}", name=request.name, deployment=request.deployment,
                             group=request.group, state="pending", size=request.size, zone=request.zone,
                             private_ips=("10.0.0.9",),
                             public_ips=("198.51.100.7",) if request.public_ip else (),
                             created_at=float(len(self.create_calls)))
            self.nodes[node.id] = dataclasses.replace(node, state="unknown" if dies else "running")
            return node

    def list_nodes(self, deployment: str) -> list[CloudNode]:
        with self._lock:
            return [n for n in self.nodes.values() if belongs_to(deployment, n.name, None)]

    def destroy_node(self, node: CloudNode) -> None:
        with self._lock:
            self.nodes.pop(node.id, None)

    def ensure_volume(self, deployment: str, group: str, size_gib: int, zone: str | None) -> str:
        return self.volumes.setdefault(group, f"vol-{group}")

    def attach_volume(self, volume_id: str, node: CloudNode) -> None:
        self.attached.append((volume_id, node.id))

    def ensure_public_address(self, deployment: str, node: CloudNode) -> str:
        return "198.51.100.7"

    def sweep(self, deployment: str, *, keep_data: bool = False) -> list[CloudResource]:
        gone = [CloudResource("instance", n.id, n.name) for n in self.list_nodes(deployment)]
        for resource in gone:
            self.nodes.pop(resource.id)
        return gone


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(general=GeneralSettings(cache_dir=str(tmp_path / "cache")),
                    provisioner=ProvisionerSettings(create_timeout_s=5, ssh_timeout_s=1))


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    with StateStore.open(tmp_path / "state" / "state.db") as s:
        yield s


def aws_plan(settings: Settings, **inputs: Any) -> Any:
    values = {"admin_cidr": "10.0.0.0/8", **{k: str(v) for k, v in inputs.items()}}
    spec = load_cluster_spec([AWS_TEMPLATE], values, import_paths=[],
                             cache_dir=Path(settings.general.cache_dir))
    return make_plan(spec, settings)


def run(store: StateStore, settings: Settings, driver: FakeDriver, name: str = "c1", **inputs: Any) -> Any:
    request = CreateRequest(aws_plan(settings, **inputs), name=name, configure=False)
    return create(store, request, lambda _p, _r: driver, settings)


def test_create_records_and_builds_every_node(store: StateStore, settings: Settings) -> None:
    driver = FakeDriver()
    dep = run(store, settings, driver, wn_num=3)
    assert dep.status == "created"
    names = sorted(n.name for n in driver.list_nodes(dep.id))
    assert names == sorted([node_name(dep.id, "front", 1)] + [node_name(dep.id, "wn", i) for i in (1, 2, 3)])
    assert {n.state for n in store.nodes(dep.id)} == {"running"}
    front = next(r for r in driver.create_calls if r.group == "front")
    # EC2 workers get an address to reach the internet (k3s, images) unless their subnet routes
    # through a NAT (the driver here reports none)
    assert front.public_ip and all(r.public_ip for r in driver.create_calls if r.group == "wn")
    assert driver.attached == [("vol-front", next(n.id for n in driver.nodes.values() if n.group == "front"))]
    # secrets generated, never defaults; the private key file only its owner reads
    secrets = store.secrets(dep.id)
    assert {"k3s_token", "ssh_private_key", "oscar_password", "minio_password"} <= set(secrets)
    assert len(secrets["k3s_token"]) == 64
    key_file = store.deployment_dir(dep.id) / "id_ed25519"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key_file.read_text() == secrets["ssh_private_key"]


def test_capacity_falls_back_to_next_cheapest_size_then_next_zone(store: StateStore,
                                                                  settings: Settings) -> None:
    driver = FakeDriver()
    plan = aws_plan(settings, wn_num=1)
    assert plan.groups[1].size.name == "t3a.medium"
    sizes = ["t3a.medium", "t3.medium", "t2.medium"]  # the plan's choice, then the cloud's order
    # no capacity for any size in the default zone, nor for the first size in zone a
    driver.no_capacity = {(s, None) for s in sizes} | {(sizes[0], "us-east-1a")}
    dep = create(store, CreateRequest(plan, name="c1", configure=False), lambda _p, _r: driver, settings)
    tried = [(r.size, r.zone) for r in driver.create_calls if r.group == "wn"]
    assert tried == [(sizes[0], None), (sizes[1], None), (sizes[2], None), (sizes[0], "us-east-1a"),
                     (sizes[1], "us-east-1a")]
    assert dep.status == "created"
    assert [e.kind for e in store.events(dep.id)].count("capacity") >= 4


def test_fallback_sizes_fit_and_are_priced_in_order(settings: Settings) -> None:
    from provisioner import sizes as catalogue
    from provisioner.engine.targets import size_candidates

    group = aws_plan(settings, wn_cpus=4, wn_mem="8 GiB").groups[1]
    names = size_candidates(group, Path(settings.general.cache_dir))
    known = {s.name: s for s in catalogue.region_sizes("us-east-1")}
    prices = [known[n].price_per_hour for n in names]
    assert prices == sorted(prices)
    assert all(known[n].cpus >= 4 and known[n].memory_mib >= 8192 and known[n].arch == "amd64" for n in names)
    named = aws_plan(settings, wn_instance_type="m5.large").groups[1]
    assert size_candidates(named) == ("m5.large",)  # a size the template names is never swapped


def test_a_machine_that_dies_while_booting_is_replaced_not_duplicated(store: StateStore,
                                                                     settings: Settings) -> None:
    driver = FakeDriver()
    driver.die_first_of_group = "wn"
    dep = run(store, settings, driver, wn_num=2)
    live = driver.list_nodes(dep.id)
    assert len(live) == 3 and all(n.state == "running" for n in live)
    assert len({n.name for n in live}) == 3  # the dead one was destroyed before its name was reused
    assert len(driver.create_calls) == 4
    assert "node-lost" in [e.kind for e in store.events(dep.id)]


def test_a_node_that_cannot_be_created_fails_with_the_clouds_message(store: StateStore,
                                                                     settings: Settings) -> None:
    driver = FakeDriver()
    driver.next_create_errors = {"wn": [CloudError("EC2 RunInstances: InvalidParameterValue: bad subnet")]}
    with pytest.raises(CloudError, match="InvalidParameterValue: bad subnet"):
        run(store, settings, driver, wn_num=2)
    dep = store.get("c1")
    assert dep.status == "failed"
    # what was created stays recorded (with its cloud id), so destroy or a re-run removes it
    recorded = {n.name: n for n in store.nodes(dep.id)}
    assert len(recorded) == 3
    assert sum(1 for n in recorded.values() if n.cloud_id) == 2
    assert [n.state for n in recorded.values()].count("failed") == 1
    # a re-run creates only the missing node
    calls = len(driver.create_calls)
    assert run(store, settings, driver, wn_num=2).status == "created"
    assert len(driver.create_calls) == calls + 1
    assert len(driver.list_nodes(dep.id)) == 3


def test_throttling_that_outlasts_the_drivers_retries_fails_the_node(store: StateStore,
                                                                    settings: Settings) -> None:
    driver = FakeDriver()
    driver.next_create_errors = {"front": [Throttled("EC2 RunInstances: RequestLimitExceeded: slow down")]}
    with pytest.raises(CloudError, match="RequestLimitExceeded"):
        run(store, settings, driver, wn_num=0)


def test_resume_adopts_what_exists_and_never_creates_a_second_copy(store: StateStore,
                                                                   settings: Settings) -> None:
    driver = FakeDriver()
    dep = run(store, settings, driver, wn_num=3)
    before = {n.name: n.id for n in driver.list_nodes(dep.id)}
    store.remove_node(dep.id, node_name(dep.id, "wn", 2))  # the local record may even lose nodes
    again = run(store, settings, driver, wn_num=3)
    assert again.id == dep.id
    assert {n.name: n.id for n in driver.list_nodes(dep.id)} == before
    assert len(driver.create_calls) == 4
    assert len(store.nodes(dep.id)) == 4
    assert store.secrets(dep.id) == store.secrets(again.id)


def test_a_second_run_on_a_locked_deployment_is_refused(store: StateStore, settings: Settings) -> None:
    import subprocess
    import sys
    import textwrap

    driver = FakeDriver()
    dep = run(store, settings, driver, wn_num=0)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from provisioner.state import StateStore
        with StateStore.open({str(store.path)!r}) as s, s.lock({dep.id!r}):
            print("locked", flush=True); time.sleep(30)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(StateError, match=f"pid {holder.pid}"):
            run(store, settings, driver, wn_num=0)
    finally:
        holder.kill()
        holder.wait()


def test_scale_out_and_in_newest_idle_first(store: StateStore, settings: Settings) -> None:
    driver = FakeDriver()
    dep = run(store, settings, driver, wn_num=1)
    grown = scale(store, dep.id, "wn", 4, lambda _p, _r: driver, settings)
    assert grown.added == tuple(node_name(dep.id, "wn", i) for i in (2, 3, 4))
    busy = [node_name(dep.id, "wn", 4)]
    shrunk = scale(store, dep.id, "wn", 2, lambda _p, _r: driver, settings, busy=busy)
    assert shrunk.removed == (node_name(dep.id, "wn", 3), node_name(dep.id, "wn", 2))
    left = sorted(n.name for n in driver.list_nodes(dep.id) if n.group == "wn")
    assert left == sorted([node_name(dep.id, "wn", 1), node_name(dep.id, "wn", 4)])
    assert next(g for g in store.get(dep.id).plan["groups"] if g["name"] == "wn")["count"] == 2
    # refill takes the lowest free index
    refill = scale(store, dep.id, "wn", 3, lambda _p, _r: driver, settings)
    assert refill.added == (node_name(dep.id, "wn", 2),)


@pytest.mark.parametrize(("group", "count", "message"), [
    ("nope", 1, "no group 'nope'"), ("front", 1, "only workers scale"), ("wn", 9, "takes 0 to 4 nodes")])
def test_scale_refuses_bad_input_before_any_cloud_call(store: StateStore, settings: Settings, group: str,
                                                       count: int, message: str) -> None:
    driver = FakeDriver()
    dep = run(store, settings, driver, wn_num=1)
    calls = len(driver.create_calls)
    with pytest.raises(BadInput, match=message):
        scale(store, dep.id, group, count, lambda _p, _r: driver, settings)
    assert len(driver.create_calls) == calls


def test_destroy_sweeps_and_is_idempotent(store: StateStore, settings: Settings) -> None:
    driver = FakeDriver()
    dep = run(store, settings, driver, wn_num=2)
    removed = destroy(store, dep.id, lambda _p, _r: driver)
    assert len(removed) == 3 and not driver.list_nodes(dep.id)
    assert store.get(dep.id).status == "destroyed" and store.nodes(dep.id) == []
    assert destroy(store, dep.id, lambda _p, _r: driver) == []


def test_no_size_that_fits_fails_before_any_machine(store: StateStore, settings: Settings) -> None:
    driver = FakeDriver()
    driver.offered = ()  # an OpenStack project whose flavors are all too small
    template = tosca_dir() / "templates" / "oscar-openstack.yaml"
    spec = load_cluster_spec([template], {"admin_cidr": "10.0.0.0/8"}, import_paths=[],
                             cache_dir=Path(settings.general.cache_dir))
    request = CreateRequest(make_plan(spec, settings), name="os", configure=False)
    with pytest.raises(CloudError, match="no size offers group front's 2 CPUs, 4096 MiB"):
        create(store, request, lambda _p, _r: driver, settings)
    assert driver.create_calls == []


def test_sizes_to_try() -> None:
    from provisioner.engine.sites import ordered_sizes

    live = ["t3.medium", "t3a.medium", "t2.medium", "m5.large"]
    assert ordered_sizes(["t3a.medium"], live, explicit=False) == ("t3a.medium", "t3.medium", "t2.medium")
    assert ordered_sizes(["m5.large"], ["m5.large"], explicit=True) == ("m5.large",)
    flavors = ["m1.medium", "m1.large"]
    assert ordered_sizes(["flavor≥2cpu/4096MiB"], flavors, explicit=False) == ("m1.medium", "m1.large")
    assert ordered_sizes(["c9.huge"], live, explicit=False)[0] == "t3.medium"  # not offered: skipped


def test_node_names_indices_and_removal_order() -> None:
    assert node_name("1a2b3c4d", "wn", 12) == "oscar-deploy-1a2b3c4d-wn-12"
    assert node_index("1a2b3c4d", "wn", "oscar-deploy-1a2b3c4d-wn-12") == 12
    assert node_index("1a2b3c4d", "wn", "oscar-deploy-1a2b3c4d-wnx-1") is None
    assert node_index("1a2b3c4d", "wn", "oscar-deploy-1a2b3c4d-wn-data") is None
    existing = [node_name("d", "wn", i) for i in (1, 3)]
    assert names_to_add("d", "wn", existing, 4) == [node_name("d", "wn", 2), node_name("d", "wn", 4)]

    def node(i: int, t: float) -> CloudNode:
        return CloudNode(f"i-{i}", node_name("d", "wn", i), "d", "wn", "running", created_at=t)

    nodes = [node(1, 10), node(2, 30), node(3, 20)]
    assert [n.name for n in pick_removals(nodes, 1)] == [node_name("d", "wn", 2), node_name("d", "wn", 3)]
    assert [n.id for n in pick_removals(nodes, 2, busy=[node_name("d", "wn", 2)])] == ["i-3"]
    assert pick_removals(nodes, 5) == []


def test_outputs_fill_placeholders_and_mask_secrets(store: StateStore, settings: Settings) -> None:
    driver = FakeDriver()
    dep = run(store, settings, driver, wn_num=1)
    nodes = store.nodes(dep.id)
    secrets = store.secrets(dep.id)
    shown = {o["name"]: o["value"] for o in outputs(dep, nodes, secrets)}
    assert shown["oscar_endpoint"] == "https://198.51.100.7/"
    assert fill("{wn.private_address} {secret.k3s_token} {nope.x}", nodes, secrets) == \
        f"10.0.0.9 {secrets['k3s_token']} {{nope.x}}"
    secret_dep = dataclasses.replace(dep, plan={**dep.plan, "outputs": [
        {"name": "pw", "value": "{secret.oscar_password}", "description": "", "secret": True}]})
    assert outputs(secret_dep, nodes, secrets)[0]["value"] == MASK
    assert outputs(secret_dep, nodes, secrets, show_secrets=True)[0]["value"] == secrets["oscar_password"]


def test_region_order_input_then_credential_then_template(settings: Settings) -> None:
    spec = load_cluster_spec([AWS_TEMPLATE], {}, import_paths=[], cache_dir=Path(settings.general.cache_dir))
    assert {g.region for g in with_credential_regions(spec, {"aws": "eu-west-1"}, {}).groups} == {"eu-west-1"}
    assert {g.region for g in with_credential_regions(spec, {"aws": None}, {}).groups} == {"us-east-1"}
    given = load_cluster_spec([AWS_TEMPLATE], {"region": "eu-central-1"}, import_paths=[],
                              cache_dir=Path(settings.general.cache_dir))
    regions = with_credential_regions(given, {"aws": "eu-west-1"}, {"region": "eu-central-1"})
    assert {g.region for g in regions.groups} == {"eu-central-1"}


def test_progress_bars_only_on_a_terminal_and_never_when_quiet() -> None:
    import io

    from provisioner.engine.progress import LineProgress, NullProgress, RichProgress, make_progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(make_progress(io.StringIO(), quiet=False), LineProgress)  # a pipe, a CI log
    assert isinstance(make_progress(io.StringIO(), quiet=True), NullProgress)
    assert isinstance(make_progress(Tty(), quiet=True), NullProgress)
    ticks = iter([0.0, 41.2])
    pipe = io.StringIO()
    lines = LineProgress(pipe, clock=lambda: next(ticks))
    with lines.phase("creating machines", 3) as bar:
        for _ in range(3):
            bar.advance()
    assert pipe.getvalue().splitlines() == ["creating machines ...", "creating machines: 3/3 done in 41 s"]
    stream = Tty()
    progress = make_progress(stream, quiet=False)
    assert isinstance(progress, RichProgress)
    with progress.phase("creating machines", 3) as bar:
        for _ in range(3):
            bar.advance()
    assert "creating machines" in stream.getvalue() and "3/3" in stream.getvalue()


def test_hybrid_deployment_adopts_boards_and_workers_join_the_front_end(store: StateStore,
                                                                        settings: Settings) -> None:
    driver = FakeDriver()
    spec = load_cluster_spec([tosca_dir() / "templates" / "oscar-hybrid.yaml"], {"admin_cidr": "10.0.0.0/8"},
                             import_paths=[], cache_dir=Path(settings.general.cache_dir))
    providers: list[str] = []

    def factory(provider: str, _region: str | None) -> FakeDriver:
        providers.append(provider)
        return driver

    request = CreateRequest(make_plan(spec, settings), name="hy", configure=False)
    dep = create(store, request, factory, settings)
    nodes = {n.name: n for n in store.nodes(dep.id)}
    assert {n.state for n in nodes.values() if n.provider == "fleet"} == {"adopted"}
    assert sorted(n.group for n in nodes.values()) == ["front", "pis", "pis", "pis"]
    assert providers == ["aws"]  # boards are recorded from the plan; no cloud is asked about them
    assert [r.group for r in driver.create_calls] == ["front"]
    assert driver.create_calls[0].user_data is None  # the front-end is configured over SSH instead
    scale(store, dep.id, "wn", 1, factory, settings)
    joined = driver.create_calls[-1]
    assert joined.group == "wn" and joined.user_data is not None
    assert "https://10.0.0.9:6443" in joined.user_data  # the front-end's private address
    # the agent token in k3s's secure form, never the server token
    assert store.secret(dep.id, "k3s_agent_token") in joined.user_data
    assert store.secret(dep.id, "k3s_token") not in joined.user_data
    # Boards and cloud nodes meet over WireGuard at public addresses: the worker has one and reports
    # it to k3s, and the port opens to the boards and to each cloud node, never to everyone.
    assert joined.public_ip and "meta-data/public-ipv4" in joined.user_data
    wireguard = {(r.protocol, r.from_port, r.source) for r in driver.rules if r.from_port == 51820}
    assert wireguard == {("udp", 51820, f"192.0.2.{n}/32") for n in (11, 12, 13)} | {
        ("udp", 51820, "198.51.100.7/32")}
