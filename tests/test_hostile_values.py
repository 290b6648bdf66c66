"""Hostile strings (options, quotes, ``$()``, newlines, ``../``, unicode) fed to every sink a template
value reaches: ssh's command line, power commands, cloud-init, Ansible variables, Kubernetes names
and file paths. None may run, and none may escape: a value is either refused by its check
(``provisioner.sinks``) or arrives as exactly the data it was.

ssh's own parser is the judge of its command lines: ``ssh -G`` prints the configuration a command
line resolves to without connecting, so a user or address read as an option (``-oProxyCommand=``)
shows up as a ``proxycommand``.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elastic.model import GroupNode, NodeGroup
from elastic.power import CommandPower, SshShutdown
from provisioner import sinks
from provisioner.cloudinit import WorkerJoin, render_user_data
from provisioner.clouds.base import resource_name
from provisioner.clouds.fleet import ssh_check_argv
from provisioner.errors import BadInput, TemplateError
from provisioner.inventory import Inventory, InventoryHost, Jump, ssh_argv
from provisioner.resources import templates_dir
from provisioner.spec import BoardSpec
from provisioner.template import load_cluster_spec

NASTY = ["-oProxyCommand=touch${IFS}CANARY", "-oProxyCommand=touch CANARY", "$(touch CANARY)",
         "`touch CANARY`", "a;touch CANARY", "a'b", 'a"b', "a\nb", "pi\n", "../../etc/passwd", "ünï",
         "a b", "-l", "--", "-", "a\\", "%h", "{node}", "'", '"', "\t", "a\rb", "x" * 70, "pi", "wn-1",
         "ProxyCommand touch CANARY", "a=b", "#", "*", "~root", "a:b", "10.0.0.5", "host.example.org"]
hostile = st.one_of(st.sampled_from(NASTY),
                    st.text(alphabet=st.sampled_from(list("-a1Z$(){}`'\";\\ \n/.=_~ü:@")), max_size=24))
"""Strings an attacker would try, and random mixtures of the characters that matter (no NUL: no
operating system passes one in an argument)."""
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _ssh_config(argv: list[str], home: Path) -> dict[str, str] | None:
    """What ssh would do with ``argv`` (``ssh -G``: nothing is connected or run); None if it refuses."""
    assert argv[0] == "ssh"
    done = subprocess.run(["ssh", "-G", *argv[1:]], capture_output=True, text=True, timeout=10,
                          env={"PATH": os.environ["PATH"], "HOME": str(home)}, stdin=subprocess.DEVNULL,
                          check=False)
    if done.returncode != 0:
        return None
    return dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)


def _inet_aton(address: str) -> str | None:
    """ssh writes a numeric host as inet_aton reads it (``1`` is 0.0.0.1)."""
    try:
        return socket.inet_ntoa(socket.inet_aton(address))
    except OSError:
        return None


def _assert_ssh_keeps(argv: list[str], user: str, address: str, home: Path, proxy: bool = False) -> None:
    config = _ssh_config(argv, home)
    if config is None:  # ssh refused the line itself (invalid characters): nothing ran
        return
    assert config["user"] == user, argv
    if sinks.host_address(address) is None:  # what validate lets through arrives as it was
        assert config["hostname"].lower() in (address.lower(), _inet_aton(address)), argv
    if not proxy:
        assert config.get("proxycommand", "none") == "none", argv
    assert config.get("localcommand", "none") == "none" and config.get("permitlocalcommand") == "no"


@FAST
@given(user=hostile, address=hostile)
def test_no_ssh_command_line_reads_a_user_or_an_address_as_an_option(tmp_path: Path, user: str,
                                                                     address: str) -> None:
    board = BoardSpec("pi1", address, ssh_user=user)
    _assert_ssh_keeps(ssh_check_argv(board, 5, tmp_path / "known"), user, address, tmp_path)
    host = InventoryHost("pi1", "edge", "edge", "arm64", address, user=user)
    inventory = Inventory(hosts=(host,), known_hosts=str(tmp_path / "known"))
    _assert_ssh_keeps(ssh_argv(inventory, "pi1", ["true"]), user, address, tmp_path)
    jumped = Inventory(hosts=(InventoryHost("pi2", "edge", "edge", "arm64", "10.0.0.9",
                                            jump=Jump(address, 22, user, None)),), known_hosts="k")
    # Our own ProxyCommand runs through ``sh -c`` (as ssh runs it): the jump's user and address stay
    # whole there too (shlex splits as sh does).
    argv = ssh_argv(jumped, "pi2", ["true"])
    proxy = next(a for a in argv if a.startswith("ProxyCommand=")).removeprefix("ProxyCommand=")
    _assert_ssh_keeps(shlex.split(proxy), user, address, tmp_path)
    shutdown = SshShutdown(user=user)
    _assert_ssh_keeps(shutdown.argv(GroupNode("pi1", address)), user, address, tmp_path)
    assert not list(tmp_path.glob("CANARY*"))


@FAST
@given(node=hostile.filter(bool), group=hostile, address=hostile)
def test_power_commands_receive_placeholders_as_data(tmp_path: Path, node: str, group: str,
                                                     address: str) -> None:
    out = tmp_path / "out"
    # the placeholder bare, inside single quotes and inside double quotes
    command = f"""cd {tmp_path} && printf '%s|' {{node}} 'g={{group}}' "a={{address}}" > out"""
    members = (GroupNode(node, address),)
    CommandPower(command, "true").power_on(NodeGroup(group or "g", 1, 1, nodes=members), node)
    assert out.read_bytes().decode() == f"{node}|g={group or 'g'}|a={address}|"
    assert not list(tmp_path.glob("CANARY*"))
    out.unlink()


@FAST
@given(value=hostile)
def test_names_and_paths_pass_their_check_only_when_harmless(value: str) -> None:
    if sinks.posix_user(value) is None or sinks.dns_label(value) is None or sinks.group_name(value) is None:
        assert not value.startswith("-") and value.isascii() and value.strip() == value
        assert not set(value) & set("$`'\";\\ \n/{}()")
    if sinks.host_address(value) is None:
        assert not value.startswith("-") and not set(value) & set("$`'\";\\ \n/{}()")
    if sinks.file_path(value) is None:
        assert not value.startswith("-") and not set(value) & set("$`'\";\\\n{}()")
    if sinks.absolute_path(value) is None:
        assert value.startswith("/") and ".." not in value.split("/") and " " not in value
    if sinks.label_value(value) is None and value:
        assert len(value) <= 63 and "\n" not in value and value[0].isalnum() and value[-1].isalnum()


@FAST
@given(group=hostile, first=st.integers(1, 10**6), second=st.integers(1, 10**6))
def test_derived_kubernetes_names_are_dns_labels_and_never_collide(group: str, first: int,
                                                                   second: int) -> None:
    names = [resource_name("0123abcd", group, str(i)) for i in (first, second)]
    for name in names:
        assert sinks.DNS_LABEL.fullmatch(name), name
    assert (names[0] == names[1]) == (first == second)


@FAST
@given(label=hostile, node=hostile)
def test_cloud_init_carries_values_as_data_or_refuses_them(label: str, node: str) -> None:
    join = WorkerJoin(server_url="https://10.0.0.1:6443", token="t", group="wn", labels={"site": label},
                      taints=(), node_name=node, k3s_version="v1.31.4+k3s1")
    try:
        text = render_user_data(join, common={})
    except BadInput:
        assert sinks.dns_label(node) is not None
        return
    doc = yaml.safe_load(text.removeprefix("#cloud-config\n"))
    config = yaml.safe_load(next(f["content"] for f in doc["write_files"]
                                 if f["path"].endswith("config.yaml")))
    assert f"site={label}" in config["node-label"] and config["node-name"] == node == doc["hostname"]
    assert set(config) == {"server", "token", "node-label", "node-name", "protect-kernel-defaults",
                           "kubelet-arg"}


@pytest.fixture(scope="module")
def edge_template() -> Path:
    return templates_dir() / "oscar-edge.yaml"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user=hostile, address=hostile, key=hostile)
def test_the_template_refuses_what_its_sinks_cannot_take(edge_template: Path, user: str, address: str,
                                                         key: str) -> None:
    """What ``validate`` lets through reaches Ansible variables and ssh: it must pass every check."""
    try:
        spec = load_cluster_spec([edge_template], {"ssh_user": user, "wn1_address": address,
                                                   "ssh_key": key})
    except TemplateError as error:
        assert "edge" in str(error) and "node " in str(error)
        return
    for group in spec.groups:
        for board in group.boards:
            assert sinks.posix_user(board.ssh_user) is None and sinks.host_address(board.address) is None
            assert board.ssh_key is None or sinks.file_path(board.ssh_key) is None
