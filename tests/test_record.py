"""The deployment record: one typed reader, one migration for the older untyped plan document, a
launch spec that round-trips through plain JSON, and one function that makes the daemon's groups
(the ConfigMap ``configure`` writes and ``daemon --deployment`` agree on labels, taints, CPUs and the
SSH halt)."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from elastic.cloudpower import groups_from_deployment
from elastic.groups import parse_groups
from provisioner.cli import main
from provisioner.cloudinit import launch_join, node_user_data, worker_join
from provisioner.config import Settings
from provisioner.configure import configuration_vars
from provisioner.engine.create import recorded_plan
from provisioner.engine.handoff import daemon_deployment
from provisioner.engine.targets import group_targets, recorded_components
from provisioner.inventory import Inventory
from provisioner.plan import make_plan, plan_to_json
from provisioner.record import (
    RECORD_VERSION,
    DeploymentRecord,
    LaunchSpec,
    RecordError,
    daemon_groups,
    read_record,
)
from provisioner.state import StateStore
from provisioner.template import load_cluster_spec

REPO = Path(__file__).resolve().parent.parent
HYBRID = REPO / "tosca/templates/oscar-hybrid.yaml"
AWS = REPO / "tosca/templates/oscar-aws.yaml"
BOARD_INPUTS = {"power_on_command": "plug on {address}", "power_off_command": "plug off {node}"}


def _tainted_hybrid(tmp_path: Path) -> Path:
    """The shipped hybrid template with a taint on the cloud workers (none ships with one)."""
    doc = yaml.safe_load(HYBRID.read_text())
    doc["imports"] = [{"oscar_deploy_types": str(REPO / "tosca/types/oscar-deploy-types.yaml")}]
    wn = doc["topology_template"]["node_templates"]["wn"]["properties"]
    wn["taints"] = ["burst=cloud:NoSchedule"]
    path = tmp_path / "hybrid.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _plan(template: Path, inputs: dict[str, Any] | None = None) -> Any:
    return make_plan(load_cluster_spec([template], dict(inputs or {})), Settings())


def _old_document(plan: Any) -> dict[str, Any]:
    """A record as the previous release kept it: the plan document, the engine's targets and the
    component properties, read by string keys."""
    components, _ = recorded_components(plan.spec)
    doc = {**plan_to_json(plan), "targets": [dataclasses.asdict(t) for t in group_targets(plan)],
           "spec_components": components}
    doc["outputs"] = [{**shown, "value": o.value}
                      for shown, o in zip(doc["outputs"], plan.outputs, strict=True)]
    return json.loads(json.dumps(doc, default=str))


def test_a_record_and_its_launch_specs_round_trip_through_plain_json() -> None:
    plan = _plan(HYBRID, BOARD_INPUTS)
    doc = recorded_plan(plan, group_targets(plan))
    assert doc["record_version"] == RECORD_VERSION
    again = json.loads(json.dumps(doc))  # plain JSON: no tuples, no dataclasses survive
    record = DeploymentRecord.from_dict(again)
    assert record.to_dict() == doc and DeploymentRecord.from_dict(record.to_dict()) == record
    wn = record.group("wn")
    launch = wn.launch
    assert launch is not None and record.group("pis").launch is None and record.group("pis").boards
    assert (launch.provider, launch.region, launch.sizes[0], launch.arch) == \
        ("aws", "us-east-1", wn.size, "amd64")
    assert launch.image is not None and launch.image.owner == "099720109477"
    assert {r.port_from for r in launch.security_rules} >= {22, 6443}
    assert launch.user_data is not None and launch.user_data.labels == {"oscar-deploy/site": "cloud"}
    assert LaunchSpec.from_dict(json.loads(json.dumps(launch.to_dict()))) == launch


def test_an_older_untyped_record_is_migrated_once_with_a_message(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    plan = _plan(HYBRID, BOARD_INPUTS)
    old = _old_document(plan)
    with StateStore.open(tmp_path / "state.db") as store:
        dep = store.create_deployment("old", plan=old, status="created")
        with caplog.at_level(logging.WARNING, logger="provisioner.state"):
            migrated = store.record(dep.id)
        assert "deployment old: its record, written by an older oscar-deploy, was migrated" in caplog.text
        stored = store.get(dep.id).plan
        assert stored["record_version"] == RECORD_VERSION and "targets" not in stored
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="provisioner.state"):
            assert store.record(dep.id) == migrated  # read as is: no second migration, no message
        assert caplog.text == ""
        assert [e.kind for e in store.events(dep.id)].count("record-migrated") == 1
    # the migration keeps every fact a new record has (launch inputs are filled in by create later);
    # such a deployment's workers were launched without a public address, and more stay so
    then = dataclasses.replace(plan, groups=tuple(dataclasses.replace(g, public_ip=g.role == "front-end")
                                                  for g in plan.groups))
    assert migrated == DeploymentRecord.from_dict(recorded_plan(then, group_targets(then)))


@pytest.mark.parametrize(("change", "message"), [
    ({"record_version": RECORD_VERSION + 1}, f"record version {RECORD_VERSION + 1} is newer"),
    ({"groups": [{"name": "wn", "role": "worker", "provider": "aws", "colour": "red"}]},
     "groups[0]: unknown field(s) colour"),
])
def test_a_record_this_version_cannot_read_is_bad_input_naming_why(
        tmp_path: Path, change: dict[str, Any], message: str) -> None:
    plan = _plan(AWS)
    doc = {**recorded_plan(plan, group_targets(plan)), **change}
    with pytest.raises(RecordError, match=re.escape(message)):
        read_record(doc)
    state = tmp_path / "state.db"
    with StateStore.open(state) as store:
        store.create_deployment("future", plan=doc, status="created")
    result = CliRunner().invoke(main, ["--state", str(state), "inventory", "future"])
    assert result.exit_code == 2, result.output
    assert f"deployment future: {message}" in result.output and "Traceback" not in result.output


def test_configure_and_the_daemon_make_the_same_groups_from_one_record(tmp_path: Path) -> None:
    """The daemon's ConfigMap (``configure``) and ``daemon --deployment`` read the record through one
    function: the same labels (what k3s and the kubelet give the nodes), taints, the CPUs a node
    *gives*, and an SSH halt before a board's power cut, in both."""
    plan = _plan(_tainted_hybrid(tmp_path), {**BOARD_INPUTS, "wn_instance_type": "t3.xlarge"})
    with StateStore.open(tmp_path / "state.db") as store:
        dep = store.create_deployment("hyb", plan=recorded_plan(plan, group_targets(plan)), status="created")
    variables = configuration_vars(dep, {}, Inventory((), "/k"), tmp_path)
    from_configmap = parse_groups(variables["elastic_groups"], "configmap")
    from_daemon = groups_from_deployment(dep)
    # the ConfigMap's cloud groups also carry their launch specs (the pod has no state file)
    launches = {g.name: g.power.pop("launch") for g in from_configmap if g.power.get("type") == "cloud"}
    assert launches == {"wn": read_record(dep.plan)[0].group("wn").launch.to_dict()}  # type: ignore[union-attr]
    assert from_configmap == from_daemon
    wn = {g.name: g for g in from_daemon}["wn"]
    assert wn.cpus == 4.0 and wn.memory_mib == 16384  # what a t3.xlarge gives, not the 2 CPUs asked for
    assert wn.labels["kubernetes.io/arch"] == "amd64" and wn.labels["oscar-deploy/group"] == "wn"
    assert [(t.key, t.value, t.effect) for t in wn.taints] == [("burst", "cloud", "NoSchedule")]
    pis = {g.name: g for g in from_daemon}["pis"]
    assert pis.power["shutdown"] == {} and pis.power["power_off"] == "plug off {node}"
    # a known_hosts path is the only thing one caller may add
    docs = daemon_groups(read_record(dep.plan)[0], dep.id, known_hosts="/etc/ssh/known")
    assert docs[0]["power"]["shutdown"] == {"known_hosts": "/etc/ssh/known"}


def test_the_launch_spec_gives_a_daemon_worker_the_user_data_create_gives(tmp_path: Path) -> None:
    """Without the state file: the hand-off's launch spec and token render the same cloud-init as
    ``create``'s ``worker_join`` for a worker of the same name."""
    plan = _plan(AWS)
    with StateStore.open(tmp_path / "state.db") as store:
        dep = store.create_deployment("aws", plan=recorded_plan(plan, group_targets(plan)), status="created")
        store.ensure_secret(dep.id, "k3s_token")
        front = next(g for g in plan.groups if g.role == "front-end")
        store.record_node(dep.id, group=front.name, name="oscar-deploy-x-front-1", provider="aws",
                          addresses={"public": ["198.51.100.7"], "private": ["10.0.0.5"]}, state="running")
        handed = daemon_deployment(store, dep.id)
        expected = node_user_data(worker_join(store, store.get(dep.id), "wn"), "oscar-deploy-x-wn-7")
    launch = handed.record.group("wn").launch
    assert launch is not None and launch.user_data is not None
    assert launch.user_data.server_url == "https://10.0.0.5:6443"
    spec = LaunchSpec.from_dict(json.loads(json.dumps(launch.to_dict())))  # as a ConfigMap would carry it
    assert spec.user_data is not None
    assert node_user_data(launch_join(spec.user_data, handed.token), "oscar-deploy-x-wn-7") == expected
    assert handed.token not in repr(handed)


def test_the_configuration_knows_every_architecture_of_the_deployment(tmp_path: Path) -> None:
    """The hybrid template's arm64 boards and amd64 cloud nodes reach the roles (the oscar role puts a
    supervisor build for each in OSCAR's shared volume); the AWS template has one architecture."""
    for template, name, expected in ((HYBRID, "hyb", ["amd64", "arm64"]), (AWS, "aws", ["amd64"])):
        plan = _plan(template, BOARD_INPUTS if template == HYBRID else None)
        with StateStore.open(tmp_path / f"{name}.db") as store:
            dep = store.create_deployment(name, plan=recorded_plan(plan, group_targets(plan)),
                                          status="created")
        assert configuration_vars(dep, {}, Inventory((), "/k"), tmp_path)["oscar_node_arches"] == expected
