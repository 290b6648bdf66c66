"""The EC2 emulator's stricter layer, through boto3 (a client that does nothing for us): each rule
answers as AWS does, so the driver's tests against it mean something (`tests/harness/ec2_strict.py`
cites AWS for each)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ClientError

REGION = "eu-west-1"
NOBLE_AMD64 = "ami-cc7c8e6bcfb5ab375"


@pytest.fixture
def boto(ec2_emulator: Any) -> Any:
    import boto3

    return boto3.client(
        "ec2",
        endpoint_url=ec2_emulator.endpoint,
        region_name=REGION,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="x",
    )


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def _default_subnet(boto: Any) -> dict[str, Any]:
    return boto.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"][0]


def test_descriptions_and_ipv6_in_cidr_ip_are_refused(boto: Any) -> None:
    vpc = _default_subnet(boto)["VpcId"]
    with pytest.raises(ClientError) as bad_group:
        boto.create_security_group(GroupName="g", Description="it's mine", VpcId=vpc)
    assert _code(bad_group) == "InvalidParameterValue"
    group = boto.create_security_group(GroupName="g", Description="fine: (ok) #1", VpcId=vpc)["GroupId"]
    for ranges in (
        {"IpRanges": [{"CidrIp": "10.0.0.0/8", "Description": "café"}]},
        {"IpRanges": [{"CidrIp": "::/0"}]},
        {"UserIdGroupPairs": [{"GroupId": group, "Description": "a & b"}]},
    ):
        with pytest.raises(ClientError) as refused:
            boto.authorize_security_group_ingress(
                GroupId=group, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1, **ranges}]
            )
        assert _code(refused) == "InvalidParameterValue"
    boto.authorize_security_group_ingress(
        GroupId=group,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 1,
                "ToPort": 1,
                "IpRanges": [{"CidrIp": "10.0.0.0/8", "Description": "a & b"}],
            }
        ],
    )


def test_no_default_vpc(ec2_emulator: Any, boto: Any) -> None:
    ec2_emulator.set_strict({"default_vpc": False})
    assert boto.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"] == []
    with pytest.raises(ClientError) as group:
        boto.create_security_group(GroupName="g", Description="d")
    with pytest.raises(ClientError) as run:
        boto.run_instances(ImageId=NOBLE_AMD64, InstanceType="t3.micro", MinCount=1, MaxCount=1)
    assert _code(group) == _code(run) == "VPCIdNotSpecified"


def test_interface_and_instance_level_network_together_are_refused(boto: Any) -> None:
    subnet = _default_subnet(boto)["SubnetId"]
    with pytest.raises(ClientError) as refused:
        boto.run_instances(
            ImageId=NOBLE_AMD64,
            InstanceType="t3.micro",
            MinCount=1,
            MaxCount=1,
            SubnetId=subnet,
            NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet}],
        )
    assert _code(refused) == "InvalidParameterCombination"


def test_t3_runs_unlimited_unless_told(boto: Any) -> None:
    plain = boto.run_instances(ImageId=NOBLE_AMD64, InstanceType="t3.micro", MinCount=1, MaxCount=1)
    told = boto.run_instances(
        ImageId=NOBLE_AMD64,
        InstanceType="t3.micro",
        MinCount=1,
        MaxCount=1,
        CreditSpecification={"CpuCredits": "standard"},
    )
    older = boto.run_instances(ImageId=NOBLE_AMD64, InstanceType="t2.micro", MinCount=1, MaxCount=1)
    ids = [r["Instances"][0]["InstanceId"] for r in (plain, told, older)]
    found = {
        c["InstanceId"]: c["CpuCredits"]
        for c in boto.describe_instance_credit_specifications(InstanceIds=ids)["InstanceCreditSpecifications"]
    }
    assert [found[i] for i in ids] == ["unlimited", "standard", "standard"]


def test_new_ids_are_not_found_for_a_few_calls(ec2_emulator: Any, boto: Any) -> None:
    ec2_emulator.set_strict({"not_found_calls": 2})
    instance = boto.run_instances(ImageId=NOBLE_AMD64, InstanceType="t3.micro", MinCount=1, MaxCount=1)[
        "Instances"
    ][0]["InstanceId"]
    for _ in range(2):
        with pytest.raises(ClientError) as missing:
            boto.describe_instances(InstanceIds=[instance])
        assert _code(missing) == "InvalidInstanceID.NotFound"
    assert boto.describe_instances(InstanceIds=[instance])["Reservations"]


def test_an_instance_terminated_during_launch_shows_its_state_reason(ec2_emulator: Any, boto: Any) -> None:
    body = json.dumps(
        {
            "launch_terminations": [
                {"code": "Client.VolumeLimitExceeded", "message": "Volume limit exceeded", "remaining": 1}
            ]
        }
    ).encode()
    urllib.request.urlopen(
        urllib.request.Request(f"{ec2_emulator.endpoint}/_harness/strict", data=body, method="POST"),
        timeout=10,
    ).read()
    first, second = (
        boto.run_instances(ImageId=NOBLE_AMD64, InstanceType="t3.micro", MinCount=1, MaxCount=1)["Instances"][
            0
        ]["InstanceId"]
        for _ in range(2)
    )
    described = {
        i["InstanceId"]: i
        for r in boto.describe_instances(InstanceIds=[first, second])["Reservations"]
        for i in r["Instances"]
    }
    assert described[first]["State"]["Name"] == "terminated"
    assert described[first]["StateReason"]["Code"] == "Client.VolumeLimitExceeded"
    assert described[second]["State"]["Name"] != "terminated"
