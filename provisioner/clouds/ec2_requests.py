"""EC2 Query API parameters for the calls libcloud cannot make as AWS needs them: pure functions.

Names and shapes follow botocore's EC2 model (``botocore/data/ec2/2016-11-15/service-2.json``),
serialised as the EC2 Query protocol does (a list member's ``locationName`` numbered from 1, e.g.
``TagSpecification.1.Tag.1.Key``); a test checks them against botocore's own serialiser.

**One launch request.** ``RunInstances`` carries everything at once, so no machine ever exists
without it: the subnet and security group on the primary network interface (with
``AssociatePublicIpAddress`` as the plan says: the front-end, and workers only where their
subnet has no NAT route to download through; the security group decides who reaches them), IMDSv2
required with a hop limit of 1 (a pod cannot reach the node's credentials through the
instance metadata service), tags on the instance, its volumes and its network interface (tag
policies refuse untagged launches), an encrypted gp3 root volume (front-end at least 30 GiB: it runs
k3s, Knative, OSCAR and MinIO's images; Karpenter's default is 20 GiB gp3, encrypted, which
workers get unless the template asks for more), ``CpuCredits=standard`` for burstable types (T3,
T3a and T4g otherwise run ``unlimited`` and bill surplus credits beyond the plan's price), and a
``ClientToken`` so a retried call cannot start a second machine. A front-end whose elasticity daemon
uses an instance profile gets it here too (``IamInstanceProfile``); the hop limit stays 1: the
daemon's pod reaches the metadata service from the node's own network namespace (``hostNetwork``),
so no pod behind the node's bridge ever gets a route to the role's credentials.

**Adopted machines** an older version launched without those metadata options get them with
``ModifyInstanceMetadataOptions`` (``needs_imdsv2`` decides which, from ``DescribeInstances``'
``metadataOptions``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

from provisioner.clouds.base import FirewallRule, NodeRequest, deployment_tags

DESCRIPTION_LIMIT = 255
_NOT_ALLOWED = re.compile(r"[^a-zA-Z0-9 ._\-:/()#,@\[\]+=;{}!$*]")
"""Rule descriptions: "a-z, A-Z, 0-9, spaces, and ._-:/()#,@[]+=&;{}!$*" (botocore model,
``IpRange.Description``), without ``&`` for group pairs (``UserIdGroupPair.Description``): we use
the common set."""
FRONT_END_ROOT_GIB = 30
WORKER_ROOT_GIB = 20
HOP_LIMIT = 1
METADATA_OPTIONS = {"HttpTokens": "required", "HttpPutResponseHopLimit": str(HOP_LIMIT),
                    "HttpEndpoint": "enabled"}
"""IMDSv2 only, one hop: a pod (one hop further, behind the node's network namespace) cannot reach
the node's instance metadata and credentials."""
BURSTABLE_PREFIXES = ("t2.", "t3.", "t3a.", "t4g.")


def clean_description(text: str) -> str:
    """``text`` in the characters EC2 accepts in a rule or group description (others become a
    space, runs of spaces one), at most 255 characters."""
    cleaned = re.sub(r" {2,}", " ", _NOT_ALLOWED.sub(" ", text)).strip()
    return cleaned[:DESCRIPTION_LIMIT].rstrip()


def tag_specifications(tags_by_type: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """``TagSpecification.N`` parameters, one per resource type."""
    params: dict[str, str] = {}
    for n, (resource_type, tags) in enumerate(tags_by_type.items(), start=1):
        params[f"TagSpecification.{n}.ResourceType"] = resource_type
        for m, (key, value) in enumerate(tags.items(), start=1):
            params[f"TagSpecification.{n}.Tag.{m}.Key"] = key
            params[f"TagSpecification.{n}.Tag.{m}.Value"] = value
    return params


def ingress_params(group_id: str, rule: FirewallRule) -> dict[str, str]:
    """``AuthorizeSecurityGroupIngress`` for one rule: an IPv4 range as ``IpRanges``, an IPv6 one as
    ``Ipv6Ranges`` (``CidrIp`` takes IPv4 only), ``"cluster"`` as the group itself."""
    protocol = "-1" if rule.protocol == "-1" else rule.protocol
    params = {"Action": "AuthorizeSecurityGroupIngress", "GroupId": group_id,
              "IpPermissions.1.IpProtocol": protocol}
    if protocol != "-1":
        all_ports = protocol == "icmp" and rule.from_port <= 0
        params["IpPermissions.1.FromPort"] = "-1" if all_ports else str(rule.from_port)
        params["IpPermissions.1.ToPort"] = "-1" if all_ports else str(rule.to_port)
    description = clean_description(rule.description)
    if rule.source == "cluster":
        prefix = "IpPermissions.1.Groups.1."
        params[prefix + "GroupId"] = group_id
    elif ipaddress.ip_network(rule.source, strict=False).version == 6:
        prefix = "IpPermissions.1.Ipv6Ranges.1."
        params[prefix + "CidrIpv6"] = rule.source
    else:
        prefix = "IpPermissions.1.IpRanges.1."
        params[prefix + "CidrIp"] = rule.source
    if description:
        params[prefix + "Description"] = description
    return params


def revoke_params(group_id: str, rule: FirewallRule) -> dict[str, str]:
    """``RevokeSecurityGroupIngress`` for one CIDR rule: the same permission as its authorization,
    matched by protocol, ports and range (a description is not part of the match)."""
    params = {key: value for key, value in ingress_params(group_id, rule).items()
              if not key.endswith(".Description")}
    params["Action"] = "RevokeSecurityGroupIngress"
    return params


def root_volume_gib(request: NodeRequest) -> int:
    """The root volume's size: what the template asks, at least 30 GiB on a front-end."""
    if request.role == "front-end":
        return max(request.disk_gib or 0, FRONT_END_ROOT_GIB)
    return request.disk_gib or WORKER_ROOT_GIB


def is_burstable(instance_type: str) -> bool:
    return instance_type.startswith(BURSTABLE_PREFIXES)


def run_instances_params(request: NodeRequest, *, subnet_id: str, root_device: str, client_token: str,
                         user_data_b64: str | None) -> dict[str, str]:
    """The whole ``RunInstances`` request for one machine (see the module's docstring)."""
    tags = {"Name": request.name, **deployment_tags(request.deployment, request.group)}
    params: dict[str, str] = {
        "Action": "RunInstances", "ImageId": request.image, "InstanceType": request.size,
        "MinCount": "1", "MaxCount": "1", "ClientToken": client_token,
        "NetworkInterface.1.DeviceIndex": "0",
        "NetworkInterface.1.SubnetId": subnet_id,
        "NetworkInterface.1.AssociatePublicIpAddress": "true" if request.public_ip else "false",
        "NetworkInterface.1.DeleteOnTermination": "true",
        **{f"MetadataOptions.{k}": v for k, v in METADATA_OPTIONS.items()},
        "BlockDeviceMapping.1.DeviceName": root_device,
        "BlockDeviceMapping.1.Ebs.VolumeSize": str(root_volume_gib(request)),
        "BlockDeviceMapping.1.Ebs.VolumeType": "gp3",
        "BlockDeviceMapping.1.Ebs.Encrypted": "true",
        "BlockDeviceMapping.1.Ebs.DeleteOnTermination": "true",
        **tag_specifications({"instance": tags, "volume": tags, "network-interface": tags}),
    }
    if request.security_group:
        params["NetworkInterface.1.SecurityGroupId.1"] = request.security_group
    if request.key_name:
        params["KeyName"] = request.key_name
    if user_data_b64:
        params["UserData"] = user_data_b64
    if request.instance_profile:
        params["IamInstanceProfile.Name"] = request.instance_profile
    if is_burstable(request.size):
        params["CreditSpecification.CpuCredits"] = "standard"
    return params


def needs_imdsv2(http_tokens: str | None, hop_limit: str | None, http_endpoint: str | None) -> bool:
    """Whether an instance's metadata options (``DescribeInstances``' ``metadataOptions``) fall short
    of ``METADATA_OPTIONS``: tokens optional, a hop limit above 1, or the endpoint off (which
    cloud-init needs; AWS leaves an option unsent in a modify as it was, so all three are sent)."""
    return (http_tokens, hop_limit, http_endpoint) != tuple(METADATA_OPTIONS.values())


def modify_metadata_options_params(instance_id: str) -> dict[str, str]:
    """``ModifyInstanceMetadataOptions`` to ``METADATA_OPTIONS`` (AWS applies it to a running
    instance at once, state ``pending`` then ``applied``; to a stopped one when it starts)."""
    return {"Action": "ModifyInstanceMetadataOptions", "InstanceId": instance_id, **METADATA_OPTIONS}
