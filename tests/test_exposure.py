"""What listens where, and who may reach it: the daemon's metrics, MinIO, SSH and the Kubernetes API."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from elastic.metrics import Metrics
from provisioner.config import GeneralSettings, Settings, load_settings
from provisioner.engine.views import minio_endpoints
from provisioner.plan import make_plan
from provisioner.record import DeploymentRecord
from provisioner.resources import tosca_dir
from provisioner.template import load_cluster_spec
from tests.test_playbooks import BASE, _render

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """The roles rendered without a DNS name and with one."""
    return {dns: _render(tmp_path_factory.mktemp("render"), {**BASE, "oscar_dns_name": dns})
            for dns in ("", "oscar.example.org")}


def _rules(tmp_path: Path, **inputs: str) -> dict[int, str]:
    spec = load_cluster_spec([tosca_dir() / "templates" / "oscar-aws.yaml"], inputs, import_paths=[],
                             cache_dir=tmp_path)
    the_plan = make_plan(spec, Settings(general=GeneralSettings(cache_dir=str(tmp_path))))
    return {r.port_from: r.source for r in the_plan.security_rules if r.port_from is not None}


def test_minio_node_ports_admit_the_admin_cidr_only_and_none_exist_behind_a_dns_name(tmp_path: Path) -> None:
    rules = _rules(tmp_path, admin_cidr="192.0.2.0/24")
    assert rules[30300] == rules[30303] == rules[22] == rules[6443] == "192.0.2.0/24"
    assert rules[443] == rules[80] == "0.0.0.0/0"  # the TLS ingress (and ACME's HTTP-01 challenge)
    named = _rules(tmp_path, admin_cidr="192.0.2.0/24", dns_name="oscar.example.org")
    assert 30300 not in named and 30303 not in named and named[443] == "0.0.0.0/0"


def test_minio_is_served_over_tls_only(rendered: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    """Without a DNS name MinIO serves TLS on its NodePorts; with one, its services are ClusterIP
    behind Traefik's TLS ingress (API and console): no plain-HTTP port reaches outside the cluster."""
    bare = yaml.safe_load(rendered[""]["minio.yaml"][0]["spec"]["valuesContent"])
    assert bare["tls"]["enabled"] is True
    assert bare["service"]["type"] == bare["consoleService"]["type"] == "NodePort"
    assert bare["service"]["nodePort"] == 30300 and bare["consoleService"]["nodePort"] == 30303
    assert bare["ingress"]["enabled"] is False and bare["consoleIngress"]["enabled"] is False
    named = yaml.safe_load(rendered["oscar.example.org"]["minio.yaml"][0]["spec"]["valuesContent"])
    assert named["tls"]["enabled"] is False  # Traefik terminates TLS
    assert named["service"]["type"] == named["consoleService"]["type"] == "ClusterIP"
    for key, host in (("ingress", "minio.oscar.example.org"),
                      ("consoleIngress", "console.minio.oscar.example.org")):
        assert named[key]["enabled"] is True and named[key]["hosts"] == [host]
        assert named[key]["tls"][0]["hosts"] == [host]
    oscar = yaml.safe_load(rendered["oscar.example.org"]["oscar.yaml"][-1]["spec"]["valuesContent"])
    assert oscar["minIO"]["endpoint"] == "https://minio.oscar.example.org"  # what OSCAR hands to clients


def test_the_outputs_name_the_minio_endpoints_that_exist() -> None:
    named = minio_endpoints(DeploymentRecord(groups=(), dns_name="oscar.example.org"), [])
    assert named == {"deployment.minio_endpoint": "https://minio.oscar.example.org/",
                     "deployment.minio_console_endpoint": "https://console.minio.oscar.example.org/"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(address: str, port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}:{port}/metrics", timeout=3) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_metrics_listen_on_the_configured_address_only() -> None:
    """By hand, the default is this machine's loopback; the pod's address when the Deployment says so.
    (127.0.0.2 and 127.0.0.3 are loopback too: a server on every address would answer there.)"""
    default = load_settings(env={}, cwd=REPO / "tests", home=REPO / "tests").elastic.metrics_address
    assert default == "127.0.0.1"
    for address, elsewhere in ((default, "127.0.0.2"), ("127.0.0.3", "127.0.0.1")):
        port = _free_port()
        server = Metrics().serve(port, address) if address != default else Metrics().serve(port)
        try:
            assert _answers(address, port)
            assert not _answers(elsewhere, port)
        finally:
            server.shutdown()
            server.server_close()


def test_the_daemon_pod_binds_its_metrics_to_its_pod_ip_and_no_host_port(
        rendered: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    docs = {f"{d['kind']}/{d['metadata']['name']}": d for d in rendered[""]["elastic.yaml"]}
    pod = docs["Deployment/oscar-deploy-elastic"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["OSCAR_DEPLOY_ELASTIC_METRICS_ADDRESS"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "status.podIP"}}
    settings = load_settings(env={"OSCAR_DEPLOY_ELASTIC_METRICS_ADDRESS": "10.42.0.7"}, cwd=REPO / "tests",
                             home=REPO / "tests")
    assert settings.elastic.metrics_address == "10.42.0.7"
    assert not pod.get("hostNetwork") and all("hostPort" not in p for p in container["ports"])
    service = docs["Service/oscar-deploy-elastic-metrics"]["spec"]
    assert service.get("type", "ClusterIP") == "ClusterIP"
