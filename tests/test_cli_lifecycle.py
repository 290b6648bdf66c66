"""create / list / show / outputs / scale / destroy through the real command, against the cloud
emulators with the stock-libcloud drivers: exit codes, one JSON document on stdout,
masked secrets, no credential anywhere (state file, output, logs), resume after kill -9 without a
duplicate, destroy of a deployment whose local record was lost.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from provisioner.clouds.base import TAG_DEPLOYMENT, resource_prefix
from provisioner.resources import tosca_dir

ROOT = Path(__file__).resolve().parents[1]
REGION = "eu-west-1"
KEY_ID = "AKIDCLILIFECYCLE0001"
SECRET = "cli-Lifecycle-s3cret-9fJq2x"
AWS_TEMPLATE = str(tosca_dir() / "templates" / "oscar-aws.yaml")
OPENSTACK_TEMPLATE = str(tosca_dir() / "templates" / "oscar-openstack.yaml")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def env(tmp_path: Path, cache_dir: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("AWS_", "OS_", "OSCAR_DEPLOY_"))}
    return {**clean, "HOME": str(home), "PYTHONPATH": str(ROOT), "COLUMNS": "200",
            "OSCAR_DEPLOY_GENERAL_CACHE_DIR": str(cache_dir),
            "OSCAR_DEPLOY_PROVISIONER_RETRY_BASE_S": "0.01", "OSCAR_DEPLOY_PROVISIONER_RETRY_MAX_S": "0.05",
            "OSCAR_DEPLOY_PROVISIONER_API_RETRIES": "10", "OSCAR_DEPLOY_PROVISIONER_CREATE_TIMEOUT_S": "60",
            "OSCAR_DEPLOY_PROVISIONER_SSH_TIMEOUT_S": "3"}


def cli(tmp_path: Path, env: dict[str, str], *args: str,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "provisioner.cli", "--state", str(tmp_path / "state" / "state.db"), *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)


def aws_auth(tmp_path: Path, endpoint: str) -> str:
    path = tmp_path / "auth.dat"
    path.write_text(f"id = ec2; type = EC2; username = {KEY_ID}; password = {SECRET}; region = {REGION}; "
                    f"host = {endpoint}\n")
    path.chmod(0o600)  # as an operator keeps it (a 0644 file is an operator slip)
    return str(path)


def live(inventory: dict[str, list[dict[str, Any]]], deployment: str) -> dict[str, list[dict[str, Any]]]:
    prefix = resource_prefix(deployment)

    def ours(item: dict[str, Any]) -> bool:
        tags = item.get("tags") or {}
        name = tags.get("Name") or item.get("name") or ""
        return tags.get(TAG_DEPLOYMENT) == deployment or name.startswith(prefix)

    out = {kind: [i for i in items if ours(i)] for kind, items in inventory.items()}
    out["instances"] = [i for i in out["instances"] if i["state"] != "terminated"]
    return out


def _ssh_sources(deployment: str) -> set[str]:
    """The CIDRs the deployment's security groups let reach port 22 (read from the emulator's state)."""
    from tests.harness.ec2 import _backend

    prefix = resource_prefix(deployment)
    return {rule.ip_range["CidrIp"] for vpc in _backend(REGION).groups.values() for group in vpc.values()
            if group.name.startswith(prefix) for rule in group.ingress_rules
            if rule.from_port is not None and rule.from_port <= 22 <= rule.to_port and rule.ip_range}


def state_bytes(tmp_path: Path) -> bytes:
    """Everything the state directory holds on disk (the SQLite file, its WAL, per-deployment files)."""
    return b"".join(p.read_bytes() for p in sorted((tmp_path / "state").rglob("*")) if p.is_file())


def test_ec2_lifecycle_through_the_cli(tmp_path: Path, env: dict[str, str], ec2_emulator: Any) -> None:
    auth = aws_auth(tmp_path, ec2_emulator.endpoint)
    outputs: list[str] = []

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = cli(tmp_path, env, *args)
        outputs.extend([done.stdout, done.stderr])
        assert done.returncode == 0, done.stderr
        return done

    created = run("-v", "create", AWS_TEMPLATE, "-i", "wn_num=2", "-i", "admin_cidr=10.0.0.0/8",
                  "--name", "lab", "--auth", auth, "--no-configure", "--yes")  # -v: DEBUG logs too
    assert "deployment lab (" in created.stdout
    listed = json.loads(run("list", "-o", "json").stdout)
    assert [(d["name"], d["status"], d["node_count"]) for d in listed] == [("lab", "created", 3)]
    dep_id = listed[0]["id"]
    # the auth file's region wins over the template's default
    assert listed[0]["locations"] == [{"provider": "aws", "region": REGION}]
    inventory = live(ec2_emulator.inventory(REGION), dep_id)
    assert len(inventory["instances"]) == 3

    shown = json.loads(run("show", "lab", "-o", "json").stdout)
    assert {n["name"] for n in shown["nodes"]} == {i["tags"]["Name"] for i in inventory["instances"]}
    assert set(shown["secrets"].values()) == {"********"}
    assert shown["credentials"]["aws"] == {"kind": "auth-file", "path": auth, "entry": "ec2"}
    unmasked = cli(tmp_path, env, "show", dep_id, "-o", "json", "--show-secrets")  # not in `outputs`
    revealed = json.loads(unmasked.stdout)["secrets"]
    assert len(revealed["k3s_token"]) == 64 and "PRIVATE KEY" in revealed["ssh_private_key"]
    front = next(n for n in shown["nodes"] if n["group"] == "front")
    endpoints = json.loads(run("outputs", "lab", "-o", "json").stdout)
    assert endpoints["oscar_endpoint"] == f"https://{front['addresses']['public'][0]}/"
    assert run("outputs", "lab").stdout.startswith("oscar_endpoint: https://")
    assert "lab" in run("list").stdout and "oscar-deploy-" in run("show", "lab").stdout

    # A re-run resumes with the recorded inputs: one that forgets admin_cidr keeps the recorded CIDR;
    # one that gives another wn_num is refused by name, and nothing changes
    changed = cli(tmp_path, env, "create", AWS_TEMPLATE, "-i", "wn_num=3", "-i", "admin_cidr=10.0.0.0/8",
                  "--name", "lab", "--auth", auth, "--no-configure", "--yes")
    assert changed.returncode == 2 and "wn_num (recorded 2, given 3)" in changed.stderr, changed.stderr
    assert len(live(ec2_emulator.inventory(REGION), dep_id)["instances"]) == 3
    run("create", AWS_TEMPLATE, "--name", "lab", "--auth", auth, "--no-configure", "--yes")
    assert _ssh_sources(dep_id) == {"10.0.0.0/8"}

    run("scale", "lab", "wn", "3")
    assert len(live(ec2_emulator.inventory(REGION), dep_id)["instances"]) == 4
    bad = cli(tmp_path, env, "scale", "lab", "wn", "99")
    assert bad.returncode == 2 and "takes 0 to 4" in bad.stderr and "Traceback" not in bad.stderr

    # Without a terminal, nothing is removed unless --yes says so: a script that forgot it stops
    for slip, said in ((["scale", "lab", "wn", "1"], "--yes"), (["destroy", "lab"], "--yes"),
                       (["forget", "lab", "--yes"], "not destroyed")):
        refused = cli(tmp_path, env, *slip)
        assert refused.returncode == 2 and said in refused.stderr, (slip, refused.stderr)
        assert "Traceback" not in refused.stderr
    assert len(live(ec2_emulator.inventory(REGION), dep_id)["instances"]) == 4
    key_file = tmp_path / "state" / "deployments" / dep_id / "id_ed25519"
    assert key_file.exists()

    gone = run("destroy", "lab", "--yes")
    assert "removed aws eu-west-1: instance" in gone.stdout and "key pair" in gone.stdout
    assert all(not items for items in live(ec2_emulator.inventory(REGION), dep_id).values())
    again = run("destroy", "lab", "--yes")
    assert "0 resource(s) removed (nothing was left)" in again.stdout
    # a destroyed deployment keeps no way in; `forget` then drops its record
    assert not key_file.exists()
    kept = json.loads(cli(tmp_path, env, "show", "lab", "-o", "json", "--show-secrets").stdout)["secrets"]
    assert "ssh_private_key" not in kept and kept
    run("forget", "lab", "--yes")
    assert cli(tmp_path, env, "show", "lab").returncode == 2
    assert json.loads(run("list", "-o", "json").stdout) == []

    # the cloud credentials are nowhere: not in the state file, not in any output or log line
    assert SECRET.encode() not in state_bytes(tmp_path)
    assert KEY_ID.encode() not in state_bytes(tmp_path)
    assert not any(SECRET in text or KEY_ID in text for text in outputs)
    # and generated secrets never reach the output unless asked for
    assert not any(revealed["k3s_token"] in text or revealed["oscar_password"] in text for text in outputs)


def test_missing_credentials_exit_2_before_anything(tmp_path: Path, env: dict[str, str],
                                                    ec2_emulator: Any) -> None:
    auth = tmp_path / "auth.dat"
    auth.write_text("id = ost; type = OpenStack; host = http://127.0.0.1:1; username = u; password = p; "
                    "tenant = t\n")
    auth.chmod(0o600)  # as an operator keeps it (a 0644 file is an operator slip)
    done = cli(tmp_path, env, "create", AWS_TEMPLATE, "-i", "admin_cidr=10.0.0.0/8", "--name", "x", "--auth",
               str(auth), "--yes")
    assert done.returncode == 2, done.stderr
    assert "EC2" in done.stderr and "Traceback" not in done.stderr
    none = cli(tmp_path, env, "create", AWS_TEMPLATE, "-i", "admin_cidr=10.0.0.0/8", "--name", "x",
               "--yes")  # no env, no ~/.aws
    assert none.returncode == 2 and "Traceback" not in none.stderr
    assert json.loads(cli(tmp_path, env, "list", "-o", "json").stdout) == []
    assert ec2_emulator.calls == []


def test_openstack_lifecycle_through_the_cli(tmp_path: Path, env: dict[str, str],
                                            openstack_server: Any) -> None:
    auth = tmp_path / "auth.dat"
    auth.write_text(f"id = ost; type = OpenStack; host = {openstack_server.endpoint}/v3; username = demo; "
                    "password = secret; tenant = demo; domain = Default; region = RegionOne\n")
    auth.chmod(0o600)  # as an operator keeps it (a 0644 file is an operator slip)
    done = cli(tmp_path, env, "create", OPENSTACK_TEMPLATE, "-i", "wn_num=1", "-i", "admin_cidr=10.0.0.0/8",
               "--name", "ost", "--auth", str(auth), "--no-configure", "--yes")
    assert done.returncode == 0, done.stderr
    shown = json.loads(cli(tmp_path, env, "show", "ost", "-o", "json").stdout)
    prefix = resource_prefix(shown["id"])
    servers = [s for s in openstack_server.state()["servers"] if s["name"].startswith(prefix)]
    assert sorted(s["name"] for s in servers) == sorted(n["name"] for n in shown["nodes"])
    assert all(s["metadata"][TAG_DEPLOYMENT] == shown["id"] for s in servers)
    front = next(n for n in shown["nodes"] if n["group"] == "front")
    assert front["addresses"]["public"], "the front-end has a floating IP"
    assert cli(tmp_path, env, "scale", "ost", "wn", "2").returncode == 0
    assert len([s for s in openstack_server.state()["servers"] if "-wn-" in s["name"]]) == 2
    gone = cli(tmp_path, env, "destroy", "ost", "--yes")
    assert gone.returncode == 0, gone.stderr
    assert all(not items for items in openstack_server.leftovers(shown["id"]).values())


def test_kill_9_then_create_again_then_destroy(tmp_path: Path, env: dict[str, str],
                                               ec2_emulator: Any) -> None:
    """kill -9 of `create` at random points; the re-run finishes without a second copy of any node."""
    auth = aws_auth(tmp_path, ec2_emulator.endpoint)
    ec2_emulator.set_faults({"seed": 7, "latency_s": 0.1})
    args = ["create", AWS_TEMPLATE, "-i", "wn_num=3", "-i", "admin_cidr=10.0.0.0/8", "--name", "crash",
            "--auth", auth, "--no-configure", "--yes"]
    argv = [sys.executable, "-m", "provisioner.cli", "--state", str(tmp_path / "state" / "state.db"), *args]
    rng = random.Random(20261126)
    seen: list[int] = []
    for _attempt in range(4):
        # a random point of the run: after the k-th cloud call it made, plus a fraction of one call
        calls_before = len(ec2_emulator.calls)
        kill_after = rng.randint(1, 24)
        proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while (len(ec2_emulator.calls) - calls_before < kill_after and proc.poll() is None
               and time.monotonic() < deadline):
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.1))
        proc.send_signal(signal.SIGKILL)
        if proc.wait() == -signal.SIGKILL:
            machines = ec2_emulator.inventory(REGION)["instances"]
            seen.append(len([i for i in machines if i["state"] != "terminated"]))
    print("machines after each kill:", seen)
    assert len(seen) >= 2, "create kept finishing before the kill: nothing was tested"
    assert max(seen) > 0, f"no kill came after a machine existed: {seen}"
    finished = cli(tmp_path, env, *args, timeout=180)
    assert finished.returncode == 0, finished.stderr
    dep_id = json.loads(cli(tmp_path, env, "list", "-o", "json").stdout)[0]["id"]
    names = [i["tags"]["Name"] for i in live(ec2_emulator.inventory(REGION), dep_id)["instances"]]
    assert sorted(names) == sorted(set(names)) and len(names) == 4
    runs = [c for c in ec2_emulator.calls if c.action == "RunInstances" and not c.fault]
    assert len(runs) >= 4
    ec2_emulator.set_faults({})
    assert cli(tmp_path, env, "destroy", "crash", "--yes").returncode == 0
    assert all(not items for items in live(ec2_emulator.inventory(REGION), dep_id).values())


def test_destroy_sweeps_when_the_local_record_is_lost(tmp_path: Path, env: dict[str, str],
                                                      ec2_emulator: Any) -> None:
    auth = aws_auth(tmp_path, ec2_emulator.endpoint)
    done = cli(tmp_path, env, "create", AWS_TEMPLATE, "-i", "admin_cidr=10.0.0.0/8", "--auth", auth,
               "--no-configure", "--yes")
    assert done.returncode == 0, done.stderr
    dep_id = json.loads(cli(tmp_path, env, "list", "-o", "json").stdout)[0]["id"]
    for path in (tmp_path / "state").rglob("state.db*"):
        path.unlink()
    assert live(ec2_emulator.inventory(REGION), dep_id)["instances"]
    unknown = cli(tmp_path, env, "destroy", "not-an-id", "--yes", "--auth", auth)
    assert unknown.returncode == 2 and "8-hex-digit id" in unknown.stderr
    swept = cli(tmp_path, env, "destroy", dep_id, "--provider", "aws", "--region", REGION, "--auth", auth,
                "--yes")
    assert swept.returncode == 0, swept.stderr
    assert "instance" in swept.stdout
    assert all(not items for items in live(ec2_emulator.inventory(REGION), dep_id).values())


def test_ctrl_c_stops_create_cleanly_and_a_rerun_finishes(tmp_path: Path, env: dict[str, str],
                                                          ec2_emulator: Any) -> None:
    auth = aws_auth(tmp_path, ec2_emulator.endpoint)
    ec2_emulator.set_faults({"latency_s": 0.1})
    args = ["create", AWS_TEMPLATE, "-i", "wn_num=2", "-i", "admin_cidr=10.0.0.0/8", "--name", "intr",
            "--auth", auth, "--no-configure", "--yes"]
    argv = [sys.executable, "-m", "provisioner.cli", "--state", str(tmp_path / "state" / "state.db"), *args]
    # SIGINT as a terminal delivers it: a runner started in the background (CI, fresh roots) hands its
    # children SIGINT ignored, and Python then never raises KeyboardInterrupt; restore the default
    proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not any(c.action == "RunInstances" for c in ec2_emulator.calls) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert json.loads(cli(tmp_path, env, "list", "-o", "json").stdout)[0]["status"] == "failed"
    ec2_emulator.set_faults({})
    assert cli(tmp_path, env, *args).returncode == 0
    dep_id = json.loads(cli(tmp_path, env, "list", "-o", "json").stdout)[0]["id"]
    names = [i["tags"]["Name"] for i in live(ec2_emulator.inventory(REGION), dep_id)["instances"]]
    assert len(names) == len(set(names)) == 3
    assert cli(tmp_path, env, "destroy", "intr", "--yes").returncode == 0


def test_a_node_the_cloud_cannot_create_fails_with_its_message(tmp_path: Path, env: dict[str, str],
                                                                ec2_emulator: Any) -> None:
    auth = aws_auth(tmp_path, ec2_emulator.endpoint)
    no_capacity = {"code": "InsufficientInstanceCapacity", "actions": ["RunInstances"]}
    ec2_emulator.set_faults({"rules": [no_capacity]})
    done = cli(tmp_path, env, "create", AWS_TEMPLATE, "-i", "admin_cidr=10.0.0.0/8", "--name", "full",
               "--auth", auth, "--no-configure", "--yes")
    assert done.returncode == 1
    assert "InsufficientInstanceCapacity" in done.stderr and "front-1" in done.stderr
    assert "Traceback" not in done.stderr
    shown = json.loads(cli(tmp_path, env, "show", "full", "-o", "json").stdout)
    assert shown["status"] == "failed"
    assert any(e["kind"] == "capacity" for e in shown["events"])  # it did fall back before giving up
    ec2_emulator.set_faults({})
    assert cli(tmp_path, env, "destroy", "full", "--yes").returncode == 0
    assert all(not items for items in live(ec2_emulator.inventory(REGION), shown["id"]).values())


def test_scale_down_removes_an_idle_worker_before_the_newest_busy_one(
        tmp_path: Path, env: dict[str, str], ec2_emulator: Any, kube_api: Any, kube_client: Any) -> None:
    """Which workers are busy is asked of the cluster; without an answer a shrink is refused unless
    --force; the workers removed are cordoned and their pods evicted first, and a drain the API
    refuses removes nothing."""
    from kubernetes import client

    from provisioner.clouds.ec2 import Ec2Driver
    from provisioner.credentials import AwsCredentials, CredentialSource
    from provisioner.engine.targets import pick_removals
    from provisioner.state import StateStore

    auth = aws_auth(tmp_path, ec2_emulator.endpoint)
    created = cli(tmp_path, env, "create", AWS_TEMPLATE, "-i", "wn_num=3", "-i", "admin_cidr=10.0.0.0/8",
                  "--name", "busy", "--auth", auth, "--no-configure", "--yes")
    assert created.returncode == 0, created.stderr
    dep_id = json.loads(cli(tmp_path, env, "list", "-o", "json").stdout)[0]["id"]
    driver = Ec2Driver(AwsCredentials(KEY_ID, SECRET, CredentialSource("environment"), region=REGION,
                                      endpoint_url=ec2_emulator.endpoint), REGION)

    def workers() -> list[Any]:
        return [n for n in driver.list_nodes(dep_id) if n.group == "wn"]

    # no kubeconfig yet (configure never ran): refused, nothing removed, --force suggested
    newest = pick_removals(workers(), 2)[0].name
    refused = cli(tmp_path, env, "scale", "busy", "wn", "2", "--yes")
    assert refused.returncode == 2, refused.stderr
    assert "cannot tell idle wn workers from busy ones" in refused.stderr
    assert "no kubeconfig" in refused.stderr
    assert "--force" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert len(workers()) == 3
    # forced: newest first, with a warning on stderr
    blind = cli(tmp_path, env, "scale", "busy", "wn", "2", "--yes", "--force")
    assert blind.returncode == 0, blind.stderr
    assert "warning: cannot tell idle workers from busy ones" in blind.stderr
    assert "no kubeconfig" in blind.stderr
    assert f"removed {newest}\n" in blind.stdout
    assert newest not in {n.name for n in workers()}

    # the cluster knows better: the newest remaining worker runs a user pod, the other only a DaemonSet's
    # pod and a finished one, so the older, idle worker goes
    with StateStore.open(tmp_path / "state" / "state.db") as store:
        kube_api.write_kubeconfig(store.deployment_dir(dep_id) / "kubeconfig")
    busy, idle = (n.name for n in pick_removals(workers(), 0))
    for name in (busy, idle):
        kube_api.register_node(name)
    kube_api.add_daemonset("flannel")
    kube_api.create_pod("done", node_selector={"kubernetes.io/hostname": idle}, runtime_s=1)
    kube_api.create_pod("job", node_selector={"kubernetes.io/hostname": busy}, runtime_s=3600)
    kube_api.wait_until(lambda: kube_api.pods(node=busy, phase="Running")
                        and kube_api.pods(node=idle, phase="Succeeded")
                        and len(kube_api.pods(namespace="kube-system", phase="Running")) == 2,
                        what="the job running, the short pod done, a DaemonSet pod on each node")
    done = cli(tmp_path, env, "scale", "busy", "wn", "1", "--yes")
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr
    assert f"removed {idle}\n" in done.stdout and f"kept {busy}: busy (running user pods)" in done.stdout
    assert [n.name for n in workers()] == [busy]
    assert kube_api.get("nodes", idle)["spec"].get("unschedulable") is True  # cordoned before it went

    # the last worker's pod has two PodDisruptionBudgets, so the API server answers its eviction with
    # 500: the drain fails, nothing is removed, the node takes pods again
    policy = client.PolicyV1Api(kube_client)
    kube_api.create_pod("web", cpus=0.1, node_selector={"kubernetes.io/hostname": busy}, runtime_s=3600,
                        labels={"app": "web"})
    kube_api.wait_until(lambda: len(kube_api.pods(node=busy, phase="Running", namespace="default")) == 2,
                        what="web running")
    for name in ("web-a", "web-b"):
        policy.create_namespaced_pod_disruption_budget("default", {
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}})
    failed = cli(tmp_path, env, "scale", "busy", "wn", "0", "--yes")
    assert failed.returncode == 1, failed.stderr
    assert "the eviction of default/web failed: 500" in failed.stderr, failed.stderr
    assert [n.name for n in workers()] == [busy]
    assert not kube_api.get("nodes", busy)["spec"].get("unschedulable")
    # with one budget left, the pods are evicted, then the worker goes
    policy.delete_namespaced_pod_disruption_budget("web-b", "default")
    drained = cli(tmp_path, env, "scale", "busy", "wn", "0", "--yes")
    assert drained.returncode == 0, drained.stderr
    assert f"removed {busy}" in drained.stdout and workers() == []
    assert kube_api.pods(node=busy, namespace="default", phase="Running") == []
    assert cli(tmp_path, env, "destroy", "busy", "--yes").returncode == 0
