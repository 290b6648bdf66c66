"""The IM Dashboard's own templates (../shared/compat/im-tosca) load with their conventions mapped."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from provisioner.spec import ClusterSpec, SecretSpec
from provisioner.template import load_cluster_spec

REPO = Path(__file__).resolve().parent.parent
IM = REPO / ".." / "shared" / "compat" / "im-tosca"
pytestmark = pytest.mark.skipif(not IM.is_dir(), reason=f"IM compatibility corpus absent ({IM})")


def load(*names: str, **inputs: str) -> ClusterSpec:
    return load_cluster_spec([IM / n for n in names], inputs, import_paths=[IM], cache_dir=None)


def test_oscar_with_elastic_child_maps_the_im_conventions() -> None:
    spec = load("oscar.yaml", "oscar_elastic.yaml")
    front, workers = spec.group("front"), spec.group("wn")
    assert (front.role, front.provider, front.machine.cpus, front.machine.memory_mib) == (
        "front-end", "aws", 4, 4096)
    assert front.volume is not None and (front.volume.size_gib, front.volume.mount) == (50, "/pv")
    assert (workers.role, workers.count, workers.min, workers.max) == ("worker", 0, 0, 1)
    assert [c.name for c in spec.components] == ["k3s", "minio", "knative", "oscar", "elastic"]
    assert spec.elastic is not None
    assert (spec.elastic.idle_time_s, spec.elastic.max_wait_poweron_s, spec.elastic.extra_free) == (
        300, 3000, 0)
    assert {o.name for o in spec.outputs} == {"oscarui_endpoint", "dashboard_endpoint",
                                              "local_oscarui_endpoint", "minio_endpoint",
                                              "console_minio_endpoint"}


def test_elastic_child_bounds_come_from_its_inputs() -> None:
    spec = load("oscar.yaml", "oscar_elastic.yaml", max_wn_num="7", min_wn_num="2")
    workers = spec.group("wn")
    assert (workers.count, workers.min, workers.max) == (2, 0, 7)
    assert spec.elastic is not None and spec.elastic.extra_free == 2


def test_oscar_alone_has_no_filled_in_scalable_defaults() -> None:
    spec = load("oscar.yaml", wn_num="3")
    workers = spec.group("wn")
    assert (workers.count, workers.min, workers.max) == (3, 0, 3)
    assert workers.machine.disk_gib == 20
    assert spec.elastic is None and "elastic" not in {c.name for c in spec.components}


def test_weak_defaults_become_generated_secrets_and_the_ui_output_is_secret() -> None:
    spec = load("oscar.yaml", "oscar_elastic.yaml")
    for name in ("oscar_password", "minio_password", "admin_token"):
        assert SecretSpec(name) in spec.secrets
        assert any(w.startswith(f"input {name}:") for w in spec.warnings)
    ui = next(o for o in spec.outputs if o.name == "oscarui_endpoint")
    assert ui.secret and "{secret.oscar_password}" in ui.value and "oscar123" not in ui.value
    dashboard = next(o for o in spec.outputs if o.name == "dashboard_endpoint")
    assert not dashboard.secret and dashboard.value == "https://oscar.im.grycap.net/dashboard/"


def test_explicit_password_is_kept_and_still_masked_in_outputs() -> None:
    spec = load("oscar.yaml", oscar_password="correct-horse-battery")
    assert SecretSpec("oscar_password", "correct-horse-battery", explicit=True) in spec.secrets
    assert next(o for o in spec.outputs if o.name == "oscarui_endpoint").secret


def test_versions_and_unimplemented_properties_warn_once_each() -> None:
    spec = load("oscar.yaml", "oscar_elastic.yaml")
    versions = [w for w in spec.warnings if "versions" in w]
    assert len(versions) == 1 and "1.32.9" in versions[0] and "1.28.8" in versions[0]
    im_props = [w for w in spec.warnings if w.startswith("IM property")]
    assert im_props and len(im_props) == len(set(im_props))
    assert any("'oidc_enable'" in w for w in im_props)


def test_kubernetes_template_resolves_host_and_keeps_im_only_attributes_as_placeholders() -> None:
    spec = load("kubernetes.yaml")
    assert spec.front_end is not None and spec.front_end.machine.cpus == 2
    assert [c.name for c in spec.components] == ["k3s"]
    outputs = {o.name: o.value for o in spec.outputs}
    assert outputs["api_endpoint"] == "https://{front.public_address}:6443"
    assert outputs["kubeconfig"].startswith("{front.ansible_output.")
    assert any("ansible_output" in w for w in spec.warnings)


def test_default_provider_applies_to_templates_that_name_no_cloud() -> None:
    spec = load_cluster_spec([IM / "oscar.yaml"], {}, import_paths=[IM], default_provider="openstack")
    assert {g.provider for g in spec.groups} == {"openstack"}


def test_cli_validates_the_im_pair_with_warnings_on_stderr() -> None:
    from provisioner.cli import main

    result = CliRunner().invoke(main, ["validate", str(IM / "oscar.yaml"), str(IM / "oscar_elastic.yaml"),
                                       "--import-path", str(IM)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.stdout and "warning: component versions" in result.stderr


def test_kubernetes_with_minio_child_installs_minio_with_a_generated_secret() -> None:
    spec = load("kubernetes.yaml", "minio.yaml")
    minio = next(c for c in spec.components if c.name == "minio")
    assert minio.properties == {"access_key": "minio", "secret_key": "{secret.minio_secretkey}"}
    assert SecretSpec("minio_secretkey") in spec.secrets
    assert all(not o.secret for o in spec.outputs)
    assert "minio_password" not in {s.name for s in spec.secrets}, "one MinIO secret, not two"


def test_kube_allowed_cidr_is_the_admin_cidr_and_restricts_the_web_ports_it_names(tmp_path: Path) -> None:
    from provisioner.config import GeneralSettings, Settings
    from provisioner.plan import make_plan

    spec = load("kubernetes.yaml", kube_allowed_cidr="198.51.100.0/24")
    assert spec.admin_cidr == "198.51.100.0/24" and dict(spec.web_cidrs) == {80: "198.51.100.0/24",
                                                                          443: "198.51.100.0/24"}
    assert not any("admin_cidr" in w for w in spec.warnings)
    the_plan = make_plan(spec, Settings(GeneralSettings(cache_dir=str(tmp_path))))
    rules = {r.port_from: r.source for r in the_plan.security_rules}
    assert rules == {22: "198.51.100.0/24", 6443: "198.51.100.0/24", 80: "198.51.100.0/24",
                     443: "198.51.100.0/24", None: "cluster"}


def test_an_open_kube_allowed_cidr_warns_with_the_input_that_narrows_it() -> None:
    spec = load("kubernetes.yaml")
    assert spec.admin_cidr == "0.0.0.0/0"
    assert any("-i kube_allowed_cidr=" in w for w in spec.warnings)
    oscar = load("oscar.yaml")  # restricts no port: nothing to narrow it with
    assert any("this template cannot narrow it" in w for w in oscar.warnings)


def test_a_kube_allowed_cidr_that_is_no_cidr_is_refused_naming_the_input() -> None:
    from provisioner.errors import TemplateError

    with pytest.raises(TemplateError, match=r"kubernetes\.yaml.*kube_allowed_cidr.*'10\.0\.0\.0/33'"):
        load("kubernetes.yaml", kube_allowed_cidr="10.0.0.0/33")
