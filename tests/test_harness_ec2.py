"""libcloud's stock EC2 driver against the EC2 emulator: every call the product makes, as a user checks it.

If these pass, the emulator behaves like EC2 for that driver, so the engine's tests against it mean
something; if moto or libcloud changes underneath, they say where.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from libcloud.common.exceptions import BaseHTTPError
from libcloud.common.types import InvalidCredsError
from libcloud.compute.base import NodeImage, NodeSize
from libcloud.compute.drivers.ec2 import EC2NodeDriver

from tests.harness.ec2 import CANONICAL_OWNER, renumber_zero_based

REGION = "eu-west-1"
DEPLOYMENT_TAGS = {"oscar-deploy:deployment": "d1", "oscar-deploy:group": "wn"}
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def driver(ec2_emulator: Any) -> EC2NodeDriver:
    return EC2NodeDriver("AKIDEXAMPLE", "not-a-secret", **ec2_emulator.driver_kwargs(REGION))


@pytest.fixture
def public_key(tmp_path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    return (tmp_path / "k.pub").read_text()


def _size(driver: EC2NodeDriver, name: str = "t3.micro") -> NodeSize:
    return next(s for s in driver.list_sizes() if s.id == name)


def _ubuntu(driver: EC2NodeDriver, version: str = "24.04", arch: str = "amd64") -> NodeImage:
    images = driver.list_images(ex_owner=CANONICAL_OWNER,
                                ex_filters={"name": f"ubuntu/images/*ubuntu-*-{version}-{arch}-server-*"})
    return max(images, key=lambda i: i.name)


def _live(inventory: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """What a user would call "left over": everything but terminated instances and default groups."""
    return {
        "instances": [i for i in inventory["instances"] if i["state"] != "terminated"],
        "key_pairs": inventory["key_pairs"],
        "security_groups": [g for g in inventory["security_groups"] if g["name"] != "default"],
        "volumes": inventory["volumes"],
        "addresses": inventory["addresses"],
    }


def test_zero_based_lists_are_renumbered_and_one_based_left_alone() -> None:
    params = [("Action", "CreateTags"), ("ResourceId.0", "i-1"), ("ResourceId.1", "i-2"),
              ("Tag.0.Key", "a"), ("Tag.0.Value", "b"), ("Filter.1.Value.0", "x"), ("Filter.1.Name", "n"),
              ("Filter.2.Value.1", "y")]
    assert sorted(renumber_zero_based(params)) == sorted([
        ("Action", "CreateTags"), ("ResourceId.1", "i-1"), ("ResourceId.2", "i-2"), ("Tag.1.Key", "a"),
        ("Tag.1.Value", "b"), ("Filter.1.Value.1", "x"), ("Filter.1.Name", "n"), ("Filter.2.Value.1", "y")])


def test_current_canonical_images_found_by_owner_name_and_arch(driver: EC2NodeDriver) -> None:
    noble = _ubuntu(driver, "24.04", "amd64")
    assert noble.name == "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250305"
    assert noble.extra["owner_id"] == CANONICAL_OWNER and noble.extra["architecture"] == "x86_64"
    jammy_arm = _ubuntu(driver, "22.04", "arm64")
    assert jammy_arm.name.endswith("ubuntu-jammy-22.04-arm64-server-20250228")
    assert jammy_arm.extra["architecture"] == "arm64"
    # A newer look-alike from another account exists, and only the owner filter keeps it out.
    everyone = driver.list_images(ex_filters={"name": "ubuntu/images/*noble-24.04-amd64-server-*"})
    assert any(i.extra["owner_id"] != CANONICAL_OWNER for i in everyone)
    arm = driver.list_images(ex_owner=CANONICAL_OWNER, ex_filters={"architecture": "arm64"})
    assert {i.extra["architecture"] for i in arm} == {"arm64"} and len(arm) == 4


def test_zones_and_sizes(driver: EC2NodeDriver) -> None:
    zones = driver.ex_list_availability_zones()
    assert [z.name for z in zones] == ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
    sizes = {s.id: s for s in driver.list_sizes()}
    assert sizes["t3.micro"].ram == 1024 and "m6g.large" in sizes


def test_key_pairs_import_create_list_delete(driver: EC2NodeDriver, public_key: str) -> None:
    imported = driver.import_key_pair_from_string("oscar-deploy-d1-key", public_key)
    created = driver.create_key_pair("oscar-deploy-d1-key2")
    assert created.private_key.startswith("-----BEGIN")
    assert {k.name for k in driver.list_key_pairs()} == {"oscar-deploy-d1-key", "oscar-deploy-d1-key2"}
    assert driver.delete_key_pair(imported) and driver.delete_key_pair(created)
    assert driver.list_key_pairs() == []


def test_security_group_with_rules_then_deleted(driver: EC2NodeDriver, ec2_emulator: Any) -> None:
    vpc = driver.ex_list_networks()[0]
    group_id = driver.ex_create_security_group("oscar-deploy-d1-sg", "oscar", vpc_id=vpc.id)["group_id"]
    assert driver.ex_authorize_security_group_ingress(group_id, 22, 22, ["0.0.0.0/0"])
    pairs = [{"group_id": group_id}]
    assert driver.ex_authorize_security_group_ingress(group_id, 0, 65535, group_pairs=pairs)
    assert driver.ex_create_tags(driver.ex_get_security_groups(group_ids=[group_id])[0], DEPLOYMENT_TAGS)
    (group,) = driver.ex_get_security_groups(filters={"group-name": "oscar-deploy-d1-sg"})
    assert group.id == group_id
    assert any(r["from_port"] == "22" and r["cidr_ips"] == ["0.0.0.0/0"] for r in group.ingress_rules)
    assert driver.ex_delete_security_group_by_id(group_id)
    assert _live(ec2_emulator.inventory(REGION))["security_groups"] == []


def test_node_lifecycle_with_every_option_then_nothing_left(
        driver: EC2NodeDriver, ec2_emulator: Any, public_key: str) -> None:
    key = driver.import_key_pair_from_string("oscar-deploy-d1-key", public_key)
    subnet = driver.ex_list_subnets()[0]
    group_id = driver.ex_create_security_group("oscar-deploy-d1-sg", "oscar", vpc_id=subnet.extra["vpc_id"])[
        "group_id"]
    node = driver.create_node(
        name="oscar-deploy-d1-wn-1", image=_ubuntu(driver), size=_size(driver), ex_keyname=key.name,
        ex_security_group_ids=[group_id], ex_subnet=subnet, ex_userdata="#cloud-config\nruncmd: [k3s]\n",
        ex_metadata=DEPLOYMENT_TAGS,
        ex_blockdevicemappings=[{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 30, "VolumeType": "gp3"}}])
    other = driver.create_node(name="someone-elses", image=_ubuntu(driver), size=_size(driver),
                               ex_security_groups=["default"])  # by name, in the default VPC
    (listed,) = driver.list_nodes(ex_filters={"tag:oscar-deploy:deployment": "d1"})
    assert listed.id == node.id and listed.name == "oscar-deploy-d1-wn-1"
    assert listed.extra["tags"]["oscar-deploy:group"] == "wn" and listed.state == "running"
    assert listed.extra["key_name"] == key.name and listed.extra["subnet_id"] == subnet.id
    (seen,) = [i for i in ec2_emulator.inventory(REGION)["instances"] if i["id"] == node.id]
    assert seen["user_data"] == "#cloud-config\nruncmd: [k3s]\n" and seen["security_groups"] == [group_id]
    (theirs,) = [i for i in ec2_emulator.inventory(REGION)["instances"] if i["id"] == other.id]
    default = next(g for g in driver.ex_get_security_groups() if g.name == "default")
    assert theirs["security_groups"] == [default.id]
    assert any(v.size == 30 for v in driver.list_volumes())

    assert driver.destroy_node(node)
    assert driver.delete_key_pair(key)
    assert driver.ex_delete_security_group_by_id(group_id)
    left = _live(ec2_emulator.inventory(REGION))
    assert [i["id"] for i in left["instances"]] == [other.id]  # not ours: survives
    assert left["key_pairs"] == [] and left["security_groups"] == []


def test_leftovers_are_what_carries_the_deployments_tag_or_prefix(
        driver: EC2NodeDriver, ec2_emulator: Any, public_key: str) -> None:
    image, size = _ubuntu(driver), _size(driver)
    tagged = driver.create_node(name="worker", image=image, size=size, ex_metadata=DEPLOYMENT_TAGS)
    named = driver.create_node(name="oscar-deploy-d1-fe", image=image, size=size)  # a crash before tagging
    driver.create_node(name="oscar-deploy-d10-fe", image=image, size=size)  # another deployment
    driver.import_key_pair_from_string("oscar-deploy-d1-key", public_key)
    driver.import_key_pair_from_string("mine-not-yours", public_key)
    group_id = driver.ex_create_security_group("oscar-deploy-d1-sg", "x")["group_id"]
    left = ec2_emulator.leftovers("d1", REGION)
    assert sorted(i["id"] for i in left["instances"]) == sorted([tagged.id, named.id])
    assert [k["name"] for k in left["key_pairs"]] == ["oscar-deploy-d1-key"]
    assert [g["id"] for g in left["security_groups"]] == [group_id]
    for node in (tagged, named):
        driver.destroy_node(node)
    driver.delete_key_pair(next(k for k in driver.list_key_pairs() if k.name == "oscar-deploy-d1-key"))
    driver.ex_delete_security_group_by_id(group_id)
    assert all(items == [] for items in ec2_emulator.leftovers("d1", REGION).values())
    assert len(ec2_emulator.leftovers("d10", REGION)["instances"]) == 1


def test_instance_metadata_v2_can_be_required(driver: EC2NodeDriver, ec2_emulator: Any) -> None:
    node = driver.create_node(name="oscar-deploy-d1-fe", image=_ubuntu(driver), size=_size(driver))
    params = {"Action": "ModifyInstanceMetadataOptions", "InstanceId": node.id, "HttpTokens": "required",
              "HttpEndpoint": "enabled"}
    assert driver.connection.request("/", params=params).status == 200
    (seen,) = ec2_emulator.inventory(REGION)["instances"]
    assert seen["http_tokens"] == "required"


def test_volume_create_tag_attach_detach_destroy(driver: EC2NodeDriver, ec2_emulator: Any) -> None:
    node = driver.create_node(name="oscar-deploy-d1-fe", image=_ubuntu(driver), size=_size(driver))
    zone = next(z for z in driver.list_locations() if z.availability_zone.name == node.extra["availability"])
    volume = driver.create_volume(20, "oscar-deploy-d1-data", location=zone, ex_volume_type="gp3")
    assert driver.ex_create_tags(volume, DEPLOYMENT_TAGS)
    assert driver.ex_describe_tags(volume)["oscar-deploy:deployment"] == "d1"
    assert driver.attach_volume(node, volume, "/dev/sdf")
    (seen,) = [v for v in ec2_emulator.inventory(REGION)["volumes"] if v["id"] == volume.id]
    assert seen["attached_to"] == node.id and seen["tags"]["Name"] == "oscar-deploy-d1-data"
    assert driver.detach_volume(volume)
    assert driver.destroy_volume(volume)
    assert volume.id not in [v.id for v in driver.list_volumes()]


def test_elastic_address_allocate_associate_release(driver: EC2NodeDriver, ec2_emulator: Any) -> None:
    node = driver.create_node(name="oscar-deploy-d1-fe", image=_ubuntu(driver), size=_size(driver),
                              ex_subnet=driver.ex_list_subnets()[0])
    address = driver.ex_allocate_address(domain="vpc")
    assert address.extra["allocation_id"].startswith("eipalloc-")
    assert driver.ex_associate_address_with_node(node, address, domain="vpc").startswith("eipassoc-")
    (listed,) = driver.ex_describe_all_addresses()
    assert listed.ip == address.ip and listed.instance_id == node.id
    assert driver.ex_disassociate_address(listed, domain="vpc")
    assert driver.ex_release_address(address, domain="vpc")
    assert driver.ex_describe_all_addresses() == [] and ec2_emulator.inventory(REGION)["addresses"] == []


def test_regions_are_separate(ec2_emulator: Any) -> None:
    eu = EC2NodeDriver("AKIDEXAMPLE", "s", **ec2_emulator.driver_kwargs("eu-west-1"))
    us = EC2NodeDriver("AKIDEXAMPLE", "s", **ec2_emulator.driver_kwargs("us-east-1"))
    eu.create_key_pair("oscar-deploy-d1-key")
    assert [k.name for k in eu.list_key_pairs()] == ["oscar-deploy-d1-key"] and us.list_key_pairs() == []


def test_sigv2_is_refused_with_advice(ec2_emulator: Any) -> None:
    kwargs = {**ec2_emulator.driver_kwargs(REGION), "signature_version": "2"}
    with pytest.raises(InvalidCredsError, match="signature_version='4'"):
        EC2NodeDriver("AKIDEXAMPLE", "s", **kwargs).list_key_pairs()


def test_faults_refuse_a_seeded_share_of_mutating_calls_without_doing_them(
        driver: EC2NodeDriver, ec2_emulator: Any, public_key: str) -> None:
    ec2_emulator.set_faults({"seed": 7, "rules": [{"code": "RequestLimitExceeded", "rate": 0.4}]})
    created, refused = [], []
    for n in range(25):
        try:
            created.append(driver.import_key_pair_from_string(f"oscar-deploy-d1-k{n}", public_key).name)
        except BaseHTTPError as exc:
            assert exc.code == 503 and "RequestLimitExceeded" in exc.message
            refused.append(n)
    assert 4 <= len(refused) <= 17
    assert sorted(k.name for k in driver.list_key_pairs()) == sorted(created)  # reads are never refused
    ec2_emulator.set_faults({"seed": 7, "rules": [{"code": "RequestLimitExceeded", "rate": 0.4}]})
    again = []
    for n in range(25):
        try:
            driver.import_key_pair_from_string(f"oscar-deploy-d1-again{n}", public_key)
        except BaseHTTPError:
            again.append(n)
    assert again == refused  # same seed, same faults


@pytest.mark.parametrize(("code", "status"), [("Unavailable", 503), ("InternalError", 500)])
def test_server_errors_surface_with_their_code(driver: EC2NodeDriver, ec2_emulator: Any, code: str,
                                               status: int) -> None:
    ec2_emulator.set_faults({"rules": [{"code": code, "remaining": 1}]})
    with pytest.raises(BaseHTTPError) as err:
        driver.ex_create_security_group("oscar-deploy-d1-sg", "x")
    assert err.value.code == status and code in err.value.message
    driver.ex_create_security_group("oscar-deploy-d1-sg", "x")  # the rule fired once only


def test_insufficient_capacity_only_for_the_given_type_and_zone(
        driver: EC2NodeDriver, ec2_emulator: Any) -> None:
    subnets = {s.extra["zone"]: s for s in driver.ex_list_subnets()}
    ec2_emulator.set_faults({"rules": [{"code": "InsufficientInstanceCapacity", "actions": ["RunInstances"],
                                        "instance_type": "t3.large", "zone": "eu-west-1a"}]})
    image = _ubuntu(driver)
    with pytest.raises(BaseHTTPError, match="InsufficientInstanceCapacity") as err:
        driver.create_node(name="oscar-deploy-d1-a", image=image, size=_size(driver, "t3.large"),
                           ex_subnet=subnets["eu-west-1a"])
    assert err.value.code == 500
    driver.create_node(name="oscar-deploy-d1-b", image=image, size=_size(driver, "t3.large"),
                       ex_subnet=subnets["eu-west-1b"])
    driver.create_node(name="oscar-deploy-d1-c", image=image, size=_size(driver, "t3.micro"),
                       ex_subnet=subnets["eu-west-1a"])
    names = sorted(n.name for n in driver.list_nodes())
    assert names == ["oscar-deploy-d1-b", "oscar-deploy-d1-c"]


def test_latency_applies_per_call_and_parallel_calls_overlap(
        driver: EC2NodeDriver, ec2_emulator: Any) -> None:
    image, size = _ubuntu(driver), _size(driver)
    ec2_emulator.set_faults({"latency_s": 0.5})

    def create(n: int) -> Any:
        own = EC2NodeDriver("AKIDEXAMPLE", "s", **ec2_emulator.driver_kwargs(REGION))  # one per thread
        return own.create_node(name=f"oscar-deploy-d1-wn-{n}", image=image, size=size)

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        nodes = list(pool.map(create, range(8)))
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 2.5, elapsed  # 8 calls of 0.5 s each (4 s one after another), side by side
    assert len({n.id for n in nodes}) == 8
    assert len([i for i in ec2_emulator.inventory(REGION)["instances"] if i["state"] == "running"]) == 8


def _get(url: str, data: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=json.dumps(data).encode() if data is not None else None,
                                     method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_control_endpoints_over_http(driver: EC2NodeDriver, ec2_emulator: Any) -> None:
    base = ec2_emulator.endpoint + "/_harness"
    status, plan = _get(base + "/faults", {"seed": 3, "rules": [{"code": "RequestLimitExceeded"}]})
    assert status == 200 and plan["rules"][0]["code"] == "RequestLimitExceeded"
    with pytest.raises(BaseHTTPError):
        driver.create_key_pair("oscar-deploy-d1-key")
    assert _get(base + "/faults", {"rules": [{"code": "X", "rate": 2}]})[0] == 400
    assert _get(base + "/faults", {})[0] == 200
    driver.create_key_pair("oscar-deploy-d1-key")
    status, inventory = _get(base + f"/inventory?region={REGION}")
    assert [k["name"] for k in inventory["key_pairs"]] == ["oscar-deploy-d1-key"]
    calls = _get(base + "/calls")[1]["calls"]
    assert [(c["action"], c["fault"]) for c in calls][-2:] == [("CreateKeyPair", "RequestLimitExceeded"),
                                                                ("CreateKeyPair", None)]
    assert _get(base + "/reset", {})[0] == 200 and driver.list_key_pairs() == []


def test_runs_by_hand_with_python_m() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "tests.harness.ec2", "--port", str(port), "--latency", "0.1"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        assert f"127.0.0.1:{port}" in proc.stdout.readline()
        driver = EC2NodeDriver("AKIDEXAMPLE", "s", region="us-east-1", host="127.0.0.1", port=port,
                               secure=False, signature_version="4")
        driver.create_key_pair("by-hand")
        assert [k.name for k in driver.list_key_pairs()] == ["by-hand"]
        assert _get(f"http://127.0.0.1:{port}/_harness/faults")[1]["latency_s"] == 0.1
    finally:
        proc.terminate()
        proc.wait(timeout=10)
