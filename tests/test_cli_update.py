"""``create --update`` and ``--allow-open-admin`` through the real command against the EC2 emulator:
what an operator would check in the console (the security group's rules, the machines) and in
``show`` (the recorded inputs and rules).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from provisioner.state import StateStore
from tests import test_cli_lifecycle as lifecycle
from tests.test_cli_lifecycle import AWS_TEMPLATE, KEY_ID, REGION, aws_auth, cli, live

cache_dir = lifecycle.cache_dir  # the lifecycle tests' fixtures: a HOME, a cache, a clean environment
env = lifecycle.env



def rules_by_port(ec2_emulator: Any, deployment: str) -> dict[int, set[str]]:
    """Port → the CIDRs the deployment's security group admits there, as DescribeSecurityGroups says."""
    import boto3

    client = boto3.client("ec2", endpoint_url=ec2_emulator.endpoint, region_name=REGION,
                          aws_access_key_id=KEY_ID, aws_secret_access_key="x")
    groups = client.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [f"oscar-deploy-{deployment}-sg"]}])["SecurityGroups"]
    assert len(groups) == 1
    found: dict[int, set[str]] = {}
    for permission in groups[0]["IpPermissions"]:
        if "FromPort" in permission:
            found.setdefault(permission["FromPort"], set()).update(
                r["CidrIp"] for r in permission.get("IpRanges", []))
    return found


def _record(tmp_path: Path, name: str) -> tuple[Any, Any]:
    with StateStore.open(tmp_path / "state" / "state.db") as store:
        dep = store.get(name)
        return dep, store.record(dep.id)


def test_update_changes_the_security_group_and_the_record_and_refuses_the_rest(
        tmp_path: Path, env: dict[str, str], ec2_emulator: Any) -> None:
    auth = aws_auth(tmp_path, ec2_emulator.endpoint)
    base = ["create", AWS_TEMPLATE, "--name", "lab", "--auth", auth, "--no-configure", "--yes"]
    created = cli(tmp_path, env, *base, "-i", "admin_cidr=10.0.0.0/8", "-i", "wn_num=1")
    assert created.returncode == 0, created.stderr
    dep, record = _record(tmp_path, "lab")
    before = rules_by_port(ec2_emulator, dep.id)
    front = next(n for n in json.loads(cli(tmp_path, env, "show", "lab", "-o", "json").stdout)["nodes"]
                 if n["group"] == "front")["addresses"]["public"][0]
    assert before[22] == before[6443] == {"10.0.0.0/8"}
    # MinIO's NodePorts: the admin CIDR, and the front-end's own address (OSCAR reaches MinIO there)
    assert before[30300] == before[30303] == {"10.0.0.0/8", f"{front}/32"}
    shown = json.loads(cli(tmp_path, env, "outputs", "lab", "-o", "json").stdout)
    assert shown["minio_endpoint"] == f"https://{front}:30300/"  # MinIO's own TLS on its NodePort
    assert shown["console_minio_endpoint"] == f"https://{front}:30303/"

    done = cli(tmp_path, env, *base, "--update", "-i", "admin_cidr=192.0.2.0/24")
    assert done.returncode == 0, done.stderr
    after = rules_by_port(ec2_emulator, dep.id)
    assert after[22] == after[6443] == {"192.0.2.0/24"}  # the old CIDR revoked, the new one authorized
    assert after[30300] == after[30303] == {"192.0.2.0/24", f"{front}/32"}
    assert after[443] == before[443] and after[80] == before[80]  # the web ports as they were
    dep, record = _record(tmp_path, "lab")
    assert dep.inputs["admin_cidr"] == "192.0.2.0/24" and record.admin_cidr == "192.0.2.0/24"
    assert {r.source for r in record.security_rules if r.port_from == 22} == {"192.0.2.0/24"}
    assert {r.source for r in record.security_rules if r.port_from == 30300} == {"192.0.2.0/24",
                                                                                f"{front}/32"}
    launch = record.group("wn").launch
    assert {r.source for r in launch.security_rules if r.port_from == 22} == {"192.0.2.0/24"}
    shown = json.loads(cli(tmp_path, env, "show", "lab", "-o", "json").stdout)
    assert shown["record"]["admin_cidr"] == "192.0.2.0/24"
    # a resume after the update keeps the updated CIDR
    resumed = cli(tmp_path, env, *base)
    assert resumed.returncode == 0, resumed.stderr
    assert rules_by_port(ec2_emulator, dep.id)[22] == {"192.0.2.0/24"}

    # what cannot change in place is refused by name, with nothing changed
    refused = cli(tmp_path, env, *base, "--update", "-i", "wn_instance_type=t3.large",
                  "-i", "admin_cidr=198.51.100.0/24")
    assert refused.returncode == 2, refused.stderr
    assert "wn_instance_type (changes groups.wn." in refused.stderr and "admin_cidr (" not in refused.stderr
    assert rules_by_port(ec2_emulator, dep.id)[22] == {"192.0.2.0/24"}
    assert _record(tmp_path, "lab")[0].inputs == dep.inputs

    # an open CIDR needs --allow-open-admin, on --update too
    opened = cli(tmp_path, env, *base, "--update", "-i", "admin_cidr=0.0.0.0/0")
    assert opened.returncode == 2 and "--allow-open-admin" in opened.stderr, opened.stderr
    assert rules_by_port(ec2_emulator, dep.id)[22] == {"192.0.2.0/24"}

    # a worker count changes as scale does
    grown = cli(tmp_path, env, *base, "--update", "-i", "wn_num=2")
    assert grown.returncode == 0, grown.stderr
    assert len(live(ec2_emulator.inventory(REGION), dep.id)["instances"]) == 3
    assert _record(tmp_path, "lab")[0].inputs["wn_num"] == 2

    gone = cli(tmp_path, env, "destroy", "lab", "--yes")
    assert gone.returncode == 0, gone.stderr


def test_update_needs_an_existing_deployment(tmp_path: Path, env: dict[str, str], ec2_emulator: Any) -> None:
    auth = aws_auth(tmp_path, ec2_emulator.endpoint)
    done = cli(tmp_path, env, "create", AWS_TEMPLATE, "--name", "nope", "--auth", auth, "--update",
               "-i", "admin_cidr=10.0.0.0/8", "--yes")
    assert done.returncode == 2 and "none named 'nope'" in done.stderr, done.stderr
    groups = ec2_emulator.inventory(REGION)["security_groups"]
    assert not any(g.get("name", "").startswith("oscar-deploy-") for g in groups)


@pytest.mark.parametrize("cidr", [None, "0.0.0.0/0", "::/0"])
def test_an_open_admin_cidr_is_refused_before_any_cloud_call(cidr: str | None, tmp_path: Path,
                                                            env: dict[str, str], ec2_emulator: Any) -> None:
    auth = aws_auth(tmp_path, ec2_emulator.endpoint)
    given = ["-i", f"admin_cidr={cidr}"] if cidr else []  # None: the template's default, 0.0.0.0/0
    args = ["create", AWS_TEMPLATE, *given, "--name", "open", "--auth", auth, "--no-configure", "--yes"]
    refused = cli(tmp_path, env, *args)
    assert refused.returncode == 2, refused.stderr
    assert "-i admin_cidr=" in refused.stderr and "--allow-open-admin" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (tmp_path / "state" / "state.db").exists()
    assert ec2_emulator.inventory(REGION)["instances"] == []
    accepted = cli(tmp_path, env, *args, "--allow-open-admin")
    assert accepted.returncode == 0, accepted.stderr
    dep = _record(tmp_path, "open")[0]
    assert rules_by_port(ec2_emulator, dep.id)[22] == ({"0.0.0.0/0"} if cidr != "::/0" else set())


def _public_ips(ec2_emulator: Any, deployment: str) -> dict[str, str | None]:
    """Instance name → its public address, as DescribeInstances says (None: it has none)."""
    return {i["tags"]["Name"].rsplit("-", 2)[-2]: i.get("public_ip") or None
            for i in live(ec2_emulator.inventory(REGION), deployment)["instances"]}


def test_workers_get_a_public_address_only_where_their_subnet_has_no_nat_route(
        tmp_path: Path, env: dict[str, str], ec2_emulator: Any) -> None:
    import boto3

    auth = aws_auth(tmp_path, ec2_emulator.endpoint)
    plan = cli(tmp_path, env, "plan", AWS_TEMPLATE, "-i", "admin_cidr=10.0.0.0/8")
    assert "Workers of wn get a public address" in plan.stdout
    assert "only through the security group" in plan.stdout
    boto = boto3.client("ec2", endpoint_url=ec2_emulator.endpoint, region_name=REGION,
                        aws_access_key_id=KEY_ID, aws_secret_access_key="x")
    vpc = boto.create_vpc(CidrBlock="10.50.0.0/16")["Vpc"]["VpcId"]
    public = boto.create_subnet(VpcId=vpc, CidrBlock="10.50.0.0/24")["Subnet"]["SubnetId"]
    private = boto.create_subnet(VpcId=vpc, CidrBlock="10.50.1.0/24")["Subnet"]["SubnetId"]
    gateway = boto.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    boto.attach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc)
    nat = boto.create_nat_gateway(SubnetId=public, AllocationId=boto.allocate_address(Domain="vpc")[
        "AllocationId"])["NatGateway"]["NatGatewayId"]
    table = boto.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    boto.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
    boto.associate_route_table(RouteTableId=table, SubnetId=private)

    for name, subnet, worker_public in (("open", None, True), ("natted", private, False)):
        given = ["-i", f"subnet_id={subnet}"] if subnet else []
        done = cli(tmp_path, env, "create", AWS_TEMPLATE, "-i", "admin_cidr=10.0.0.0/8", "-i", "wn_num=1",
                   *given, "--name", name, "--auth", auth, "--no-configure", "--yes")
        assert done.returncode == 0, done.stderr
        dep, record = _record(tmp_path, name)
        addresses = _public_ips(ec2_emulator, dep.id)
        assert addresses["front"] is not None
        assert (addresses["wn"] is not None) is worker_public, addresses
        assert record.group("wn").launch.public_ip is worker_public  # what scale and the daemon launch with
