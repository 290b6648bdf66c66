"""What a new user hits on the command line: errors in our words with exit 2 for bad input, global
options wherever the user puts them, help instead of click's "Missing command", true plan text.

Each case is what the tool printed before (click's or a library's wording, exit 0 or 1) and what it
prints now; the commands run in process through click's runner, as the shell would call them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from provisioner.cli import hoist_global_options, main
from provisioner.config import load_settings
from provisioner.errors import ConfigError
from tests.test_daemon import start_daemon  # noqa: F401 (a fixture)


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


# --- numbers in our words --------------------------------------------------------------------------

@pytest.mark.parametrize(("count", "said"), [("-1", "COUNT must be 0 or more, not -1"),
                                             ("two", "COUNT must be a whole number of nodes"),
                                             ("1.5", "COUNT must be a whole number of nodes")])
def test_scale_count_that_is_no_node_count_is_bad_input_in_our_words(tmp_path: Path, count: str,
                                                                     said: str) -> None:
    done = invoke("--state", str(tmp_path / "state.db"), "scale", "demo", "wn", count)
    assert done.exit_code == 2, done.output
    assert said in done.stderr and "No such option" not in done.stderr and "integer range" not in done.stderr


# --- global options after the command ---------------------------------------------------------------

def test_global_options_work_after_the_command(tmp_path: Path) -> None:
    """`list --state X` used to say `No such option: --state`; now the state file at X is read."""
    state = tmp_path / "here" / "state.db"
    done = invoke("list", "--state", str(state), "-o", "json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == [] and state.is_file()
    quiet = invoke("list", "-o", "json", f"--state={state}", "-q")
    assert quiet.exit_code == 0 and json.loads(quiet.stdout) == []


def test_only_what_precedes_a_double_dash_is_hoisted_and_ssh_commands_keep_their_options() -> None:
    assert hoist_global_options(["show", "demo", "-v", "--state", "s.db"]) == (
        ["-v", "--state", "s.db", "show", "demo"], True)
    assert hoist_global_options(["ssh", "demo", "front", "--", "uname", "-v"]) == (
        ["ssh", "demo", "front", "--", "uname", "-v"], True)
    assert hoist_global_options(["ssh", "demo", "front", "ls", "-q"]) == (
        ["ssh", "demo", "front", "ls", "-q"], True)
    assert hoist_global_options(["-vv"]) == (["-vv"], False)


@pytest.mark.parametrize("args", [["-v"], ["-q"], ["--state", "x.db"]])
def test_global_options_with_no_command_show_the_help(args: list[str]) -> None:
    """`oscar-deploy -v` used to say `Missing command` (exit 2); a bare `oscar-deploy` shows help."""
    done = invoke(*args)
    assert done.exit_code == 0, done.output
    assert "Usage:" in done.stdout and "Commands:" in done.stdout
    assert "Missing command" not in done.output


def test_an_unusable_state_path_is_bad_input(tmp_path: Path) -> None:
    """`--state /proc/nope/state.db` exited 1 (a run-time failure); a path the user gave is bad input."""
    done = invoke("--state", "/proc/nope/state.db", "list")
    assert done.exit_code == 2, done.output
    assert "/proc/nope/state.db" in done.stderr and "--state" in done.stderr


# --- a configuration file in our words ---------------------------------------------------------------

@pytest.mark.parametrize(("text", "said"), [
    ("state = /tmp/x\n", "line 1: 'state = /tmp/x' comes before any section header"),
    ("[general]\nstate\n", "cannot parse line 2: 'state'"),
    ("[general]\nstate = a\nstate = b\n", "line 3: key 'state' in [general] is given twice"),
])
def test_a_config_file_configparser_cannot_read_is_named_in_our_words(tmp_path: Path, text: str,
                                                                       said: str) -> None:
    path = tmp_path / "oscar-deploy.cfg"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_settings(str(path))
    assert said in str(raised.value) and "PosixPath" not in str(raised.value)
    done = invoke("--config", str(path), "list")
    assert done.exit_code == 2 and said in done.stderr and "PosixPath" not in done.stderr


# --- templates: the inputs the user typed, one message per typo ---------------------------------------

def test_a_count_above_the_max_names_the_inputs_the_user_typed() -> None:
    done = invoke("validate", "oscar-aws", "-i", "wn_num=7")
    assert done.exit_code == 2
    assert "count (7, input wn_num) is greater than max_instances (4, input max_wn_num)" in done.stderr
    assert "raise max_wn_num or lower wn_num" in done.stderr
    low = invoke("validate", "oscar-aws", "-i", "min_wn_num=7")
    assert low.exit_code == 2 and "min_instances (7, input min_wn_num)" in low.stderr


def test_a_typo_in_a_node_type_is_one_message_naming_the_type(tmp_path: Path) -> None:
    from provisioner.resources import templates_dir

    text = (templates_dir() / "oscar-aws.yaml").read_text()
    assert "oscar_deploy.nodes.FrontEnd" in text
    broken = tmp_path / "typo.yaml"
    broken.write_text(text.replace("oscar_deploy.nodes.FrontEnd", "oscar_deploy.nodes.FrontEdn"))
    done = invoke("validate", str(broken))
    assert done.exit_code == 2
    assert "type 'oscar_deploy.nodes.FrontEdn' is not defined" in done.stderr
    assert "unknown capability" not in done.stderr and "unknown property" not in done.stderr
    assert "more)" not in done.stderr


def test_an_auth_file_type_named_otherwise_is_corrected(tmp_path: Path) -> None:
    auth = tmp_path / "auth.dat"
    auth.write_text("id = mine; type = AWS; username = AKIDEXAMPLE; password = s3cret-Example-9\n")
    auth.chmod(0o600)
    done = invoke("--state", str(tmp_path / "state.db"), "create", "oscar-aws", "-i",
                  "admin_cidr=203.0.113.7/32", "--auth", str(auth), "--yes")
    assert done.exit_code == 2, done.output
    assert "line 1 says type = AWS: the IM auth file calls it type = EC2" in done.stderr
    assert not (tmp_path / "state.db").exists() or "mine" not in (tmp_path / "state.db").read_bytes().decode(
        "latin-1")


def test_create_help_lists_the_shipped_templates() -> None:
    done = invoke("create", "--help")
    assert done.exit_code == 0
    for name in ("oscar-aws", "oscar-openstack", "oscar-edge", "oscar-hybrid"):
        assert name in done.stdout


# --- plans that say what is true -----------------------------------------------------------------------

def test_an_edge_plan_neither_warns_of_nor_lists_security_group_rules() -> None:
    done = invoke("plan", "oscar-edge")
    assert done.exit_code == 0, done.output
    assert "0.0.0.0/0" not in done.output and "Security rules" not in done.stdout
    assert "No cloud security group" in done.stdout
    assert "$0.0000/h" not in done.stdout and "no cloud machines" in done.stdout


def test_an_openstack_plan_says_its_price_is_unknown() -> None:
    done = invoke("plan", "oscar-openstack", "-i", "admin_cidr=203.0.113.7/32")
    assert done.exit_code == 0, done.output
    assert "$0.0000/h" not in done.stdout and "Estimated cost: unknown" in done.stdout


# --- nodes: a request the daemon would ignore is refused ------------------------------------------------

def test_a_request_for_a_node_in_no_group_is_refused(kube_api: Any, start_daemon: Any,  # noqa: F811
                                                      tmp_path: Path) -> None:
    """`nodes poweroff nosuch` answered "requested" with exit 0 while the leader ignores it. The
    daemon publishes its groups' boards with its status, so a board that never registered is known
    without a groups file; before any daemon has published, the request goes through with a warning."""
    from tests.test_daemon import board_group

    kube_api.register_node("stranger", cpus=2, memory_mib=4096)
    kubeconfig = kube_api.write_kubeconfig(tmp_path / "kubeconfig")
    early = invoke("nodes", "--kubeconfig", str(kubeconfig), "disable", "edge-1")
    assert early.exit_code == 0 and "cannot be checked" in early.stderr, early.output
    start_daemon([board_group(kube_api, "edge", boards=2)])

    def published() -> bool:
        try:
            status = kube_api.get("configmaps", "oscar-deploy-elastic-status", namespace="kube-system")
        except Exception:  # not written yet
            return False
        return "groups" in (status.get("data") or {})

    kube_api.wait_until(published, timeout=10, what="the daemon's status")
    for node in ("nosuch", "stranger"):
        done = invoke("nodes", "--kubeconfig", str(kubeconfig), "poweroff", node)
        assert done.exit_code == 2, done.output
        assert f"{node!r} is in no node group" in done.stderr and "edge-0" in done.stderr
    ok = invoke("nodes", "--kubeconfig", str(kubeconfig), "poweron", "edge-0")  # never registered
    assert ok.exit_code == 0, ok.output
    groups = tmp_path / "groups.yaml"
    groups.write_text("- name: pis\n  cpus: 4\n  memory_mib: 8192\n"
                      "  nodes: [{name: pi9, address: 192.0.2.9}]\n"
                      "  power: {type: command, power_on: 'true {node}', power_off: 'true {node}'}\n")
    board = invoke("nodes", "--kubeconfig", str(kubeconfig), "--groups", str(groups), "poweron", "pi9")
    assert board.exit_code == 0, board.output


def test_verbose_adds_our_detail_not_the_template_parsers_entry_point_lines() -> None:
    import subprocess
    import sys

    beside = Path(sys.executable).parent / "oscar-deploy"
    done = subprocess.run([str(beside), "-v", "plan", "oscar-aws", "-i", "admin_cidr=203.0.113.7/32", "-o",
                           "json"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "found extension" not in done.stderr and "python-entrypoints" not in done.stderr, done.stderr
    json.loads(done.stdout)


def test_simulate_json_always_has_runs_and_keeps_one_policys_figures_on_top(tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text("submit_s,cpus,memory_mib,duration_s\n0,1,512,60\n10,1,512,60\n")
    groups = tmp_path / "groups.yaml"
    groups.write_text("- {name: cloud, cpus: 2, memory_mib: 4096, max: 2, boot_s: 30, cost_per_hour: 0.1}\n")
    one = invoke("simulate", str(trace), "--groups", str(groups), "--policy", "clues", "-o", "json")
    assert one.exit_code == 0, one.output
    doc = json.loads(one.stdout)
    assert [r["policy"] for r in doc["runs"]] == ["clues"] and doc["policy"] == "clues"
    assert doc["node_hours"] == doc["runs"][0]["node_hours"] and doc["jobs"] == 2
    two = invoke("simulate", str(trace), "--groups", str(groups), "--policy", "clues", "--policy", "static",
                 "-o", "json")
    assert [r["policy"] for r in json.loads(two.stdout)["runs"]] == ["clues", "static"]


# --- a cloud endpoint that cannot answer: one line, at once, in our words --------------------------------

def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _create_against(tmp_path: Path, host: str) -> Result:
    auth = tmp_path / "auth.dat"
    auth.write_text(f"id = ec2; type = EC2; username = AKIDEXAMPLE00; password = s3cret-Example-9x; "
                    f"region = eu-west-1; host = {host}\n")
    auth.chmod(0o600)
    return invoke("-v", "--state", str(tmp_path / "state.db"), "create", "oscar-aws", "-i",
                  "admin_cidr=203.0.113.7/32", "--auth", str(auth), "--yes", "--no-configure", "--name", "t")


def test_a_refused_connection_fails_at_once_naming_the_endpoint(tmp_path: Path) -> None:
    """It was taken for throttling: eight attempts over ~39 s, then urllib3's repr of the error."""
    port = _closed_port()
    done = _create_against(tmp_path, f"http://127.0.0.1:{port}")
    assert done.exit_code == 1, done.output
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and f"cannot connect to 127.0.0.1:{port}: connection refused" in last
    assert "failed, retrying in" not in done.stderr and "HTTPConnectionPool" not in last
    assert " object at 0x" not in last
    # nothing that creates was sent: no `failed` deployment is left behind to clean up
    listed = invoke("--state", str(tmp_path / "state.db"), "list", "-o", "json")
    assert listed.exit_code == 0 and json.loads(listed.stdout) == [], listed.stdout


def test_tls_spoken_to_a_plain_http_endpoint_says_so(tmp_path: Path) -> None:
    """An auth-file host without a scheme is taken as https; against a plain-HTTP port that ended in
    `SSL: WRONG_VERSION_NUMBER`."""
    import http.server
    import threading

    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        done = _create_against(tmp_path, f"127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()
    assert done.exit_code == 1, done.output
    assert "does not speak TLS: if it is plain HTTP, write its URL with http://" in done.stderr
    assert "failed, retrying in" not in done.stderr


# --- what list, show, outputs and destroy say of a deployment ----------------------------------------------

def test_configuration_state_comes_from_the_configure_events() -> None:
    from provisioner.engine.views import configuration
    from provisioner.state import Event

    def events(*pairs: tuple[str, str]) -> list[Event]:
        return [Event("d", f"2026-01-01T00:00:0{i}", kind, message)
                for i, (kind, message) in enumerate(pairs)]

    started = ("configure", "started on 2 host(s); log: x")
    assert configuration(events(("create", "done"))) == "not configured"
    assert configuration(events(started)) == "not configured"  # interrupted
    assert configuration(events(started, ("configure-failed", "front: apt"))) == "configuration failed"
    assert configuration(events(started, ("configure", "done (3 change(s))"))) == "configured"
    assert configuration(events(started, ("configure", "dry run finished (0 change(s))"))) == "not configured"
    assert configuration(events(started, ("configure", "done (3 change(s))"), started,
                                ("configure-failed", "pi1 unreachable"))) == "configured; last run failed"


def test_a_deployment_without_configuration_says_so_and_its_outputs_are_not_live(
        tmp_path: Path, ec2_emulator: Any) -> None:
    """`create --no-configure` used to say `created` and list OSCAR and MinIO URLs that do not exist;
    `show` now also gives each machine's size (a capacity fallback shows) and zone."""
    auth = tmp_path / "auth.dat"
    auth.write_text(f"id = ec2; type = EC2; username = AKIDEXAMPLE00; password = s3cret-Example-9x; "
                    f"region = eu-west-1; host = {ec2_emulator.endpoint}\n")
    auth.chmod(0o600)
    state = str(tmp_path / "state.db")
    created = invoke("--state", state, "create", "oscar-aws", "-i", "admin_cidr=203.0.113.7/32", "-i",
                     "wn_num=1", "--auth", str(auth), "--yes", "--no-configure", "--name", "lab")
    assert created.exit_code == 0, created.output
    assert "created, not configured" in created.stdout
    assert "oscar_endpoint: https://" in created.stdout and "(not live: not configured yet)" in created.stdout
    assert "oscar_username: oscar" in created.stdout
    listed = json.loads(invoke("--state", state, "list", "-o", "json").stdout)
    assert [(e["status"], e["configuration"]) for e in listed] == [("created", "not configured")]
    assert "created, not configured" in invoke("--state", state, "list").stdout
    outs = invoke("--state", state, "outputs", "lab")
    assert outs.exit_code == 0 and "lab is not configured" in outs.stderr
    assert "kubeconfig: (fetched here when the configuration runs)" in outs.stdout
    shown = json.loads(invoke("--state", state, "show", "lab", "-o", "json").stdout)
    inventory = {i["tags"]["Name"]: i for i in ec2_emulator.inventory("eu-west-1")["instances"]}
    assert shown["nodes"] and all(n["size"] == inventory[n["name"]]["type"] and
                                  n["zone"] == inventory[n["name"]]["zone"] for n in shown["nodes"])
    live = {o["name"]: o["live"] for o in shown["outputs"]}
    assert not live["oscar_endpoint"] and not live["minio_endpoint"] and live["oscar_username"]
    table = invoke("--state", state, "show", "lab").stdout
    assert all(n["size"] in table for n in shown["nodes"])


def test_destroying_an_edge_deployment_says_the_boards_keep_k3s_and_how_to_remove_it() -> None:
    from provisioner.engine.views import boards_left_with_k3s
    from provisioner.record import Board, DeploymentRecord, GroupRecord

    record = DeploymentRecord(groups=(
        GroupRecord("front", "front-end", "fleet", boards=(Board("pi0", "192.0.2.10", ssh_user="pi"),)),
        GroupRecord("pis", "edge", "fleet",
                    boards=(Board("pi1", "192.0.2.11", ssh_user="pi", ssh_port=2222),)),
        GroupRecord("wn", "worker", "aws")))
    lines = boards_left_with_k3s(record)
    assert "pi0, pi1" in lines[0] and "left as they are" in lines[0]
    assert lines[1:] == ["  ssh pi@192.0.2.10 sudo /usr/local/bin/k3s-uninstall.sh",
                         "  ssh -p 2222 pi@192.0.2.11 sudo /usr/local/bin/k3s-agent-uninstall.sh"]
    assert boards_left_with_k3s(DeploymentRecord(groups=(GroupRecord("wn", "worker", "aws"),))) == []
