"""`create`, `scale` and `destroy` through the real command in AWS accounts as they are: without a
default VPC (given `-i subnet_id=...`), in a region libcloud does not list, and refused with exit 2
and nothing created when no network can be chosen. The EC2 emulator's stricter layer plays the
account (`tests/harness/ec2_strict.py`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.test_cli_lifecycle import (  # noqa: F401  (env: a fixture)
    AWS_TEMPLATE,
    aws_auth,
    cache_dir,
    cli,
    env,
    live,
)

REGION = "eu-west-1"


def _boto(ec2_emulator: Any, region: str) -> Any:
    import boto3

    return boto3.client(
        "ec2",
        endpoint_url=ec2_emulator.endpoint,
        region_name=region,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="x",
    )


def test_no_default_vpc_refused_before_anything_then_created_in_the_given_subnet(
    tmp_path: Path, env: dict[str, str], ec2_emulator: Any  # noqa: F811  (the imported fixture)
) -> None:
    ec2_emulator.set_strict({"default_vpc": False})
    auth = aws_auth(tmp_path, ec2_emulator.endpoint)
    refused = cli(
        tmp_path,
        env,
        "create",
        AWS_TEMPLATE,
        "-i",
        "admin_cidr=10.0.0.0/8",
        "--name",
        "lab",
        "--auth",
        auth,
        "--no-configure",
        "--yes",
    )
    assert refused.returncode == 2, refused.stderr
    assert "no default VPC" in refused.stderr and "subnet_id" in refused.stderr
    assert "Traceback" not in refused.stderr
    inventory = ec2_emulator.inventory(REGION)
    assert inventory["instances"] == inventory["key_pairs"] == inventory["volumes"] == []
    assert [g for g in inventory["security_groups"] if g["name"] != "default"] == []
    assert json.loads(cli(tmp_path, env, "list", "-o", "json").stdout) == []  # nothing recorded either

    boto = _boto(ec2_emulator, REGION)
    vpc = boto.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnet = boto.create_subnet(VpcId=vpc, CidrBlock="10.40.1.0/24", AvailabilityZone=f"{REGION}c")["Subnet"][
        "SubnetId"
    ]
    created = cli(
        tmp_path,
        env,
        "create",
        AWS_TEMPLATE,
        "-i",
        "admin_cidr=10.0.0.0/8",
        "-i",
        f"subnet_id={subnet}",
        "-i",
        "wn_num=1",
        "--name",
        "lab",
        "--auth",
        auth,
        "--no-configure",
        "--yes",
    )
    assert created.returncode == 0, created.stderr
    dep_id = json.loads(cli(tmp_path, env, "list", "-o", "json").stdout)[0]["id"]
    mine = live(ec2_emulator.inventory(REGION), dep_id)
    assert {i["subnet"] for i in mine["instances"]} == {subnet} and len(mine["instances"]) == 2
    assert [g["vpc"] for g in mine["security_groups"]] == [vpc]
    scaled = cli(tmp_path, env, "scale", "lab", "wn", "2")
    assert scaled.returncode == 0, scaled.stderr
    assert {i["subnet"] for i in live(ec2_emulator.inventory(REGION), dep_id)["instances"]} == {subnet}
    destroyed = cli(tmp_path, env, "destroy", "lab", "--yes")
    assert destroyed.returncode == 0, destroyed.stderr
    assert all(not items for items in live(ec2_emulator.inventory(REGION), dep_id).values())


def test_create_and_destroy_in_a_region_libcloud_does_not_list(
    tmp_path: Path, env: dict[str, str], ec2_emulator: Any  # noqa: F811  (the imported fixture)
) -> None:
    region = "eu-central-2"
    auth = aws_auth(tmp_path, ec2_emulator.endpoint)
    created = cli(
        tmp_path,
        env,
        "create",
        AWS_TEMPLATE,
        "-i",
        "admin_cidr=10.0.0.0/8",
        "-i",
        f"region={region}",
        "-i",
        "wn_num=1",
        "--name",
        "zurich",
        "--auth",
        auth,
        "--no-configure",
        "--yes",
    )
    assert created.returncode == 0, created.stderr
    listed = json.loads(cli(tmp_path, env, "list", "-o", "json").stdout)
    assert listed[0]["locations"] == [{"provider": "aws", "region": region}]
    mine = live(ec2_emulator.inventory(region), listed[0]["id"])
    assert len(mine["instances"]) == 2 and all(i["zone"].startswith(region) for i in mine["instances"])
    destroyed = cli(tmp_path, env, "destroy", "zurich", "--yes")
    assert destroyed.returncode == 0, destroyed.stderr
    assert all(not items for items in live(ec2_emulator.inventory(region), listed[0]["id"]).values())
