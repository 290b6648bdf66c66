"""The engine with the real drivers (stock libcloud) against the cloud emulators.

What an operator would check in the console: every machine of the deployment is there, named and
tagged, exactly once; after ``destroy`` nothing of it is left (instances, security groups, key
pairs, volumes, addresses) while resources the tool did not create survive. The fault runs repeat
that with a fifth of the mutating calls refused (throttling, 5xx, capacity).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from provisioner.clouds.base import TAG_DEPLOYMENT, TAG_GROUP, resource_prefix
from provisioner.clouds.ec2 import Ec2Driver
from provisioner.config import GeneralSettings, ProvisionerSettings, Settings
from provisioner.credentials import AwsCredentials, CredentialSource
from provisioner.engine import CreateRequest, create, destroy, scale
from provisioner.engine.targets import node_name
from provisioner.errors import BadInput
from provisioner.k3sca import agent_token
from provisioner.plan import make_plan
from provisioner.resources import tosca_dir
from provisioner.state import StateStore
from provisioner.template import load_cluster_spec
from tests.test_cloudinit import cloud_config_errors, k3s_config

REGION = "eu-west-1"
KEY_ID = "AKIDENGINETEST000001"
SECRET = "engine-s3cret-Qx7Lp2-never-logged"
AWS_TEMPLATE = tosca_dir() / "templates" / "oscar-aws.yaml"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(general=GeneralSettings(cache_dir=str(tmp_path / "cache")),
                    provisioner=ProvisionerSettings(api_retries=10, retry_base_s=0.01, retry_max_s=0.05,
                                                    create_timeout_s=30, ssh_timeout_s=2))


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with StateStore.open(tmp_path / "state" / "state.db") as s:
        yield s


@pytest.fixture
def factory(ec2_emulator: Any, settings: Settings) -> Any:
    credentials = AwsCredentials(KEY_ID, SECRET, CredentialSource("environment"), region=REGION,
                                 endpoint_url=ec2_emulator.endpoint)
    return lambda _provider, region: Ec2Driver(credentials, region, settings.provisioner)


@pytest.fixture
def boto(ec2_emulator: Any) -> Any:
    import boto3

    return boto3.client("ec2", endpoint_url=ec2_emulator.endpoint, region_name=REGION,
                        aws_access_key_id="AKIDOTHERUSER", aws_secret_access_key="x")


def user_data_via_api(boto: Any, instance_id: str) -> str:
    """An instance's user data as the EC2 API gives it back (``DescribeInstanceAttribute userData``)."""
    answer = boto.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    return base64.b64decode((answer.get("UserData") or {}).get("Value") or "").decode()


def assert_joins_under_its_name(boto: Any, instance: dict[str, Any]) -> None:
    """The worker's user data is valid cloud-config whose k3s config names the node after the
    machine's cloud name, the name the engine, ``scale`` and the daemon match its Node on."""
    text = user_data_via_api(boto, instance["id"])
    assert cloud_config_errors(text) == []
    assert k3s_config(text)["node-name"] == instance["tags"]["Name"]


def aws_request(settings: Settings, name: str, **inputs: Any) -> CreateRequest:
    values = {"admin_cidr": "10.0.0.0/8", "region": REGION, **{k: str(v) for k, v in inputs.items()}}
    spec = load_cluster_spec([AWS_TEMPLATE], values, import_paths=[],
                             cache_dir=Path(settings.general.cache_dir))
    return CreateRequest(make_plan(spec, settings), name=name, configure=False,
                         credentials={"aws": {"kind": "environment", "path": None, "entry": None}})


def live(inventory: dict[str, list[dict[str, Any]]], deployment: str) -> dict[str, list[dict[str, Any]]]:
    """The deployment's resources that still exist, by kind (terminated instances do not count)."""
    prefix = resource_prefix(deployment)

    def ours(item: dict[str, Any]) -> bool:
        tags = item.get("tags") or {}
        name = tags.get("Name") or item.get("name") or ""
        return tags.get(TAG_DEPLOYMENT) == deployment or name.startswith(prefix)

    out = {kind: [i for i in items if ours(i)] for kind, items in inventory.items()}
    out["instances"] = [i for i in out["instances"] if i["state"] != "terminated"]
    return out


def others(boto: Any) -> dict[str, str]:
    """Resources the tool did not create: untagged ones, and another deployment's (other prefix)."""
    image = boto.describe_images(Owners=["099720109477"])["Images"][0]["ImageId"]
    instance = boto.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                  TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                      {"Key": "Name", "Value": "oscar-deploy-ffffffff-wn-1"},
                                      {"Key": TAG_DEPLOYMENT, "Value": "ffffffff"}]}])["Instances"][0]
    group = boto.create_security_group(GroupName="someone-elses", Description="not ours")["GroupId"]
    boto.import_key_pair(KeyName="someone-elses-key", PublicKeyMaterial=(
        b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHcJ7e1ovCbHgXoNh3Ue8k5iS4eIr0y8a6y8nF0JcTmV other"))
    volume = boto.create_volume(Size=1, AvailabilityZone=f"{REGION}a")["VolumeId"]
    address = boto.allocate_address(Domain="vpc")["AllocationId"]
    return {"instance": instance["InstanceId"], "group": group, "key": "someone-elses-key", "volume": volume,
            "address": address}


def assert_others_survive(ec2_emulator: Any, mine: dict[str, str]) -> None:
    inventory = ec2_emulator.inventory(REGION)
    assert any(i["id"] == mine["instance"] and i["state"] == "running" for i in inventory["instances"])
    assert any(g["id"] == mine["group"] for g in inventory["security_groups"])
    assert any(k["name"] == mine["key"] for k in inventory["key_pairs"])
    assert any(v["id"] == mine["volume"] for v in inventory["volumes"])
    assert any(a["allocation_id"] == mine["address"] for a in inventory["addresses"])


def test_create_scale_destroy_on_ec2(ec2_emulator: Any, store: Any, settings: Settings, factory: Any,
                                     boto: Any) -> None:
    mine = others(boto)
    dep = create(store, aws_request(settings, "ec2-life", wn_num=2), factory, settings)
    inventory = live(ec2_emulator.inventory(REGION), dep.id)
    names = sorted(i["tags"]["Name"] for i in inventory["instances"])
    assert names == sorted([node_name(dep.id, "front", 1), *(node_name(dep.id, "wn", i) for i in (1, 2))])
    assert all(i["tags"][TAG_DEPLOYMENT] == dep.id and i["tags"][TAG_GROUP] in ("front", "wn")
               for i in inventory["instances"])
    assert all(i["key_name"] == f"{resource_prefix(dep.id)}key" for i in inventory["instances"])
    assert [v["size"] for v in inventory["volumes"] if v["tags"].get(TAG_GROUP) == "front"
            and v["tags"]["Name"].endswith("-data")] == [50]  # beside its root volume, tagged at launch
    front = next(i for i in inventory["instances"] if i["tags"][TAG_GROUP] == "front")
    data = next(v for v in inventory["volumes"] if v["tags"].get("Name", "").endswith("front-data"))
    assert data["attached_to"] == front["id"]
    recorded = store.nodes(dep.id)
    assert {n.cloud_id for n in recorded} == {i["id"] for i in inventory["instances"]}
    front_node = next(n for n in recorded if n.group == "front")
    assert front_node.addresses["public"]
    # workers join by cloud-init: the front-end's private address and the agent token in k3s's secure
    # form (the hash of the deployment's own CA: they check the server); never the server token, never SSH
    server = f"https://{front_node.addresses['private'][0]}:6443"
    token = store.secret(dep.id, "k3s_agent_token")
    assert token == agent_token(json.loads(store.secret(dep.id, "k3s_ca")), token.rpartition(":")[2])
    workers = [i for i in inventory["instances"] if i["tags"][TAG_GROUP] == "wn"]
    assert all(server in (i["user_data"] or "") and token in i["user_data"] for i in workers)
    assert not any(store.secret(dep.id, "k3s_token") in i["user_data"] for i in workers)
    assert front["user_data"] is None
    for worker in workers:  # each registers under its own name, not the cloud's ip-10-… hostname
        assert_joins_under_its_name(boto, worker)

    scale(store, dep.id, "wn", 4, factory, settings)
    machines = live(ec2_emulator.inventory(REGION), dep.id)["instances"]
    workers = [i for i in machines if i["tags"][TAG_GROUP] == "wn"]
    assert len(workers) == 4 and all(server in (i["user_data"] or "") for i in workers)
    for worker in workers:  # the ones scale added too
        assert_joins_under_its_name(boto, worker)
    result = scale(store, dep.id, "wn", 1, factory, settings)
    assert result.removed == tuple(node_name(dep.id, "wn", i) for i in (4, 3, 2))

    removed = destroy(store, dep.id, factory)
    assert {r.resource.kind for r in removed} == {"instance", "volume", "security_group", "key_pair"}
    assert all(not items for items in live(ec2_emulator.inventory(REGION), dep.id).values())
    assert_others_survive(ec2_emulator, mine)
    assert destroy(store, dep.id, factory) == []  # idempotent


def test_keep_data_keeps_only_the_volume(ec2_emulator: Any, store: Any, settings: Settings,
                                         factory: Any) -> None:
    dep = create(store, aws_request(settings, "keep", wn_num=1), factory, settings)
    destroy(store, dep.id, factory, keep_data=True)
    left = live(ec2_emulator.inventory(REGION), dep.id)
    assert [v["tags"]["Name"] for v in left["volumes"]] == [f"{resource_prefix(dep.id)}front-data"]
    assert not left["instances"] and not left["security_groups"] and not left["key_pairs"]


def metadata_options(boto: Any, instance_id: str) -> tuple[str, int]:
    (reservation,) = boto.describe_instances(InstanceIds=[instance_id])["Reservations"]
    options = reservation["Instances"][0]["MetadataOptions"]
    return options["HttpTokens"], options["HttpPutResponseHopLimit"]


def test_a_resume_requires_imdsv2_on_the_machines_an_older_version_launched(
        ec2_emulator: Any, store: Any, settings: Settings, factory: Any, boto: Any) -> None:
    dep = create(store, aws_request(settings, "imds", wn_num=1), factory, settings)
    machines = live(ec2_emulator.inventory(REGION), dep.id)["instances"]
    front = next(i for i in machines if i["tags"][TAG_GROUP] == "front")
    worker = next(i for i in machines if i["tags"][TAG_GROUP] == "wn")
    # the worker as an older version left it: launched with IMDSv1 allowed and two hops, then
    # interrupted before its record was written
    boto.terminate_instances(InstanceIds=[worker["id"]])
    store.remove_node(dep.id, node_name(dep.id, "wn", 1))
    loose = {"HttpTokens": "optional", "HttpPutResponseHopLimit": 2, "HttpEndpoint": "enabled"}
    tags = {"Name": node_name(dep.id, "wn", 1), TAG_DEPLOYMENT: dep.id, TAG_GROUP: "wn"}
    (legacy,) = boto.run_instances(
        ImageId=worker["image"], InstanceType=worker["type"], MinCount=1, MaxCount=1, MetadataOptions=loose,
        TagSpecifications=[{"ResourceType": "instance",
                            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}])["Instances"]
    (foreign,) = boto.run_instances(ImageId=worker["image"], InstanceType=worker["type"], MinCount=1,
                                    MaxCount=1, MetadataOptions=loose)["Instances"]
    assert metadata_options(boto, legacy["InstanceId"]) == ("optional", 2)
    before = len(ec2_emulator.calls)

    again = create(store, aws_request(settings, "imds", wn_num=1), factory, settings)

    assert again.id == dep.id
    assert {n.cloud_id for n in store.nodes(dep.id)} == {front["id"], legacy["InstanceId"]}  # adopted
    assert metadata_options(boto, legacy["InstanceId"]) == ("required", 1)
    assert metadata_options(boto, front["id"]) == ("required", 1)
    assert metadata_options(boto, foreign["InstanceId"]) == ("optional", 2)  # not the deployment's
    modified = [c.params["InstanceId"] for c in ec2_emulator.calls[before:]
                if c.action == "ModifyInstanceMetadataOptions"]
    assert modified == [legacy["InstanceId"]]  # the front-end this version launched already had it


def test_a_zone_out_of_capacity_for_every_size_falls_back_to_the_next_zone(
        ec2_emulator: Any, store: Any, settings: Settings, factory: Any, boto: Any) -> None:
    zones = sorted(z["ZoneName"] for z in boto.describe_availability_zones()["AvailabilityZones"])
    first, second = zones[0], zones[1]
    ec2_emulator.set_faults({"rules": [{"code": "InsufficientInstanceCapacity", "actions": ["RunInstances"],
                                        "zone": first}]})
    dep = create(store, aws_request(settings, "zones", wn_num=1), factory, settings)
    refused = [c for c in ec2_emulator.calls if c.action == "RunInstances" and c.fault]
    ec2_emulator.set_faults({})
    assert len(refused) >= 2, "the default zone refused nothing: the test would prove nothing"
    machines = live(ec2_emulator.inventory(REGION), dep.id)["instances"]
    assert sorted(i["tags"]["Name"] for i in machines) == sorted([node_name(dep.id, "front", 1),
                                                                  node_name(dep.id, "wn", 1)])
    assert {i["zone"] for i in machines} == {second}
    front = next(i for i in machines if i["tags"][TAG_GROUP] == "front")
    data = next(v for v in live(ec2_emulator.inventory(REGION), dep.id)["volumes"]
                if v["tags"]["Name"].endswith("-data"))
    assert data["zone"] == second and data["attached_to"] == front["id"]  # the volume follows the machine
    assert {n.state for n in store.nodes(dep.id)} == {"running"}
    events = store.events(dep.id)
    assert any(e.kind == "capacity" for e in events)
    assert any(e.kind == "node-created" and second in e.message for e in events)
    destroy(store, dep.id, factory)
    assert all(not items for items in live(ec2_emulator.inventory(REGION), dep.id).values())


def _hostname(node: Any) -> str:
    return "ip-" + node.private_ips[0].replace(".", "-")


def test_scale_in_asks_the_cluster_matching_nodes_by_address_and_falls_back_when_it_cannot(
        ec2_emulator: Any, store: Any, settings: Settings, factory: Any, kube_api: Any,
        tmp_path: Path) -> None:
    import socket

    from provisioner.engine.cluster import busy_workers
    from provisioner.engine.targets import pick_removals

    dep = create(store, aws_request(settings, "kube", wn_num=2), factory, settings)
    driver = factory("aws", REGION)
    newest, older = pick_removals([n for n in driver.list_nodes(dep.id) if n.group == "wn"], 0)
    # k3s names a node after the machine's hostname, not its cloud name: matched by its InternalIP
    for node in (newest, older):
        kube_api.register_node(_hostname(node), address=node.private_ips[0])
    kube_api.create_pod("job", node_selector={"kubernetes.io/hostname": _hostname(newest)}, runtime_s=3600)
    kube_api.wait_until(lambda: kube_api.pods(node=_hostname(newest), phase="Running"), what="the job runs")
    kubeconfig = kube_api.write_kubeconfig(tmp_path / "kubeconfig")
    result = scale(store, dep.id, "wn", 1, factory, settings, busy=lambda m: busy_workers(kubeconfig, m))
    assert (result.removed, result.busy, result.busy_unknown) == ((older.name,), (newest.name,), None)
    assert [n.name for n in driver.list_nodes(dep.id) if n.group == "wn"] == [newest.name]

    # the API unreachable: refused; forced, the newest goes first, and the result says why
    scale(store, dep.id, "wn", 2, factory, settings)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    dead = tmp_path / "dead-kubeconfig"
    dead.write_text(kubeconfig.read_text().replace(kube_api.url, f"http://127.0.0.1:{closed}"))
    members = [n for n in driver.list_nodes(dep.id) if n.group == "wn"]
    with pytest.raises(BadInput, match="cannot tell idle wn workers from busy ones"):
        scale(store, dep.id, "wn", 1, factory, settings, busy=lambda m: busy_workers(dead, m, timeout_s=2))
    assert len([n for n in driver.list_nodes(dep.id) if n.group == "wn"]) == 2  # nothing removed
    blind = scale(store, dep.id, "wn", 1, factory, settings,
                  busy=lambda m: busy_workers(dead, m, timeout_s=2), force=True)
    assert blind.removed == (pick_removals(members, 1)[0].name,) and blind.busy == ()
    assert blind.busy_unknown and "cannot be reached" in blind.busy_unknown
    assert f"127.0.0.1:{closed}" in blind.busy_unknown
    destroy(store, dep.id, factory)


def test_only_bound_unfinished_pods_of_users_make_a_node_busy() -> None:
    from provisioner.engine.cluster import user_pod_nodes

    def pod(node: str | None, phase: str = "Running", **meta: Any) -> dict[str, Any]:
        return {"metadata": meta, "spec": {"nodeName": node} if node else {}, "status": {"phase": phase}}

    pods = [pod("a"), pod("b", "Pending"), pod("c", "Succeeded"), pod("d", "Failed"), pod(None, "Pending"),
            pod("e", ownerReferences=[{"kind": "DaemonSet", "name": "flannel"}]),
            pod("f", annotations={"kubernetes.io/config.mirror": "x"}),
            pod("g", ownerReferences=[{"kind": "ReplicaSet", "name": "web-1"}])]
    assert user_pod_nodes(pods) == {"a", "b", "g"}


PLANNED_SIZE = "t3a.medium"
"""The cheapest type that fits 2 CPUs / 4 GiB in eu-west-1: the one the plan picks."""
FAULTS = [
    {"code": "InsufficientInstanceCapacity", "rate": 0.5, "actions": ["RunInstances"],
     "instance_type": PLANNED_SIZE},
    {"code": "RequestLimitExceeded", "rate": 0.1},
    {"code": "Unavailable", "rate": 0.05},
    {"code": "InternalError", "rate": 0.05},
]
"""One mutating call in five refused (throttling, 503, 500), and, as EC2 does when a type runs out
in a zone, the planned type short of capacity half the time: the engine must fall back to the next
cheapest type that fits."""


@pytest.mark.parametrize("seed", range(20))
def test_fault_run_creates_then_leaves_nothing(seed: int, ec2_emulator: Any, store: Any, settings: Settings,
                                               factory: Any, boto: Any) -> None:
    mine = others(boto)
    ec2_emulator.set_faults({"seed": seed, "rules": FAULTS})
    request = aws_request(settings, f"faults{seed}", wn_num=2)
    assert request.plan.groups[1].size.name == PLANNED_SIZE
    dep = create(store, request, factory, settings)
    inventory = live(ec2_emulator.inventory(REGION), dep.id)
    names = [i["tags"]["Name"] for i in inventory["instances"]]
    assert sorted(names) == sorted({node_name(dep.id, "front", 1), node_name(dep.id, "wn", 1),
                                    node_name(dep.id, "wn", 2)})
    destroy(store, dep.id, factory)
    injected = [c for c in ec2_emulator.calls if c.fault]
    ec2_emulator.set_faults({})
    assert injected, "the run met no fault: the test would prove nothing"
    assert all(not items for items in live(ec2_emulator.inventory(REGION), dep.id).values())
    assert_others_survive(ec2_emulator, mine)


OTHER_PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHcJ7e1ovCbHgXoNh3Ue8k5iS4eIr0y8a6y8nF0JcTmV other"
OPENSTACK_TEMPLATE = tosca_dir() / "templates" / "oscar-openstack.yaml"
OPENSTACK_FAULTS = [
    {"code": "NoValidHost", "rate": 0.5, "instance_type": "m1.medium"},
    {"code": "overLimit", "rate": 0.1},
    {"code": "computeFault", "rate": 0.05},
    {"code": "ServiceUnavailable", "rate": 0.05},
]
"""A fifth of the mutating calls refused (429, 500, 503), and the planned flavor's servers put in
ERROR with Nova's "No valid host" half the time: the next flavor that fits must take over."""


@pytest.mark.parametrize("seed", range(5))
def test_openstack_fault_run_creates_then_leaves_nothing(seed: int, openstack_server: Any, store: Any,
                                                         settings: Settings) -> None:
    from libcloud.compute.drivers.openstack import OpenStack_2_NodeDriver

    from provisioner.clouds.openstack import OpenStackDriver
    from provisioner.credentials import OpenStackCredentials

    credentials = OpenStackCredentials(openstack_server.endpoint + "/v3", "password", "secret",
                                       CredentialSource("environment"), username="demo", project_name="demo",
                                       region="RegionOne")

    def factory(_provider: str, region: str | None) -> OpenStackDriver:
        return OpenStackDriver(credentials, region, settings.provisioner)

    other = OpenStack_2_NodeDriver(**openstack_server.driver_kwargs())
    other.import_key_pair_from_string("someone-elses-key", OTHER_PUBLIC_KEY)
    small = next(s for s in other.list_sizes() if s.name == "m1.small")
    other.create_node(name="someone-elses-vm", size=small, image=other.list_images()[0],
                      networks=other.ex_list_networks()[:1])
    spec = load_cluster_spec([OPENSTACK_TEMPLATE], {"wn_num": "2", "admin_cidr": "10.0.0.0/8"},
                             import_paths=[], cache_dir=Path(settings.general.cache_dir))
    openstack_server.set_faults({"seed": seed, "rules": OPENSTACK_FAULTS})
    dep = create(store, CreateRequest(make_plan(spec, settings), name=f"os{seed}", configure=False), factory,
                 settings)
    left = openstack_server.leftovers(dep.id)
    assert sorted(s["name"] for s in left["servers"]) == sorted(
        [node_name(dep.id, "front", 1), *(node_name(dep.id, "wn", i) for i in (1, 2))])
    assert all(s["status"] == "ACTIVE" for s in left["servers"])
    destroy(store, dep.id, factory)
    openstack_server.set_faults({})
    assert any(c.get("fault") for c in openstack_server.calls), "no fault met: the test would prove nothing"
    assert all(not items for items in openstack_server.leftovers(dep.id).values())
    state = openstack_server.state()
    assert "someone-elses-key" in [k["name"] for k in state["keypairs"]]
    assert "someone-elses-vm" in [s["name"] for s in state["servers"]]
