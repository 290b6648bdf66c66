"""Inventories of a deployment: what Ansible sees through INI, YAML and the dynamic script is the same,
and real ``ansible -m ping`` reaches real board hosts through each (a proxied board through the
front-end), as ``oscar-deploy ssh`` does. The record alone is enough: a deployment whose
templates moved, made from a template with a URL import served by ``--import-path``, still gives its
inventory and configuration variables, and nothing tries the network."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioner.config import Settings
from provisioner.configure import configuration_vars, run_inputs
from provisioner.engine.targets import recorded_components
from provisioner.inventory import Inventory, build_hosts, dynamic_list, render_ini, ssh_common_args
from provisioner.record import migrate_plan_document
from provisioner.spec import ClusterSpec, ComponentSpec
from provisioner.state import Node, StateStore
from tests.harness.boards import Board
from tests.test_configure_helpers import allow_sudo, board_template, cli, record_board_deployment, run_tool


def _node(name: str, group: str, public: list[str], private: list[str] | None = None) -> Node:
    addresses = {"public": public, "private": private or []}
    return Node("abcd1234", name, group, "aws", "eu-west-1", "i-1", addresses, "running", "", "")


HYBRID_PLAN: dict[str, Any] = {
    "groups": [
        {"name": "front", "role": "front-end", "provider": "aws", "arch": "amd64"},
        {"name": "pis", "role": "edge", "provider": "fleet", "arch": "arm64"},
        {"name": "wn", "role": "worker", "provider": "aws", "arch": "amd64"},
    ],
    "targets": [
        {"name": "front", "boards": []},
        {"name": "pis", "boards": [
            {"name": "pi1", "address": "192.0.2.11", "port": 22, "user": "pi"},
            {"name": "pi2", "address": "10.0.0.12", "port": 2200, "user": "pi", "proxy_jump": True},
        ], "labels": {"oscar-deploy/site": "edge"}, "taints": ["edge=true:NoSchedule"]},
        {"name": "wn", "boards": []},
    ],
}


HYBRID_RECORD = migrate_plan_document(HYBRID_PLAN)  # an older record's shape, read by the one reader


def test_recorded_plan_gives_groups_by_role_and_arch_and_leaves_cloud_workers_out() -> None:
    nodes = [_node("oscar-deploy-abcd1234-front-1", "front", ["198.51.100.7"], ["10.0.0.5"]),
             _node("oscar-deploy-abcd1234-wn-1", "wn", [], ["10.0.0.9"])]
    hosts = build_hosts(HYBRID_RECORD, nodes, None, cloud_user="ubuntu", cloud_key="/keys/id")
    inv = Inventory(hosts, "/state/known_hosts")
    doc = dynamic_list(inv)
    front = "oscar-deploy-abcd1234-front-1"
    assert doc["k3s_server"]["hosts"] == doc["front_end"]["hosts"] == [front]
    assert doc["k3s_agent"]["hosts"] == doc["edge"]["hosts"] == ["pi1", "pi2"]
    assert doc["arch_arm64"]["hosts"] == ["pi1", "pi2"] and doc["arch_amd64"]["hosts"] == [front]
    assert doc["group_pis"]["hosts"] == ["pi1", "pi2"] and doc["workers"]["hosts"] == []
    assert "oscar-deploy-abcd1234-wn-1" not in doc["_meta"]["hostvars"]  # joins by cloud-init, no SSH
    fv = doc["_meta"]["hostvars"][front]
    assert (fv["ansible_host"], fv["ansible_user"], fv["ansible_ssh_private_key_file"]) == \
        ("198.51.100.7", "ubuntu", "/keys/id")
    pi2 = doc["_meta"]["hostvars"]["pi2"]
    assert (pi2["ansible_host"], pi2["ansible_port"], pi2["ansible_become"]) == ("10.0.0.12", 2200, True)
    assert pi2["oscar_node_labels"] == {"oscar-deploy/site": "edge"}
    assert pi2["oscar_node_taints"] == ["edge=true:NoSchedule"]
    # Through the front-end, with the deployment's key and known_hosts; pi1 is reached directly.
    assert "ProxyCommand=" in pi2["ansible_ssh_common_args"]
    proxy = pi2["ansible_ssh_common_args"]
    assert "-i /keys/id" in proxy and "-l ubuntu -- 198.51.100.7" in proxy
    assert "ProxyCommand" not in doc["_meta"]["hostvars"]["pi1"]["ansible_ssh_common_args"]
    for hv in doc["_meta"]["hostvars"].values():
        assert "UserKnownHostsFile=/state/known_hosts" in hv["ansible_ssh_common_args"]
        assert "StrictHostKeyChecking=accept-new" in hv["ansible_ssh_common_args"]
        assert hv["ansible_ssh_args"] == "-o ControlMaster=no -o ControlPath=none"


def test_a_board_behind_the_front_end_needs_a_reachable_front_end() -> None:
    from provisioner.errors import BadInput

    with pytest.raises(BadInput, match=r"pi2 .*proxy_jump"):
        build_hosts(HYBRID_RECORD, [], None, cloud_user="ubuntu", cloud_key=None)  # front not running yet


def test_ini_quotes_the_proxy_command_so_ansible_reads_it_back(tmp_path: Path) -> None:
    nodes = [_node("oscar-deploy-abcd1234-front-1", "front", ["198.51.100.7"])]
    inv = Inventory(build_hosts(HYBRID_RECORD, nodes, None, cloud_user="ubuntu", cloud_key="/k y/id"),
                    "/state dir/known_hosts")
    (tmp_path / "hosts.ini").write_text(render_ini(inv))
    result = run_tool("ansible-inventory", "-i", str(tmp_path / "hosts.ini"), "--host", "pi2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ansible_ssh_common_args"] == ssh_common_args(inv.host("pi2"),
                                                                                     inv.known_hosts)


# --- against real board hosts ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def board_deployment(board_hosts: list[Board], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """board-1 is the front-end (root), board-2 the edge board pi1 (user pi, sudo), board-3 pi2 (root),
    reached through the front-end."""
    tmp = tmp_path_factory.mktemp("inv")
    allow_sudo(board_hosts)
    template = board_template(board_hosts, tmp / "boards.yaml", users=("root", "pi", "root"))
    state = tmp / "state" / "state.db"
    with StateStore.open(state) as store:
        dep = record_board_deployment(store, template)
    return {"state": state, "id": dep.id, "tmp": tmp, "fleet": board_hosts}


def _parsed(tool_stdout: str) -> dict[str, Any]:
    """``ansible-inventory --list`` minus the keys the source adds (``all``'s children order aside)."""
    doc = json.loads(tool_stdout)
    groups = {g: sorted(v.get("hosts", [])) for g, v in doc.items() if g not in ("_meta", "all")}
    return {"hostvars": doc["_meta"]["hostvars"], "groups": {g: h for g, h in groups.items() if h}}


def test_static_and_dynamic_inventories_read_the_same_through_ansible_inventory(
        board_deployment: dict[str, Any]) -> None:
    d = board_deployment
    tmp: Path = d["tmp"]
    ini = cli(d["state"], "inventory", "edge-test", cwd=tmp)
    yml = cli(d["state"], "inventory", "edge-test", "--format", "yaml", cwd=tmp)
    script = cli(d["state"], "inventory", d["id"], "--script", str(tmp / "inventory.py"), cwd=tmp)
    assert ini.returncode == yml.returncode == script.returncode == 0, ini.stderr + yml.stderr + script.stderr
    assert os.stat(tmp / "inventory.py").st_mode & stat.S_IXUSR
    (tmp / "hosts.ini").write_text(ini.stdout)
    (tmp / "hosts.yml").write_text(yml.stdout)
    seen = []
    for source in ("hosts.ini", "hosts.yml", "inventory.py"):
        result = run_tool("ansible-inventory", "-i", str(tmp / source), "--list", cwd=tmp)
        assert result.returncode == 0 and "WARNING" not in result.stderr, (source, result.stderr)
        seen.append(_parsed(result.stdout))
    assert seen[0] == seen[1] == seen[2]
    inv = seen[0]
    assert inv["groups"]["k3s_server"] == ["front"] and inv["groups"]["k3s_agent"] == ["pi1", "pi2"]
    assert inv["groups"]["arch_arm64"] == ["pi1", "pi2"] and inv["groups"]["group_pis"] == ["pi1", "pi2"]
    board2 = d["fleet"][1]
    pi1 = inv["hostvars"]["pi1"]
    assert (pi1["ansible_host"], pi1["ansible_port"], pi1["ansible_user"]) == (board2.address, 2222, "pi")
    assert pi1["ansible_ssh_private_key_file"] == str(board2.key_path)
    assert pi1["oscar_node_taints"] == ["oscar-deploy/edge=true:PreferNoSchedule"]
    # The protocol answers by hand too.
    host = cli(d["state"], "inventory", "edge-test", "--host", "pi2", cwd=tmp)
    assert json.loads(host.stdout)["oscar_node_group"] == "pis"
    bad = cli(d["state"], "inventory", "edge-test", "--host", "nope", cwd=tmp)
    assert bad.returncode == 1 and "no host 'nope'" in bad.stderr and "Traceback" not in bad.stderr


def test_ansible_ping_reaches_every_board_through_the_script_and_the_proxied_one_via_the_front_end(
        board_deployment: dict[str, Any]) -> None:
    d = board_deployment
    tmp: Path = d["tmp"]
    script = tmp / "ping-inventory.py"
    assert cli(d["state"], "inventory", "edge-test", "--script", str(script), cwd=tmp).returncode == 0
    front_log = d["fleet"][0].root_dir / "board.log"
    logins_before = front_log.read_text().count("Accepted publickey")
    through = run_tool("ansible", "-i", str(script), "pi2", "-m", "ping", cwd=tmp)
    assert through.returncode == 0 and "pi2 | SUCCESS" in through.stdout, through.stdout + through.stderr
    # pi2 was reached through an `ssh -W` session on the front-end board: the front-end saw a login.
    assert front_log.read_text().count("Accepted publickey") > logins_before
    result = run_tool("ansible", "-i", str(script), "all", "-m", "command", "-a", "id -un", "--become",
                      cwd=tmp)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("front", "pi1", "pi2"):
        assert f"{name} | CHANGED | rc=0 >>\nroot" in result.stdout  # pi1 logs in as pi, sudo to root
    # Host keys were trusted on first use into the deployment's own known_hosts, checked from then on.
    known = (d["state"].parent / "deployments" / d["id"] / "known_hosts").read_text().splitlines()
    board_keys = {" ".join(line.split()[1:3]) for line in d["fleet"][0].known_hosts.read_text().splitlines()}
    assert {" ".join(line.split()[1:3]) for line in known} == board_keys


def test_an_unreachable_board_is_named(board_deployment: dict[str, Any]) -> None:
    d = board_deployment
    tmp: Path = d["tmp"]
    board = d["fleet"][1]
    (tmp / "hosts.ini").write_text(cli(d["state"], "inventory", "edge-test", cwd=tmp).stdout)
    board.power_off()
    try:
        result = run_tool("ansible", "-i", str(tmp / "hosts.ini"), "all", "-m", "ping", cwd=tmp)
    finally:
        board.power_on()
    assert result.returncode != 0
    assert "pi1 | UNREACHABLE" in result.stdout and "front | SUCCESS" in result.stdout, result.stdout


def test_ssh_command_logs_into_a_node_like_ansible(board_deployment: dict[str, Any]) -> None:
    d = board_deployment
    result = cli(d["state"], "ssh", "edge-test", "pi1", "--", "id", "-un", ";", "hostname", cwd=d["tmp"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["pi", d["fleet"][1].hostname]
    missing = cli(d["state"], "ssh", "edge-test", "nope", "--", "true", cwd=d["tmp"])
    assert missing.returncode == 2 and "no node 'nope'" in missing.stderr  # a wrong argument: bad input


# --- the record is enough: no template, no network -------------------------------------------------

IM_STYLE = Path(__file__).resolve().parent / "golden" / "im-style"
IM_URL = "https://example.invalid/tosca/im_types.yaml"


class Listener:
    """A TCP port on 127.0.0.1 that counts the connections made to it (and answers none)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    try:
        yield server
    finally:
        server.close()


def _oscar_deploy(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    from tests.test_cli_contract import installed_command

    return subprocess.run([*installed_command(), *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=180, stdin=subprocess.DEVNULL, check=False)


def test_a_deployment_whose_templates_moved_still_gives_inventory_and_variables_without_the_network(
        tmp_path: Path, ec2_emulator: Any, listener: Listener) -> None:
    """Created from templates whose URL import points at a listening port on 127.0.0.1 and is served
    by --import-path; then inventory and the configuration's variables, before and after the templates
    move away, and for an older record that lacks the component properties: not one connection."""
    from tests.test_cli_contract import clean_env

    url = f"http://127.0.0.1:{listener.port}/tosca/im_types.yaml"
    templates, types = tmp_path / "templates", tmp_path / "types"
    templates.mkdir()
    types.mkdir()
    for name in ("parent.yaml", "child.yaml"):
        (templates / name).write_text((IM_STYLE / name).read_text().replace(IM_URL, url))
    shutil.copy(IM_STYLE / "im_types.yaml", types / "im_types.yaml")
    auth = tmp_path / "auth.dat"
    auth.write_text(f"id = ec2; type = EC2; username = AKIDINVENTORY001; password = inv-s3cret-Qx7; "
                    f"region = eu-west-1; host = {ec2_emulator.endpoint}\n")
    auth.chmod(0o600)
    (tmp_path / "home").mkdir()
    env = clean_env(tmp_path / "home", tmp_path / "cache")
    state = tmp_path / "state" / "state.db"
    created = _oscar_deploy(env, tmp_path, "--state", str(state), "create", str(templates / "parent.yaml"),
                            str(templates / "child.yaml"), "--import-path", str(types), "-i", "wn_num=1",
                            "--allow-open-admin", "--name", "urlimp", "--auth", str(auth), "--no-configure",
                            "--yes")
    assert created.returncode == 0, created.stderr
    assert listener.connections == 0  # --import-path served the import

    def views() -> tuple[dict[str, Any], str, dict[str, Any], str]:
        listed = _oscar_deploy(env, tmp_path, "--state", str(state), "inventory", "urlimp", "--list")
        ini = _oscar_deploy(env, tmp_path, "--state", str(state), "inventory", "urlimp")
        assert listed.returncode == ini.returncode == 0, listed.stderr + ini.stderr
        with StateStore.open(state) as store:
            _, variables = run_inputs(store, store.get("urlimp"), Settings())
        return json.loads(listed.stdout), ini.stdout, variables, listed.stderr + ini.stderr

    listed, ini, variables, said = views()
    assert listener.connections == 0, "a command tried to fetch the template's URL import"
    assert "read again" not in said
    with StateStore.open(state) as store:
        dep = store.get("urlimp")
        secrets = store.secrets(dep.id)
        front = next(n for n in store.nodes(dep.id) if n.group == "front")
    front_address = front.addresses["public"][0]
    assert listed["k3s_server"]["hosts"] == [front.name] and listed["workers"]["hosts"] == []
    assert listed["_meta"]["hostvars"][front.name]["ansible_host"] == front_address
    assert f"{front.name} ansible_host={front_address}" in ini
    assert variables["oscar_components"] == ["elastic", "k3s"]  # the child's elastic, from the record
    assert variables["k3s_token"] == secrets["k3s_token"]
    assert variables["k3s_server_url"] == f"https://{front_address}:6443"
    assert [g["name"] for g in variables["elastic_groups"]] == ["wn"]

    templates.rename(tmp_path / "moved")  # the templates are gone from where they were recorded
    assert views()[:3] == (listed, ini, variables)
    assert listener.connections == 0

    # A record from before the plan held the component properties: its templates (back in place) are
    # read again offline, with a warning; the URL import is not fetched.
    (tmp_path / "moved").rename(templates)
    with StateStore.open(state) as store:
        dep = store.get("urlimp")
        store.set_plan(dep.id, {**dep.plan, "component_properties": None})  # as migrated from one
    old_listed, _, old_variables, said = views()
    assert listener.connections == 0, "the fallback for an older record tried the network"
    assert "offline" in said and "no import is fetched" in said
    assert old_listed == listed
    assert old_variables["k3s_token"] == secrets["k3s_token"]


def test_component_properties_come_from_the_record_and_a_literal_secret_is_kept_out_of_it(
        tmp_path: Path) -> None:
    spec = ClusterSpec(sources=("t.yaml",), components=(
        ComponentSpec("minio", {"access_key": "site-ak", "secret_key": "Literal-S3cret-Value-9",
                                "api_port": 31000}),
        ComponentSpec("oscar", {"username": "ops", "password": "{secret.oscar_password}",
                                "oidc_issuer": "https://issuer.example"}),
    ))
    components, literals = recorded_components(spec)
    assert literals == {"template_minio_secret_key": "Literal-S3cret-Value-9"}
    assert "Literal-S3cret" not in json.dumps(components)  # `show` prints the plan: no secret in it
    with StateStore.open(tmp_path / "state.db") as store:
        dep = store.create_deployment("props", plan={"groups": [], "spec_components": components})
    secrets = {**literals, "oscar_password": "generated-pw-0123456789"}
    variables = configuration_vars(dep, secrets, Inventory((), "/k"), tmp_path)
    assert (variables["minio_access_key"], variables["minio_secret_key"], variables["minio_api_port"]) == \
        ("site-ak", "Literal-S3cret-Value-9", 31000)
    assert (variables["oscar_username"], variables["oscar_password"]) == ("ops", "generated-pw-0123456789")
    assert variables["oscar_oidc_issuer"] == "https://issuer.example"
    assert variables["oscar_components"] == ["k3s", "minio", "oscar"]


@pytest.mark.parametrize("where", ["/proc/x/inv", "{dir}", "{dir}/missing/inv", "/proc/self/inv"],
                         ids=["proc", "a directory", "missing parent", "proc self"])
def test_inventory_script_to_a_path_that_cannot_be_written_is_bad_input(where: str, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    with StateStore.open(state) as store:
        store.create_deployment("scripted", plan=HYBRID_PLAN)
    target = where.format(dir=tmp_path / "out")
    (tmp_path / "out").mkdir()
    before = sorted(p.name for p in (tmp_path / "out").iterdir())
    result = cli(state, "inventory", "scripted", "--script", target, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert target in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == before
    with contextlib.suppress(OSError):
        assert not Path(target).is_file()
