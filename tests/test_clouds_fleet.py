"""The fleet driver against board hosts (sshd in namespaces on 127.0.0.N:2222): boards are adopted,
never created or destroyed, and the ones that do not answer over SSH are named."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from provisioner.clouds.base import CloudDriver, NodeRequest
from provisioner.clouds.fleet import FleetDriver, probe, ssh_check_argv
from provisioner.errors import CloudError, NotFound, RemoteError
from provisioner.spec import BoardSpec


def _spec(board: Any, **kw: Any) -> BoardSpec:
    return BoardSpec(name=board.name, address=board.address, ssh_user=kw.get("user", board.user),
                     ssh_key=str(kw.get("key", board.key_path)), ssh_port=board.port)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_boards_are_listed_adopted_and_never_destroyed() -> None:
    boards = (BoardSpec("pi-1", "192.0.2.11"), BoardSpec("pi-2", "192.0.2.12"))
    fleet = FleetDriver({"edge": boards})

    def takes(d: CloudDriver) -> str:
        return d.provider

    assert takes(fleet) == "fleet"
    nodes = fleet.list_nodes("d1")
    assert [(n.name, n.group, n.private_ips, n.state) for n in nodes] == [
        ("pi-1", "edge", ("192.0.2.11",), "running"), ("pi-2", "edge", ("192.0.2.12",), "running")]
    request = NodeRequest("d1", "edge", "pi-2", "", "", "", "")
    assert fleet.create_node(request) == nodes[1]
    with pytest.raises(NotFound, match=r"never created.*pi-1, pi-2"):
        fleet.create_node(NodeRequest("d1", "edge", "oscar-deploy-d1-edge-3", "", "", "", ""))
    fleet.destroy_node(nodes[0])
    assert fleet.sweep("d1") == [] and fleet.list_nodes("d1") == nodes
    assert fleet.ensure_key_pair("d1", "ssh-ed25519 AAAA") == ""
    assert fleet.ensure_security_group("d1", []) == ""
    assert fleet.ensure_public_address("d1", nodes[0]) == "192.0.2.11"
    with pytest.raises(CloudError, match="no cloud volumes"):
        fleet.ensure_volume("d1", "edge", 10, None)


def test_ssh_check_is_batch_mode_without_multiplexing(tmp_path: Path) -> None:
    argv = ssh_check_argv(BoardSpec("pi", "10.0.0.5", ssh_user="pi", ssh_key="~/k", ssh_port=2200), 7,
                          tmp_path / "known")
    assert argv[0] == "ssh" and argv[-5:] == ["-l", "pi", "--", "10.0.0.5", "true"]
    text = " ".join(argv)
    for option in ("BatchMode=yes", "ControlMaster=no", "ControlPath=none", "ConnectTimeout=7", "-p 2200",
                   f"UserKnownHostsFile={tmp_path / 'known'}"):
        assert option in text
    assert str(Path("~/k").expanduser()) in argv


def test_a_closed_port_is_reported_by_name_quickly() -> None:
    started = time.monotonic()
    failed = probe(BoardSpec("pi-off", "127.0.0.1", ssh_port=_free_port()), 2.0)
    assert failed is not None and failed.name == "pi-off" and "TCP 127.0.0.1" in failed.reason
    assert time.monotonic() - started < 2.0


def test_reachable_boards_pass_and_unreachable_ones_are_named(board_factory: Any, tmp_path: Path) -> None:
    first, second, third = board_factory(3, users=("root",))
    wrong_key = tmp_path / "wrong"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong_key)], check=True)
    fleet = FleetDriver({"edge": (_spec(first), _spec(second), _spec(third, key=wrong_key))},
                        known_hosts=first.known_hosts, timeout_s=5)
    failed = fleet.check_reachable()
    assert [(u.name, "Permission denied" in u.reason) for u in failed] == [(third.name, True)]
    second.power_off()
    try:
        with pytest.raises(RemoteError, match=rf"2 edge board\(s\) unreachable.*{second.name} \(TCP") as err:
            fleet.require_reachable()
        assert third.name in str(err.value) and first.name not in str(err.value)
    finally:
        second.power_on()
    assert [u.name for u in fleet.check_reachable()] == [third.name]
