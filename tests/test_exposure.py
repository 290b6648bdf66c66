"""What listens where, and who may reach it: the daemon's metrics, MinIO, SSH and the Kubernetes API."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

from elastic.metrics import Metrics
from provisioner.config import load_settings
from tests.test_playbooks import BASE, _render

REPO = Path(__file__).resolve().parents[1]


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


def test_the_daemon_pod_binds_its_metrics_to_its_pod_ip_and_no_host_port(tmp_path: Path) -> None:
    docs = {f"{d['kind']}/{d['metadata']['name']}": d
            for d in _render(tmp_path, {**BASE, "oscar_dns_name": ""})["elastic.yaml"]}
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
