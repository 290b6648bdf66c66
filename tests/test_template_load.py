"""Loading the shipped templates and merging, overriding and importing the way users do."""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path

import pytest
import yaml

from provisioner.errors import TemplateError
from provisioner.resources import templates_dir, types_dir
from provisioner.spec import ClusterSpec, SecretSpec
from provisioner.template import load_cluster_spec, parse_input_pairs

SHIPPED = ["oscar-aws.yaml", "oscar-openstack.yaml", "oscar-edge.yaml", "oscar-hybrid.yaml"]
IM_OUTPUT_NAMES = {"oscar_endpoint", "oscarui_endpoint", "minio_endpoint", "console_minio_endpoint",
                   "kubeconfig", "oscar_username"}


def load(*names: str, **inputs: str) -> ClusterSpec:
    return load_cluster_spec([templates_dir() / n for n in names], inputs)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_template_loads_with_no_inputs_and_every_input_has_a_default(name: str) -> None:
    raw = yaml.safe_load((templates_dir() / name).read_text())
    missing = [i for i, d in raw["topology_template"]["inputs"].items() if "default" not in d]
    assert not missing, f"inputs without a default: {missing}"
    spec = load(name)
    assert [g.role for g in spec.groups].count("front-end") == 1
    assert {o.name for o in spec.outputs} == IM_OUTPUT_NAMES
    assert {"k3s", "minio", "knative", "oscar", "elastic"} <= {c.name for c in spec.components}
    assert {"k3s_token", "oscar_password", "minio_password"} <= {s.name for s in spec.secrets}
    assert all(s.value is None for s in spec.secrets), "empty defaults are generated, not kept"
    # an open admin CIDR is worth a warning where a cloud security group would apply it
    has_cloud = any(g.provider != "fleet" for g in spec.groups)
    assert any("admin_cidr is 0.0.0.0/0" in w for w in spec.warnings) == has_cloud


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_template_does_not_warn_once_admin_cidr_is_narrowed(name: str) -> None:
    spec = load(name, admin_cidr="203.0.113.7/32")
    assert spec.admin_cidr == "203.0.113.7/32"
    assert not any("admin_cidr" in w for w in spec.warnings)


def test_aws_template_maps_inputs_onto_groups() -> None:
    spec = load("oscar-aws.yaml", wn_num="3", max_wn_num="6", fe_cpus="4", fe_mem="8 GiB",
                wn_instance_type="m6i.large", region="eu-west-1", storage_size="100 GiB")
    front, workers = spec.group("front"), spec.group("wn")
    assert (front.provider, front.region, front.machine.cpus, front.machine.memory_mib) == (
        "aws", "eu-west-1", 4, 8192)
    assert front.volume is not None and (front.volume.size_gib, front.volume.mount) == (100, "/pv")
    assert (workers.role, workers.count, workers.min, workers.max) == ("worker", 3, 0, 6)
    assert workers.machine.instance_type == "m6i.large" and workers.machine.disk_gib == 20
    assert spec.elastic is not None and spec.elastic.idle_time_s == 60


def test_openstack_template_names_network_and_region() -> None:
    spec = load("oscar-openstack.yaml", network="private-net", region="RegionTwo")
    assert {(g.provider, g.region, g.network) for g in spec.groups} == {
        ("openstack", "RegionTwo", "private-net")}


def test_edge_template_is_arm64_boards_on_documentation_addresses() -> None:
    spec = load("oscar-edge.yaml")
    documentation = ipaddress.ip_network("192.0.2.0/24")
    boards = [b for g in spec.groups for b in g.boards]
    assert len(boards) == 4
    assert all(ipaddress.ip_address(b.address) in documentation for b in boards)
    assert {b.arch for b in boards} == {"arm64"}
    assert spec.front_end is not None and spec.front_end.provider == "fleet"
    workers = [g for g in spec.groups if g.role == "edge"]
    assert [len(g.boards) for g in workers] == [3]
    assert all(b.power.type == "command" and "{node}" in (b.power.power_on or "") for b in workers[0].boards)
    assert spec.outputs[0].value == "https://192.0.2.10/"


def test_hybrid_template_tries_edge_boards_before_cloud_workers() -> None:
    spec = load("oscar-hybrid.yaml")
    edge = next(g for g in spec.groups if g.role == "edge")
    cloud = next(g for g in spec.groups if g.role == "worker")
    assert edge.priority > cloud.priority
    assert spec.groups.index(edge) < spec.groups.index(cloud)
    assert cloud.count == 0 and cloud.max > 0


def test_secret_inputs_are_placeholders_and_explicit_ones_are_kept() -> None:
    spec = load("oscar-aws.yaml", oscar_password="a-long-chosen-password")
    assert SecretSpec("oscar_password", "a-long-chosen-password", explicit=True) in spec.secrets
    assert spec.inputs["oscar_password"] == "{secret.oscar_password}"
    oscar = next(c for c in spec.components if c.name == "oscar")
    assert oscar.properties["password"] == "{secret.oscar_password}"
    assert "a-long-chosen-password" not in repr(spec.inputs) + repr(spec.warnings) + repr(spec.outputs)


def test_outputs_use_placeholders_for_values_known_after_create() -> None:
    spec = load("oscar-aws.yaml")
    endpoint = next(o for o in spec.outputs if o.name == "oscar_endpoint")
    assert endpoint.value == "https://{front.public_address}/" and not endpoint.secret


def test_a_template_copied_elsewhere_still_finds_our_types_offline(tmp_path: Path) -> None:
    copy = tmp_path / "mine.yaml"
    shutil.copy(templates_dir() / "oscar-aws.yaml", copy)
    assert load_cluster_spec([copy], {}).group("wn").count == 1


def test_url_import_is_read_from_import_path_and_never_fetched(tmp_path: Path) -> None:
    template = tmp_path / "t.yaml"
    text = (templates_dir() / "oscar-aws.yaml").read_text().replace(
        "../types/oscar-deploy-types.yaml", "https://example.invalid/tosca/oscar-deploy-types.yaml")
    template.write_text(text)
    cache = tmp_path / "cache"
    spec = load_cluster_spec([template], {}, import_paths=[types_dir()], cache_dir=cache)
    assert spec.group("front").role == "front-end"
    assert not cache.exists(), "nothing was fetched or cached"


def test_url_import_without_import_path_or_cache_is_refused_not_fetched(tmp_path: Path) -> None:
    template = tmp_path / "t.yaml"
    template.write_text((templates_dir() / "oscar-aws.yaml").read_text().replace(
        "../types/oscar-deploy-types.yaml", "https://example.invalid/x/other-types.yaml"))
    with pytest.raises(TemplateError, match=r"other-types\.yaml"):
        load_cluster_spec([template], {}, cache_dir=None)


def test_a_child_template_replaces_nodes_and_adds_inputs_and_outputs(tmp_path: Path) -> None:
    child = tmp_path / "burst.yaml"
    child.write_text("""
tosca_definitions_version: tosca_simple_yaml_1_0
topology_template:
  inputs:
    burst_max:
      type: integer
      default: 9
  node_templates:
    wn:
      type: oscar_deploy.nodes.WorkerGroup
      capabilities:
        scalable:
          properties: {count: 0, max_instances: { get_input: burst_max }}
        host:
          properties: {num_cpus: 8, mem_size: 32 GiB}
  outputs:
    note:
      value: { concat: [ "burst to ", get_input: burst_max ] }
""")
    spec = load_cluster_spec([templates_dir() / "oscar-aws.yaml", child], {"burst_max": "12"})
    workers = spec.group("wn")
    assert (workers.count, workers.max, workers.machine.cpus, workers.machine.disk_gib) == (0, 12, 8, None)
    assert spec.sources[-1] == str(child)
    assert next(o for o in spec.outputs if o.name == "note").value == "burst to 12"


def test_input_pairs_win_over_the_inputs_file(tmp_path: Path) -> None:
    inputs = tmp_path / "in.yaml"
    inputs.write_text("wn_num: 2\nfe_cpus: 4\nlabels: [a, b]\nflag: true\n")
    values = parse_input_pairs(["wn_num=5", "dns_name=a=b"], str(inputs))
    assert values == {"wn_num": "5", "fe_cpus": "4", "labels": "[a, b]", "flag": "true",
                      "dns_name": "a=b"}


def test_weak_explicit_secret_is_refused_unless_allowed_and_never_shown() -> None:
    for weak in ("minio123", "oscar123", "short-pass1"):
        with pytest.raises(TemplateError, match="--allow-weak-secrets") as refused:
            load("oscar-aws.yaml", minio_password=weak)
        assert "input minio_password" in str(refused.value) and weak not in str(refused.value)
    spec = load_cluster_spec([templates_dir() / "oscar-aws.yaml"], {"minio_password": "minio123"},
                             allow_weak_secrets=True)
    assert SecretSpec("minio_password", "minio123", explicit=True) in spec.secrets
    assert any("minio_password" in w and "weak" in w for w in spec.warnings)
    strong = load("oscar-aws.yaml", minio_password="a-long-enough-secret")
    assert SecretSpec("minio_password", "a-long-enough-secret", explicit=True) in strong.secrets


def test_url_import_is_fetched_once_then_read_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    import functools
    import http.server
    import threading

    for proxy in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    served: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            served.append(self.path)

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(types_dir())))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/oscar-deploy-types.yaml"
    template = tmp_path / "t.yaml"
    template.write_text((templates_dir() / "oscar-aws.yaml").read_text().replace(
        "../types/oscar-deploy-types.yaml", url))
    cache = tmp_path / "cache"
    try:
        first = load_cluster_spec([template], {}, cache_dir=cache)
    finally:
        server.shutdown()
        server.server_close()
    assert served == ["/oscar-deploy-types.yaml"]
    # a plain-http import is one a network attacker can rewrite: say so
    assert any("without TLS" in r.getMessage() and url in r.getMessage() for r in caplog.records)
    second = load_cluster_spec([template], {}, cache_dir=cache)  # the server is gone: cache only
    assert first.groups == second.groups


def test_loading_imports_no_cloud_kubernetes_or_ansible_library() -> None:
    import subprocess
    import sys

    code = ("import sys; from pathlib import Path; from provisioner.template import load_cluster_spec; "
            f"load_cluster_spec([Path({str(templates_dir() / 'oscar-hybrid.yaml')!r})], {{}}); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'libcloud', 'kubernetes', 'ansible', "
            "'ansible_runner'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def _fleet_template(tmp_path: Path, *boards: str) -> Path:
    """A minimal edge cluster: a board front-end and the given board node templates (YAML text)."""
    text = (
        "tosca_definitions_version: tosca_simple_yaml_1_0\n"
        "imports:\n  - oscar-deploy-types.yaml\n"
        "topology_template:\n  node_templates:\n"
        "    front:\n      type: oscar_deploy.nodes.EdgeFrontEnd\n"
        "      properties: {address: 192.0.2.10, admin_cidr: 192.0.2.0/24}\n"
        + "".join(boards)
    )
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    return path


def _board(name: str, last_octet: int, properties: str = "", host: str = "") -> str:
    text = (f"    {name}:\n      type: oscar_deploy.nodes.EdgeBoard\n"
            f"      properties: {{address: 192.0.2.{last_octet}, fleet: pis{properties}}}\n")
    if host:
        text += f"      capabilities:\n        host:\n          properties: {{{host}}}\n"
    return text


def test_a_board_that_gives_no_size_is_taken_for_a_raspberry_pi_not_a_cloud_default(tmp_path: Path) -> None:
    spec = load_cluster_spec([_fleet_template(tmp_path, _board("pi1", 11))], {})
    pis = spec.group("pis")
    assert (pis.machine.cpus, pis.machine.memory_mib, pis.machine.arch) == (4, 8192, "arm64")
    assert (pis.boards[0].cpus, pis.boards[0].memory_mib) == (4, 8192)
    assert spec.front_end is not None and spec.front_end.machine.cpus == 4
    assert "node pi1: no num_cpus/mem_size given; 4 CPUs and 8 GiB assumed" in spec.warnings


def test_boards_of_different_sizes_count_as_the_smallest_with_a_warning(tmp_path: Path) -> None:
    template = _fleet_template(tmp_path, _board("pi1", 11, host="num_cpus: 4, mem_size: 8 GiB"),
                               _board("pi2", 12, host="num_cpus: 4, mem_size: 2 GiB"))
    spec = load_cluster_spec([template], {})
    pis = spec.group("pis")
    assert (pis.machine.cpus, pis.machine.memory_mib) == (4, 2048)
    assert [(b.name, b.memory_mib) for b in pis.boards] == [("pi1", 8192), ("pi2", 2048)]
    assert any("differ in size" in w and "2048 MiB" in w for w in spec.warnings)


@pytest.mark.parametrize(("properties", "what"), [
    (", priority: 50", "priority"),
    (", labels: {zone: b}", "labels"),
    (", taints: ['gpu=true:NoSchedule']", "taints"),
    (", power_on: 'wake {node}'", "power_on/power_off/wol_mac"),
])
def test_boards_of_one_fleet_that_disagree_on_what_the_group_shares_are_refused(
        tmp_path: Path, properties: str, what: str) -> None:
    template = _fleet_template(tmp_path, _board("pi1", 11, ", labels: {zone: a}" if what == "labels" else ""),
                               _board("pi2", 12, properties))
    with pytest.raises(TemplateError) as caught:
        load_cluster_spec([template], {})
    message = str(caught.value)
    assert str(template) in message and "node pi2" in message
    assert f"fleet 'pis' disagree on {what}" in message


def test_boards_in_different_fleets_may_differ(tmp_path: Path) -> None:
    template = _fleet_template(tmp_path, _board("pi1", 11), _board("pi2", 12, ", priority: 50").replace(
        "fleet: pis", "fleet: slow"))
    spec = load_cluster_spec([template], {})
    assert [(g.name, g.priority) for g in spec.groups if g.role == "edge"] == [("pis", 100), ("slow", 50)]
