"""A fleet deployment against board hosts (sshd in namespaces on 127.0.0.N:2222): boards
are adopted (recorded, checked over real SSH), never created or destroyed; one that does not
answer fails the create naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from provisioner.clouds.registry import driver_for
from provisioner.config import GeneralSettings, ProvisionerSettings, Settings
from provisioner.engine import CreateRequest, create, destroy
from provisioner.errors import RemoteError
from provisioner.plan import make_plan
from provisioner.resources import types_dir
from provisioner.state import StateStore
from provisioner.template import load_cluster_spec


def board_node(node_type: str, board: Any, extra: str = "") -> str:
    return f"""
      type: {node_type}
      properties:
        address: {board.address}
        ssh_port: {board.port}
        ssh_user: root
        ssh_key: {board.key_path}
        {extra}
      capabilities:
        host:
          properties: {{ num_cpus: 2, mem_size: 2 GiB }}
        os:
          properties: {{ type: linux, distribution: ubuntu, version: "24.04", architecture: x86_64 }}
"""


def edge_template(tmp_path: Path, fleet: list[Any]) -> Path:
    front, *workers = fleet
    text = f"""tosca_definitions_version: tosca_simple_yaml_1_0
imports:
  - oscar_deploy_types: {types_dir() / "oscar-deploy-types.yaml"}
topology_template:
  node_templates:
    front:{board_node("oscar_deploy.nodes.EdgeFrontEnd", front, "admin_cidr: 10.0.0.0/8")}
"""
    for board in workers:
        node = board_node("oscar_deploy.nodes.EdgeBoard", board, "fleet: pis")
        text += f"    {board.name.replace('-', '')}:{node}"
    path = tmp_path / "edge.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(general=GeneralSettings(cache_dir=str(tmp_path / "cache")),
                    provisioner=ProvisionerSettings(ssh_timeout_s=3))


def fleet_request(tmp_path: Path, fleet: list[Any], settings: Settings, steps: list[Any]) -> tuple[Any, Any]:
    spec = load_cluster_spec([edge_template(tmp_path, fleet)], {}, import_paths=[],
                             cache_dir=Path(settings.general.cache_dir))
    plan = make_plan(spec, settings)
    boards = {g.name: g.spec.boards for g in plan.groups}

    def factory(provider: str, _region: str | None) -> Any:
        assert provider == "fleet", "a fleet deployment never reaches a cloud"
        return driver_for("fleet", None, None, settings=settings.provisioner, boards=boards,
                          known_hosts=fleet[0].known_hosts)

    request = CreateRequest(plan, name="edge", configure=True,
                            configure_step=lambda **kw: steps.append(kw["deployment"]))
    return request, factory


def test_boards_are_adopted_checked_and_left_alone(tmp_path: Path, board_hosts: list[Any],
                                                   settings: Settings) -> None:
    steps: list[Any] = []
    request, factory = fleet_request(tmp_path, board_hosts, settings, steps)
    with StateStore.open(tmp_path / "state.db") as store:
        dep = create(store, request, factory, settings)
        assert dep.status == "created" and dep.locations == ()
        nodes = {n.name: n for n in store.nodes(dep.id)}
        assert {n.addresses["public"][0] for n in nodes.values()} == {b.address for b in board_hosts}
        assert {(n.state, n.provider) for n in nodes.values()} == {("adopted", "fleet")}
        assert [d.id for d in steps] == [dep.id]  # configured once every board answered
        assert "ssh_private_key" not in store.secrets(dep.id)  # boards keep their own keys
        # the boards' host keys are pinned in the deployment's own known_hosts, the one Ansible uses
        pinned = (store.deployment_dir(dep.id) / "known_hosts").read_text()
        assert all(f"[{b.address}]:{b.port} " in pinned for b in board_hosts), pinned
        assert destroy(store, dep.id, factory) == []
        assert not (store.deployment_dir(dep.id) / "known_hosts").exists()
    assert all(b.is_on() for b in board_hosts)


def test_a_board_that_does_not_answer_fails_the_create_by_name(tmp_path: Path, board_hosts: list[Any],
                                                               settings: Settings) -> None:
    steps: list[Any] = []
    request, factory = fleet_request(tmp_path, board_hosts, settings, steps)
    silent = board_hosts[2]
    silent.power_off()
    try:
        with StateStore.open(tmp_path / "state.db") as store:
            with pytest.raises(RemoteError) as failure:
                create(store, request, factory, settings)
            assert store.get("edge").status == "failed"
    finally:
        silent.power_on()
    assert silent.address in str(failure.value)
    assert board_hosts[0].address not in str(failure.value)
    assert steps == []
