"""What real EC2 refuses or does that moto lets pass: the emulator's stricter layer.

`Ec2Fixups` asks `Strictness.before()` about every API request (an answer other than None is sent
instead of moto's) and tells `Strictness.after()` what moto answered, so the account's state can
change as EC2's would. Each rule cites where AWS says so; the botocore model is
`botocore/data/ec2/2016-11-15/service-2.json` (installed with moto).

Always on (AWS always does this):
- **Rule and group descriptions**: `IpRange.Description`, `Ipv6Range.Description`,
  `CreateSecurityGroupRequest.Description` allow "a-z, A-Z, 0-9, spaces, and ._-:/()#,@[]+=&;{}!$*",
  `UserIdGroupPair.Description` the same without `&`, up to 255 characters (botocore model, those
  shapes' documentation); anything else is `InvalidParameterValue` (400).
- **An IPv6 range sent as `CidrIp`** is `InvalidParameterValue`: `IpRange.CidrIp` is "The IPv4
  address range" and IPv6 ranges go in `Ipv6Ranges` (botocore model, `IpRange`, `Ipv6Range`).
- **Security group and subnet of one VPC**: RunInstances with a group of another VPC than its subnet
  is `InvalidParameter` "Security group ... and subnet ... belong to different networks." (AWS's
  answer; the `SecurityGroupIds` documentation: "the security groups of the VPC").
- **An instance-level subnet or group beside `NetworkInterfaces`** is
  `InvalidParameterCombination` (botocore model, `RunInstancesRequest.NetworkInterfaces`: "If you
  specify a network interface, you must specify any security groups and subnets as part of the
  network interface, instead of using the SecurityGroupIds and SubnetId parameters").
- **A type runs only in the zones that offer it**: RunInstances of a type outside
  DescribeInstanceTypeOfferings' zones (moto's own offering data) is `Unsupported` "Your requested
  instance type (...) is not supported in your requested Availability Zone (...)" (EC2 API reference,
  "Error codes": Unsupported; Karpenter counts it as unfulfillable capacity); moto launches anything.
- **A new VPC's subnets are not default subnets**: moto marks the first subnet of any VPC in a zone
  `DefaultForAz`; EC2 marks only the default VPC's ("DefaultForAz: Indicates whether this is the
  default subnet for the Availability Zone", botocore model `Subnet`; VPC user guide, "Default VPCs").
- **Network interfaces get the `network-interface` tags** of RunInstances' `TagSpecifications`
  (botocore model, `RunInstancesRequest.TagSpecifications`: "The tags to apply to the resources
  that are created during instance launch"); moto drops them.
- **T instances run `unlimited` unless told**: "T3, T3a and T4g instances are launched as unlimited
  by default. T2 instances are launched as standard by default" (EC2 user guide, "Burstable
  performance instances", credit options); moto always answers `standard`. The layer keeps each
  instance's `CpuCredits` and answers DescribeInstanceCreditSpecifications itself.
- **An unknown instance profile**: RunInstances naming an `IamInstanceProfile.Name` the account does not
  have is EC2's `InvalidParameterValue` "Value (NAME) for parameter iamInstanceProfile.name is
  invalid. Invalid IAM Instance Profile name" (as AWS answers it, quoted in many public bug reports,
  e.g. hashicorp/terraform-provider-aws#27516); moto answers with an IAM-shaped `NoSuchEntity` error
  body that EC2 clients (libcloud) cannot parse.

Knobs (`StrictSettings`, the account and the timing; off by default so a plain test sees a plain
account):
- `default_vpc=False`: the account has no default VPC (accounts created before 2013-12-04 in some
  regions, or whose owner deleted it). The region's default VPC and its subnets are deleted;
  RunInstances without a subnet and CreateSecurityGroup without `VpcId` answer
  `VPCIdNotSpecified` "No default VPC for this user" (botocore model,
  `CreateSecurityGroupRequest.VpcId`: "Required for a nondefault VPC").
- `not_found_calls=N`: eventual consistency. A new instance (RunInstances) or security group
  (CreateSecurityGroup) is unknown to the next N calls that name its id:
  `InvalidInstanceID.NotFound` / `InvalidGroup.NotFound` (EC2 API reference, "Eventual
  consistency in the Amazon EC2 API": "you might get a resource not found error ... right after
  you create it").
- `detaching_calls=N`: a volume just detached is still `detaching` for the next N DeleteVolume
  calls, which answer `VolumeInUse` (EC2 user guide, "Detach an Amazon EBS volume": the volume
  goes `detaching` before `available`; DeleteVolume: "The volume must be in the available state").
- `launch_terminations=[{code, message, instance_type, zone, remaining}]`: RunInstances succeeds, then
  the instance is terminated during launch with that state reason (`Server.InsufficientInstanceCapacity`,
  `Client.VolumeLimitExceeded`, ...; EC2 user guide, "Troubleshoot instance launch issues":
  "Instance terminates immediately"), as `DescribeInstances` then shows it.
"""

from __future__ import annotations

import re
import threading
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any
from xml.etree import ElementTree

NAMESPACE = "http://ec2.amazonaws.com/doc/2016-11-15/"
ACCOUNT_ID = "123456789012"

_DESCRIPTION = re.compile(r"[a-zA-Z0-9 ._\-:/()#,@\[\]+=&;{}!$*]{0,255}")
_PAIR_DESCRIPTION = re.compile(r"[a-zA-Z0-9 ._\-:/()#,@\[\]+=;{}!$*]{0,255}")
_DESCRIPTION_KEY = re.compile(
    r"IpPermissions\.\d+\.(IpRanges|Ipv6Ranges|Groups|PrefixListIds)\.\d+\.Description"
)
_CIDR_IP_KEY = re.compile(r"IpPermissions\.\d+\.IpRanges\.\d+\.CidrIp")
_BURSTABLE_UNLIMITED = ("t3.", "t3a.", "t4g.")

Answer = tuple[int, str, str]
"""An error answer: HTTP status, EC2 error code, message."""


@dataclass
class LaunchTermination:
    """Terminate a launched instance at once, with this state reason (matching type/zone only)."""

    code: str = "Server.InsufficientInstanceCapacity"
    message: str = "Insufficient capacity."
    instance_type: str | None = None
    zone: str | None = None
    remaining: int | None = None


@dataclass
class StrictSettings:
    default_vpc: bool = True
    not_found_calls: int = 0
    detaching_calls: int = 0
    launch_terminations: list[LaunchTermination] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StrictSettings:
        rules = [LaunchTermination(**r) for r in data.get("launch_terminations", [])]
        return cls(
            default_vpc=bool(data.get("default_vpc", True)),
            not_found_calls=int(data.get("not_found_calls", 0)),
            detaching_calls=int(data.get("detaching_calls", 0)),
            launch_terminations=rules,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _backend(region: str) -> Any:
    from moto.ec2.models import ec2_backends

    return ec2_backends[ACCOUNT_ID][region]


def _instance_profile_exists(name: str) -> bool:
    from moto.iam.models import iam_backends

    return name in iam_backends[ACCOUNT_ID]["aws"].instance_profiles


def _indexed(params: dict[str, str], prefix: str) -> list[str]:
    """Values of `prefix.1`, `prefix.2`, ... in order."""
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)$")
    found = sorted((int(m.group(1)), v) for k, v in params.items() if (m := pattern.match(k)))
    return [v for _n, v in found]


def _text(element: ElementTree.Element, path: str) -> str | None:
    return element.findtext(path.replace("{ns}", f"{{{NAMESPACE}}}"))


class Strictness:
    """The stricter layer's state: settings, ids not yet visible, instances' credit options."""

    def __init__(self) -> None:
        self.settings = StrictSettings()
        self._lock = threading.Lock()
        self._hidden: dict[str, int] = {}
        self._detaching: dict[str, int] = {}
        self._credits: dict[str, str] = {}
        self._stripped: set[str] = set()

    def configure(self, settings: StrictSettings) -> None:
        with self._lock:
            self.settings = settings
            self._stripped.clear()

    def reset(self) -> None:
        with self._lock:
            self.settings = StrictSettings()
            self._hidden.clear()
            self._detaching.clear()
            self._credits.clear()
            self._stripped.clear()

    def credits_of(self, instance_id: str) -> str | None:
        return self._credits.get(instance_id)

    # -- before moto ------------------------------------------------------------------------------
    def before(self, action: str, params: dict[str, str], region: str) -> Answer | bytes | None:
        """An error to answer instead of moto, a whole answer (bytes), or None to let moto answer."""
        if not self.settings.default_vpc:
            self._strip_default_vpc(region)
        hidden = self._hidden_id(action, params)
        if hidden is not None:
            return hidden
        if action == "CreateSecurityGroup":
            return self._check_create_group(params)
        if action in ("AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress"):
            return self._check_rules(params)
        if action == "RunInstances":
            return self._check_run(params, region)
        if action == "DeleteVolume":
            return self._still_detaching(params.get("VolumeId", ""))
        if action == "DescribeInstanceCreditSpecifications":
            return self._credit_answer(params, region)
        return None

    def _strip_default_vpc(self, region: str) -> None:
        """Delete the region's default VPC and its subnets once (an account without one)."""
        with self._lock:
            if region in self._stripped:
                return
            self._stripped.add(region)
        be = _backend(region)
        for vpc in [v for v in be.vpcs.values() if v.is_default]:
            for subnet in [s for s in be.describe_subnets() if s.vpc_id == vpc.id]:
                be.delete_subnet(subnet.id)
            be.delete_vpc(vpc.id)

    def _hidden_id(self, action: str, params: dict[str, str]) -> Answer | None:
        """Eventual consistency: an id created a moment ago is not found by the next few calls."""
        if not self._hidden:
            return None
        named = [
            v
            for k, v in params.items()
            if re.fullmatch(r"(InstanceId|GroupId|ResourceId|SecurityGroupId)(\.\d+)?", k)
            or re.fullmatch(r"IpPermissions\.\d+\.Groups\.\d+\.GroupId", k)
        ]
        with self._lock:
            for value in named:
                left = self._hidden.get(value, 0)
                if left > 0:
                    self._hidden[value] = left - 1
                    if value.startswith("i-"):
                        return 400, "InvalidInstanceID.NotFound", f"The instance ID '{value}' does not exist"
                    return 400, "InvalidGroup.NotFound", f"The security group '{value}' does not exist"
        return None

    def _still_detaching(self, volume_id: str) -> Answer | None:
        with self._lock:
            left = self._detaching.get(volume_id, 0)
            if left <= 0:
                return None
            self._detaching[volume_id] = left - 1
        return 400, "VolumeInUse", f"Volume {volume_id} is currently attached to an instance"

    def _check_create_group(self, params: dict[str, str]) -> Answer | None:
        description = params.get("GroupDescription", "")
        if not _DESCRIPTION.fullmatch(description):
            return (
                400,
                "InvalidParameterValue",
                (
                    "Value for parameter GroupDescription is invalid. Character sets beyond ASCII are not "
                    "supported."
                ),
            )
        if not params.get("VpcId") and not self.settings.default_vpc:
            return 400, "VPCIdNotSpecified", "No default VPC for this user"
        return None

    @staticmethod
    def _check_rules(params: dict[str, str]) -> Answer | None:
        for key, value in params.items():
            if _DESCRIPTION_KEY.fullmatch(key):
                allowed = _PAIR_DESCRIPTION if ".Groups." in key else _DESCRIPTION
                if not allowed.fullmatch(value):
                    return (
                        400,
                        "InvalidParameterValue",
                        (
                            "Invalid rule description. Valid descriptions are strings less than 256 "
                            "characters from the following set:  a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*"
                        ),
                    )
            if _CIDR_IP_KEY.fullmatch(key) and ":" in value:
                return (
                    400,
                    "InvalidParameterValue",
                    (f"Value ({value}) for parameter cidrIp is invalid. This is not a valid CIDR block."),
                )
        return None

    def _check_run(self, params: dict[str, str], region: str) -> Answer | None:
        profile = params.get("IamInstanceProfile.Name")
        if profile and not _instance_profile_exists(profile):
            return (400, "InvalidParameterValue",
                    f"Value ({profile}) for parameter iamInstanceProfile.name is invalid. "
                    "Invalid IAM Instance Profile name")
        interface = {
            k[len("NetworkInterface.1.") :]: v
            for k, v in params.items()
            if k.startswith("NetworkInterface.1.")
        }
        top_groups = _indexed(params, "SecurityGroupId")
        if interface and (params.get("SubnetId") or top_groups):
            return (
                400,
                "InvalidParameterCombination",
                (
                    "Network interfaces and an instance-level security groups may not be specified on the "
                    "same request"
                ),
            )
        subnet_id = interface.get("SubnetId") or params.get("SubnetId")
        groups = _indexed(interface, "SecurityGroupId") if interface else top_groups
        be = _backend(region)
        if not subnet_id:
            if not self.settings.default_vpc:
                return (
                    400,
                    "VPCIdNotSpecified",
                    (
                        "No default VPC for this user. GroupName is only supported "
                        "for EC2-Classic and default VPC."
                    ),
                )
            return None
        try:
            subnet = be.get_subnet(subnet_id)
        except Exception:  # moto answers InvalidSubnetID.NotFound itself
            return None
        instance_type = params.get("InstanceType", "")
        offered = {
            o["Location"]
            for o in be.describe_instance_type_offerings(
                "availability-zone", {"instance-type": [instance_type]}
            )
        }
        if offered and subnet.availability_zone not in offered:
            return (
                400,
                "Unsupported",
                f"Your requested instance type ({instance_type}) is not supported in your requested "
                f"Availability Zone ({subnet.availability_zone}). Please retry your request by not "
                f"specifying an Availability Zone or choosing {', '.join(sorted(offered))}.",
            )
        for group_id in groups:
            group = be.get_security_group_from_id(group_id)
            if group is not None and group.vpc_id != subnet.vpc_id:
                return (
                    400,
                    "InvalidParameter",
                    (f"Security group {group_id} and subnet {subnet_id} belong to different networks."),
                )
        return None

    def _credit_answer(self, params: dict[str, str], region: str) -> bytes:
        be = _backend(region)
        wanted = _indexed(params, "InstanceId") or [i.id for i in be.all_instances()]
        items = "".join(
            f"<item><instanceId>{i}</instanceId><cpuCredits>{self._credits.get(i, 'standard')}"
            "</cpuCredits></item>"
            for i in wanted
        )
        return (
            f'<?xml version="1.0" encoding="UTF-8"?><DescribeInstanceCreditSpecificationsResponse '
            f'xmlns="{NAMESPACE}"><requestId>{uuid.uuid4()}</requestId><instanceCreditSpecificationSet>'
            f"{items}</instanceCreditSpecificationSet></DescribeInstanceCreditSpecificationsResponse>"
        ).encode()

    # -- after moto -------------------------------------------------------------------------------
    def after(self, action: str, params: dict[str, str], region: str, status: int, body: bytes) -> bytes:
        """Change moto's state as EC2's would have changed after this answer; the answer to send."""
        if status >= 300:
            return body
        if action == "CreateSubnet":
            if self._no_default_subnets_outside_the_default_vpc(region):
                body = body.replace(
                    b"<defaultForAz>true</defaultForAz>", b"<defaultForAz>false</defaultForAz>"
                )
                body = body.replace(
                    b"<mapPublicIpOnLaunch>true</mapPublicIpOnLaunch>",
                    b"<mapPublicIpOnLaunch>false</mapPublicIpOnLaunch>",
                )
            return body
        if action == "DetachVolume" and self.settings.detaching_calls > 0:
            with self._lock:
                self._detaching[params.get("VolumeId", "")] = self.settings.detaching_calls
            return body
        try:
            root = ElementTree.fromstring(body)
        except ElementTree.ParseError:
            return body
        if action == "CreateSecurityGroup":
            group_id = _text(root, "{ns}groupId")
            if group_id:
                self._hide(group_id)
        elif action == "RunInstances":
            for item in root.iterfind(f"{{{NAMESPACE}}}instancesSet/{{{NAMESPACE}}}item"):
                instance_id = _text(item, "{ns}instanceId")
                if instance_id:
                    self._launched(instance_id, params, region)
        return body

    def _hide(self, resource_id: str) -> None:
        if self.settings.not_found_calls > 0:
            with self._lock:
                self._hidden[resource_id] = self.settings.not_found_calls

    @staticmethod
    def _no_default_subnets_outside_the_default_vpc(region: str) -> bool:
        """Unmark moto's default subnets outside the default VPC (and their public addresses on
        launch, which a new VPC's subnets do not give either); whether there were any."""
        be = _backend(region)
        defaults = {v.id for v in be.vpcs.values() if v.is_default}
        changed = False
        for subnet in be.describe_subnets():
            if subnet.vpc_id not in defaults and subnet.default_for_az:
                subnet.default_for_az = False
                subnet.map_public_ip_on_launch = False
                changed = True
        return changed

    def _launched(self, instance_id: str, params: dict[str, str], region: str) -> None:
        be = _backend(region)
        instance = be.get_instance(instance_id)
        instance_type = params.get("InstanceType", "")
        credits = params.get("CreditSpecification.CpuCredits") or (
            "unlimited" if instance_type.startswith(_BURSTABLE_UNLIMITED) else "standard"
        )
        with self._lock:
            self._credits[instance_id] = credits
        for n in range(1, 10):
            if params.get(f"TagSpecification.{n}.ResourceType") != "network-interface":
                continue
            tag = f"TagSpecification.{n}.Tag"
            tags = {
                params[f"{tag}.{m}.Key"]: params.get(f"{tag}.{m}.Value", "")
                for m in range(1, 60)
                if f"{tag}.{m}.Key" in params
            }
            for nic in instance.nics.values():
                be.create_tags([nic.id], tags)
        self._hide(instance_id)
        zone = instance.placement.zone if hasattr(instance.placement, "zone") else instance.placement
        with self._lock:
            rule = next(
                (
                    r
                    for r in self.settings.launch_terminations
                    if (r.remaining is None or r.remaining > 0)
                    and (r.instance_type is None or r.instance_type == instance_type)
                    and (r.zone is None or r.zone == zone)
                ),
                None,
            )
            if rule is not None and rule.remaining is not None:
                rule.remaining -= 1
        if rule is not None:
            from moto.ec2.models.instances import StateReason

            instance.terminate()
            instance.state_reason = StateReason(f"{rule.code}: {rule.message}", rule.code)
            instance._reason = f"{rule.code}: {rule.message}"
