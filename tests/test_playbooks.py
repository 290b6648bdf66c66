"""The playbooks are well-formed (``ansible-playbook --syntax-check``), lint clean (``ansible-lint``,
offline: no Galaxy) and their templates render, for the variants the board tests do not cover (a DNS
name: Let's Encrypt and host-based ingresses; the hybrid template: WireGuard), into manifests
``kubernetes-validate`` accepts for the pinned k3s's Kubernetes API."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.test_configure_helpers import REPO, run_tool

PLAYBOOKS = REPO / "playbooks"
VERSIONS = yaml.safe_load((PLAYBOOKS / "group_vars/all/versions.yml").read_text())
K8S = ".".join(VERSIONS["k3s_version"].lstrip("v").split(".")[:2])


def _inventory(tmp: Path) -> Path:
    path = tmp / "hosts.ini"
    path.write_text("[k3s_server]\nfront ansible_host=192.0.2.10\n[k3s_agent]\npi1 ansible_host=192.0.2.11\n")
    return path


@pytest.mark.parametrize("playbook", sorted(p.name for p in PLAYBOOKS.glob("*.yml")))
def test_syntax_check(playbook: str, tmp_path: Path) -> None:
    result = run_tool("ansible-playbook", "--syntax-check", "-i", str(_inventory(tmp_path)),
                      str(PLAYBOOKS / playbook), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr


def test_ansible_lint_is_clean_at_the_production_profile() -> None:
    result = run_tool("ansible-lint", "--offline", "--nocolor", "--format=pep8", "site.yml", "manifests.yml",
                      "roles", cwd=PLAYBOOKS, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "criteria was 'production'" in result.stderr, result.stderr


def test_a_broken_role_fails_the_lint(tmp_path: Path) -> None:
    """The lint test can fail: the same check on a copy with a non-FQCN, unnamed shell task."""
    import shutil

    copy = tmp_path / "playbooks"
    shutil.copytree(PLAYBOOKS, copy)
    with open(copy / "roles/common/tasks/main.yml", "a") as tasks:
        tasks.write("\n- shell: echo hi\n")
    result = run_tool("ansible-lint", "--offline", "--nocolor", "--format=pep8", "site.yml", "roles",
                      cwd=copy, timeout=600)
    assert result.returncode != 0 and "fqcn" in result.stdout + result.stderr


# --- templates rendered for the variants --------------------------------------------------------------

TEMPLATES = {
    "server-config.yaml": "roles/k3s_server/templates/server-config.yaml.j2",
    "scheduler-config.yaml": "roles/k3s_server/templates/scheduler-config.yaml.j2",
    "agent-config.yaml": "roles/k3s_agent/templates/agent-config.yaml.j2",
    "issuer.yaml": "roles/cert_manager/templates/oscar-cert-issuer.yaml.j2",
    "oscar-ingress.yaml": "roles/oscar/templates/oscar-oscar-ingress.yaml.j2",
    "minio.yaml": "roles/minio/templates/oscar-minio.yaml.j2",
    "oscar.yaml": "roles/oscar/templates/oscar-oscar.yaml.j2",
    "storageclass.yaml": "roles/nfs/templates/oscar-nfs-storageclass.yaml.j2",
    "elastic.yaml": "roles/elastic/templates/oscar-elastic.yaml.j2",
}


def render_templates(tmp: Path, templates: dict[str, str], variables: dict[str, Any]) -> dict[str, str]:
    """Role templates (output name → path under playbooks/) as Ansible's template module renders them
    on localhost, with every role's defaults and group_vars, ``variables`` as extra vars."""
    defaults = [str(p) for p in sorted(PLAYBOOKS.glob("roles/*/defaults/main.yml"))]
    defaults += [str(PLAYBOOKS / "group_vars/all/main.yml"), str(PLAYBOOKS / "group_vars/all/versions.yml")]
    out = tmp / "out"
    tasks = []
    for name, src in templates.items():
        template = {"src": str(PLAYBOOKS / src), "dest": str(out / name), "mode": "0600"}
        tasks.append({"name": f"Render {name}", "ansible.builtin.template": template})
    play = [{"name": "Render", "hosts": "localhost", "connection": "local", "gather_facts": False,
             "vars_files": defaults, "vars": {**variables, "ansible_python_interpreter": sys.executable},
             "pre_tasks": [{"name": "Out dir", "ansible.builtin.file": {
                 "path": str(out), "state": "directory", "mode": "0700"}}],
             "tasks": tasks}]
    (tmp / "render.yml").write_text(yaml.safe_dump(play))
    (tmp / "vars.json").write_text(json.dumps(variables))
    result = run_tool("ansible-playbook", "-i", "localhost,", str(tmp / "render.yml"),
                      "-e", f"@{tmp / 'vars.json'}", cwd=tmp)
    assert result.returncode == 0, result.stdout + result.stderr
    return {name: (out / name).read_text() for name in templates}


def _render(tmp: Path, variables: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Render the roles' templates on localhost with every role's defaults and ``variables``."""
    texts = render_templates(tmp, TEMPLATES, variables)
    return {name: [d for d in yaml.safe_load_all(text) if d] for name, text in texts.items()}


BASE: dict[str, Any] = {
    "oscar_deployment_name": "demo", "oscar_deployment_id": "abcd1234", "oscar_front_address": "198.51.100.7",
    "k3s_server_url": "https://198.51.100.7:6443", "k3s_token": "t" * 64, "k3s_server_arch": "amd64",
    "oscar_node_group": "front", "oscar_node_role": "front-end", "oscar_node_arch": "amd64",
    "oscar_node_labels": {}, "oscar_node_taints": [], "ansible_host": "198.51.100.7",
    "oscar_components": ["k3s", "minio", "knative", "oscar", "elastic"], "oscar_username": "oscar",
    "oscar_password": "p" * 24, "minio_access_key": "minio", "minio_secret_key": "m" * 24,
    "minio_api_port": 30300, "minio_console_port": 30303, "oscar_hosts": {"front": "198.51.100.7"},
    "elastic_groups": [{"name": "wn", "cpus": 2, "memory_mib": 4096, "min": 0, "max": 4,
                        "power": {"type": "cloud", "deployment": "abcd1234"}}],
}


def _validate_core(docs: list[dict[str, Any]]) -> int:
    checked = 0
    for doc in docs:
        if not doc["apiVersion"].startswith(("helm.cattle.io/", "cert-manager.io/")):
            kubernetes_validate.validate(doc, K8S, strict=True)
            checked += 1
    return checked


def test_with_a_dns_name_lets_encrypt_issues_and_ingresses_use_the_name(tmp_path: Path) -> None:
    docs = _render(tmp_path, {**BASE, "oscar_dns_name": "oscar.example.org",
                              "cert_manager_acme_email": "ops@example.org",
                              "oscar_oidc_issuer": "https://aai.egi.eu/auth/realms/egi",
                              "oscar_oidc_groups": ["vo.a.eu", "vo.b.eu"]})
    issuer = docs["issuer.yaml"]
    assert [d["metadata"]["name"] for d in issuer] == ["letsencrypt"]
    assert issuer[0]["spec"]["acme"]["email"] == "ops@example.org"
    assert issuer[0]["spec"]["acme"]["solvers"][0]["http01"]["ingress"]["ingressClassName"] == "traefik"
    ingress = docs["oscar-ingress.yaml"]
    assert [d["kind"] for d in ingress] == ["Ingress"]
    assert ingress[0]["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    assert ingress[0]["spec"]["rules"][0]["host"] == "oscar.example.org"
    assert ingress[0]["spec"]["tls"][0]["hosts"] == ["oscar.example.org"]
    minio = yaml.safe_load(docs["minio.yaml"][0]["spec"]["valuesContent"])
    assert minio["ingress"]["enabled"] is True and minio["ingress"]["hosts"] == ["minio.oscar.example.org"]
    assert minio["tls"]["enabled"] is False  # Traefik terminates TLS for the name (Let's Encrypt)
    oscar = yaml.safe_load(docs["oscar.yaml"][-1]["spec"]["valuesContent"])
    assert oscar["minIO"]["endpoint"] == "https://minio.oscar.example.org"
    # The chart hands OIDC_GROUPS to OSCAR as one comma-separated string.
    assert oscar["oidc"] == {"enable": True, "issuer": "https://aai.egi.eu/auth/realms/egi", "subject": "",
                             "groups": "vo.a.eu,vo.b.eu"}
    assert _validate_core([d for name in TEMPLATES if name.endswith("yaml") and "config" not in name
                           for d in docs[name]]) >= 10
    server = docs["server-config.yaml"][0]
    assert "oscar.example.org" in server["tls-san"] and "198.51.100.7" in server["tls-san"]


def test_without_a_dns_name_a_self_signed_certificate_for_the_address(tmp_path: Path) -> None:
    docs = _render(tmp_path, {**BASE, "oscar_dns_name": ""})
    assert [d["metadata"]["name"] for d in docs["issuer.yaml"]] == \
        ["oscar-selfsigned-root", "oscar-ca", "oscar-selfsigned"]
    certificate, ingress = docs["oscar-ingress.yaml"]
    assert certificate["spec"]["ipAddresses"] == ["198.51.100.7"]
    assert "host" not in ingress["spec"]["rules"][0] and "annotations" not in ingress["metadata"]
    _validate_core([ingress])


def test_hybrid_runs_flannel_over_wireguard_with_external_addresses(tmp_path: Path) -> None:
    docs = _render(tmp_path, {**BASE, "oscar_dns_name": "", "k3s_wireguard": True,
                              "oscar_node_taints": ["dedicated=front:NoSchedule"]})
    server = docs["server-config.yaml"][0]
    assert server["flannel-backend"] == "wireguard-native" and server["node-external-ip"] == "198.51.100.7"
    assert server["flannel-external-ip"] is True  # k3s's distributed hybrid/multicloud settings, all three
    assert server["node-taint"] == ["dedicated=front:NoSchedule"]
    agent = docs["agent-config.yaml"][0]
    assert agent["node-external-ip"] == "198.51.100.7" and agent["server"] == "https://198.51.100.7:6443"


def test_the_agent_config_matches_the_cloud_init_join_for_the_same_node(tmp_path: Path) -> None:
    """A board the k3s_agent role configures and a cloud worker cloud-init joins get the same config."""
    from provisioner.cloudinit import WorkerJoin, agent_config

    docs = _render(tmp_path, {**BASE, "oscar_dns_name": "", "oscar_node_group": "wn",
                              "oscar_node_role": "worker", "oscar_node_labels": {"tier": "burst"},
                              "oscar_node_taints": ["gpu=true:NoSchedule"]})
    join = WorkerJoin(BASE["k3s_server_url"], BASE["k3s_token"], "wn", arch="amd64", role="worker",
                      labels={"tier": "burst"}, taints=("gpu=true:NoSchedule",))
    assert docs["agent-config.yaml"][0] == agent_config(join)


def test_the_scheduler_packs_so_idle_nodes_appear(tmp_path: Path) -> None:
    """k3s runs kube-scheduler with MostAllocated scoring (what the simulator models), reading its
    API connection from the config file; an operator can switch it off."""
    docs = _render(tmp_path, {**BASE, "oscar_dns_name": ""})
    server = docs["server-config.yaml"][0]
    assert server["kube-scheduler-arg"] == ["config=/etc/rancher/k3s/scheduler-config.yaml"]
    scheduler = docs["scheduler-config.yaml"][0]
    assert scheduler["kind"] == "KubeSchedulerConfiguration"
    kubeconfig = scheduler["clientConnection"]["kubeconfig"]
    assert kubeconfig == "/var/lib/rancher/k3s/server/cred/scheduler.kubeconfig"
    (fit,) = scheduler["profiles"][0]["pluginConfig"]
    assert fit["name"] == "NodeResourcesFit" and fit["args"]["scoringStrategy"]["type"] == "MostAllocated"
    (tmp_path / "off").mkdir()
    spread = _render(tmp_path / "off", {**BASE, "oscar_dns_name": "", "k3s_server_scheduler_packing": False})
    assert "kube-scheduler-arg" not in spread["server-config.yaml"][0]
