"""Cloud workers' user data is valid cloud-config by cloud-init's own JSON schema (Debian's cloud-init
package, unpacked by scripts/test.sh), and carries the join: server URL, token (0600), labels, taints,
the pinned k3s, the same kernel settings as the ``common`` role, and the worker's own name (k3s
``node-name`` and hostname), so it registers under the name the engine and the daemon gave it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from provisioner.cloudinit import (
    K3S_CONFIG,
    WorkerJoin,
    common_settings,
    k3s_version,
    kubelet_hardening,
    node_user_data,
    render_user_data,
    worker_join,
    worker_user_data,
)
from provisioner.errors import BadInput, NotFound
from provisioner.state import StateStore

REPO = Path(__file__).resolve().parent.parent
SCHEMA = Path(os.environ.get(
    "CLOUD_INIT_SCHEMA",
    REPO / ".cache/cloud-init/usr/lib/python3/dist-packages/cloudinit/config/schemas"
    / "schema-cloud-config-v1.json"))
TOKEN = "f" * 64


def schema_validator() -> jsonschema.protocols.Validator:
    """cloud-init's own cloud-config schema (the test is skipped where it is not unpacked)."""
    if not SCHEMA.exists():
        pytest.skip(f"{SCHEMA} missing: scripts/test.sh unpacks Debian's cloud-init package there")
    schema = json.loads(SCHEMA.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    return schema_validator()


def cloud_config_errors(text: str, validator: Any = None) -> list[str]:
    """What cloud-init would object to in a user data document: no ``#cloud-config`` header, a schema
    error, or a top-level key no module reads (the schema itself lets unknown keys through)."""
    validator = validator or schema_validator()
    if not text.startswith("#cloud-config\n"):
        return ["no #cloud-config header"]
    doc = yaml.safe_load(text)
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(doc)]
    return errors + [f"unknown key {key!r}" for key in sorted(set(doc) - _known_keys(validator))]


def k3s_config(text: str) -> dict[str, Any]:
    """The k3s config file a user data document writes."""
    files = {f["path"]: f for f in yaml.safe_load(text)["write_files"]}
    return yaml.safe_load(files[K3S_CONFIG]["content"])


def _known_keys(validator: Any) -> set[str]:
    """Every top-level key some cloud-init module documents (the schema itself allows unknown keys)."""
    keys: set[str] = set()
    for definition in validator.schema["$defs"].values():
        keys |= set((definition.get("properties") or {}).keys())
    return keys


def _doc(join: WorkerJoin) -> dict[str, Any]:
    text = render_user_data(join)
    assert text.startswith("#cloud-config\n")  # cloud-init ignores user data without this header
    return yaml.safe_load(text)


def test_worker_user_data_is_valid_cloud_config(validator: Any) -> None:
    join = WorkerJoin("https://10.0.0.5:6443", TOKEN, "wn", labels={"oscar-deploy/site": "cloud"},
                      taints=("gpu=true:NoSchedule",))
    doc = _doc(join)
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(doc)]
    assert errors == []
    assert set(doc) <= _known_keys(validator)


def test_a_named_worker_registers_under_its_name_and_takes_it_as_hostname(validator: Any) -> None:
    name = "oscar-deploy-0a1b2c3d-wn-7"
    join = WorkerJoin("https://10.0.0.5:6443", TOKEN, "wn", taints=("gpu=true:NoSchedule",))
    text = node_user_data(join, name)
    assert cloud_config_errors(text, validator) == []
    assert k3s_config(text)["node-name"] == name
    doc = yaml.safe_load(text)
    assert doc["hostname"] == name and doc["prefer_fqdn_over_hostname"] is False
    assert doc["manage_etc_hosts"] == "localhost"  # the new hostname resolves (sudo, k3s)
    assert "preserve_hostname" not in doc
    # unnamed (as the k3s_agent role writes a board's: it registers under its hostname): no name set
    unnamed = render_user_data(join)
    assert cloud_config_errors(unnamed, validator) == []
    assert "node-name" not in k3s_config(unnamed) and "hostname" not in yaml.safe_load(unnamed)


@pytest.mark.parametrize("name", ["Worker-1", "wn_1", "-wn", "wn-", "a" * 64, "wn.example.org", ""])
def test_a_name_that_is_no_hostname_nor_node_name_is_refused(name: str) -> None:
    with pytest.raises(BadInput, match="node name"):
        node_user_data(WorkerJoin("https://10.0.0.5:6443", TOKEN, "wn"), name)


def test_the_schema_check_can_fail(validator: Any) -> None:
    doc = _doc(WorkerJoin("https://10.0.0.5:6443", TOKEN, "wn"))
    doc["write_files"][0]["permissions"] = 420  # an int, not the octal string cloud-init wants
    doc["runcmd"] = "not a list"
    assert len(list(validator.iter_errors(doc))) >= 2


def test_the_join_carries_server_token_labels_taints_and_the_pinned_k3s() -> None:
    doc = _doc(WorkerJoin("https://10.0.0.5:6443", TOKEN, "wn", arch="arm64",
                          labels={"oscar-deploy/site": "cloud"}, taints=("gpu=true:NoSchedule",)))
    files = {f["path"]: f for f in doc["write_files"]}
    config_file = files["/etc/rancher/k3s/config.yaml"]
    assert config_file["permissions"] == "0600"
    config = yaml.safe_load(config_file["content"])
    assert config == {
        "server": "https://10.0.0.5:6443",
        "token": TOKEN,
        "node-label": ["oscar-deploy/group=wn", "oscar-deploy/role=worker", "oscar-deploy/arch=arm64",
                       "oscar-deploy/site=cloud"],
        "node-taint": ["gpu=true:NoSchedule"],
        **kubelet_hardening(),
    }
    install = doc["runcmd"][-1][-1]
    version = k3s_version()
    assert f"/k3s-io/k3s/{version}/install.sh" in install and f"INSTALL_K3S_VERSION='{version}'" in install
    assert f"/k3s-io/k3s/{version}/install.sh.sha256sum" in install and "| sha256sum -c -" in install
    assert TOKEN not in install  # the token is only in the 0600 file, never on a command line
    common = common_settings()
    assert doc["packages"] == common["common_packages"]
    assert files["/etc/modules-load.d/k3s.conf"]["content"].split() == common["common_kernel_modules"]
    sysctl = dict(line.split(" = ") for line in files["/etc/sysctl.d/90-k3s.conf"]["content"].splitlines())
    assert sysctl == {k: str(v) for k, v in common["common_sysctls"].items()}
    assert ["modprobe", "br_netfilter"] in doc["runcmd"]


def test_from_a_recorded_deployment_the_front_ends_private_address_and_stored_token(tmp_path: Path) -> None:
    plan = {"groups": [{"name": "front", "role": "front-end", "arch": "amd64"},
                       {"name": "wn", "role": "worker", "arch": "amd64"}],
            "targets": [{"name": "wn", "labels": {"tier": "burst"}, "taints": []}]}
    with StateStore.open(tmp_path / "state.db") as store:
        dep = store.create_deployment("hyb", plan=plan)
        with pytest.raises(NotFound, match="front-end has no address"):
            worker_user_data(store, dep, "wn")
        store.record_node(dep.id, group="front", name="f1", provider="aws",
                          addresses={"public": ["198.51.100.7"], "private": ["10.0.0.5"]}, state="running")
        token = store.ensure_secret(dep.id, "k3s_token")
        doc = yaml.safe_load(worker_user_data(store, dep, "wn"))
        named = worker_user_data(store, dep, "wn", node_name="oscar-deploy-x-wn-2")
        join = worker_join(store, dep, "wn")
        with pytest.raises(NotFound, match="no group 'nope'"):
            worker_user_data(store, dep, "nope")
    config = yaml.safe_load(next(f for f in doc["write_files"] if "k3s" in f["path"]
                                 and f["path"].endswith("config.yaml"))["content"])
    assert config["server"] == "https://10.0.0.5:6443" and config["token"] == token
    assert "tier=burst" in config["node-label"]
    assert join.node_name is None and named == node_user_data(join, "oscar-deploy-x-wn-2")
    assert k3s_config(named) == {**config, "node-name": "oscar-deploy-x-wn-2"}
