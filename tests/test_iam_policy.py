"""The documented IAM policy (``iam/oscar-deploy-ec2-policy.json``, shown in the README) is least
privilege, scoped as Karpenter's controller policy scopes its own (aws/karpenter-provider-aws,
``website/content/en/docs/getting-started/getting-started-with-karpenter/cloudformation.yaml`` at
commit 1d927085dd81a9df9301e613f371dac5b4d16bfe, v1.14.1, Apache-2.0):
what it reads it reads everywhere; ``RunInstances`` is split into the resources it uses
(unconditioned) and those it creates (only with the deployment's tag in the request); tagging is
allowed only while creating (``ec2:CreateAction``) or on what already carries the tag; everything
that changes or deletes needs the resource tag.

Every EC2 call the CLI's engine (create, scale, destroy) and the daemon's cloud power manager make
against the EC2 emulator is replayed through a small evaluator of the IAM features the policy uses
(``tests/iam_eval.py``): all are allowed. The same calls on resources of another deployment, or
untagged, are all denied (reads excepted: EC2's Describe calls cannot be scoped). No AWS policy
simulator ran (it needs an AWS account); ``parliament``, an offline IAM linter, lints the policy.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from elastic.model import NodeGroup
from elastic.power import CloudPower, LaunchSpec
from provisioner.clouds.base import TAG_DEPLOYMENT, TAG_GROUP, resource_name
from provisioner.engine import create, destroy, scale
from tests.harness.ec2 import _backend
from tests.iam_eval import Request, allowed, requests_of
from tests.test_engine_clouds import REGION, aws_request, factory, settings, store  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parent.parent
POLICY_FILE = ROOT / "iam" / "oscar-deploy-ec2-policy.json"
UNSCOPED = {"ec2:RunInstances": re.compile(r"arn:aws:ec2:[^:]*:[^:]*:(image|snapshot|subnet|security-group|"
                                           r"key-pair)/(?!\*)"),
            "ec2:CreateSecurityGroup": re.compile(r"arn:aws:ec2:[^:]*:[^:]*:vpc/")}
"""Resources a call uses without owning them (an image, a subnet, the VPC): left unconditioned, as
Karpenter leaves them; the security group and key pair RunInstances *uses* are among them."""


def unscoped(request: Request) -> bool:
    pattern = UNSCOPED.get(request.action)
    return bool(pattern and pattern.match(request.resource))


def policy_text(deployment: str) -> str:
    """The policy with its DEPLOYMENT placeholder: ``*`` (the operator's, any deployment) or an id."""
    return POLICY_FILE.read_text().replace("DEPLOYMENT", deployment)


def policy_for(deployment: str) -> dict[str, Any]:
    return json.loads(policy_text(deployment))


def tags_snapshot(region: str) -> dict[str, dict[str, str]]:
    """Resource id (key pair name, association id) → its tags, read from the emulator's state."""
    be = _backend(region)

    def tags(resource: Any) -> dict[str, str]:
        return {t["key"]: t["value"] for t in resource.get_tags()}

    out: dict[str, dict[str, str]] = {}
    for instance in be.all_instances():
        out[instance.id] = tags(instance)
    for volume in be.volumes.values():
        out[volume.id] = tags(volume)
    for address in be.addresses:
        out[str(address.allocation_id)] = tags(address)
        if address.association_id:
            out[address.association_id] = {"allocation": str(address.allocation_id)}
    for vpc_groups in be.groups.values():
        for group in vpc_groups.values():
            out[group.id] = tags(group)
    for name, key in be.key_pairs.items():
        out[name] = tags(key)
    return out


def foreign(request: Request, tags: dict[str, str]) -> Request:
    """The same request on a resource carrying ``tags`` instead (and asking to put them there)."""
    context = {k: v for k, v in request.context.items()
               if not k.startswith(("aws:ResourceTag/", "aws:RequestTag/"))}
    kind = "aws:RequestTag/" if any(k.startswith("aws:RequestTag/") for k in request.context) else None
    for key, value in tags.items():
        if kind:
            context[f"{kind}{key}"] = value
        if any(k.startswith("aws:ResourceTag/") for k in request.context) or kind is None:
            context[f"aws:ResourceTag/{key}"] = value
    return Request(request.action, request.resource, context)


@pytest.fixture
def recorded_calls(ec2_emulator: Any, store: Any, settings: Any, factory: Any) -> dict[str, Any]:  # noqa: F811
    """create (a front-end with its volume and address, a worker), its resume, scale up and down, the
    daemon's power-on and power-off of a worker, destroy: every EC2 call, and the tags of what they
    touched."""
    dep = create(store, aws_request(settings, "iam", wn_num=1), factory, settings)
    front = next(i for i in ec2_emulator.inventory(REGION)["instances"]
                 if i["tags"].get(TAG_DEPLOYMENT) == dep.id and i["tags"].get(TAG_GROUP) == "front")
    # a resume adopting a front-end an older version launched with IMDSv1 allowed (set in the
    # emulator's state, not by an API call of ours) requires IMDSv2 on it
    _backend(REGION).modify_instance_metadata_options(front["id"], http_tokens="optional", hop_limit=2,
                                                      http_endpoint="enabled")
    create(store, aws_request(settings, "iam", wn_num=1), factory, settings)
    scale(store, dep.id, "wn", 2, factory, settings)
    scale(store, dep.id, "wn", 1, factory, settings)
    group_id = next(g["id"] for g in ec2_emulator.inventory(REGION)["security_groups"]
                    if g["name"] == resource_name(dep.id, "sg"))
    launch = LaunchSpec(sizes=("t3.medium",), image=front["image"], key_name=front["key_name"],
                        security_group=group_id, user_data="#cloud-config\n{}\n")
    power = CloudPower(factory("aws", REGION), dep.id, {"wn": launch})
    group = NodeGroup("wn", cpus=2, memory_mib=4096, max=3)
    name = power.new_name(group)
    power.power_on(group, name)
    power.power_off(group, name)
    tags = tags_snapshot(REGION)
    destroy(store, dep.id, factory)
    tags.update({k: v for k, v in tags_snapshot(REGION).items() if k not in tags})
    calls = [c for c in ec2_emulator.calls if c.fault is None]
    return {"id": dep.id, "calls": calls, "tags": tags}


def test_the_readme_shows_the_policy_file() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```json\n(\{\n  \"Version\": \"2012-10-17\".*?)\n```", readme, re.S)
    assert block is not None, "the README's IAM policy block"
    assert json.loads(block[1]) == json.loads(POLICY_FILE.read_text())


@pytest.mark.parametrize("scope", ["any deployment", "this deployment"])
def test_every_call_of_the_cli_and_the_daemon_is_allowed(recorded_calls: dict[str, Any], scope: str) -> None:
    policy = policy_for("*" if scope == "any deployment" else recorded_calls["id"])
    actions = {c.action for c in recorded_calls["calls"]}
    assert {"RunInstances", "TerminateInstances", "CreateVolume", "AttachVolume", "DeleteVolume",
            "ImportKeyPair", "DeleteKeyPair", "CreateSecurityGroup", "DeleteSecurityGroup",
            "AuthorizeSecurityGroupIngress", "ModifyInstanceMetadataOptions"} <= actions, actions
    denied = []
    for call in recorded_calls["calls"]:
        for request in requests_of(call.action, call.params, call.region, recorded_calls["tags"]):
            if not allowed(policy, request):
                denied.append(f"{call.action}: {request} {dict(request.context)}")
    assert denied == [], "\n".join(denied)


@pytest.mark.parametrize("other", [{}, {TAG_DEPLOYMENT: "ffffffff", "Name": "oscar-deploy-ffffffff-wn-1"}],
                         ids=["untagged", "another deployment"])
def test_the_same_calls_on_a_foreign_resource_are_denied(recorded_calls: dict[str, Any],
                                                         other: dict[str, str]) -> None:
    # the daemon's credential is scoped to its deployment; the operator's (``*``) to oscar-deploy's tag
    policy = policy_for(recorded_calls["id"] if other else "*")
    let_through = []
    for call in recorded_calls["calls"]:
        if call.action.startswith("Describe"):
            continue  # EC2 cannot scope reads by resource
        requests = requests_of(call.action, call.params, call.region, recorded_calls["tags"])
        scoped = [r for r in requests if not unscoped(r)]
        assert scoped, f"{call.action} touches nothing the policy scopes"
        if all(allowed(policy, foreign(r, other)) for r in scoped):
            let_through.append(call.action)
    assert let_through == []


def test_parliament_finds_nothing_but_the_deliberate_split() -> None:
    """parliament judges each statement alone, so the split Karpenter makes (RunInstances's used
    resources in one statement, the ones it creates in another; CreateSecurityGroup's VPC apart) reads
    to it as statements missing resource types (RESOURCE_MISMATCH on those two actions): that and
    nothing else. The README's former policy (RunInstances and CreateTags on ``*``) is flagged."""
    import parliament

    findings = parliament.analyze_policy_string(policy_text("*")).findings
    split = {"ec2:RunInstances", "ec2:CreateSecurityGroup"}
    other = [(f.issue, f.detail) for f in findings
             if not (f.issue == "RESOURCE_MISMATCH" and {d["action"] for d in f.detail} <= split)]
    assert other == []
    former = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["ec2:RunInstances", "ec2:CreateTags"], "Resource": "*"}]})
    assert "RESOURCE_STAR" in {f.issue for f in parliament.analyze_policy_string(former).findings}
