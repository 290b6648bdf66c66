"""The EC2 driver against the emulator's stricter layer: what real AWS accounts refuse or do.

Each test is one way `create` used to fail (or cost) on a real account while moto let it pass; the
emulator now answers as AWS does (`tests/harness/ec2_strict.py` cites where), and each test checks
what an operator would look at: the AWS console's view through boto3, or the emulator's inventory.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from provisioner.clouds.base import TAG_DEPLOYMENT, TAG_GROUP, FirewallRule, NodeRequest, resource_name
from provisioner.clouds.ec2 import Ec2Driver, endpoint_kwargs
from provisioner.config import ProvisionerSettings
from provisioner.credentials import AwsCredentials, CredentialSource
from provisioner.errors import AuthError, BadInput, CapacityError, CloudError, NotFound
from tests.test_plan_cli import installed_command

REGION = "eu-west-1"
FAST = ProvisionerSettings(api_retries=6, retry_base_s=0.01, retry_max_s=0.05, create_timeout_s=20)
NOBLE_AMD64 = "ami-cc7c8e6bcfb5ab375"
PLAN_HTTP_RULE = FirewallRule("tcp", 80, 80, "0.0.0.0/0", "HTTP (ingress; Let's Encrypt challenge)")


def _credentials(endpoint: str | None) -> AwsCredentials:
    return AwsCredentials(
        "AKIDOSCARAWSTEST0001",
        "aws-s3cret-Zq9xW-never-shown",
        CredentialSource("environment"),
        region=REGION,
        endpoint_url=endpoint,
    )


def _driver(ec2_emulator: Any, region: str = REGION, subnet: str | None = None) -> Ec2Driver:
    return Ec2Driver(_credentials(ec2_emulator.endpoint), region, FAST, subnet=subnet)


def _boto(ec2_emulator: Any, region: str = REGION) -> Any:
    import boto3

    return boto3.client(
        "ec2",
        endpoint_url=ec2_emulator.endpoint,
        region_name=region,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="x",
    )


@pytest.fixture
def public_key(tmp_path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    return (tmp_path / "k.pub").read_text()


def _request(deployment: str, group: str, sg: str, key: str = "", **kw: Any) -> NodeRequest:
    return NodeRequest(
        deployment=deployment,
        group=group,
        name=resource_name(deployment, group, "1"),
        size=kw.pop("size", "t3.micro"),
        image=NOBLE_AMD64,
        key_name=key,
        security_group=sg,
        **kw,
    )


def _instance(ec2_emulator: Any, instance_id: str, region: str = REGION) -> dict[str, Any]:
    return next(i for i in ec2_emulator.inventory(region)["instances"] if i["id"] == instance_id)


# -- 1: rule descriptions -------------------------------------------------------------------------------
def test_the_plans_rule_descriptions_reach_aws_in_its_character_set(ec2_emulator: Any) -> None:
    boto = _boto(ec2_emulator)
    vpc = boto.describe_vpcs()["Vpcs"][0]["VpcId"]
    probe = boto.create_security_group(GroupName="probe", Description="probe", VpcId=vpc)["GroupId"]
    with pytest.raises(Exception, match="InvalidParameterValue"):  # AWS refuses the apostrophe
        boto.authorize_security_group_ingress(
            GroupId=probe,
            IpPermissions=[
                {
                    "IpProtocol": "tcp",
                    "FromPort": 80,
                    "ToPort": 80,
                    "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": PLAN_HTTP_RULE.description}],
                }
            ],
        )
    sg = _driver(ec2_emulator).ensure_security_group("d1", [PLAN_HTTP_RULE])
    (group,) = boto.describe_security_groups(GroupIds=[sg])["SecurityGroups"]
    (rule,) = group["IpPermissions"]
    assert rule["IpRanges"] == [
        {"CidrIp": "0.0.0.0/0", "Description": "HTTP (ingress; Let s Encrypt challenge)"}
    ]


def test_every_shipped_templates_rules_are_in_aws_character_set(tmp_path: Path) -> None:
    import re

    from provisioner.config import GeneralSettings, Settings
    from provisioner.plan import make_plan
    from provisioner.resources import tosca_dir
    from provisioner.template import load_cluster_spec

    settings = Settings(general=GeneralSettings(cache_dir=str(tmp_path)))
    allowed = re.compile(
        r"[a-zA-Z0-9 ._\-:/()#,@\[\]+=;{}!$*]{0,255}"
    )  # botocore model, IpRange/UserIdGroupPair
    for template in sorted((tosca_dir() / "templates").glob("*.yaml")):
        plan = make_plan(load_cluster_spec([template], {}, import_paths=[], cache_dir=tmp_path), settings)
        for rule in plan.security_rules:
            assert allowed.fullmatch(rule.description), (template.name, rule.description)


# -- 2: VPCs and subnets --------------------------------------------------------------------------------
def test_an_account_without_a_default_vpc(ec2_emulator: Any, public_key: str) -> None:
    ec2_emulator.set_strict({"default_vpc": False})
    boto = _boto(ec2_emulator)
    vpc = boto.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnet = boto.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24", AvailabilityZone=f"{REGION}b")["Subnet"]
    assert subnet["DefaultForAz"] is False  # as EC2: only a default VPC has default subnets
    with pytest.raises(BadInput, match=r"no default VPC.*subnet_id"):
        _driver(ec2_emulator).preflight()
    with pytest.raises(BadInput, match="no subnet 'subnet-0123456789abcdef0'"):
        _driver(ec2_emulator, subnet="subnet-0123456789abcdef0").preflight()
    assert (
        boto.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["oscar-deploy-*"]}])[
            "SecurityGroups"
        ]
        == []
    )
    driver = _driver(ec2_emulator, subnet=subnet["SubnetId"])
    driver.preflight()
    sg = driver.ensure_security_group("d1", [FirewallRule("tcp", 22, 22, "10.0.0.0/8", "SSH")])
    key = driver.ensure_key_pair("d1", public_key)
    node = driver.create_node(_request("d1", "front", sg, key, public_ip=True, role="front-end"))
    (group,) = boto.describe_security_groups(GroupIds=[sg])["SecurityGroups"]
    assert group["VpcId"] == vpc
    machine = _instance(ec2_emulator, node.id)
    assert machine["subnet"] == subnet["SubnetId"] and machine["zone"] == f"{REGION}b"
    assert driver.list_zones() == []  # pinned to its subnet: no zone to fall back to
    driver.sweep("d1")
    assert all(not items for items in ec2_emulator.leftovers("d1", REGION).values())


def test_a_security_group_and_a_subnet_of_two_vpcs_are_refused_as_aws_does(ec2_emulator: Any) -> None:
    boto = _boto(ec2_emulator)
    vpc = boto.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    subnet = boto.create_subnet(VpcId=vpc, CidrBlock="10.30.1.0/24")["Subnet"]["SubnetId"]
    sg = _driver(ec2_emulator).ensure_security_group("d1", [])  # in the default VPC
    with pytest.raises(CloudError, match="belong to different networks"):
        _driver(ec2_emulator).create_node(_request("d1", "wn", sg, network=subnet))


# -- 3: every region ------------------------------------------------------------------------------------
@pytest.mark.parametrize("region", ["eu-central-2", "il-central-1", "ca-west-1"])
def test_a_region_libcloud_does_not_list(ec2_emulator: Any, public_key: str, region: str) -> None:
    driver = _driver(ec2_emulator, region)
    sg = driver.ensure_security_group("d1", [FirewallRule("tcp", 22, 22, "10.0.0.0/8", "SSH")])
    key = driver.ensure_key_pair("d1", public_key)
    sizes = driver.sizes_that_fit(2, 4096)
    assert sizes and all(s in _offered(ec2_emulator, region) for s in sizes)
    node = driver.create_node(_request("d1", "wn", sg, key, size=sizes[0]))
    assert _instance(ec2_emulator, node.id, region)["zone"].startswith(region)
    assert ec2_emulator.inventory(REGION)["instances"] == []  # signed for its own region, not us-east-1's
    driver.sweep("d1")
    assert all(not items for items in ec2_emulator.leftovers("d1", region).values())


def _offered(ec2_emulator: Any, region: str) -> set[str]:
    pages = (
        _boto(ec2_emulator, region)
        .get_paginator("describe_instance_type_offerings")
        .paginate(LocationType="region")
    )
    return {o["InstanceType"] for page in pages for o in page["InstanceTypeOfferings"]}


@pytest.mark.parametrize(
    ("region", "host"),
    [
        ("il-central-1", "ec2.il-central-1.amazonaws.com"),
        ("cn-northwest-1", "ec2.cn-northwest-1.amazonaws.com.cn"),
        ("us-gov-east-1", "ec2.us-gov-east-1.amazonaws.com"),
    ],
)
def test_endpoints_and_signing_scope_for_any_region_and_partition(region: str, host: str) -> None:
    from provisioner.clouds.ec2 import make_libcloud_driver

    driver = make_libcloud_driver(_credentials(None), region)
    assert driver.connection.host == host and driver.region_name == region
    assert endpoint_kwargs(_credentials(None), "eu-west-1").get("host") is None  # libcloud's own


def test_a_name_that_is_no_region_is_bad_input() -> None:
    from provisioner.clouds.ec2 import make_libcloud_driver

    with pytest.raises(BadInput, match="not an AWS region name"):
        make_libcloud_driver(_credentials(None), "eu west 1")


@pytest.mark.parametrize(
    ("region", "owner"),
    [("us-east-1", "099720109477"), ("us-gov-west-1", "513442679011"), ("cn-north-1", "837727238323")],
)
def test_plan_prices_and_the_canonical_owner_in_every_partition(
    tmp_path: Path, region: str, owner: str
) -> None:
    proc = subprocess.run(
        [
            *installed_command(),  # this checkout's, not whichever oscar-deploy is first on PATH
            "plan",
            "tosca/templates/oscar-aws.yaml",
            "-i",
            f"region={region}",
            "-i",
            "admin_cidr=10.0.0.0/8",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        check=False,
        env={**os.environ, "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )
    assert proc.returncode == 0, proc.stderr
    import json

    plan = json.loads(proc.stdout)
    assert {g["image"]["owner"] for g in plan["groups"]} == {owner}
    assert all(g["size"] for g in plan["groups"])
    assert ("prices" in proc.stderr) == (region == "cn-north-1")  # China's are borrowed, and it says so


# -- 4: errors as AWS means them --------------------------------------------------------------------------
@pytest.mark.parametrize("code", ["Unsupported", "InsufficientFreeAddressesInSubnet"])
def test_unfulfillable_capacity_codes_are_capacity_for_that_type_and_zone(
    ec2_emulator: Any, code: str
) -> None:
    driver = _driver(ec2_emulator)
    sg = driver.ensure_security_group("d1", [])
    ec2_emulator.set_faults({"rules": [{"code": code, "actions": ["RunInstances"], "zone": f"{REGION}a"}]})
    with pytest.raises(CapacityError, match=code):
        driver.create_node(_request("d1", "wn", sg, zone=f"{REGION}a"))
    node = driver.create_node(_request("d1", "wn", sg, zone=f"{REGION}b"))
    assert node.zone == f"{REGION}b"


def test_a_type_goes_to_a_zone_that_offers_it(ec2_emulator: Any) -> None:
    offered = {
        o["Location"]
        for o in _boto(ec2_emulator).describe_instance_type_offerings(
            LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": ["r8a.large"]}]
        )["InstanceTypeOfferings"]
    }
    assert f"{REGION}a" not in offered  # else the test proves nothing
    driver = _driver(ec2_emulator)
    sg = driver.ensure_security_group("d1", [])
    node = driver.create_node(_request("d1", "wn", sg, size="r8a.large"))
    assert node.zone in offered


def test_quota_and_permission_errors_fail_fast_saying_what_to_do(ec2_emulator: Any) -> None:
    driver = _driver(ec2_emulator)
    sg = driver.ensure_security_group("d1", [])
    ec2_emulator.set_faults({"rules": [{"code": "VcpuLimitExceeded", "actions": ["RunInstances"]}]})
    with pytest.raises(CloudError, match=r"vCPU limit.*Service Quotas") as quota:
        driver.create_node(_request("d1", "wn", sg))
    assert not isinstance(quota.value, CapacityError)
    ec2_emulator.set_faults({"rules": [{"code": "UnauthorizedOperation", "actions": ["RunInstances"]}]})
    with pytest.raises(AuthError, match="aws sts decode-authorization-message"):
        driver.create_node(_request("d1", "wn", sg))
    runs = [c for c in ec2_emulator.calls if c.action == "RunInstances"]
    assert len(runs) == 2  # neither was retried


# -- 5: eventual consistency ------------------------------------------------------------------------------
def test_ids_just_created_that_ec2_does_not_know_yet_are_waited_for(
    ec2_emulator: Any, public_key: str
) -> None:
    ec2_emulator.set_strict({"not_found_calls": 3})
    driver = _driver(ec2_emulator)
    sg = driver.ensure_security_group(
        "d1",
        [FirewallRule("tcp", 22, 22, "10.0.0.0/8", "SSH"), FirewallRule("-1", 0, 65535, "cluster", "inside")],
    )
    node = driver.create_node(_request("d1", "wn", sg, driver.ensure_key_pair("d1", public_key)))
    address = driver.ensure_public_address("d1", node)
    assert _instance(ec2_emulator, node.id)["public_ip"] == address
    refused = {(c.action, c.refused) for c in ec2_emulator.calls if c.refused}
    assert ("AuthorizeSecurityGroupIngress", "InvalidGroup.NotFound") in refused
    assert ("DescribeInstances", "InvalidInstanceID.NotFound") in refused  # else this proves nothing
    assert len([i for i in ec2_emulator.inventory(REGION)["instances"] if i["state"] != "terminated"]) == 1
    doomed = driver.create_node(_request("d1", "wn", sg, size="t3.small"))
    driver.destroy_node(doomed)  # at once: EC2 does not know it yet, but it must not be left running
    assert _instance(ec2_emulator, doomed.id)["state"] == "terminated"


# -- 6: terminated during launch --------------------------------------------------------------------------
def test_an_instance_terminated_during_launch_is_listed_as_such_by_its_launcher(ec2_emulator: Any) -> None:
    ec2_emulator.set_strict(
        {
            "launch_terminations": [
                {"code": "Server.InsufficientInstanceCapacity", "instance_type": "t3.micro"}
            ]
        }
    )
    driver = _driver(ec2_emulator)
    sg = driver.ensure_security_group("d1", [])
    lost = driver.create_node(_request("d1", "wn", sg))
    listed = {n.id: n.state for n in driver.list_nodes("d1")}
    assert listed == {lost.id: "terminated"}
    assert _driver(ec2_emulator).list_nodes("d1") == []  # another driver (destroy, the daemon) never sees it


# -- 7, 9, 10, IMDSv2, public address: the one launch request -----------------------------------------------
def test_one_launch_request_carries_everything(ec2_emulator: Any, public_key: str) -> None:
    driver = _driver(ec2_emulator)
    sg = driver.ensure_security_group("d1", [])
    key = driver.ensure_key_pair("d1", public_key)
    front = driver.create_node(_request("d1", "front", sg, key, public_ip=True, role="front-end"))
    worker = driver.create_node(
        NodeRequest(
            "d1",
            "wn",
            resource_name("d1", "wn", "1"),
            "t3.small",
            NOBLE_AMD64,
            key,
            sg,
            disk_gib=25,
            role="worker",
        )
    )
    big = driver.create_node(
        NodeRequest(
            "d1", "wn", resource_name("d1", "wn", "2"), "m5.large", NOBLE_AMD64, key, sg, role="worker"
        )
    )
    actions = [c.action for c in ec2_emulator.calls]
    assert actions.count("RunInstances") == 3 and "ModifyInstanceMetadataOptions" not in actions
    assert "CreateTags" not in actions[actions.index("RunInstances") :]
    boto = _boto(ec2_emulator)
    credits = {
        c["InstanceId"]: c["CpuCredits"]
        for c in boto.describe_instance_credit_specifications(InstanceIds=[front.id, worker.id, big.id])[
            "InstanceCreditSpecifications"
        ]
    }
    assert credits[front.id] == credits[worker.id] == "standard"  # not billed beyond the plan's price
    expected_root = {front.id: 30, worker.id: 25, big.id: 20}
    for node in (front, worker, big):
        machine = _instance(ec2_emulator, node.id)
        assert machine["http_tokens"] == "required" and machine["http_hop_limit"] == 1
        root = machine["root_volume"]
        assert (root["size"], root["type"], root["encrypted"]) == (expected_root[node.id], "gp3", True)
        tags = {"Name": machine["tags"]["Name"], TAG_DEPLOYMENT: "d1", TAG_GROUP: machine["tags"][TAG_GROUP]}
        assert root["tags"] == tags
        assert [n["tags"] for n in machine["network_interfaces"]] == [tags]
    assert (
        _instance(ec2_emulator, front.id)["public_ip"] and not _instance(ec2_emulator, worker.id)["public_ip"]
    )


# -- 12: the small ones -----------------------------------------------------------------------------------
def test_an_ipv6_admin_range_is_sent_as_an_ipv6_range(ec2_emulator: Any) -> None:
    sg = _driver(ec2_emulator).ensure_security_group(
        "d1", [FirewallRule("tcp", 22, 22, "2001:db8::/48", "SSH")]
    )
    (group,) = _boto(ec2_emulator).describe_security_groups(GroupIds=[sg])["SecurityGroups"]
    (rule,) = group["IpPermissions"]
    assert (
        rule["Ipv6Ranges"] == [{"CidrIpv6": "2001:db8::/48", "Description": "SSH"}] and rule["IpRanges"] == []
    )


def test_a_lost_answer_to_allocate_address_does_not_allocate_a_second(ec2_emulator: Any) -> None:
    driver = _driver(ec2_emulator)
    sg = driver.ensure_security_group("d1", [])
    node = driver.create_node(_request("d1", "wn", sg))
    ec2_emulator.set_faults(
        {
            "rules": [
                {"code": "InternalError", "actions": ["AllocateAddress"], "remaining": 1, "performed": True}
            ]
        }
    )
    address = driver.ensure_public_address("d1", node)
    addresses = ec2_emulator.inventory(REGION)["addresses"]
    assert [(a["public_ip"], a["instance"]) for a in addresses] == [(address, node.id)]


def test_a_volume_is_deleted_once_its_force_detach_is_done(ec2_emulator: Any) -> None:
    driver = _driver(ec2_emulator)
    boto = _boto(ec2_emulator)
    stranger = boto.run_instances(
        ImageId=NOBLE_AMD64,
        InstanceType="t3.micro",
        MinCount=1,
        MaxCount=1,
        Placement={"AvailabilityZone": f"{REGION}a"},
    )["Instances"][0]["InstanceId"]
    volume = driver.ensure_volume("d1", "front", 5, f"{REGION}a")
    boto.attach_volume(VolumeId=volume, InstanceId=stranger, Device="/dev/sdf")  # someone mounted our data
    ec2_emulator.set_strict({"detaching_calls": 2})
    removed = driver.sweep("d1")
    assert [r.kind for r in removed] == ["volume"]
    assert boto.describe_volumes(Filters=[{"Name": "volume-id", "Values": [volume]}])["Volumes"] == []
    assert [c.action for c in ec2_emulator.calls].count("DetachVolume") == 1


# -- 11: instance types newer than libcloud's data --------------------------------------------------------
def test_a_type_newer_than_libclouds_data_is_planned_with_a_warning_and_asked_of_ec2(
    tmp_path: Path, ec2_emulator: Any
) -> None:
    from provisioner.config import GeneralSettings, Settings
    from provisioner.plan import make_plan
    from provisioner.resources import tosca_dir
    from provisioner.template import load_cluster_spec

    spec = load_cluster_spec([tosca_dir() / "templates" / "oscar-aws.yaml"],
                             {"wn_instance_type": "c8i.large", "admin_cidr": "10.0.0.0/8"},
                             import_paths=[], cache_dir=tmp_path)
    plan = make_plan(spec, Settings(general=GeneralSettings(cache_dir=str(tmp_path))))
    (wn,) = [g for g in plan.groups if g.name == "wn"]
    assert wn.size.name == "c8i.large" and wn.size.price_per_hour is None
    assert any("c8i.large is newer than libcloud's data" in w for w in plan.warnings)
    driver = _driver(ec2_emulator)
    assert driver.sizes_that_fit(2, 4096, explicit="c8i.large") == ["c8i.large"]  # EC2 offers it here
    with pytest.raises(NotFound, match="not offered"):
        driver.sizes_that_fit(2, 4096, explicit="c9z.large")
