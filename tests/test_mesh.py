"""The hybrid network and NFS's reachability: boards the WireGuard mesh cannot reach are refused at
`validate`, the WireGuard port opens to the boards' own addresses only, hybrid cloud workers keep a
public address and tell k3s it (read from the instance metadata at boot), and the NFS storage class
and exports use the cluster's own network, with root mapped to a dedicated owner."""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioner.cloudinit import K3S_CONFIG, METADATA_URL, WorkerJoin, render_user_data
from provisioner.config import GeneralSettings, Settings
from provisioner.engine.targets import group_targets, plan_record
from provisioner.errors import TemplateError
from provisioner.plan import make_plan
from provisioner.resources import templates_dir
from provisioner.template import load_cluster_spec
from tests.harness.imds import InstanceMetadata, serve
from tests.test_configure_helpers import run_tool
from tests.test_playbooks import render_templates

HYBRID = templates_dir() / "oscar-hybrid.yaml"


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings(general=GeneralSettings(cache_dir=str(tmp_path / "cache")))


def _hybrid(**inputs: str) -> Any:
    return load_cluster_spec([HYBRID], {"admin_cidr": "203.0.113.0/24", **inputs})


# --- d: which boards the mesh reaches ------------------------------------------------------------------


@pytest.mark.parametrize(("inputs", "why"), [
    ({"wn2_address": "192.168.1.20"}, r"192\.168\.1\.20 is private \(behind NAT\)"),
    ({"wn2_address": "100.72.0.9"}, r"100\.72\.0\.9 is private"),  # carrier-grade NAT
    ({"wn2_address": "pi2.example.org"}, r"host name; k3s's node-external-ip takes the IP"),
    ({"wn2_address": "192.0.2.11"}, r"shares its address 192\.0\.2\.11 with board pi1"),
])
def test_a_board_the_mesh_cannot_reach_is_refused_naming_it_and_why(inputs: dict[str, str], why: str) -> None:
    with pytest.raises(TemplateError, match=r"oscar-hybrid\.yaml.*node pi2: board pi2 cannot join .*" + why):
        _hybrid(**inputs)


def test_validate_exits_2_naming_the_board_and_leaves_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    result = run_tool("oscar-deploy", "--state", str(state), "validate", str(HYBRID),
                      "-i", "wn3_address=10.1.2.3", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "board pi3" in result.stderr and "10.1.2.3 is private (behind NAT)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not state.exists()


def test_a_board_reached_through_the_front_end_is_refused_in_a_hybrid_cluster(tmp_path: Path) -> None:
    raw = yaml.safe_load(HYBRID.read_text())
    raw["topology_template"]["node_templates"]["pi1"]["properties"]["proxy_jump"] = True
    types = templates_dir().parent / "types" / "oscar-deploy-types.yaml"
    raw["imports"] = [{"oscar_deploy_types": str(types)}]
    path = tmp_path / "jumped.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(TemplateError, match=r"board pi1 cannot join .*through the front-end \(proxy_jump\)"):
        load_cluster_spec([path], {})


def test_edge_only_clusters_keep_private_boards() -> None:
    spec = load_cluster_spec([templates_dir() / "oscar-edge.yaml"], {})
    assert all(ipaddress.ip_address(b.address).is_private for g in spec.groups for b in g.boards)


def test_wireguard_opens_to_each_board_only_and_nfs_to_no_one(settings: Settings) -> None:
    plan = make_plan(_hybrid(wn1_address="198.51.100.21", wn2_address="2001:db8::22"), settings)
    wireguard = {(r.protocol, r.port_from, r.port_to, r.source) for r in plan.security_rules
                 if r.port_from in (51820, 51821)}
    assert wireguard == {("udp", 51820, 51820, "198.51.100.21/32"), ("udp", 51821, 51821, "2001:db8::22/128"),
                         ("udp", 51820, 51820, "192.0.2.13/32")}
    # Nothing but the cluster's own all-traffic rule reaches 2049 (NFS): no CIDR opens it.
    for rule in plan.security_rules:
        covers_nfs = rule.protocol == "all" or (rule.port_from or 0) <= 2049 <= (rule.port_to or 0)
        assert not covers_nfs or rule.source == "cluster", rule


def test_hybrid_cloud_workers_keep_a_public_address_and_report_it(settings: Settings) -> None:
    plan = make_plan(_hybrid(), settings)
    targets = group_targets(plan)
    record = plan_record(plan, targets)
    worker = record.group("wn")
    assert worker.launch is not None and worker.launch.public_ip
    assert worker.launch.user_data is not None and worker.launch.user_data.external_ip
    aws = load_cluster_spec([templates_dir() / "oscar-aws.yaml"], {"admin_cidr": "10.0.0.0/8"})
    aws_only = make_plan(aws, settings)
    (aws_worker,) = [g for g in plan_record(aws_only, group_targets(aws_only)).groups if g.role == "worker"]
    # an AWS-only worker may get a public address to reach the internet (no NAT route, decided at
    # create), but never announces it to k3s: nothing outside the VPC talks to it
    assert aws_worker.launch is not None
    assert aws_worker.launch.user_data is not None and not aws_worker.launch.user_data.external_ip


@pytest.fixture
def metadata() -> Iterator[InstanceMetadata]:
    with serve() as state:
        yield state


def _external_ip_step(user_data: str, metadata_url: str, config: Path) -> str | None:
    """The part of the install command that runs before k3s's install script, pointed at ``config``
    and a local metadata service."""
    command = yaml.safe_load(user_data)["runcmd"][-1][2]
    before, found, _ = command.partition(" && curl -sfL --retry 5 https://raw.githubusercontent.com")
    if not found or "meta-data" not in before:
        return None
    return before.replace(METADATA_URL, metadata_url).replace(K3S_CONFIG, str(config))


def test_a_hybrid_worker_writes_its_public_address_into_k3s_config_before_k3s_starts(
        metadata: InstanceMetadata, tmp_path: Path) -> None:
    join = WorkerJoin("https://10.0.1.5:6443", "K10abc::node:secret", "wn", node_name="wn-1",
                      external_ip=True)
    user_data = render_user_data(join)
    files = yaml.safe_load(user_data)["write_files"]
    config_text = next(f["content"] for f in files if f["path"] == K3S_CONFIG)
    config = tmp_path / "config.yaml"
    config.write_text(config_text)
    step = _external_ip_step(user_data, metadata.url + "/latest", config)
    assert step is not None
    subprocess.run(["sh", "-c", step], check=True, timeout=60)
    written = yaml.safe_load(config.read_text())
    assert written["node-external-ip"] == "198.51.100.40" and written["server"] == "https://10.0.1.5:6443"
    # No public address: the step fails, so the chain never installs k3s as a node the boards cannot reach.
    config.write_text(config_text)
    metadata.public_ipv4 = ""
    failed = subprocess.run(["sh", "-c", step], timeout=60)
    assert failed.returncode != 0 and "node-external-ip" not in config.read_text()
    # A cluster without boards reads no metadata.
    assert _external_ip_step(render_user_data(join.__class__(join.server_url, join.token, "wn")),
                             metadata.url + "/latest", config) is None


# --- e: NFS over the cluster's own network, root mapped to a dedicated owner ----------------------------


def parse_exports(text: str) -> list[tuple[str, str, dict[str, str | None]]]:
    """(directory, client, options) per client, as exports(5) reads the file: comments from '#', a
    directory then clients each with its parenthesised options, continuation lines joined."""
    entries = []
    for line in text.replace("\\\n", " ").splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        directory, *clients = words
        for client in clients:
            host, _, rest = client.partition("(")
            assert rest.endswith(")"), f"malformed client {client!r}"
            options: dict[str, str | None] = {}
            for option in rest[:-1].split(","):
                key, _, value = option.partition("=")
                options[key] = value or None
            entries.append((directory, host, options))
    return entries


def check_exports(entries: list[tuple[str, str, dict[str, str | None]]], directory: str) -> None:
    """Every client a node's flannel address (10.42.N.0), root squashed to the dedicated owner."""
    assert entries and {d for d, _, _ in entries} == {directory}
    clients = [ipaddress.ip_network(c) for _, c, _ in entries]
    assert len(clients) == 256 and all(n.num_addresses == 1 and str(n.network_address).endswith(".0")
                                       and n.subnet_of(ipaddress.ip_network("10.42.0.0/16")) for n in clients)
    for _, _, options in entries:
        assert "no_root_squash" not in options and "all_squash" not in options and "insecure" not in options
        assert "root_squash" in options and options["anonuid"] == options["anongid"] == "2049"
        assert "rw" in options and "sync" in options


NFS_TEMPLATES = {"exports": "roles/nfs/templates/oscar.exports.j2",
                 "storageclass.yaml": "roles/nfs/templates/oscar-nfs-storageclass.yaml.j2",
                 "minio.yaml": "roles/minio/templates/oscar-minio.yaml.j2"}
VARS: dict[str, Any] = {
    "oscar_deployment_name": "demo", "oscar_deployment_id": "abcd1234", "oscar_front_address": "198.51.100.7",
    "ansible_host": "198.51.100.7", "oscar_dns_name": "", "minio_access_key": "minio",
    "minio_secret_key": "m" * 24,
    "minio_api_port": 30300, "minio_console_port": 30303, "k3s_wireguard": True,
    "oscar_hosts": {"front": "198.51.100.7", "pi1": "192.0.2.11"},
}


def test_nfs_is_reached_on_the_mesh_never_at_the_public_address(tmp_path: Path) -> None:
    out = render_templates(tmp_path, NFS_TEMPLATES, VARS)
    storage = yaml.safe_load(out["storageclass.yaml"])
    assert storage["parameters"]["server"] == "10.42.0.0"  # the front-end's flannel address
    assert "198.51.100.7" not in out["storageclass.yaml"]
    check_exports(parse_exports(out["exports"]), "/var/lib/oscar-deploy/data/nfs")
    assert "198.51.100.7" not in out["exports"] and "192.0.2.11" not in out["exports"]
    minio = yaml.safe_load(yaml.safe_load_all(out["minio.yaml"]).__next__()["spec"]["valuesContent"])
    assert {k: minio["securityContext"][k] for k in ("runAsUser", "runAsGroup", "fsGroup")} == \
        {"runAsUser": 2049, "runAsGroup": 2049, "fsGroup": 2049}


def test_the_exports_parser_rejects_what_the_old_exports_allowed() -> None:
    """The check can fail: the exports the role wrote before (every node's public address and the
    private ranges, root not squashed) are refused."""
    old = ("/srv/nfs 198.51.100.7(rw,sync,no_subtree_check,no_root_squash) "
           "10.0.0.0/8(rw,sync,no_subtree_check,no_root_squash)\n")
    with pytest.raises(AssertionError):
        check_exports(parse_exports(old), "/srv/nfs")
