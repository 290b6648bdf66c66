"""The daemon as its pod runs it, with cloud groups: no state file, only the role's ConfigMap and Secret.

A hybrid deployment (the shipped hybrid template: one board, the AWS worker group) is recorded as
``create`` records it; ``configure``'s variables render the elastic role's manifests; the ConfigMap and
the Secret become files (role variables point their mount paths at this test's directories) and
``oscar-deploy daemon`` runs with the Deployment's args and env, in a clean environment (no
``AWS_*``: the credential is the Secret's files). The EC2 emulator stands in for AWS (its address is
the Secret's ``AWS_ENDPOINT_URL``), the Kubernetes API test server for the cluster (``KUBECONFIG``);
the harness plays cloud-init and the kubelet. The image running the same is ``tests/test_image.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioner.clouds.base import TAG_DEPLOYMENT, TAG_GROUP
from provisioner.config import Settings
from provisioner.configure import configuration_vars
from provisioner.engine.create import recorded_plan
from provisioner.engine.handoff import with_launch_inputs
from provisioner.engine.keys import SSH_KEY_SECRET, new_private_key
from provisioner.engine.targets import group_targets
from provisioner.inventory import Inventory
from provisioner.plan import make_plan
from provisioner.state import StateStore
from provisioner.template import load_cluster_spec
from tests.harness.power_switch import Switch
from tests.harness.processes import stop
from tests.test_cloudinit import k3s_config
from tests.test_playbooks import BASE, _render

REPO = Path(__file__).resolve().parents[1]
HYBRID = REPO / "tosca/templates/oscar-hybrid.yaml"
REGION = "us-east-1"
AGENT_TOKEN = "K10" + "c" * 64 + "::node:" + "a" * 32
ACCESS_KEY, SECRET_KEY = "AKIDOSCARPODKEY00001", "pod-secret-" + "z" * 29
FAST_ENV = {"OSCAR_DEPLOY_ELASTIC_IDLE_TIME_S": "2", "OSCAR_DEPLOY_ELASTIC_COOLDOWN_S": "1",
            "OSCAR_DEPLOY_ELASTIC_TICK_S": "0.5", "OSCAR_DEPLOY_PROVISIONER_RETRY_BASE_S": "0.01",
            "OSCAR_DEPLOY_PROVISIONER_RETRY_MAX_S": "0.05"}
SWITCH_SCRIPT = """#!/bin/sh
# TEST DOUBLE: a PoE switch's CLI; records the request and the environment the daemon gave it.
env > "{log}-env-$1-$2"
echo "$1 $2 $(id -u)" >> "{log}"
"""


def hybrid_deployment(tmp_path: Path, switch: str, **inputs: str) -> tuple[Path, Any, dict[str, Any]]:
    """A recorded hybrid deployment (state file, ``Deployment``, ``configure``'s variables): the
    shipped template with one board, reached through the front-end and powered by ``switch``, and
    the AWS worker group; the front-end's address, key pair and agent token as ``create`` stores
    them. ``inputs``: more of the template's inputs (``elastic_instance_profile``)."""
    doc = yaml.safe_load(HYBRID.read_text())
    doc["imports"] = [{"oscar_deploy_types": str(REPO / "tosca/types/oscar-deploy-types.yaml")}]
    nodes = doc["topology_template"]["node_templates"]
    del nodes["pi2"], nodes["pi3"]
    # A hybrid board needs an address the cloud nodes reach (``provisioner.mesh``): a TEST-NET-2 one
    # that nothing answers on, so the daemon's SSH halt finds no board there (taken as halted, 1 s)
    # and the switch's cut follows.
    template = tmp_path / "hybrid.yaml"
    template.write_text(yaml.safe_dump(doc, sort_keys=False))
    key = tmp_path / "pis_key"  # the boards' login key, which the daemon halts them with
    key.write_text(new_private_key())
    key.chmod(0o600)
    inputs = {"region": REGION, "wn1_address": "198.51.100.21", "ssh_key": str(key),
              "power_on_command": f"{switch} on {{node}}",
              "power_off_command": f"{switch} off {{node}}", **inputs}
    plan = make_plan(load_cluster_spec([template], inputs), Settings())
    state = tmp_path / "state.db"
    with StateStore.open(state) as store:
        dep = store.create_deployment("hyb", plan=recorded_plan(plan, group_targets(plan)), status="created")
        store.set_secret(dep.id, SSH_KEY_SECRET, new_private_key())
        store.set_secret(dep.id, "k3s_agent_token", AGENT_TOKEN)
        front = next(g for g in plan.groups if g.role == "front-end")
        store.record_node(dep.id, group=front.name, name=f"oscar-deploy-{dep.id}-front-1", provider="aws",
                          addresses={"public": ["198.51.100.7"], "private": ["10.0.0.5"]}, state="running")
        store.set_plan(dep.id, with_launch_inputs(store, dep.id, store.record(dep.id)).to_dict())
        dep = store.get(dep.id)
        variables = configuration_vars(dep, store.secrets(dep.id), Inventory((), "/k"), tmp_path)
    return state, dep, variables


def manifests(tmp_path: Path, variables: dict[str, Any], **extra: Any) -> dict[str, dict[str, Any]]:
    """The elastic role's manifests for ``variables`` (``configure``'s) by kind/name."""
    render = tmp_path / "render"
    render.mkdir(exist_ok=True)
    chosen = {k: variables[k] for k in ("oscar_deployment_id", "oscar_deployment_name", "k3s_server_url",
                                        "k3s_agent_token", "elastic_groups", "elastic_settings",
                                        "elastic_ssh_private_key", "elastic_known_hosts",
                                        "elastic_host_network") if k in variables}
    docs = _render(render, {**BASE, "oscar_dns_name": "", **chosen, **extra})["elastic.yaml"]
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in docs}


def quick_halt(docs: dict[str, dict[str, Any]]) -> None:
    """A substitution: no board answers SSH at the board's TEST-NET address (yet this sandbox's network
    may accept the connection), so the halt waits 1 s, not a minute, before the power cut."""
    data = docs["ConfigMap/oscar-deploy-elastic-groups"]["data"]
    groups = yaml.safe_load(data["groups.yaml"])
    for group in groups:
        if "shutdown" in group.get("power", {}):
            group["power"]["shutdown"].update(wait_s=1, settle_s=0)
    data["groups.yaml"] = yaml.safe_dump(groups)


def follow_workers(kube: Any, ec2: Any, deployment_id: str, region: str) -> None:
    """The harness as cloud-init and k3s: each running instance of the deployment registers as the
    Node its user data names (k3s ``node-name``), with the labels it gives."""
    def machines() -> dict[str, dict[str, Any]]:
        out = {}
        for instance in ec2.inventory(region)["instances"]:
            if instance["state"] == "running" and instance["tags"].get(TAG_DEPLOYMENT) == deployment_id:
                config = k3s_config(instance["user_data"])
                labels = dict(label.split("=", 1) for label in config.get("node-label") or [])
                out[config["node-name"]] = {"cpus": 2, "memory_mib": 4096, "ready_after_s": 30,
                                            "labels": labels, "password": instance["id"]}
        return out

    kube.follow_machines(machines, period_s=0.05)


def _write_volume(directory: Path, data: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for key, value in data.items():
        (directory / key).write_text(value)
        (directory / key).chmod(0o440)


def _pod_command(docs: dict[str, dict[str, Any]], config: Path, credentials: Path
                 ) -> tuple[list[str], dict[str, str]]:
    """The Deployment's container as a local process: the entrypoint with its args, its env, and the
    ConfigMap and Secret written where the role's variables put their mount paths."""
    pod = docs["Deployment/oscar-deploy-elastic"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["config"] == str(config) and mounts["credentials"] == str(credentials)
    assert Path(mounts["ssh"]).parent == config.parent  # moved beside them (``rendered``)
    for volume in pod["volumes"]:  # every ConfigMap and Secret at its mount path
        if "configMap" in volume:
            _write_volume(Path(mounts[volume["name"]]),
                          docs[f"ConfigMap/{volume['configMap']['name']}"]["data"])
        elif "secret" in volume:
            _write_volume(Path(mounts[volume["name"]]),
                          docs[f"Secret/{volume['secret']['secretName']}"]["stringData"])
    # the pod's address (status.podIP, where its metrics listen) is the loopback for a local process
    env = {e["name"]: e.get("value", "127.0.0.1") for e in container["env"]}
    return [str(Path(sys.executable).parent / "oscar-deploy"), *container["args"]], env


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OS_", "OSCAR_DEPLOY_"))}
    return {**env, "HOME": str(tmp_path), "OSCAR_DEPLOY_GENERAL_CACHE_DIR": str(tmp_path / "cache"), **extra}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, ec2_emulator_server: Any) -> dict[str, Any]:
    """The deployment and its manifests, made once for the module (rendering runs Ansible)."""
    tmp_path = tmp_path_factory.mktemp("pod")
    switch = tmp_path / "switch"
    switch.write_text(SWITCH_SCRIPT.format(log=tmp_path / "switch.log"))
    switch.chmod(0o755)
    state, dep, variables = hybrid_deployment(tmp_path, str(switch))
    config, credentials = tmp_path / "pod" / "config", tmp_path / "pod" / "credentials"
    docs = manifests(tmp_path, variables, elastic_config_dir=str(config),
                     elastic_credentials_dir=str(credentials), elastic_ssh_dir=str(config.parent / "ssh"),
                     elastic_cloud_env={"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                                        "AWS_ENDPOINT_URL": ec2_emulator_server.endpoint})
    quick_halt(docs)
    return {"state": state, "dep": dep, "docs": docs, "config": config, "credentials": credentials,
            "switch_log": tmp_path / "switch.log"}


@pytest.fixture
def pod(rendered: dict[str, Any], ec2_emulator: Any) -> Iterator[dict[str, Any]]:
    """``rendered`` with its volumes written afresh and the pod's command and env."""
    docs = json.loads(json.dumps(rendered["docs"]))
    for directory in (rendered["config"], rendered["credentials"], rendered["config"].parent / "ssh"):
        shutil.rmtree(directory, ignore_errors=True)
    for log in rendered["switch_log"].parent.glob(rendered["switch_log"].name + "*"):
        log.unlink()
    command, env = _pod_command(docs, rendered["config"], rendered["credentials"])
    yield {**rendered, "docs": docs, "command": command, "env": env}


def test_the_configmap_carries_each_cloud_groups_launch_spec_and_the_secrets_files(
        pod: dict[str, Any]) -> None:
    from elastic.groups import parse_groups
    from provisioner.record import read_record

    groups = {g.name: g for g in parse_groups(yaml.safe_load(
        (pod["config"] / "groups.yaml").read_text()), "groups.yaml")}
    record = read_record(pod["dep"].plan)[0]
    power = groups["wn"].power
    assert power["launch"] == record.group("wn").launch.to_dict()  # type: ignore[union-attr]
    assert power["credentials"] == str(pod["credentials"])
    assert power["token"] == str(pod["credentials"] / "K3S_TOKEN")
    assert (pod["credentials"] / "K3S_TOKEN").read_text() == AGENT_TOKEN
    assert AGENT_TOKEN not in (pod["config"] / "groups.yaml").read_text()
    assert SECRET_KEY not in (pod["config"] / "groups.yaml").read_text()


def test_in_its_pod_the_daemon_creates_a_cloud_worker_with_creates_user_data_and_terminates_it(
        pod: dict[str, Any], ec2_emulator: Any, kube_api: Any, tmp_path: Path) -> None:
    """Pending pods: the board first, then a worker in the EC2 emulator with the user data ``create``
    gives a worker of that name (``worker_join`` from the state file, which the daemon never sees);
    idle: the board's power cut and the worker terminated."""
    from provisioner.cloudinit import node_user_data, worker_join

    dep = pod["dep"]
    kubeconfig = kube_api.write_kubeconfig(tmp_path / "kubeconfig")
    kube_api.create_namespace("oscar-deploy")  # the manifests' Namespace, as applying them would
    follow_workers(kube_api, ec2_emulator, dep.id, REGION)
    from elastic.groups import load_groups

    pis = {g.name: g for g in load_groups(pod["config"] / "groups.yaml")}["pis"]
    switch = Switch(kube_api, pod["switch_log"], dict(pis.labels))
    env = _clean_env(tmp_path, KUBECONFIG=str(kubeconfig), **{**pod["env"], **FAST_ENV})
    daemon = subprocess.Popen([*pod["command"], "--metrics-port", "0", "--lease-duration", "2"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              stdin=subprocess.DEVNULL)
    try:
        def alive() -> None:
            if daemon.poll() is not None:
                raise AssertionError(f"the daemon exited {daemon.returncode}: {daemon.communicate()[0]}")

        def workers() -> list[dict[str, Any]]:
            alive()
            return [i for i in ec2_emulator.inventory(REGION)["instances"]
                    if i["tags"].get(TAG_GROUP) == "wn" and i["tags"].get(TAG_DEPLOYMENT) == dep.id]

        kube_api.create_pods(3, prefix="job", cpus=2, runtime_s=300)
        (worker,) = kube_api.wait_until(workers, timeout=60, what="a cloud worker created")
        name = worker["tags"]["Name"]
        kube_api.wait_until(lambda: len(kube_api.pods(phase="Succeeded")) == 3, timeout=60, what="jobs done")
        assert {p["spec"]["nodeName"] for p in kube_api.pods()} == {"pi1", name}
        kube_api.wait_until(lambda: alive() or ("off pi1" in " ".join(switch.seen)
                                                and all(i["state"] == "terminated" for i in workers())),
                            timeout=60, what="the idle board powered off and the worker terminated")
        assert [line.rsplit(" ", 1)[0] for line in switch.seen] == ["on pi1", "off pi1"]
    finally:
        switch.stop()
        output, _ = stop(daemon)
        print(output)  # the daemon's log, shown when the test fails
    with StateStore.open(pod["state"]) as store:
        expected = node_user_data(worker_join(store, store.get(dep.id), "wn"), name)
    assert worker["user_data"] == expected
    made = ec2_emulator.inventory(REGION)
    assert [k["name"] for k in made["key_pairs"]] == [worker["key_name"]]
    for secret in (SECRET_KEY, AGENT_TOKEN):
        assert secret not in output
    for action in ("on", "off"):  # the power command inherited no credential
        seen = Path(f"{pod['switch_log']}-env-{action}-pi1").read_text()
        assert SECRET_KEY not in seen and ACCESS_KEY not in seen and AGENT_TOKEN not in seen


@pytest.mark.parametrize(("breaks", "reason"), [
    (lambda c, s: c.pop("provider"), "group 'wn': power.launch: missing field(s) provider"),
    (lambda c, s: c.update({"sizes": "t3.medium"}), "group 'wn': power.launch: 'sizes' must be a list"),
    (lambda c, s: c.update({"cpus": "two"}), "group 'wn': power.launch: 'cpus' must be int"),
    (lambda c, s: s.pop("K3S_TOKEN"), "group 'wn': power.token {credentials}/K3S_TOKEN: No such file"),
    (lambda c, s: s.pop("AWS_SECRET_ACCESS_KEY"), "{credentials}/AWS_SECRET_ACCESS_KEY: missing or empty"),
])
def test_a_configmap_or_secret_the_daemon_cannot_use_is_one_line_naming_the_key_and_exit_2(
        pod: dict[str, Any], ec2_emulator: Any, tmp_path: Path, breaks: Any, reason: str) -> None:
    docs = pod["docs"]
    groups = yaml.safe_load(docs["ConfigMap/oscar-deploy-elastic-groups"]["data"]["groups.yaml"])
    launch = next(g for g in groups if g["name"] == "wn")["power"]["launch"]
    secret = dict(docs["Secret/oscar-deploy-elastic"]["stringData"])
    breaks(launch, secret)
    docs["ConfigMap/oscar-deploy-elastic-groups"]["data"]["groups.yaml"] = yaml.safe_dump(groups)
    docs["Secret/oscar-deploy-elastic"]["stringData"] = secret
    for directory in (pod["config"], pod["credentials"]):
        shutil.rmtree(directory)
    command, env = _pod_command(docs, pod["config"], pod["credentials"])
    result = subprocess.run([*command, "--metrics-port", "0"], env=_clean_env(tmp_path, **env),
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: ") and reason.format(credentials=pod["credentials"]) in lines[0], lines
    inventory = ec2_emulator.inventory(REGION)
    assert not inventory["instances"] and not inventory["key_pairs"], "something was created"


def test_the_templates_elasticity_settings_reach_the_pods_env_as_daemon_deployment_applies_them(
        pod: dict[str, Any], tmp_path: Path) -> None:
    """The hybrid template's ``max_wait_poweron: 10 m``, ``max_booting: 4``...: the same policy in the
    pod (its env) as ``daemon --deployment`` makes from the record."""
    from elastic.cloudpower import with_deployment_settings
    from elastic.daemon import settings_from_config
    from provisioner.config import load_settings

    def policy(env: dict[str, str]) -> Any:
        return settings_from_config(load_settings(env=env, cwd=tmp_path, home=tmp_path).elastic).policy

    in_pod = policy(pod["env"])
    by_hand = with_deployment_settings(pod["dep"], settings_from_config(
        load_settings(env={}, cwd=tmp_path, home=tmp_path).elastic)).policy
    assert in_pod == by_hand
    assert (in_pod.max_wait_poweron_s, in_pod.max_booting) == (600.0, 4)
    assert in_pod != policy({"OSCAR_DEPLOY_ELASTIC_NAMESPACE": "oscar-deploy"})  # the env made a difference
