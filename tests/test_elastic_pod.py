"""The daemon's pod as the elastic role renders it, and what the daemon needs to start in it: settings
it accepts from the Deployment's env, Secrets as files, the boards' SSH key and host keys, the API
through the service account (or ``KUBECONFIG``), and a one-line reason when a mounted file is missing.
The image itself, run as this Deployment says, is ``tests/test_image.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from elastic.groups import parse_groups
from elastic.power import SshShutdown
from elastic.service import api_client, managers_for, missing_files
from provisioner.config import load_settings
from provisioner.errors import BadInput
from tests.test_playbooks import BASE, K8S, _render

REPO = Path(__file__).resolve().parents[1]
BOARDS = {"name": "pis", "cpus": 4, "memory_mib": 8192, "max": 2,
          "nodes": [{"name": "pi1", "address": "192.0.2.11"}, {"name": "pi2", "address": "192.0.2.12"}],
          "power": {"type": "command", "power_on": "poe on {node}", "shutdown": {"user": "pi"}}}
OWN_KEY = {**BOARDS, "name": "own", "nodes": [{"name": "pi3", "address": "192.0.2.13"}], "max": 1,
           "power": {**BOARDS["power"], "shutdown": {"user": "pi", "key": "/keys/own"}}}
VARIABLES = {**BASE, "oscar_dns_name": "", "elastic_groups": [*BASE["elastic_groups"], BOARDS, OWN_KEY],
             "elastic_cloud_env": {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s" * 40},
             "elastic_ssh_private_key": "-----BEGIN OPENSSH PRIVATE KEY-----\n...\n",
             "elastic_known_hosts": "192.0.2.11 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample\n"}


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    rendered = _render(tmp_path_factory.mktemp("render"), VARIABLES)["elastic.yaml"]
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in rendered}


def _pod(docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return docs["Deployment/oscar-deploy-elastic"]["spec"]["template"]["spec"]


def test_every_setting_the_deployment_sets_is_one_the_daemon_accepts(docs: dict[str, dict[str, Any]]) -> None:
    (container,) = _pod(docs)["containers"]
    env = {e["name"]: e.get("value", "10.42.0.7") for e in container["env"]}  # valueFrom: a pod IP
    settings = load_settings(env=env, cwd=REPO / "tests", home=REPO / "tests")  # no "names no setting"
    assert settings.elastic.namespace == "oscar-deploy" == docs["Deployment/oscar-deploy-elastic"][
        "metadata"]["namespace"]
    labels = docs["Deployment/oscar-deploy-elastic"]["metadata"]["labels"]
    assert labels["oscar-deploy/deployment"] == BASE["oscar_deployment_id"]


def test_secrets_reach_the_pod_as_files_and_its_root_is_read_only(docs: dict[str, dict[str, Any]]) -> None:
    pod = _pod(docs)
    (container,) = pod["containers"]
    assert "envFrom" not in container
    assert all("secretKeyRef" not in e.get("valueFrom", {}) for e in container["env"])  # the pod IP only
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    secret_volumes = {v["secret"]["secretName"]: v for v in volumes.values() if "secret" in v}
    assert set(secret_volumes) == {name.split("/")[1] for name in docs if name.startswith("Secret/")}
    for volume in secret_volumes.values():
        assert volume["secret"]["defaultMode"] == 0o440 and mounts[volume["name"]]["readOnly"] is True
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"]  # ssh reads the key
    cloud = docs["Secret/oscar-deploy-elastic"]["stringData"]
    assert cloud["AWS_SECRET_ACCESS_KEY"] == "s" * 40 and cloud["K3S_TOKEN"] == BASE["k3s_token"]
    assert docs["Secret/oscar-deploy-elastic-ssh"]["stringData"]["id_ed25519"].startswith("-----BEGIN")
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["imagePullPolicy"] == "IfNotPresent"  # an image k3s imported from an archive
    assert "emptyDir" in volumes[next(m["name"] for m in mounts.values() if m["mountPath"] == "/tmp")]
    for doc in docs.values():
        kubernetes_validate.validate(doc, K8S, strict=True)


def test_boards_halted_over_ssh_use_the_mounted_key_and_the_configmaps_host_keys(
        docs: dict[str, dict[str, Any]]) -> None:
    configmap = docs["ConfigMap/oscar-deploy-elastic-groups"]["data"]
    assert configmap["known_hosts"] == VARIABLES["elastic_known_hosts"]
    groups = {g.name: g for g in parse_groups(yaml.safe_load(configmap["groups.yaml"]), "groups.yaml")}
    (container,) = _pod(docs)["containers"]
    mounted = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert container["args"][:3] == ["daemon", "--groups", f"{mounted['config']}/groups.yaml"]
    assert SshShutdown.from_power(groups["pis"].power) == SshShutdown(
        user="pi", key=f"{mounted['ssh']}/id_ed25519", known_hosts=f"{mounted['config']}/known_hosts")
    assert SshShutdown.from_power(groups["own"].power).key == "/keys/own"  # a group's own key wins
    assert "shutdown" not in groups["wn"].power  # a cloud group has no boards to halt
    shutdown = SshShutdown.from_power(groups["pis"].power)
    assert shutdown is not None
    argv = shutdown.argv(groups["pis"].nodes[0])
    assert "StrictHostKeyChecking=yes" in argv
    assert f"UserKnownHostsFile={mounted['config']}/known_hosts" in argv


def test_a_missing_or_empty_mounted_file_is_named_before_the_daemon_starts(tmp_path: Path) -> None:
    key, known = tmp_path / "id_ed25519", tmp_path / "known_hosts"
    known.write_text("192.0.2.11 ssh-ed25519 AAAA\n")
    key.write_text("")
    group = {**BOARDS, "power": {**BOARDS["power"], "power_off": "poe off {node}",
                                 "shutdown": {"key": str(key), "known_hosts": str(known)}}}
    groups = parse_groups([group], "groups.yaml")
    assert missing_files(groups) == [f"group 'pis': power.shutdown.key {key} is empty"]
    with pytest.raises(BadInput, match=r"^groups.yaml: group 'pis': power.shutdown.key .* is empty$"):
        managers_for(groups, where="groups.yaml")
    key.write_text("a key")
    known.unlink()
    assert missing_files(groups) == [
        f"group 'pis': power.shutdown.known_hosts {known}: No such file or directory"]
    known.write_text("192.0.2.11 ssh-ed25519 AAAA\n")
    assert missing_files(groups) == [] and set(managers_for(groups)) == {"pis"}


def _service_account(tmp_path: Path) -> Path:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("the-token")
    (account / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    return account


def test_in_a_pod_the_client_uses_the_service_account_and_kubeconfig_wins_when_set(
        tmp_path: Path, kube_api: Any) -> None:
    account = _service_account(tmp_path)
    pod_env = {"KUBERNETES_SERVICE_HOST": "10.43.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    api = api_client(None, str(account), environ=pod_env)
    assert api.configuration.host == "https://10.43.0.1:443"
    assert api.configuration.ssl_ca_cert == str(account / "ca.crt")
    assert api.configuration.api_key["authorization"] == "bearer the-token"
    kubeconfig = kube_api.write_kubeconfig(tmp_path / "kubeconfig")
    api = api_client(None, str(account), environ={**pod_env, "KUBECONFIG": str(kubeconfig)})
    assert api.configuration.host == kube_api.url
    with pytest.raises(BadInput, match=r"KUBECONFIG=/nonexistent: kubeconfig file not found"):
        api_client(None, str(account), environ={**pod_env, "KUBECONFIG": "/nonexistent"})
    (account / "token").unlink()
    with pytest.raises(BadInput, match=rf"service_account_dir = {account}\): Service token file does not"):
        api_client(None, str(account), environ=pod_env)


def test_the_role_defaults_to_the_image_the_workflow_publishes(docs: dict[str, dict[str, Any]]) -> None:
    workflow = yaml.safe_load((REPO / ".github/workflows/image.yml").read_text())
    (container,) = _pod(docs)["containers"]
    assert container["image"] == f"{workflow['env']['IMAGE']}:latest"  # no oscar_deploy_version given
    defaults = yaml.safe_load((REPO / "playbooks/roles/elastic/defaults/main.yml").read_text())
    versioned = ":{{ oscar_deploy_version | default('latest') }}"
    assert defaults["elastic_image"] == workflow["env"]["IMAGE"] + versioned
    steps = {s.get("uses", "").split("@")[0]: s for s in workflow["jobs"]["image"]["steps"]}
    build = steps["docker/build-push-action"]["with"]
    assert build["file"] == "Containerfile" and build["platforms"] == "linux/amd64,linux/arm64"
    assert build["push"] is True and workflow[True]["push"]["tags"] == ["v*"]  # YAML 1.1: `on` is True
    assert steps["docker/metadata-action"]["with"]["tags"] == "type=semver,pattern={{version}}"
