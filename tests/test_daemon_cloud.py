"""The daemon with ``cloud`` power: workers created in the EC2 emulator through the project's EC2
driver (stock libcloud), registered by the harness once the emulator runs them, terminated when idle.

The harness plays the part of cloud-init and of k3s: a running instance tagged with the deployment
becomes a Node named as the k3s config its user data writes says (``node-name``, with its
``node-label``s), or after an EC2-style hostname when it names none, if k3s's node-password check
admits it; a terminated one only goes silent (k3s has no cloud node-lifecycle controller: its Node
stays). So the daemon sees its workers register only if their user data names them as it does.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import boto3
import pytest

from elastic.model import NodeGroup
from elastic.power import CloudPower, LaunchSpec, manager_for
from provisioner.cloudinit import WorkerJoin, node_user_data
from provisioner.clouds.base import TAG_DEPLOYMENT, TAG_GROUP, FirewallRule
from provisioner.clouds.ec2 import Ec2Driver
from provisioner.config import ProvisionerSettings
from provisioner.credentials import AwsCredentials, CredentialSource
from provisioner.engine.keys import new_private_key, public_key_of
from tests.harness.processes import stop
from tests.test_cloudinit import k3s_config
from tests.test_daemon import FAST, board_group, start_daemon, state  # noqa: F401 (fixture)

REGION = "eu-west-1"
DEPLOYMENT = "d1e1a571c"
FAST_CLOUD = ProvisionerSettings(api_retries=3, retry_base_s=0.01, retry_max_s=0.05, create_timeout_s=30)


@pytest.fixture
def cloud_power(ec2_emulator: Any) -> tuple[NodeGroup, CloudPower]:
    """The ``cloud`` group and its power manager on the emulator; no machine ever registers."""
    credentials = AwsCredentials("AKIDOSCARTESTKEY0001", "s3cr3t-never-shown",
                                 CredentialSource("environment"), region=REGION,
                                 endpoint_url=ec2_emulator.endpoint)
    driver = Ec2Driver(credentials, REGION, FAST_CLOUD)
    key = driver.ensure_key_pair(DEPLOYMENT, public_key_of(new_private_key()))
    security_group = driver.ensure_security_group(DEPLOYMENT, [FirewallRule("tcp", 22, 22, "0.0.0.0/0")])
    image = driver.resolve_image("ubuntu", "24.04", "amd64", None)
    join = WorkerJoin("https://10.0.0.5:6443", "t" * 64, "cloud")
    launch = LaunchSpec(sizes=("t3.medium",), image=image, key_name=key, security_group=security_group,
                        user_data_for=functools.partial(node_user_data, join))
    group = NodeGroup(name="cloud", cpus=2, memory_mib=4096, max=3, priority=1, cost_per_hour=0.04,
                      power={"type": "cloud", "deployment": DEPLOYMENT})
    return group, CloudPower(driver, DEPLOYMENT, {"cloud": launch})


@pytest.fixture
def cloud(ec2_emulator: Any, kube_api: Any, cloud_power: Any) -> tuple[NodeGroup, CloudPower]:
    """``cloud_power`` with the harness registering each running instance as a Node (cloud-init)."""

    joins: dict[str, tuple[str, dict[str, str]]] = {}

    def joined(instance: dict[str, Any]) -> tuple[str, dict[str, str]]:
        """The Node name and labels the instance's k3s agent registers with (what cloud-init wrote)."""
        if instance["id"] not in joins:
            config = k3s_config(instance["user_data"]) if instance["user_data"] else {}
            labels = dict(label.split("=", 1) for label in config.get("node-label") or [])
            joins[instance["id"]] = (config.get("node-name") or f"ip-{instance['id']}", labels)
        return joins[instance["id"]]

    def machines() -> dict[str, dict[str, Any]]:
        running = [i for i in ec2_emulator.inventory(REGION)["instances"]
                   if i["state"] == "running" and i["tags"].get(TAG_DEPLOYMENT) == DEPLOYMENT]
        # each VM's k3s node password is its own (k3s generates /etc/rancher/node/password on first boot)
        return {name: {"cpus": 2, "memory_mib": 4096, "ready_after_s": 30, "labels": labels,
                       "password": instance["id"]}
                for instance, (name, labels) in zip(running, map(joined, running), strict=True)}

    kube_api.follow_machines(machines, period_s=0.05)
    return cloud_power


def running_instances(ec2_emulator: Any) -> list[dict[str, Any]]:
    return [i for i in ec2_emulator.leftovers(DEPLOYMENT, REGION)["instances"]]


def test_edge_first_then_cloud_workers_and_every_instance_terminated_when_idle(
        kube_api: Any, ec2_emulator: Any, cloud: Any, start_daemon: Any) -> None:  # noqa: F811
    group, power = cloud
    edge = board_group(kube_api, "edge", boards=1, priority=10)
    daemon = start_daemon([edge, group], managers={"edge": manager_for(edge), "cloud": power})
    kube_api.create_pods(3, "job", cpus=1.5, runtime_s=150)

    kube_api.wait_until(lambda: len(kube_api.pods(phase="Running")) == 3, timeout=30, what="pods running")
    hosts = sorted(p["spec"]["nodeName"] for p in kube_api.pods())
    assert hosts[0] == "edge-0"  # the edge board first, the cloud for the rest
    workers = hosts[1:]
    assert all(h.startswith(f"oscar-deploy-{DEPLOYMENT}-cloud-") for h in workers)
    instances = running_instances(ec2_emulator)
    assert sorted(i["tags"]["Name"] for i in instances) == workers
    assert all(i["tags"][TAG_GROUP] == "cloud" and i["type"] == "t3.medium" for i in instances)

    kube_api.wait_until(lambda: len(kube_api.pods(phase="Succeeded")) == 3, timeout=30, what="pods done")
    kube_api.wait_until(lambda: not running_instances(ec2_emulator), timeout=30, what="instances terminated")
    kube_api.wait_until(lambda: not any(n["metadata"]["name"] in workers for n in kube_api.nodes()),
                        timeout=30, what="worker Nodes deleted")
    kube_api.wait_until(lambda: state(kube_api, "edge-0") == "off", timeout=30, what="board off")
    kube_api.wait_until(lambda: not [r for r in daemon.ledger.records() if r.group == "cloud"], timeout=10,
                        what="cloud records forgotten once their workers are gone")
    value = daemon.metrics.registry.get_sample_value
    assert value("oscar_deploy_elastic_scale_ups_total", {"group": "cloud", "reason": "pending_pods"}) == 2
    assert value("oscar_deploy_elastic_scale_downs_total", {"group": "cloud", "reason": "idle"}) == 2


def test_a_cloud_without_capacity_backs_off_and_the_pods_go_to_the_boards(
        kube_api: Any, ec2_emulator: Any, cloud: Any, start_daemon: Any) -> None:  # noqa: F811
    group, power = cloud
    group = dataclasses.replace(group, priority=20)  # the cloud is tried first here
    edge = board_group(kube_api, "edge", boards=1, priority=1)
    no_capacity = {"code": "InsufficientInstanceCapacity", "actions": ["RunInstances"]}
    ec2_emulator.set_faults({"rules": [no_capacity]})
    daemon = start_daemon([edge, group], managers={"edge": manager_for(edge), "cloud": power})
    kube_api.create_pod("job", cpus=1.5, runtime_s=100000)

    kube_api.wait_until(lambda: kube_api.pods(phase="Running"), timeout=30, what="pod running")
    assert kube_api.get("pods", "job", "default")["spec"]["nodeName"] == "edge-0"
    assert not running_instances(ec2_emulator)
    assert daemon.ledger.backoff()["cloud"].failures == 1
    value = daemon.metrics.registry.get_sample_value
    assert value("oscar_deploy_elastic_power_on_failures_total", {"group": "cloud"}) == 1


def test_a_restarted_daemon_adopts_a_booting_instance_instead_of_creating_another(
        kube_api: Any, ec2_emulator: Any, cloud: Any, start_daemon: Any) -> None:  # noqa: F811
    group, power = cloud
    # a worker some earlier replica created for this pod before it died: tagged, not registered yet
    name = power.new_name(group)
    kube_api.create_pod("job", cpus=1.5, runtime_s=100000)
    power.power_on(group, name)
    start_daemon([group], managers={"cloud": power})
    kube_api.wait_until(lambda: kube_api.pods(phase="Running"), timeout=30, what="pod running")
    assert kube_api.get("pods", "job", "default")["spec"]["nodeName"] == name
    assert [i["tags"]["Name"] for i in running_instances(ec2_emulator)] == [name]


def test_daemon_deployment_groups_create_workers_that_join_by_cloud_init(
        ec2_emulator: Any, tmp_path: Any) -> None:
    """``daemon --deployment``: groups and power managers from a deployment ``create`` recorded."""
    from elastic.cloudpower import cloud_managers, groups_from_deployment, with_deployment_settings
    from elastic.daemon import DaemonSettings
    from provisioner.config import GeneralSettings, Settings
    from provisioner.engine import create
    from provisioner.engine.handoff import daemon_deployment
    from provisioner.state import StateStore
    from tests.test_engine_clouds import assert_joins_under_its_name, aws_request

    settings = Settings(general=GeneralSettings(cache_dir=str(tmp_path / "cache")), provisioner=FAST_CLOUD)
    credentials = AwsCredentials("AKIDOSCARTESTKEY0001", "s3cr3t-never-shown",
                                 CredentialSource("environment"), region=REGION,
                                 endpoint_url=ec2_emulator.endpoint)
    auth = tmp_path / "auth.dat"
    auth.write_text(f"id = aws; type = EC2; username = AKIDOSCARTESTKEY0001; password = s3cr3t-never-shown; "
                    f"region = {REGION}; host = {ec2_emulator.endpoint}\n")
    auth.chmod(0o600)  # as an operator keeps it (a 0644 file is an operator slip)
    state_path = tmp_path / "state.db"
    with StateStore.open(state_path) as store:
        request = aws_request(settings, "elastic", wn_num=0, idle_time="7 m")
        dep = create(store, request, lambda _p, region: Ec2Driver(credentials, region, settings.provisioner),
                     settings)
        dep = store.get(dep.id)
    groups = groups_from_deployment(dep)
    policy = with_deployment_settings(dep, DaemonSettings()).policy  # the template's idle_time input
    assert (policy.idle_time_s, policy.max_wait_poweron_s) == (420.0, 600.0)
    assert [g.name for g in groups] == ["wn"] and groups[0].power == {"type": "cloud", "deployment": dep.id}
    with StateStore.open(state_path) as store:  # the CLI's side: the daemon never opens the state file
        handed = {dep.id: daemon_deployment(store, dep.id)}
    managers = cloud_managers(groups, handed, auth=str(auth), settings=settings)

    power = managers["wn"]
    name, other = power.new_name(groups[0]), power.new_name(groups[0])
    power.power_on(groups[0], name)
    power.power_on(groups[0], other)
    (worker,) = [i for i in ec2_emulator.leftovers(dep.id, REGION)["instances"] if i["tags"]["Name"] == name]
    assert worker["tags"][TAG_GROUP] == "wn" and worker["key_name"].startswith(f"oscar-deploy-{dep.id}-")
    assert worker["user_data"].startswith("#cloud-config") and ":6443" in worker["user_data"]
    boto = boto3.client("ec2", endpoint_url=ec2_emulator.endpoint, region_name=REGION,
                        aws_access_key_id="AKIDOTHERUSER", aws_secret_access_key="x")
    workers = {i["tags"]["Name"]: i for i in ec2_emulator.leftovers(dep.id, REGION)["instances"]
               if i["tags"][TAG_GROUP] == "wn"}
    assert set(workers) == {name, other}
    for instance in workers.values():  # each k3s agent registers under the name the daemon waits for
        assert_joins_under_its_name(boto, instance)
    assert power.machines(groups[0]) is not None and name in power.machines(groups[0])
    power.power_off(groups[0], name)
    assert name not in {i["tags"]["Name"] for i in ec2_emulator.leftovers(dep.id, REGION)["instances"]}


def test_a_worker_that_never_joins_is_terminated_and_its_pod_goes_to_the_next_group(
        kube_api: Any, ec2_emulator: Any, cloud_power: Any, start_daemon: Any) -> None:  # noqa: F811
    group, power = cloud_power  # the instance runs, but its cloud-init never joins k3s
    group = dataclasses.replace(group, priority=20)
    edge = board_group(kube_api, "edge", boards=1, priority=1)
    settings = dataclasses.replace(FAST, policy=dataclasses.replace(FAST.policy, max_wait_poweron_s=2.0))
    daemon = start_daemon([edge, group], settings, managers={"edge": manager_for(edge), "cloud": power})
    kube_api.create_pod("job", cpus=1.5, runtime_s=100000)

    kube_api.wait_until(lambda: running_instances(ec2_emulator), timeout=20, what="a worker created")
    kube_api.wait_until(lambda: kube_api.pods(phase="Running"), timeout=30, what="pod running")
    assert kube_api.get("pods", "job", "default")["spec"]["nodeName"] == "edge-0"
    kube_api.wait_until(lambda: not running_instances(ec2_emulator), timeout=20, what="worker terminated")
    assert daemon.ledger.backoff()["cloud"].failures == 1
    kube_api.wait_until(lambda: not [r for r in daemon.ledger.records() if r.group == "cloud"], timeout=10,
                        what="the failed worker forgotten")
    value = daemon.metrics.registry.get_sample_value
    assert value("oscar_deploy_elastic_scale_downs_total", {"group": "cloud", "reason": "failed"}) == 1


def test_the_daemon_command_scales_a_created_deployment_from_its_record(
        ec2_emulator: Any, kube_api: Any, tmp_path: Any) -> None:
    """``oscar-deploy daemon --deployment ID`` as a user runs it, in its own process: the CLI reads the
    state file and hands the record over; a pending pod makes the daemon create a worker with the
    deployment's key pair and security group and user data that names it, as ``create`` would."""
    import os
    import subprocess
    import sys

    from provisioner.config import GeneralSettings, Settings
    from provisioner.engine import create
    from provisioner.state import StateStore
    from tests.test_engine_clouds import aws_request

    settings = Settings(general=GeneralSettings(cache_dir=str(tmp_path / "cache")), provisioner=FAST_CLOUD)
    credentials = AwsCredentials("AKIDOSCARTESTKEY0001", "s3cr3t-never-shown",
                                 CredentialSource("environment"), region=REGION,
                                 endpoint_url=ec2_emulator.endpoint)
    state_path = tmp_path / "state.db"
    with StateStore.open(state_path) as store:
        dep = create(store, aws_request(settings, "cli", wn_num=0),
                     lambda _p, region: Ec2Driver(credentials, region, settings.provisioner), settings)
        front = next(i for i in ec2_emulator.leftovers(dep.id, REGION)["instances"]
                     if i["tags"][TAG_GROUP] != "wn")
    auth = tmp_path / "auth.dat"
    auth.write_text(f"id = aws; type = EC2; username = AKIDOSCARTESTKEY0001; password = s3cr3t-never-shown; "
                    f"region = {REGION}; host = {ec2_emulator.endpoint}\n")
    kubeconfig = kube_api.write_kubeconfig(tmp_path / "kubeconfig")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OSCAR_DEPLOY_"))}
    env.update(HOME=str(tmp_path), OSCAR_DEPLOY_GENERAL_CACHE_DIR=str(tmp_path / "cache"),
               OSCAR_DEPLOY_PROVISIONER_RETRY_BASE_S="0.01", OSCAR_DEPLOY_PROVISIONER_RETRY_MAX_S="0.05")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "provisioner.cli", "--state", str(state_path), "daemon",
         "--deployment", "cli", "--kubeconfig", str(kubeconfig), "--auth", str(auth),
         "--metrics-port", "0", "--lease-duration", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        kube_api.create_pod("job", cpus=1.5, runtime_s=100000)

        def workers() -> list[dict[str, Any]]:
            if daemon.poll() is not None:
                raise AssertionError(f"the daemon exited {daemon.returncode}: {daemon.communicate()[1]}")
            listed = ec2_emulator.leftovers(dep.id, REGION)["instances"]
            return [i for i in listed if i["tags"][TAG_GROUP] == "wn"]

        (worker,) = kube_api.wait_until(workers, timeout=60, what="a worker created by the daemon")
    finally:
        _, stderr = stop(daemon, timeout=20)
    made = ec2_emulator.leftovers(dep.id, REGION)
    assert worker["key_name"] == front["key_name"]
    assert [k["name"] for k in made["key_pairs"]] == [front["key_name"]]  # no second key pair imported
    assert worker["security_groups"] == [g["id"] for g in made["security_groups"]]  # the deployment's one
    config = k3s_config(worker["user_data"])
    assert config["node-name"] == worker["tags"]["Name"] and config["server"].endswith(":6443")
    assert "oscar-deploy/group=wn" in config["node-label"]
    assert "s3cr3t-never-shown" not in stderr


def test_a_hybrid_worker_gets_the_wireguard_port_opened_to_its_public_address(
        ec2_emulator: Any, cloud_power: tuple[NodeGroup, CloudPower]) -> None:
    """Boards and cloud workers meet over WireGuard at public addresses; the daemon opens the port to
    each worker it starts (the group's own-group rule matches private addresses only), once."""
    group, power = cloud_power
    launch = dataclasses.replace(power.launch["cloud"], public_ip=True, wireguard=True)
    power = CloudPower(power.driver, DEPLOYMENT, {"cloud": launch})
    name = power.new_name(group)
    power.power_on(group, name)
    (instance,) = [i for i in ec2_emulator.inventory(REGION)["instances"] if i["tags"].get("Name") == name]
    assert instance["public_ip"]
    boto = boto3.client("ec2", endpoint_url=ec2_emulator.endpoint, region_name=REGION,
                        aws_access_key_id="AKIDOSCARTESTKEY0001", aws_secret_access_key="x")

    def wireguard_sources() -> list[str]:
        (sg,) = boto.describe_security_groups(GroupIds=[launch.security_group])["SecurityGroups"]
        return [r["CidrIp"] for p in sg["IpPermissions"] if p.get("FromPort") == 51820
                for r in p.get("IpRanges", [])]

    assert wireguard_sources() == []
    for _ in range(50):  # the emulator runs it after a few polls
        if name in (power.machines(group) or {}) and wireguard_sources():
            break
    assert wireguard_sources() == [f"{instance['public_ip']}/32"]
    power.machines(group)  # again: nothing new to open
    assert wireguard_sources() == [f"{instance['public_ip']}/32"]
