"""The EC2 driver against the EC2 emulator (moto behind the EC2 fix-up layer), through stock libcloud.

Each test checks what an operator would look at in the AWS console (the emulator's inventory, or
boto3's view of the same API), not the driver's own answers alone.
"""

from __future__ import annotations

import logging
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from provisioner.clouds.base import (
    TAG_DEPLOYMENT,
    TAG_GROUP,
    CloudDriver,
    FirewallRule,
    NodeRequest,
    resource_name,
)
from provisioner.clouds.ec2 import Ec2Driver, endpoint_kwargs
from provisioner.config import ProvisionerSettings
from provisioner.credentials import AwsCredentials, CredentialSource
from provisioner.errors import AuthError, CapacityError, NotFound

REGION = "eu-west-1"
KEY_ID = "AKIDOSCARTESTKEY0001"
SECRET = "s3cr3t-never-shown-Zq9xW"
FAST = ProvisionerSettings(api_retries=8, retry_base_s=0.01, retry_max_s=0.05, create_timeout_s=30)
RULES = (FirewallRule("tcp", 22, 22, "0.0.0.0/0", "ssh"), FirewallRule("-1", 0, 65535, "cluster", "inside"),
         FirewallRule("tcp", 6443, 6443, "10.0.0.0/8", "k3s api"))
NOBLE_AMD64 = "ami-cc7c8e6bcfb5ab375"  # the newest Canonical 24.04 amd64 image the emulator carries


def _credentials(endpoint: str) -> AwsCredentials:
    return AwsCredentials(KEY_ID, SECRET, CredentialSource("environment"), region=REGION,
                          endpoint_url=endpoint)


@pytest.fixture
def driver(ec2_emulator: Any) -> Ec2Driver:
    return Ec2Driver(_credentials(ec2_emulator.endpoint), REGION, FAST)


@pytest.fixture
def public_key(tmp_path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    return (tmp_path / "k.pub").read_text()


@pytest.fixture
def boto(ec2_emulator: Any) -> Any:
    import boto3

    return boto3.client("ec2", endpoint_url=ec2_emulator.endpoint, region_name=REGION,
                        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="x")


def _live(ec2_emulator: Any) -> dict[str, list[dict[str, Any]]]:
    inv = ec2_emulator.inventory(REGION)
    return {"instances": [i for i in inv["instances"] if i["state"] != "terminated"],
            "key_pairs": inv["key_pairs"],
            "security_groups": [g for g in inv["security_groups"] if g["name"] != "default"],
            "volumes": inv["volumes"], "addresses": inv["addresses"]}


def _request(driver: Ec2Driver, deployment: str, group: str, index: int, key: str, sg: str,
             **kw: Any) -> NodeRequest:
    return NodeRequest(deployment=deployment, group=group, name=resource_name(deployment, group, str(index)),
                       size=kw.pop("size", "t3.micro"), image=NOBLE_AMD64, key_name=key, security_group=sg,
                       **kw)


def test_the_driver_satisfies_the_contract(driver: Ec2Driver) -> None:
    def takes(d: CloudDriver) -> str:
        return d.provider

    assert takes(driver) == "aws" and driver.region == REGION


def test_endpoint_override_from_the_auth_files_host() -> None:
    creds = AwsCredentials("k", "s", CredentialSource("environment"), endpoint_url="http://127.0.0.1:5000")
    assert endpoint_kwargs(creds, "eu-west-1") == {"region": "eu-west-1", "signature_version": "4",
                                                   "host": "127.0.0.1", "secure": False, "port": 5000}
    creds = AwsCredentials("k", "s", CredentialSource("environment"), endpoint_url="ec2.example.org")
    assert endpoint_kwargs(creds, "r")["port"] == 443 and endpoint_kwargs(creds, "r")["secure"] is True
    plain = AwsCredentials("k", "s", CredentialSource("environment"))
    assert endpoint_kwargs(plain, "us-east-1") == {"region": "us-east-1", "signature_version": "4"}


def test_key_pair_imported_once_and_tagged(driver: Ec2Driver, ec2_emulator: Any, boto: Any,
                                           public_key: str) -> None:
    assert driver.ensure_key_pair("d1", public_key) == "oscar-deploy-d1-key"
    assert driver.ensure_key_pair("d1", public_key) == "oscar-deploy-d1-key"
    assert [k["name"] for k in ec2_emulator.inventory(REGION)["key_pairs"]] == ["oscar-deploy-d1-key"]
    (key,) = boto.describe_key_pairs(KeyNames=["oscar-deploy-d1-key"])["KeyPairs"]
    assert {t["Key"]: t["Value"] for t in key.get("Tags", [])}[TAG_DEPLOYMENT] == "d1"


def test_security_group_once_with_rules_tags_and_a_rule_for_itself(driver: Ec2Driver, boto: Any) -> None:
    group_id = driver.ensure_security_group("d1", RULES)
    assert driver.ensure_security_group("d1", RULES) == group_id
    (group,) = boto.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    assert group["GroupName"] == "oscar-deploy-d1-sg"
    assert {t["Key"]: t["Value"] for t in group["Tags"]}[TAG_DEPLOYMENT] == "d1"
    perms = group["IpPermissions"]
    assert len(perms) == 3  # the second call added nothing
    ssh = next(p for p in perms if p.get("FromPort") == 22)
    assert ssh["IpProtocol"] == "tcp" and ssh["IpRanges"][0]["CidrIp"] == "0.0.0.0/0"
    inside = next(p for p in perms if p["IpProtocol"] == "-1")
    assert inside["UserIdGroupPairs"][0]["GroupId"] == group_id


def test_image_newest_canonical_by_version_and_arch(driver: Ec2Driver) -> None:
    assert driver.resolve_image("ubuntu", "24.04", "amd64", None) == NOBLE_AMD64  # not the 2099 look-alike
    assert driver.resolve_image("ubuntu", "24.04", "arm64", None) == "ami-ee43979421e3b1925"
    assert driver.resolve_image("ubuntu", "22.04", "arm64", None) == "ami-cd35ab057ebcea192"
    jammy = "ami-0266b4ea8a95314fc"  # an older image, named explicitly
    assert driver.resolve_image("ubuntu", "22.04", "amd64", jammy) == jammy
    with pytest.raises(NotFound, match="ami-00000000000000000"):
        driver.resolve_image("ubuntu", "24.04", "amd64", "ami-00000000000000000")
    with pytest.raises(NotFound, match=r"18\.04"):
        driver.resolve_image("ubuntu", "18.04", "amd64", None)


def test_create_node_tagged_named_with_user_data_public_ip_disk_and_imdsv2(
        driver: Ec2Driver, ec2_emulator: Any, boto: Any, public_key: str) -> None:
    key = driver.ensure_key_pair("d1", public_key)
    sg = driver.ensure_security_group("d1", RULES)
    node = driver.create_node(_request(driver, "d1", "fe", 1, key, sg, user_data="#cloud-config\n{}\n",
                                       public_ip=True, disk_gib=40, zone="eu-west-1b"))
    assert node.name == "oscar-deploy-d1-fe-1" and node.group == "fe" and node.deployment == "d1"
    assert node.size == "t3.micro" and node.zone == "eu-west-1b"
    (seen,) = _live(ec2_emulator)["instances"]
    assert seen["tags"] == {"Name": "oscar-deploy-d1-fe-1", TAG_DEPLOYMENT: "d1", TAG_GROUP: "fe"}
    assert seen["user_data"] == "#cloud-config\n{}\n"
    assert seen["key_name"] == key and seen["image"] == NOBLE_AMD64
    (instance,) = boto.describe_instances(InstanceIds=[node.id])["Reservations"][0]["Instances"]
    # with a public IP the group goes on the primary interface (moto lists it there only)
    assert [g["GroupId"] for g in instance["NetworkInterfaces"][0]["Groups"]] == [sg]
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    assert instance.get("PublicIpAddress")
    assert driver.ensure_public_address("d1", node) == instance["PublicIpAddress"]
    root = boto.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [node.id]}])["Volumes"]
    assert [v["Size"] for v in root] == [40]


def test_list_nodes_by_tag_or_name_prefix_and_nothing_else(
        driver: Ec2Driver, ec2_emulator: Any, public_key: str) -> None:
    key = driver.ensure_key_pair("d1", public_key)
    sg = driver.ensure_security_group("d1", RULES)
    ours = driver.create_node(_request(driver, "d1", "wn", 1, key, sg))
    raw = driver.libcloud
    from libcloud.compute.base import NodeImage, NodeSize

    image, size = NodeImage(NOBLE_AMD64, "", raw), NodeSize("t3.micro", "", 0, 0, None, None, raw)
    tags_lost = raw.create_node(name="oscar-deploy-d1-wn-2", image=image, size=size)
    renamed = raw.create_node(name="renamed-by-hand", image=image, size=size,
                              ex_metadata={TAG_DEPLOYMENT: "d1", TAG_GROUP: "wn"})
    raw.create_node(name="oscar-deploy-d10-wn-1", image=image, size=size)  # another deployment
    raw.create_node(name="someone-elses", image=image, size=size, ex_metadata={TAG_DEPLOYMENT: "d2"})
    listed = driver.list_nodes("d1")
    assert sorted(n.id for n in listed) == sorted([ours.id, tags_lost.id, renamed.id])
    assert {n.name for n in listed} == {"oscar-deploy-d1-wn-1", "oscar-deploy-d1-wn-2", "renamed-by-hand"}
    assert all(n.state in ("pending", "running") for n in listed)

    driver.destroy_node(ours)
    driver.destroy_node(ours)  # already gone: not an error
    assert ours.id not in {n.id for n in driver.list_nodes("d1")}


def test_volume_once_tagged_then_attached(driver: Ec2Driver, ec2_emulator: Any, public_key: str) -> None:
    key = driver.ensure_key_pair("d1", public_key)
    sg = driver.ensure_security_group("d1", RULES)
    node = driver.create_node(_request(driver, "d1", "fe", 1, key, sg, zone="eu-west-1a"))
    volume = driver.ensure_volume("d1", "fe", 20, node.zone)
    assert driver.ensure_volume("d1", "fe", 20, node.zone) == volume
    driver.attach_volume(volume, node)
    driver.attach_volume(volume, node)  # already attached: nothing to do
    (seen,) = [v for v in ec2_emulator.inventory(REGION)["volumes"] if v["id"] == volume]
    assert seen["size"] == 20 and seen["zone"] == "eu-west-1a" and seen["attached_to"] == node.id
    assert seen["tags"] == {"Name": "oscar-deploy-d1-fe-data", TAG_DEPLOYMENT: "d1", TAG_GROUP: "fe"}


def _deploy(driver: Ec2Driver, deployment: str, public_key: str, workers: int = 2) -> list[Any]:
    key = driver.ensure_key_pair(deployment, public_key)
    sg = driver.ensure_security_group(deployment, RULES)
    front = driver.create_node(_request(driver, deployment, "fe", 1, key, sg, public_ip=True))
    nodes = [front] + [driver.create_node(_request(driver, deployment, "wn", i, key, sg))
                       for i in range(1, workers + 1)]
    volume = driver.ensure_volume(deployment, "fe", 10, front.zone)
    driver.attach_volume(volume, front)
    return nodes


def _private_subnet(boto: Any) -> str:
    """A subnet of the default VPC that gives no public address at launch."""
    vpc = boto.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    return str(boto.create_subnet(VpcId=vpc, CidrBlock="172.31.240.0/24",
                                  AvailabilityZone=f"{REGION}a")["Subnet"]["SubnetId"])


def test_sweep_removes_everything_of_the_deployment_and_nothing_else(
        driver: Ec2Driver, ec2_emulator: Any, boto: Any, public_key: str) -> None:
    _deploy(driver, "d1", public_key)
    other = _deploy(driver, "d2", public_key, workers=1)
    sg = driver.ensure_security_group("d1", RULES)
    bare = driver.create_node(_request(driver, "d1", "wn", 9, "", sg, network=_private_subnet(boto)))
    assert bare.public_ips == ()
    address = driver.ensure_public_address("d1", bare)  # an elastic address, tagged for the deployment
    (eip,) = _live(ec2_emulator)["addresses"]
    assert eip["public_ip"] == address and eip["instance"] == bare.id and eip["tags"][TAG_DEPLOYMENT] == "d1"
    assert driver.ensure_public_address("d1", bare) == address  # once
    assert eip["tags"]["Name"] == "oscar-deploy-d1-wn-9-address"
    boto.allocate_address(Domain="vpc")  # not ours: survives
    removed = driver.sweep("d1")
    kinds = sorted(r.kind for r in removed)
    assert kinds == ["address", "instance", "instance", "instance", "instance", "key_pair", "security_group",
                     "volume"]
    left = _live(ec2_emulator)
    assert sorted(i["id"] for i in left["instances"]) == sorted(n.id for n in other)
    assert [k["name"] for k in left["key_pairs"]] == ["oscar-deploy-d2-key"]
    assert [g["name"] for g in left["security_groups"]] == ["oscar-deploy-d2-sg"]
    data = [v["tags"]["Name"] for v in left["volumes"] if v["tags"].get("Name", "").endswith("-data")]
    assert data == ["oscar-deploy-d2-fe-data"]  # and d2's machines' root volumes, tagged at launch
    assert [a["tags"] for a in left["addresses"]] == [{}]
    assert driver.sweep("d1") == []  # idempotent


def test_sweep_keep_data_keeps_the_volume(driver: Ec2Driver, ec2_emulator: Any, public_key: str) -> None:
    _deploy(driver, "d1", public_key, workers=0)
    removed = driver.sweep("d1", keep_data=True)
    assert "volume" not in {r.kind for r in removed}
    left = _live(ec2_emulator)
    assert [v["tags"].get("Name") for v in left["volumes"]] == ["oscar-deploy-d1-fe-data"]
    assert left["instances"] == [] and left["key_pairs"] == [] and left["security_groups"] == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_twenty_percent_throttling_still_succeeds(
        driver: Ec2Driver, ec2_emulator: Any, public_key: str, seed: int) -> None:
    ec2_emulator.set_faults({"seed": seed, "rules": [
        {"code": "RequestLimitExceeded", "rate": 0.1}, {"code": "Unavailable", "rate": 0.06},
        {"code": "InternalError", "rate": 0.05}]})
    nodes = _deploy(driver, "d1", public_key, workers=4)
    assert len(driver.list_nodes("d1")) == 5 == len({n.id for n in nodes})
    driver.sweep("d1")
    assert len(ec2_emulator.injector.injected) >= 3  # the faults did happen
    left = _live(ec2_emulator)
    assert left == {"instances": [], "key_pairs": [], "security_groups": [], "volumes": [], "addresses": []}


def test_capacity_error_surfaces_typed_without_retrying(
        driver: Ec2Driver, ec2_emulator: Any, public_key: str) -> None:
    key = driver.ensure_key_pair("d1", public_key)
    sg = driver.ensure_security_group("d1", RULES)
    ec2_emulator.set_faults({"rules": [{"code": "InsufficientInstanceCapacity", "actions": ["RunInstances"],
                                        "instance_type": "t3.large"}]})
    with pytest.raises(CapacityError, match="InsufficientInstanceCapacity"):
        driver.create_node(_request(driver, "d1", "wn", 1, key, sg, size="t3.large"))
    assert [c.action for c in ec2_emulator.calls].count("RunInstances") == 1
    driver.create_node(_request(driver, "d1", "wn", 1, key, sg, size="t3.medium"))  # the next size works
    assert len(driver.list_nodes("d1")) == 1


def test_zones_are_the_available_ones_and_a_zone_places_the_machine_there(
        driver: Ec2Driver, ec2_emulator: Any, boto: Any, public_key: str) -> None:
    listed = boto.describe_availability_zones(Filters=[{"Name": "state", "Values": ["available"]}])
    available = sorted(z["ZoneName"] for z in listed["AvailabilityZones"])
    assert len(available) >= 2
    assert driver.list_zones() == available
    key = driver.ensure_key_pair("d1", public_key)
    sg = driver.ensure_security_group("d1", RULES)
    node = driver.create_node(_request(driver, "d1", "wn", 1, key, sg, zone=available[1]))
    machine = next(i for i in ec2_emulator.inventory(REGION)["instances"] if i["id"] == node.id)
    assert machine["zone"] == node.zone == available[1]
    pinned = Ec2Driver(_credentials(ec2_emulator.endpoint), REGION, FAST, subnet=_private_subnet(boto))
    assert pinned.list_zones() == []  # one subnet, one zone: nothing to fall back to


def test_credentials_never_in_errors_or_logs(
        ec2_emulator: Any, caplog: pytest.LogCaptureFixture, public_key: str) -> None:
    driver = Ec2Driver(_credentials(ec2_emulator.endpoint), REGION,
                       ProvisionerSettings(api_retries=3, retry_base_s=0.01, retry_max_s=0.02))
    caplog.set_level(logging.DEBUG)
    refusal = "AWS was not able to validate the provided credentials."
    ec2_emulator.set_faults({"rules": [{"code": "AuthFailure", "status": 401, "actions": ["ImportKeyPair"],
                                        "message": refusal}]})
    with pytest.raises(AuthError, match="AuthFailure") as err:
        driver.ensure_key_pair("d1", public_key)
    ec2_emulator.set_faults({"rules": [{"code": "RequestLimitExceeded", "rate": 1.0}]})
    with pytest.raises(Exception) as throttled:
        driver.ensure_security_group("d1", RULES)
    assert "RequestLimitExceeded" in str(throttled.value)
    texts = [str(err.value), repr(err.value), str(throttled.value), repr(driver), caplog.text]
    texts += [r.getMessage() for r in caplog.records]
    assert caplog.records  # retries were logged
    for text in texts:
        assert SECRET not in text and KEY_ID not in text


def test_sizes_that_fit_cheapest_first_or_the_named_one(driver: Ec2Driver) -> None:
    fitting = driver.sizes_that_fit(2, 4096, "amd64")
    assert fitting[0] == "t3a.medium" and "t3.medium" in fitting[:4] and "m5.large" in fitting
    assert all(not name.startswith(("t4g", "m6g", "c7g")) for name in fitting)  # arm types are not amd64
    assert driver.sizes_that_fit(2, 4096, "arm64")[0] == "t4g.medium"
    assert driver.sizes_that_fit(1, 1, explicit="m5.xlarge") == ["m5.xlarge"]
    with pytest.raises(NotFound, match=r"m9\.huge"):
        driver.sizes_that_fit(1, 1, explicit="m9.huge")


def test_one_driver_creates_in_parallel_threads(driver: Ec2Driver, ec2_emulator: Any,
                                                public_key: str) -> None:
    key = driver.ensure_key_pair("d1", public_key)
    sg = driver.ensure_security_group("d1", RULES)
    ec2_emulator.set_faults({"latency_s": 0.5})
    with ThreadPoolExecutor(8) as pool:
        requests = [_request(driver, "d1", "wn", i, key, sg) for i in range(8)]
        nodes = list(pool.map(driver.create_node, requests))
    assert len({n.id for n in nodes}) == 8 == len(driver.list_nodes("d1"))
    runs = [c.at for c in ec2_emulator.calls if c.action == "RunInstances"]
    spread = max(runs) - min(runs)  # each answered after its 0.5 s: serially they would be 3.5 s apart
    assert len(runs) == 8 and spread < 2.0, spread


def test_an_address_left_by_a_crash_is_reused_not_doubled(
        driver: Ec2Driver, ec2_emulator: Any, boto: Any) -> None:
    sg = driver.ensure_security_group("d1", RULES)
    node = driver.create_node(_request(driver, "d1", "fe", 1, "", sg, network=_private_subnet(boto)))
    tags = [{"Key": "Name", "Value": "oscar-deploy-d1-fe-1-address"}, {"Key": TAG_DEPLOYMENT, "Value": "d1"}]
    spec = [{"ResourceType": "elastic-ip", "Tags": tags}]
    left = boto.allocate_address(Domain="vpc", TagSpecifications=spec)
    assert driver.ensure_public_address("d1", node) == left["PublicIp"]
    (eip,) = ec2_emulator.inventory(REGION)["addresses"]
    assert eip["allocation_id"] == left["AllocationId"] and eip["instance"] == node.id
