"""The EC2 requests we build by hand, checked against botocore's own EC2 model and Query serialiser:
every parameter name is one botocore would send for the same request, so EC2 reads what we mean."""

from __future__ import annotations

from typing import Any

import pytest

from provisioner.clouds.base import FirewallRule, NodeRequest
from provisioner.clouds.ec2_requests import (
    clean_description,
    ingress_params,
    modify_metadata_options_params,
    needs_imdsv2,
    revoke_params,
    run_instances_params,
)


def _serialised(operation: str, params: dict[str, Any]) -> dict[str, str]:
    import botocore.session
    from botocore.serialize import create_serializer

    model = botocore.session.get_session().get_service_model("ec2")
    body = create_serializer("ec2").serialize_to_request(params, model.operation_model(operation))["body"]
    return {k: str(v) for k, v in body.items() if k not in ("Action", "Version")}


def _ours(params: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in params.items() if k != "Action"}


@pytest.mark.parametrize("profile", [None, "oscar-daemon"])
def test_run_instances_is_what_botocore_would_send(profile: str | None) -> None:
    request = NodeRequest(
        "d1",
        "front",
        "oscar-deploy-d1-front-1",
        "t3.medium",
        "ami-0123456789abcdef0",
        "oscar-deploy-d1-key",
        "sg-0123456789abcdef0",
        public_ip=True,
        role="front-end",
        instance_profile=profile,
    )
    tags = [
        {"Key": "Name", "Value": "oscar-deploy-d1-front-1"},
        {"Key": "oscar-deploy:deployment", "Value": "d1"},
        {"Key": "oscar-deploy:group", "Value": "front"},
    ]
    expected = _serialised(
        "RunInstances",
        {
            "ImageId": "ami-0123456789abcdef0",
            "InstanceType": "t3.medium",
            "MinCount": 1,
            "MaxCount": 1,
            "ClientToken": "tok",
            "KeyName": "oscar-deploy-d1-key",
            "UserData": "dXNlcg==",
            "NetworkInterfaces": [
                {
                    "DeviceIndex": 0,
                    "SubnetId": "subnet-0123456789abcdef0",
                    "AssociatePublicIpAddress": True,
                    "DeleteOnTermination": True,
                    "Groups": ["sg-0123456789abcdef0"],
                }
            ],
            "MetadataOptions": {
                "HttpTokens": "required",
                "HttpPutResponseHopLimit": 1,
                "HttpEndpoint": "enabled",
            },
            "BlockDeviceMappings": [
                {
                    "DeviceName": "/dev/sda1",
                    "Ebs": {
                        "VolumeSize": 30,
                        "VolumeType": "gp3",
                        "Encrypted": True,
                        "DeleteOnTermination": True,
                    },
                }
            ],
            "TagSpecifications": [
                {"ResourceType": kind, "Tags": tags} for kind in ("instance", "volume", "network-interface")
            ],
            "CreditSpecification": {"CpuCredits": "standard"},
            # the daemon's role, by name; the hop limit above stays 1 with it
            **({"IamInstanceProfile": {"Name": profile}} if profile else {}),
        },
    )
    ours = run_instances_params(
        request,
        subnet_id="subnet-0123456789abcdef0",
        root_device="/dev/sda1",
        client_token="tok",
        user_data_b64="dXNlcg==",
    )
    assert _ours(ours) == expected


def test_metadata_options_modify_is_what_botocore_would_send() -> None:
    wanted = {"InstanceId": "i-1", "HttpTokens": "required", "HttpPutResponseHopLimit": 1,
              "HttpEndpoint": "enabled"}
    expected = _serialised("ModifyInstanceMetadataOptions", wanted)
    assert _ours(modify_metadata_options_params("i-1")) == expected


@pytest.mark.parametrize(("tokens", "hops", "endpoint", "needs"), [
    ("required", "1", "enabled", False), ("optional", "1", "enabled", True),
    ("required", "2", "enabled", True), ("required", "1", "disabled", True), (None, None, None, True)])
def test_only_machines_short_of_imdsv2_with_one_hop_need_a_modify(tokens: str | None, hops: str | None,
                                                                  endpoint: str | None, needs: bool) -> None:
    assert needs_imdsv2(tokens, hops, endpoint) is needs


@pytest.mark.parametrize(
    ("rule", "permission"),
    [
        (
            FirewallRule("tcp", 22, 22, "203.0.113.0/24", "SSH (admin)"),
            {
                "IpProtocol": "tcp",
                "FromPort": 22,
                "ToPort": 22,
                "IpRanges": [{"CidrIp": "203.0.113.0/24", "Description": "SSH (admin)"}],
            },
        ),
        (
            FirewallRule("tcp", 6443, 6443, "2001:db8::/32", "k3s"),
            {
                "IpProtocol": "tcp",
                "FromPort": 6443,
                "ToPort": 6443,
                "Ipv6Ranges": [{"CidrIpv6": "2001:db8::/32", "Description": "k3s"}],
            },
        ),
        (
            FirewallRule("-1", 0, 65535, "cluster", "inside"),
            {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": "sg-1", "Description": "inside"}]},
        ),
    ],
)
def test_ingress_rules_are_what_botocore_would_send(rule: FirewallRule, permission: dict[str, Any]) -> None:
    expected = _serialised(
        "AuthorizeSecurityGroupIngress", {"GroupId": "sg-1", "IpPermissions": [permission]}
    )
    assert _ours(ingress_params("sg-1", rule)) == expected


def test_a_revoke_is_what_botocore_would_send() -> None:
    """``create --update`` revokes a CIDR rule by protocol, ports and range (no description)."""
    expected = _serialised("RevokeSecurityGroupIngress", {"GroupId": "sg-1", "IpPermissions": [
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}]})
    assert _ours(revoke_params("sg-1", FirewallRule("tcp", 22, 22, "10.0.0.0/8", "SSH"))) == expected


def test_descriptions_keep_only_what_aws_accepts() -> None:
    assert (
        clean_description("HTTP (ingress; Let's Encrypt challenge)")
        == "HTTP (ingress; Let s Encrypt challenge)"
    )
    assert clean_description("naïve «quotes» & <tags>") == "na ve quotes tags"
    assert len(clean_description("x" * 400)) == 255
