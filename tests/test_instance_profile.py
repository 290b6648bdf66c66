"""The daemon's AWS credentials from an IAM instance profile instead of static keys.

A template names the profile (``elastic_instance_profile``); ``create`` launches the front-end alone
with it, in its one ``RunInstances``; every hop limit stays 1, because the daemon's pod shares the
node's network (the metadata service answers one hop away, and pod traffic to it is dropped); its
Secret holds no AWS keys; the daemon signs with the role's temporary credentials, renewed by botocore
before they expire; the operator's credential needs ``iam:PassRole`` on that role and nothing more.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioner.clouds.ec2 import Ec2Driver
from provisioner.config import GeneralSettings, Settings
from provisioner.credentials import credentials_from_directory
from provisioner.engine import create, destroy, scale
from provisioner.errors import TemplateError
from provisioner.manifests import render_manifests
from provisioner.plan import make_plan
from provisioner.record import read_record
from provisioner.resources import templates_dir
from provisioner.template import load_cluster_spec
from provisioner.update import in_place, plan_changes
from tests.harness.ec2 import ACCOUNT_ID, create_instance_profile
from tests.harness.imds import InstanceMetadata, serve
from tests.iam_eval import allowed, requests_of
from tests.test_configure_helpers import board_vars, fake_airgap_dir, run_tool
from tests.test_engine_clouds import REGION, aws_request, factory, live, settings, store  # noqa: F401 (fixtures)
from tests.test_iam_policy import policy_for, tags_snapshot

ROOT = Path(__file__).resolve().parent.parent
PASS_ROLE_FILE = ROOT / "iam" / "oscar-deploy-pass-role-policy.json"
UPSTREAM = ROOT / "tests" / "upstream"
PROFILE, ROLE = "oscar-daemon", "oscar-daemon-role"


def _instances(ec2_emulator: Any, deployment: str) -> dict[str, dict[str, Any]]:
    """The deployment's running machines by their Name tag."""
    return {i["tags"]["Name"]: i for i in ec2_emulator.inventory(REGION)["instances"]
            if i["tags"].get("oscar-deploy:deployment") == deployment and i["state"] != "terminated"}


@pytest.fixture
def with_profile(ec2_emulator: Any, store: Any, settings: Settings, factory: Any,  # noqa: F811
                 tmp_path: Path) -> dict[str, Any]:
    """A deployment of oscar-aws.yaml created with the daemon's instance profile, scaled to two
    workers; its manifests as ``oscar-deploy manifests`` renders them; every EC2 call it made."""
    create_instance_profile(PROFILE, ROLE)
    dep = create(store, aws_request(settings, "profiled", wn_num=1, elastic_instance_profile=PROFILE),
                 factory, settings)
    scale(store, dep.id, "wn", 2, factory, settings)
    machines = _instances(ec2_emulator, dep.id)
    tags = tags_snapshot(REGION)
    calls = [c for c in ec2_emulator.calls if c.fault is None]
    dep = store.get(dep.id)
    airgap = fake_airgap_dir(tmp_path / "airgap")
    files, _secrets = render_manifests(store, dep, settings, extra_vars=board_vars(airgap))
    docs = [d for text in files.values() for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    destroy(store, dep.id, factory)
    return {"dep": dep, "machines": machines, "calls": calls, "tags": tags,
            "docs": {f"{d['kind']}/{d['metadata']['name']}": d for d in docs}}


def test_only_the_front_end_runs_with_the_profile_and_every_hop_limit_stays_1(
        with_profile: dict[str, Any]) -> None:
    machines = with_profile["machines"]
    fronts = [m for m in machines.values() if m["tags"]["oscar-deploy:group"] == "front"]
    workers = [m for m in machines.values() if m["tags"]["oscar-deploy:group"] == "wn"]
    assert [m["instance_profile"] for m in fronts] == [PROFILE]
    assert len(workers) == 2 and all(m["instance_profile"] is None for m in workers)  # scale's too
    assert all((m["http_tokens"], m["http_hop_limit"]) == ("required", 1) for m in machines.values())
    launches = [c for c in with_profile["calls"] if c.action == "RunInstances"]
    assert [c.params.get("IamInstanceProfile.Name") for c in launches] == [PROFILE, None, None]
    record, _ = read_record(with_profile["dep"].plan)
    assert record.front_end is not None and record.front_end.launch is not None
    assert record.front_end.launch.instance_profile == PROFILE
    assert all(g.launch is None or g.launch.instance_profile is None
               for g in record.groups if g.role != "front-end")


def test_the_daemon_pod_shares_the_nodes_network_and_its_secret_holds_no_aws_keys(
        with_profile: dict[str, Any]) -> None:
    docs = with_profile["docs"]
    pod = docs["Deployment/oscar-deploy-elastic"]["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod["nodeSelector"] == {"oscar-deploy/role": "front-end"}  # the node with the profile
    # Pod Security's baseline check refuses hostNetwork (its own source, tests/upstream), and baseline
    # is what the cluster enforces by default: the daemon's own namespace, holding nothing else, is
    # labelled privileged
    check = (UPSTREAM / "kube" / "check_hostNamespaces.go").read_text()
    assert "Level: api.LevelBaseline" in check and "if podSpec.HostNetwork {" in check
    defaults = yaml.safe_load((ROOT / "playbooks/roles/k3s_server/defaults/main.yml").read_text())
    assert defaults["k3s_server_pod_security"] == "baseline"
    namespace = docs["Namespace/oscar-deploy"]["metadata"]
    assert namespace["labels"] == {"pod-security.kubernetes.io/enforce": "privileged"}
    secret = docs["Secret/oscar-deploy-elastic"]["stringData"]
    assert not [key for key in secret if key.startswith("AWS_")]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["AWS_METADATA_SERVICE_NUM_ATTEMPTS"] == "3"  # botocore's own variable names
    groups = yaml.safe_load(docs["ConfigMap/oscar-deploy-elastic-groups"]["data"]["groups.yaml"])
    (wn,) = [g for g in groups if g["name"] == "wn"]
    assert wn["power"]["launch"]["instance_profile"] is None  # workers it creates get no role


def test_without_a_profile_nothing_shares_the_nodes_network(tmp_path: Path) -> None:
    from tests.test_playbooks import BASE, _render

    rendered = _render(tmp_path, {**BASE})["elastic.yaml"]
    docs = {f"{d['kind']}/{d['metadata']['name']}": d for d in rendered}
    pod = docs["Deployment/oscar-deploy-elastic"]["spec"]["template"]["spec"]
    assert "hostNetwork" not in pod and "labels" not in docs["Namespace/oscar-deploy"]["metadata"]


def test_the_operator_needs_pass_role_on_that_role_and_nothing_else(with_profile: dict[str, Any]) -> None:
    operator = policy_for("*")
    def pass_role(role: str) -> list[Any]:
        text = PASS_ROLE_FILE.read_text().replace("ACCOUNT", ACCOUNT_ID).replace("ROLE", role)
        return list(json.loads(text)["Statement"])

    both = {**operator, "Statement": [*operator["Statement"], *pass_role(ROLE)]}
    another = {**operator, "Statement": [*operator["Statement"], *pass_role("other")]}
    roles = {PROFILE: ROLE}
    denied_alone, denied_with, passes = [], [], []
    for call in with_profile["calls"]:
        for request in requests_of(call.action, call.params, call.region, with_profile["tags"], roles):
            if request.action == "iam:PassRole":
                passes.append(request)
                assert not allowed(another, request)
            if not allowed(operator, request):
                denied_alone.append(request.action)
            if not allowed(both, request):
                denied_with.append(request.action)
    assert len(passes) == 1 and passes[0].resource == f"arn:aws:iam::{ACCOUNT_ID}:role/{ROLE}"
    assert denied_alone == ["iam:PassRole"] and denied_with == []
    # the role may be passed to EC2 only
    to_lambda = dataclasses.replace(passes[0], context={"iam:PassedToService": "lambda.amazonaws.com"})
    assert not allowed(both, to_lambda)


def test_the_daemon_signs_with_the_roles_credentials_and_renews_them_before_they_expire(
        ec2_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:  # noqa: F811
    """The pod's credential directory without keys (the Secret as the role renders it with a
    profile): botocore's chain finds the instance's role through IMDSv2; near the expiry it asks
    again, and the next EC2 request is signed with the new set."""
    import time_machine

    for name in [n for n in list(__import__("os").environ) if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.aws of this machine's
    secret = tmp_path / "credentials"
    secret.mkdir()
    (secret / "AWS_ENDPOINT_URL_EC2").write_text(ec2_emulator.endpoint)  # the test's one substitution
    start = dt.datetime.now(dt.UTC)
    with serve(InstanceMetadata(role=ROLE)) as imds:
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url)
        driver = Ec2Driver(credentials_from_directory("aws", secret), REGION, settings.provisioner)
        driver.list_nodes("d1")
        first = imds.issued[0]
        assert ("PUT", "/latest/api/token") in imds.requests  # IMDSv2: a session token first
        imds.rotate()  # EC2 makes the next set available ahead of the old one's expiry
        driver.list_nodes("d1")  # hours before the expiry: still the first set
        with time_machine.travel(first.expiration - dt.timedelta(minutes=9), tick=True):
            driver.list_nodes("d1")  # inside botocore's mandatory refresh window
        renewed = imds.issued[1]
    signed = [(c.access_key, c.session_token) for c in ec2_emulator.calls if c.action == "DescribeInstances"]
    assert signed[0] == signed[1] == (first.access_key_id, first.token)
    assert signed[-1] == (renewed.access_key_id, renewed.token), "not renewed before the expiry"
    assert first.expiration - start > dt.timedelta(hours=5)


def test_a_profile_needs_an_aws_front_end_and_an_iam_name(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"node elastic: property instance_profile 'x;touch /tmp/p' must"):
        load_cluster_spec([templates_dir() / "oscar-aws.yaml"],
                          {"admin_cidr": "10.0.0.0/8", "elastic_instance_profile": "x;touch /tmp/p"})
    raw = yaml.safe_load((templates_dir() / "oscar-openstack.yaml").read_text())
    raw["topology_template"]["node_templates"]["elastic"]["properties"]["instance_profile"] = PROFILE
    types = templates_dir().parent / "types" / "oscar-deploy-types.yaml"
    raw["imports"] = [{"oscar_deploy_types": str(types)}]
    path = tmp_path / "openstack-profile.yaml"
    path.write_text(yaml.safe_dump(raw))
    state = tmp_path / "state.db"
    result = run_tool("oscar-deploy", "--state", str(state), "validate", str(path), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "node elastic: property instance_profile: only an AWS front-end" in result.stderr
    assert "openstack-profile.yaml" in result.stderr and "Traceback" not in result.stderr
    assert not state.exists()


def test_an_update_cannot_give_a_running_front_end_another_profile(tmp_path: Path) -> None:
    config = Settings(general=GeneralSettings(cache_dir=str(tmp_path)))

    def plan(**inputs: str) -> Any:
        return make_plan(load_cluster_spec([templates_dir() / "oscar-aws.yaml"],
                                           {"admin_cidr": "10.0.0.0/8", **inputs}), config)

    base = plan()
    changes = plan_changes(base, plan(elastic_instance_profile=PROFILE))
    assert changes == ["groups.front.instance_profile"]
    assert not in_place(base, changes[0])


def test_a_profile_the_account_lacks_stops_create_naming_it_and_destroy_leaves_nothing(
        ec2_emulator: Any, store: Any, settings: Settings, factory: Any) -> None:  # noqa: F811
    from provisioner.errors import OscarDeployError

    with pytest.raises(OscarDeployError, match=r"RunInstances.*Value \(nobodys\) for parameter "
                       r"iamInstanceProfile\.name is invalid"):
        create(store, aws_request(settings, "unknown", wn_num=1, elastic_instance_profile="nobodys"),
               factory, settings)
    (dep,) = store.list_deployments()
    assert not _instances(ec2_emulator, dep.id)  # no machine started without the profile
    destroy(store, dep.id, factory)
    assert all(not items for items in live(ec2_emulator.inventory(REGION), dep.id).values())
