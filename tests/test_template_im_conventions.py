"""The IM's conventions on IM-style templates written for this suite (tests/golden/im-style), so they
are checked where the shared corpus of the IM's real templates (tests/test_template_im.py) is absent."""

from __future__ import annotations

from pathlib import Path

from provisioner.spec import ClusterSpec, SecretSpec
from provisioner.template import load_cluster_spec

HERE = Path(__file__).resolve().parent / "golden" / "im-style"


def load(*names: str, **inputs: str) -> ClusterSpec:
    return load_cluster_spec([HERE / n for n in names], inputs, import_paths=[HERE], cache_dir=None)


def test_the_compute_hosting_the_lrms_front_end_is_the_front_end() -> None:
    spec = load("parent.yaml")
    front = spec.group("front")
    assert (front.role, front.provider, front.machine.cpus, front.machine.memory_mib) == (
        "front-end", "aws", 4, 4096)
    assert spec.group("wn").role == "worker"


def test_parent_alone_keeps_no_filled_in_scalable_defaults() -> None:
    workers = load("parent.yaml", wn_num="3").group("wn")
    assert (workers.count, workers.min, workers.max) == (3, 0, 3)


def test_the_elastic_child_sets_the_bounds_on_the_worker_nodes_wn_capability() -> None:
    spec = load("parent.yaml", "child.yaml", wn_num="0", max_wn_num="7")
    workers = spec.group("wn")
    assert (workers.count, workers.min, workers.max) == (0, 0, 7), "an elastic group may start empty"
    assert spec.elastic is not None
    assert (spec.elastic.idle_time_s, spec.elastic.extra_free) == (120, 2), "EXTRA_NODES_FREE: spare nodes"
    assert "elastic" in {c.name for c in spec.components}
    assert any("SOMETHING_ELSE" in w for w in spec.warnings)


def test_weak_token_is_generated_unless_given_and_outputs_built_from_it_are_secret() -> None:
    spec = load("parent.yaml")
    assert SecretSpec("admin_token") in spec.secrets
    assert any(w.startswith("input admin_token:") for w in spec.warnings)
    api = next(o for o in spec.outputs if o.name == "api")
    assert api.secret and "not_very_secret_token" not in api.value
    chosen = load_cluster_spec([HERE / "parent.yaml"], {"admin_token": "not_very_secret_token"},
                               import_paths=[HERE], cache_dir=None, allow_weak_secrets=True)
    assert SecretSpec("admin_token", "not_very_secret_token", explicit=True) in chosen.secrets
    assert not any("default is weak" in w for w in chosen.warnings)
    assert any(w.startswith("input admin_token:") and "--allow-weak-secrets" in w for w in chosen.warnings)


def test_versions_are_ignored_and_unimplemented_properties_named_with_one_warning_each() -> None:
    spec = load("parent.yaml", "child.yaml")
    versions = [w for w in spec.warnings if "versions" in w]
    assert len(versions) == 1 and "1.32.9" in versions[0] and "1.28.8" in versions[0]
    assert [w for w in spec.warnings if "install_yunikorn" in w] == [
        "IM property 'install_yunikorn' (node lrms_front_end) is not implemented by oscar-deploy; ignored"]
