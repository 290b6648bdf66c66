"""Follow-ups of the elastic daemon: edge boards halted over SSH before their power is cut,
a deployment's edge fleets scaled by ``daemon --deployment``, the drain and namespace settings of
``[elastic]``, and the in-cluster RBAC checked against every API call the daemon makes.

Real components only: board hosts (sshd in namespaces, ``tests/harness/boards.py``) stand in for the
Raspberry Pis, the Kubernetes API test server for the cluster, the real ``ssh`` client and
``kubernetes`` client for the daemon's side. A board has no working ``shutdown``; a test double
(``TEST_DOUBLE`` below, installed on the board only) records its call and powers the board off the way
the harness does, which is what a halting board looks like from outside: its SSH port goes quiet.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from click.testing import CliRunner
from kubernetes import client

from elastic.cloudpower import deployment_groups, groups_from_deployment
from elastic.daemon import settings_from_config
from elastic.groups import GroupsError, load_groups, parse_groups
from elastic.kubeapi import STATUS_CONFIGMAP
from elastic.leader import LEASE_NAME
from elastic.model import GroupNode, NodeGroup
from elastic.nodes import REQUESTS_CONFIGMAP
from elastic.power import CommandPower, PowerError, SshShutdown, manager_for, power_off_board
from provisioner.cli import main
from provisioner.config import ElasticSettings, load_settings
from tests.harness.boards import Board, power_command
from tests.test_daemon import FAST, start_daemon, state  # noqa: F401 (fixture)
from tests.test_daemon_cloud import cloud, cloud_power  # noqa: F401 (fixtures)

REPO = Path(__file__).resolve().parent.parent
DOUBLE_LOG = "/var/log/oscar-test-double-shutdown.log"
TEST_DOUBLE = f"""#!/bin/sh
# TEST DOUBLE installed by tests/test_daemon_followups.py on a board host only, standing in for
# shutdown(8) and poweroff(8), which cannot work in a board host: it records its call and returns at
# once, like shutdown(8); a second later it powers the board off the way the harness does (SIGUSR1 to
# the board's init: every process dies, sshd too), like a board that has finished halting.
echo "$(id -un) $(basename "$0") $*" >> {DOUBLE_LOG}
(sleep 1; kill -USR1 1) </dev/null >/dev/null 2>&1 &
"""
REFUSING_DOUBLE = """#!/bin/sh
# TEST DOUBLE (tests/test_daemon_followups.py): a shutdown(8)/poweroff(8) that refuses, as on a board
# whose login may not halt it.
echo "$(basename "$0"): Operation not permitted" >&2
exit 1
"""


def install_double(board: Board, script: str = TEST_DOUBLE) -> None:
    """Shadow shutdown and poweroff on the board (its /usr is its own overlay) with ``script``."""
    for name in ("shutdown", "poweroff"):
        board.run(f"cat > /usr/local/sbin/{name} && chmod 0755 /usr/local/sbin/{name}", input=script)


def double_calls(board: Board) -> list[str]:
    """What the double recorded (the board keeps its files across a power cycle, like a disk)."""
    if not board.is_on():
        board.power_on()
    return board.run(f"cat {DOUBLE_LOG} 2>/dev/null || true").stdout.splitlines()


def shutdown_settings(board: Board, **overrides: Any) -> dict[str, Any]:
    """The groups file's ``power.shutdown`` mapping that reaches ``board`` as root."""
    return {"user": "root", "key": str(board.key_path), "known_hosts": str(board.known_hosts),
            "wait_s": 10, "settle_s": 0, **overrides}


def cut_recorder(board: Board, log: Path) -> str:
    """A power-cut command that records whether the board's SSH port still answered when it ran."""
    probe = (f"import socket; s = socket.socket(); s.settimeout(1); "
             f"up = s.connect_ex(({board.address!r}, {board.port})) == 0; "
             f"open({str(log)!r}, 'a').write('cut {{node}} while ' + ('on' if up else 'off') + chr(10))")
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(probe)}"


# ---- the groups format: power.shutdown and the nodes' own logins -----------------------------------

def _group(**power: Any) -> dict[str, Any]:
    return {"name": "pis", "cpus": 4, "memory_mib": 8192, "max": 2,
            "nodes": [{"name": "pi1", "address": "192.0.2.11"},
                      {"name": "pi2", "address": "192.0.2.12", "ssh_user": "ubuntu", "ssh_port": 2200,
                       "ssh_key": "~/.ssh/pi2"}],
            "power": {"type": "command", "power_on": "poe on {node}", **power}}


def test_a_groups_file_gives_the_ssh_shutdown_and_the_cut_becomes_optional(tmp_path: Path) -> None:
    path = tmp_path / "groups.yaml"
    path.write_text(yaml.safe_dump([_group(shutdown={"user": "pi", "key": "/keys/fleet",
                                                     "known_hosts": "/keys/known", "wait_s": 30})]))
    (group,) = load_groups(path)
    assert group.nodes[1] == GroupNode("pi2", "192.0.2.12", ssh_user="ubuntu", ssh_port=2200,
                                       ssh_key="~/.ssh/pi2")
    manager = manager_for(group)
    assert isinstance(manager, CommandPower) and manager.off_command is None
    assert manager.shutdown == SshShutdown(user="pi", key="/keys/fleet", known_hosts="/keys/known", wait_s=30)
    first, second = (manager.shutdown.argv(n) for n in group.nodes)
    assert first[first.index("-p") + 1] == "22" and first[-4:-1] == ["pi", "--", "192.0.2.11"]
    assert first[first.index("-i") + 1] == "/keys/fleet" and "UserKnownHostsFile=/keys/known" in first
    # a board's own login wins over the group's
    assert second[-4:-1] == ["ubuntu", "--", "192.0.2.12"] and second[second.index("-p") + 1] == "2200"
    assert second[second.index("-i") + 1] == str(Path("~/.ssh/pi2").expanduser())
    assert "BatchMode=yes" in second
    assert second[-1] == "sudo -n shutdown -h now || shutdown -h now || poweroff"


@pytest.mark.parametrize(("change", "message"), [
    ({"shutdown": "yes"}, "power 'shutdown' must be a mapping"),
    ({"shutdown": {"usr": "pi"}}, "power 'shutdown': unknown key 'usr'"),
    ({"shutdown": {"port": 70000}}, "'port' must be a port number 1-65535, got 70000"),
    ({"shutdown": {"wait_s": "1 m"}}, "'wait_s' must be a number"),
    ({"shutdown": {"key": 12}}, "'key' must be a non-empty string"),
    ({}, "needs a 'power_off' command string (the power cut), a 'shutdown' mapping"),
    ({"power_off": ""}, "power 'power_off' must be a command string"),
])
def test_bad_shutdown_settings_are_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(GroupsError, match=re.escape(message)) as error:
        parse_groups([_group(**change)], "groups.yaml")
    assert str(error.value).startswith("groups.yaml: group 'pis'")


def test_yaml_1_1_booleans_and_missing_addresses_are_caught(tmp_path: Path) -> None:
    path = tmp_path / "groups.yaml"
    path.write_text("- name: pis\n  cpus: 4\n  memory_mib: 8192\n"
                    "  nodes: [{name: pi1, address: 192.0.2.11}]\n"
                    "  power: {type: command, on: 'poe on {node}', shutdown: {}}\n")
    with pytest.raises(GroupsError, match=r"power key 'on' is not allowed .*use 'power_on'"):
        load_groups(path)
    no_address = _group(shutdown={})
    no_address["nodes"][0].pop("address")
    with pytest.raises(GroupsError, match="node 'pi1': power 'shutdown' halts boards over SSH, so every node "
                                          "needs an 'address'"):
        parse_groups([no_address], "groups.yaml")
    bad_port = _group(shutdown={})
    bad_port["nodes"][1]["ssh_port"] = "22"
    with pytest.raises(GroupsError, match="node 'pi2': 'ssh_port' must be a port number"):
        parse_groups([bad_port], "groups.yaml")
    result = CliRunner().invoke(main, ["simulate", "--groups", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output


# ---- SSH shutdown against board hosts ----------------------------------------------------------------

@pytest.fixture
def board(board_factory: Any) -> Board:
    (one,) = board_factory(1, users=("root",), prefix="pi")
    return one


def _board_group(board: Board, **power: Any) -> NodeGroup:
    (group,) = parse_groups([{"name": "pis", "cpus": 2, "memory_mib": 4096, "max": 1,
                              "nodes": [{"name": board.name, "address": board.address,
                                         "ssh_port": board.port}],
                              "power": {"type": "command", "power_on": "true", **power}}], "test")
    return group


def test_power_off_halts_the_board_over_ssh_then_cuts_its_power(board: Board, tmp_path: Path) -> None:
    install_double(board)
    cuts = tmp_path / "cuts.log"
    group = _board_group(board, shutdown=shutdown_settings(board), power_off=cut_recorder(board, cuts))
    started = time.monotonic()
    manager_for(group).power_off(group, board.name)
    took = time.monotonic() - started
    assert not board.is_on()
    assert cuts.read_text().splitlines() == [f"cut {board.name} while off"]  # cut only once it halted
    assert double_calls(board) == ["root shutdown -h now"]  # sudo -n found the login's shutdown first
    assert took < 5, took


def test_a_board_that_refuses_to_halt_is_an_error_without_a_cut_and_is_cut_with_one(
        board: Board, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    install_double(board, REFUSING_DOUBLE)
    group = _board_group(board, shutdown=shutdown_settings(board))
    started = time.monotonic()
    with pytest.raises(PowerError, match=rf"power off {board.name}: shutdown over SSH \(root@{board.address}:"
                                         rf"{board.port}\) exited with status 1: .*Operation not permitted"):
        manager_for(group).power_off(group, board.name)
    assert time.monotonic() - started < 5  # refused at once: no waiting for a halt that never comes
    assert board.is_on()

    cuts = tmp_path / "cuts.log"
    group = _board_group(board, shutdown=shutdown_settings(board), power_off=cut_recorder(board, cuts))
    with caplog.at_level(logging.WARNING, logger="elastic.power"):
        manager_for(group).power_off(group, board.name)
    assert cuts.read_text().splitlines() == [f"cut {board.name} while on"]
    assert "cutting its power anyway" in caplog.text


def test_a_wrong_key_and_a_board_already_off(board: Board, tmp_path: Path) -> None:
    install_double(board)
    other_key = tmp_path / "other"
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True)
    group = _board_group(board, shutdown=shutdown_settings(board, key=str(other_key)))
    with pytest.raises(PowerError, match="Permission denied"):
        manager_for(group).power_off(group, board.name)
    assert board.is_on() and double_calls(board) == []

    board.power_off()  # the plug was already pulled: nothing to halt, the cut still runs
    cuts = tmp_path / "cuts.log"
    group = _board_group(board, shutdown=shutdown_settings(board), power_off=cut_recorder(board, cuts))
    power_off_board(SshShutdown.from_power(group.power), group.power["power_off"], group, board.name, 10)
    assert cuts.read_text().splitlines() == [f"cut {board.name} while off"]


def test_the_daemon_drains_an_idle_board_halts_it_over_ssh_then_cuts_its_power(
        board: Board, kube_api: Any, start_daemon: Any, tmp_path: Path) -> None:  # noqa: F811
    """End to end: a pod powers the board on (the harness boots it and registers its Node), the pod
    finishes, the idle board is cordoned and drained, halted over SSH (the double), and only then is
    its power cut (the kubelet stops)."""
    install_double(board)
    node = board.name
    kube = kube_api.power_commands(cpus=2, memory_mib=4096, ready_after_s=20)
    cuts = tmp_path / "cuts.log"
    groups_file = tmp_path / "groups.yaml"
    groups_file.write_text(yaml.safe_dump([{
        "name": "pis", "cpus": 2, "memory_mib": 4096, "max": 1, "priority": 10,
        "nodes": [{"name": node, "address": board.address, "ssh_port": board.port}],
        "power": {"type": "command", "timeout_s": 30,
                  "power_on": f"{power_command([board], 'poweron')} && {kube['power_on']}",
                  "power_off": f"{cut_recorder(board, cuts)} && {kube['power_off']}",
                  "shutdown": shutdown_settings(board)},
    }]))
    groups = load_groups(groups_file)
    daemon = start_daemon(list(groups))
    kube_api.create_pod("job", cpus=1.5, runtime_s=50)

    kube_api.wait_until(lambda: kube_api.pods(phase="Running"), timeout=20, what="job running")
    assert kube_api.get("pods", "job", "default")["spec"]["nodeName"] == node
    kube_api.wait_until(lambda: kube_api.pods(phase="Succeeded"), timeout=20, what="job done")
    kube_api.wait_until(lambda: state(kube_api, node) == "off", timeout=30, what="board off")
    assert not board.is_on()
    assert cuts.read_text().splitlines() == [f"cut {node} while off"]
    assert kube_api.get("nodes", node)["spec"].get("unschedulable") is True
    text = daemon.metrics.exposition().decode()
    assert 'oscar_deploy_elastic_scale_downs_total{group="pis",reason="idle"} 1.0' in text
    assert double_calls(board) == ["root shutdown -h now"]


# ---- daemon --deployment: edge fleets from the recorded plan -----------------------------------------

HYBRID = REPO / "tosca/templates/oscar-hybrid.yaml"
EDGE = REPO / "tosca/templates/oscar-edge.yaml"


def record(store: Any, template: Path, inputs: dict[str, Any], name: str, *, older: bool = False) -> Any:
    """Record a deployment the way ``create`` does (the deployment record), or with ``older`` as an
    earlier release did: the untyped plan JSON and the engine's targets."""
    from provisioner.config import Settings
    from provisioner.engine.create import recorded_plan
    from provisioner.engine.targets import group_targets
    from provisioner.plan import make_plan, plan_to_json
    from provisioner.template import load_cluster_spec

    spec = load_cluster_spec([template], inputs)
    plan = make_plan(spec, Settings())
    recorded = recorded_plan(plan, group_targets(plan))
    if older:
        recorded = {**plan_to_json(plan), "targets": [dataclasses.asdict(t) for t in group_targets(plan)]}
    dep = store.create_deployment(name, plan=json.loads(json.dumps(recorded)), templates=[str(template)],
                                  inputs=dict(spec.inputs), status="created")
    return store.get(dep.id)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Any]:
    from provisioner.state import StateStore

    with StateStore.open(tmp_path / "state.db") as opened:
        yield opened


def test_a_hybrid_deployment_gives_the_daemon_its_boards_with_their_power_and_logins(store: Any) -> None:
    inputs = {"ssh_user": "ubuntu", "ssh_key": "/keys/pis", "wn1_address": "198.51.100.11",
              "power_on_command": "plug on {address}", "power_off_command": "plug off {node}"}
    dep = record(store, HYBRID, inputs, "hyb")
    groups = {g.name: g for g in groups_from_deployment(dep)}
    assert list(groups) == ["pis", "wn"]  # the plan's order: the boards (priority 100) before the cloud
    pis, wn = groups["pis"], groups["wn"]
    assert wn.power == {"type": "cloud", "deployment": dep.id} and wn.labels["oscar-deploy/site"] == "cloud"
    assert pis.priority == 100 and pis.priority > wn.priority
    assert (pis.min, pis.max, pis.cpus, pis.memory_mib) == (0, 3, 4.0, 8192)
    assert pis.labels == {"oscar-deploy/group": "pis", "oscar-deploy/role": "edge",
                          "oscar-deploy/arch": "arm64", "oscar-deploy/site": "edge",
                          "kubernetes.io/arch": "arm64"}  # what k3s and the kubelet give its nodes
    assert [(n.name, n.address, n.ssh_user, n.ssh_port, n.ssh_key) for n in pis.nodes] == [
        ("pi1", "198.51.100.11", "ubuntu", 22, "/keys/pis"), ("pi2", "192.0.2.12", "ubuntu", 22, "/keys/pis"),
        ("pi3", "192.0.2.13", "ubuntu", 22, "/keys/pis")]
    assert pis.power == {"type": "command", "power_on": "plug on {address}", "power_off": "plug off {node}",
                         "shutdown": {}}
    manager = manager_for(pis)  # powered without any cloud: the template's commands and an SSH halt
    assert isinstance(manager, CommandPower) and manager.shutdown is not None
    assert manager.shutdown.argv(pis.nodes[0])[-5:-1] == ["-l", "ubuntu", "--", "198.51.100.11"]


def test_an_edge_deployment_leaves_its_front_end_alone_and_uses_its_known_hosts(store: Any) -> None:
    from provisioner.inventory import KNOWN_HOSTS_FILE

    dep = record(store, EDGE, {}, "edge")
    known = store.deployment_dir(dep.id) / KNOWN_HOSTS_FILE
    assert [g.name for g in deployment_groups(store, dep.id)] == ["pis"]
    assert deployment_groups(store, dep.id)[0].power["shutdown"] == {}
    known.write_text("")  # written by configure once it trusted the boards' host keys
    (pis,) = deployment_groups(store, dep.id)
    assert pis.power["shutdown"] == {"known_hosts": str(known)}
    assert "front" not in {n.name for n in pis.nodes}


def test_an_older_record_without_board_settings_still_scales_its_cloud_group(
        store: Any, caplog: pytest.LogCaptureFixture) -> None:
    dep = record(store, HYBRID, {}, "old", older=True)
    plan = dict(dep.plan)
    plan["groups"] = [{k: v for k, v in g.items() if k != "board_specs"} for g in plan["groups"]]
    store.set_plan(dep.id, plan)
    with caplog.at_level(logging.WARNING, logger="elastic.cloudpower"):
        groups = groups_from_deployment(store.get(dep.id))
    assert [g.name for g in groups] == ["wn"]
    assert "group pis: its boards' power settings are not recorded" in caplog.text


def _board_template(board: Board, path: Path, power_on: str, power_off: str) -> Path:
    """An edge-only template: a front-end board that is never contacted here and the board host
    ``board`` as the fleet's one worker, with its SSH login (port 2222, root) and power commands."""
    def host(arch: str) -> dict[str, Any]:
        return {"host": {"properties": {"num_cpus": 2, "mem_size": "4 GiB"}},
                "os": {"properties": {"type": "linux", "distribution": "debian", "version": "12",
                                      "architecture": arch}}}

    template = {
        "tosca_definitions_version": "tosca_simple_yaml_1_0",
        "imports": [{"oscar_deploy_types": str(REPO / "tosca/types/oscar-deploy-types.yaml")}],
        "topology_template": {"node_templates": {
            "front": {"type": "oscar_deploy.nodes.EdgeFrontEnd", "properties": {"address": "192.0.2.10"},
                      "capabilities": host("amd64")},
            board.name: {"type": "oscar_deploy.nodes.EdgeBoard", "capabilities": host("arm64"),
                         "properties": {"address": board.address, "ssh_port": board.port, "ssh_user": "root",
                                        "ssh_key": str(board.key_path), "fleet": "pis",
                                        "power_on": power_on, "power_off": power_off}},
        }},
    }
    path.write_text(yaml.safe_dump(template, sort_keys=False))
    return path


def test_daemon_deployment_halts_a_recorded_board_over_ssh_before_cutting_its_power(
        board: Board, store: Any, kube_api: Any, start_daemon: Any, tmp_path: Path) -> None:  # noqa: F811
    """``daemon --deployment``'s path end to end: the board's login and power commands recorded by the
    plan, the deployment's known_hosts, the daemon powering it on for a pod and off when idle."""
    from provisioner.inventory import KNOWN_HOSTS_FILE

    install_double(board)
    kube = kube_api.power_commands(cpus=2, memory_mib=4096, ready_after_s=20)
    cuts = tmp_path / "cuts.log"
    template = _board_template(board, tmp_path / "edge.yaml",
                               f"{power_command([board], 'poweron')} && {kube['power_on']}",
                               f"{cut_recorder(board, cuts)} && {kube['power_off']}")
    dep = record(store, template, {}, "boards")
    known = store.deployment_dir(dep.id) / KNOWN_HOSTS_FILE
    known.write_text(board.known_hosts.read_text())  # as configure left it: the board's key trusted
    (group,) = deployment_groups(store, dep.id)
    assert group.nodes == (GroupNode(board.name, board.address, ssh_user="root", ssh_port=board.port,
                                     ssh_key=str(board.key_path)),)
    settle = {**group.power, "shutdown": {**group.power["shutdown"], "settle_s": 0}}
    group = dataclasses.replace(group, power=settle)  # no 5 s wait for a kernel that is not there
    start_daemon([group])
    kube_api.create_pod("job", cpus=1.5, runtime_s=50)
    kube_api.wait_until(lambda: kube_api.pods(phase="Succeeded"), timeout=20, what="job done")
    assert kube_api.get("pods", "job", "default")["spec"]["nodeName"] == board.name
    kube_api.wait_until(lambda: state(kube_api, board.name) == "off", timeout=30, what="board off")
    assert not board.is_on() and cuts.read_text().splitlines() == [f"cut {board.name} while off"]
    assert double_calls(board) == ["root shutdown -h now"]


def test_nodes_status_of_a_deployment_lists_its_boards(store: Any, kube_api: Any, tmp_path: Path) -> None:
    dep = record(store, HYBRID, {}, "hyb")
    kubeconfig = str(kube_api.write_kubeconfig(tmp_path / "kc"))
    kube_api.register_node("pi2", cpus=4, memory_mib=8192)
    result = CliRunner().invoke(main, ["--state", str(store.path), "nodes", "--kubeconfig", kubeconfig,
                                       "--deployment", dep.id, "status", "-o", "json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert {"pi1", "pi2", "pi3"} <= set(rows) and rows["pi2"]["group"] == "pis"


def test_a_kubeconfig_that_is_not_yaml_is_bad_input(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("clusters: [\n")
    result = CliRunner().invoke(main, ["nodes", "--kubeconfig", str(kubeconfig), "status"])
    assert result.exit_code == 2, result.output
    assert f"{kubeconfig}: not a usable kubeconfig" in result.output and "Traceback" not in result.output


# ---- [elastic] drain_timeout_s, eviction_retry_s, namespace ------------------------------------------

def test_the_config_file_sets_the_drain_timeout_and_the_daemon_s_namespace(
        kube_api: Any, kube_client: Any, start_daemon: Any, tmp_path: Path) -> None:  # noqa: F811
    from tests.test_daemon import board_group

    cfg = tmp_path / "oscar-deploy.cfg"
    cfg.write_text("[elastic]\ndrain_timeout_s = 1.5\neviction_retry_s = 0.1\nnamespace = oscar-deploy\n")
    configured = settings_from_config(load_settings(str(cfg), env={}).elastic)
    assert (configured.actuator.drain_timeout_s, configured.actuator.eviction_retry_s) == (1.5, 0.1)
    assert configured.namespace == "oscar-deploy"
    settings = dataclasses.replace(FAST, namespace=configured.namespace, actuator=dataclasses.replace(
        FAST.actuator, drain_timeout_s=configured.actuator.drain_timeout_s,
        eviction_retry_s=configured.actuator.eviction_retry_s))
    core = client.CoreV1Api(kube_client)
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "oscar-deploy"}})

    group = board_group(kube_api, "edge", boards=1)
    kube_api.register_node("edge-0", cpus=2, memory_mib=4096)
    kube_api.create_pod("web-0", cpus=0.5, labels={"app": "web"})
    kube_api.wait_until(lambda: kube_api.pods(phase="Running"), timeout=10, what="web running")
    client.PolicyV1Api(kube_client).create_namespaced_pod_disruption_budget("default", {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}})
    start_daemon([group], settings)
    kube_api.wait_until(lambda: state(kube_api, "edge-0") == "used", timeout=10, what="edge-0 used")
    lease = client.CoordinationV1Api(kube_client).read_namespaced_lease(LEASE_NAME, "oscar-deploy")
    assert lease.spec.holder_identity
    kube_api.wait_until(lambda: _configmap(core, STATUS_CONFIGMAP, "oscar-deploy"), timeout=10,
                        what="status ConfigMap in oscar-deploy")
    assert not _configmap(core, STATUS_CONFIGMAP, "kube-system")

    # the operator's request goes to the configured namespace too (OSCAR_DEPLOY_ELASTIC_NAMESPACE)
    kubeconfig = str(kube_api.write_kubeconfig(tmp_path / "kc"))
    result = CliRunner().invoke(main, ["nodes", "--kubeconfig", kubeconfig, "poweroff", "edge-0"],
                                env={"OSCAR_DEPLOY_ELASTIC_NAMESPACE": "oscar-deploy"})
    assert result.exit_code == 0, result.output
    kube_api.wait_until(lambda: state(kube_api, "edge-0") == "powering_off", timeout=10, what="draining")
    began = time.monotonic()
    # the budget holds web-0: after drain_timeout_s (1.5 s) the power-off is given up and undone
    kube_api.wait_until(lambda: state(kube_api, "edge-0") == "used", timeout=10, what="drain given up")
    assert 0.5 < time.monotonic() - began < 6
    assert not kube_api.get("nodes", "edge-0")["spec"].get("unschedulable")
    assert [p["metadata"]["name"] for p in kube_api.pods(phase="Running")] == ["web-0"]
    assert not _configmap(core, REQUESTS_CONFIGMAP, "kube-system")


def _configmap(core: Any, name: str, namespace: str) -> bool:
    try:
        core.read_namespaced_config_map(name, namespace)
    except client.ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def test_the_daemon_defaults_stay_documented_in_the_shipped_config() -> None:
    shipped = load_settings(str(REPO / "oscar-deploy.cfg"), env={}).elastic
    assert (shipped.drain_timeout_s, shipped.eviction_retry_s, shipped.namespace) == \
        (120.0, 2.0, "kube-system")
    daemon = settings_from_config(shipped)
    assert (daemon.actuator.drain_timeout_s, daemon.actuator.eviction_retry_s, daemon.namespace) == \
        (120.0, 2.0, "kube-system")



# ---- RBAC: the elastic role's grants against the calls the daemon makes ------------------------------

Call = tuple[str, str, str, str | None]
"""(API group, resource, verb, object name or None for any)."""
PROVREQ_STATUS: Call = ("autoscaling.x-k8s.io", "provisioningrequests/status", "patch", None)
CLUSTER_CALLS: frozenset[Call] = frozenset({
    ("", "nodes", "list", None), ("", "nodes", "watch", None),  # the nodes informer
    ("", "nodes", "patch", None),  # annotations (state), group label, cordon/uncordon
    ("", "nodes", "delete", None),  # a terminated cloud worker's Node
    ("", "pods", "list", None), ("", "pods", "watch", None),  # the pods informer (all namespaces)
    ("", "pods/eviction", "create", None),  # the drain (PodDisruptionBudgets respected)
    ("", "events", "create", None),  # TriggeredScaleUp/NotTriggerScaleUp on pods (any namespace), ScaleDown
    ("", "podtemplates", "list", None), ("", "podtemplates", "watch", None),  # what ProvisioningRequests name
    ("autoscaling.x-k8s.io", "provisioningrequests", "list", None),
    ("autoscaling.x-k8s.io", "provisioningrequests", "watch", None),
    PROVREQ_STATUS,  # their conditions (tests/test_daemon_provreq.py makes this call)
})
NAMESPACED_CALLS: frozenset[Call] = frozenset({
    ("coordination.k8s.io", "leases", "get", LEASE_NAME), ("coordination.k8s.io", "leases", "create", None),
    ("coordination.k8s.io", "leases", "update", LEASE_NAME),  # leader election (replace)
    ("", "configmaps", "get", STATUS_CONFIGMAP), ("", "configmaps", "create", None),
    ("", "configmaps", "update", STATUS_CONFIGMAP),  # the status ConfigMap (replace)
    ("", "configmaps", "get", REQUESTS_CONFIGMAP),  # the operator's `nodes ...` requests, read and cleared
    ("", "configmaps", "patch", REQUESTS_CONFIGMAP),
})
"""In the daemon's own namespace (``[elastic] namespace``)."""
NODE_LEASE_CALLS: frozenset[Call] = frozenset({
    ("coordination.k8s.io", "leases", "get", None),  # a board's kubelet Lease after a power action
})
"""In ``kube-node-lease``."""
READ_VERBS = frozenset({"get", "list", "watch"})


def _call_of(method: str, target: str) -> tuple[Call, str | None] | None:
    """An API request as RBAC sees it: (group, resource[/subresource], verb, name), and its namespace."""
    url = urlsplit(target)
    parts = [p for p in url.path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return None  # discovery, /harness/v1 (the test environment), health
    namespace = None
    if rest[:1] == ["namespaces"] and len(rest) > 2:
        namespace, rest = rest[1], rest[2:]
    resource, name = rest[0], (rest[1] if len(rest) > 1 else None)
    if len(rest) > 2:
        resource = f"{resource}/{rest[2]}"
    watch = parse_qs(url.query).get("watch", [""])[-1].lower() in ("true", "1")
    verb = {"GET": "get" if name else ("watch" if watch else "list"), "POST": "create", "PUT": "update",
            "PATCH": "patch", "DELETE": "delete" if name else "deletecollection"}[method]
    return (group, resource, verb, None if verb == "create" else name), namespace


def _allows(rules: list[dict[str, Any]], call: Call) -> bool:
    group, resource, verb, name = call
    for rule in rules:
        names = rule.get("resourceNames")
        if (group in rule.get("apiGroups", []) and resource in rule.get("resources", [])
                and verb in rule.get("verbs", [])
                and (not names or (name is not None and name in names))):
            return True
    return False


@pytest.fixture(scope="module")
def elastic_rbac(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The elastic role's manifests rendered as ``test_playbooks`` renders them (ansible's template
    module, the roles' defaults): its ClusterRole and Role (with their bindings' subjects) and the
    namespace the daemon's Deployment runs it with."""
    from tests.test_playbooks import BASE, _render

    docs = _render(tmp_path_factory.mktemp("rbac"), dict(BASE))["elastic.yaml"]
    kinds: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        kinds.setdefault(doc["kind"], []).append(doc)
    (account,) = kinds["ServiceAccount"]
    me = {"kind": "ServiceAccount", "name": account["metadata"]["name"],
          "namespace": account["metadata"]["namespace"]}

    def bound(binding_kind: str, role_kind: str) -> list[dict[str, Any]]:
        names = {b["roleRef"]["name"] for b in kinds.get(binding_kind, [])
                 if b["roleRef"]["kind"] == role_kind
                 and any({k: s.get(k) for k in me} == me for s in b.get("subjects", []))}
        return [r for r in kinds.get(role_kind, []) if r["metadata"]["name"] in names]

    (deployment,) = kinds["Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    return {
        "cluster_rules": [r for role in bound("ClusterRoleBinding", "ClusterRole") for r in role["rules"]],
        "roles": {r["metadata"]["namespace"]: r["rules"] for r in bound("RoleBinding", "Role")},
        # what `[elastic] namespace` is in the container: its environment, else the default
        "daemon_namespace": env.get("OSCAR_DEPLOY_ELASTIC_NAMESPACE") or ElasticSettings().namespace,
    }


def _missing(rbac: dict[str, Any]) -> list[str]:
    missing = [f"cluster-wide {verb} {resource}" for group, resource, verb, name in sorted(
        CLUSTER_CALLS, key=str) if not _allows(rbac["cluster_rules"], (group, resource, verb, name))]
    namespace = rbac["daemon_namespace"]
    namespaced = rbac["roles"].get(namespace, []) + rbac["cluster_rules"]
    for group, resource, verb, name in sorted(NAMESPACED_CALLS, key=str):
        if not _allows(namespaced, (group, resource, verb, name)):
            missing.append(f"{verb} {resource}{'/' + name if name else ''} in namespace {namespace}")
    leases = rbac["roles"].get("kube-node-lease", []) + rbac["cluster_rules"]
    missing += [f"{verb} {resource} in namespace kube-node-lease" for group, resource, verb, name
                in sorted(NODE_LEASE_CALLS, key=str) if not _allows(leases, (group, resource, verb, name))]
    return missing


def test_the_elastic_role_grants_every_call_the_daemon_makes(elastic_rbac: dict[str, Any]) -> None:
    assert _missing(elastic_rbac) == []


def test_the_elastic_role_grants_nothing_cluster_wide_beyond_the_daemon_s_calls(
        elastic_rbac: dict[str, Any]) -> None:
    rules = elastic_rbac["cluster_rules"] + [r for rs in elastic_rbac["roles"].values() for r in rs]
    assert rules, "no rules rendered"
    for rule in rules:
        for key in ("apiGroups", "resources", "verbs", "resourceNames"):
            assert "*" not in rule.get(key, []), f"wildcard {key} in {rule}"
    used = {(g, r, v) for g, r, v, _ in CLUSTER_CALLS}
    extra = sorted(f"{verb} {resource}" for rule in elastic_rbac["cluster_rules"]
                   for group in rule["apiGroups"] for resource in rule["resources"] for verb in rule["verbs"]
                   if (group, resource, verb) not in used
                   # a get of an object the daemon already lists exposes nothing more
                   and not (verb == "get" and (group, resource, "list") in used)
                   # events.k8s.io is the same Event object as core's
                   and not (group == "events.k8s.io" and ("", resource, verb) in used))
    assert extra == []


def test_the_declared_calls_are_the_ones_the_daemon_makes(
        kube_api: Any, ec2_emulator: Any, cloud: Any, start_daemon: Any, tmp_path: Path,  # noqa: F811
        caplog: pytest.LogCaptureFixture) -> None:
    """The lists above are what the daemon really asks the API server for: a run that powers a cloud
    worker on, takes an operator's poweroff request, evicts the worker's pod, terminates the worker and
    deletes its Node makes every call in them and no other."""
    from tests.test_daemon_cloud import running_instances

    group, power = cloud
    with caplog.at_level(logging.DEBUG, logger="tests.harness.kube.api"):
        daemon = start_daemon([group], managers={"cloud": power})
        kube_api.create_pod("job", cpus=1.5, runtime_s=100000)
        kube_api.wait_until(lambda: kube_api.pods(phase="Running"), timeout=30, what="job running")
        worker = kube_api.get("pods", "job", "default")["spec"]["nodeName"]
        kube_api.wait_until(lambda: state(kube_api, worker) == "used", timeout=10, what="worker used")
        kubeconfig = str(kube_api.write_kubeconfig(tmp_path / "kc"))
        result = CliRunner().invoke(main, ["nodes", "--kubeconfig", kubeconfig, "poweroff", worker])
        assert result.exit_code == 0, result.output
        kube_api.wait_until(lambda: not kube_api.pods(), timeout=20, what="job evicted")
        kube_api.wait_until(lambda: not running_instances(ec2_emulator), timeout=30, what="worker terminated")
        kube_api.wait_until(lambda: not any(n["metadata"]["name"] == worker for n in kube_api.nodes()),
                            timeout=30, what="worker Node deleted")
        time.sleep(1.0)  # a status write and a Lease renewal after the last change
        daemon.stop()
    seen: set[Call] = set()
    for record in caplog.records:
        found = re.search(r'"(GET|POST|PUT|PATCH|DELETE) (\S+) HTTP', record.getMessage())
        call = _call_of(found[1], found[2]) if record.name == "tests.harness.kube.api" and found else None
        if call is None:
            continue
        (group_, resource, verb, name), namespace = call
        if namespace == daemon.settings.namespace and resource in ("leases", "configmaps"):
            seen.add((group_, resource, verb, name))
        else:
            seen.add((group_, resource, verb, None))
    assert seen == (CLUSTER_CALLS | NAMESPACED_CALLS) - {PROVREQ_STATUS}  # no ProvisioningRequest here
