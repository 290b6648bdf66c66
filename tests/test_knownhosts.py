"""The boards' host keys the daemon in its pod checks strictly: picked from the deployment's known_hosts
(``provisioner.knownhosts``), learned by ``configure`` when a board's is missing, and used by the
daemon's halt against board hosts (``tests/harness/boards.py``).

The oracle for the file format is OpenSSH itself: hashed lines are the ones ``ssh-keygen -H`` writes,
and the keys picked for a host are the ones ``ssh-keygen -F`` finds for it.
"""

from __future__ import annotations

import random
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elastic.groups import parse_groups
from elastic.power import PowerError, manager_for
from provisioner.config import Settings, load_settings
from provisioner.configure import learn_board_host_keys, run_inputs
from provisioner.knownhosts import board_known_hosts, host_pattern, missing_keys
from provisioner.record import KNOWN_HOSTS_FILE, Board, halted_boards
from provisioner.state import StateStore
from tests.harness.boards import Board as HarnessBoard
from tests.test_configure_helpers import board_template, record_board_deployment
from tests.test_daemon_followups import double_calls, install_double


def _key(tmp: Path, name: str, kind: str = "ed25519") -> str:
    """A real public host key, ``type base64``."""
    path = tmp / name
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "", "-f", str(path)], check=True)
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def _hashed(tmp: Path, lines: str) -> str:
    """``lines`` as ``ssh-keygen -H`` rewrites them (every host name hashed with a fresh salt)."""
    path = tmp / "to-hash"
    path.write_text(lines)
    subprocess.run(["ssh-keygen", "-H", "-f", str(path)], check=True, capture_output=True)
    return path.read_text()


def _found_by_ssh_keygen(path: Path, name: str) -> set[str]:
    """The keys ``ssh-keygen -F name`` finds in the file (OpenSSH's own lookup), as ``type base64``."""
    done = subprocess.run(["ssh-keygen", "-F", name, "-f", str(path)], capture_output=True, text=True,
                          check=False)
    return {" ".join(line.split()[1:3]) for line in done.stdout.splitlines()
            if line.strip() and not line.startswith(("#", "@"))}


ONE = Board("pi1", "192.0.2.11")
TWO = Board("pi2", "192.0.2.12", ssh_port=2222)
JUMPED = Board("pi3", "10.0.0.3", proxy_jump=True)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("hostkeys")
    return {"a": _key(tmp, "a"), "b": _key(tmp, "b"), "rsa": _key(tmp, "rsa", "rsa"), "c": _key(tmp, "c"),
            "tmp": str(tmp)}


def test_a_hashed_line_ssh_keygen_writes_is_matched_and_written_back_plain(keys: dict[str, str]) -> None:
    tmp = Path(keys["tmp"])
    plain = (f"192.0.2.11 {keys['a']}\n[192.0.2.12]:2222 {keys['b']}\n"
             f"10.0.0.3 {keys['c']}\n198.51.100.9 {keys['c']}\n")
    hashed = _hashed(tmp, plain)
    assert all(line.startswith("|1|") for line in hashed.splitlines()) and "192.0.2" not in hashed
    expected = f"192.0.2.11 {keys['a']}\n[192.0.2.12]:2222 {keys['b']}\n"
    assert board_known_hosts(hashed, [ONE, TWO, JUMPED]) == expected
    assert board_known_hosts(plain, [ONE, TWO, JUMPED]) == expected
    # hashed twice (two salts), plain once, as a file grows over runs: still the same text
    assert board_known_hosts(hashed + plain + _hashed(tmp, plain), [TWO, ONE]) == expected
    # the wrong port is another host to ssh, and so here
    assert board_known_hosts(hashed, [Board("pi2", "192.0.2.12")]) == ""


def test_the_keys_picked_are_those_ssh_keygen_finds_for_the_host(keys: dict[str, str]) -> None:
    tmp = Path(keys["tmp"])
    text = ("# a comment\n\n"
            f"pi1.example.org,192.0.2.11 {keys['a']} operator@laptop\n"
            f"192.0.2.11 {keys['rsa']}\n"
            f"192.0.2.110 {keys['c']}\n"       # a longer address is another host
            f"[192.0.2.11]:2222 {keys['c']}\n"  # so is another port
            f"@revoked 192.0.2.11 {keys['b']}\n"
            f"@cert-authority 192.0.2.11 {keys['c']}\n"
            f"192.0.2.11 ssh-ed25519 {keys['rsa'].split()[1]}\n"  # a type that is not its key's
            "192.0.2.11 ssh-ed25519 not*base64\n") + _hashed(tmp, f"192.0.2.11 {keys['b']}\n")
    path = tmp / "mixed"
    path.write_text(text)
    picked = {" ".join(line.split()[1:]) for line in board_known_hosts(text, [ONE]).splitlines()}
    # b is listed for the host (hashed) but revoked for it: ssh refuses it, so it is not passed on
    assert picked == {keys["a"], keys["rsa"]}
    # ssh-keygen -F lists the lines that name the host, keys it cannot use too (ssh skips them)
    unusable = {f"ssh-ed25519 {keys['rsa'].split()[1]}", "ssh-ed25519 not*base64", keys["b"]}
    assert picked == _found_by_ssh_keygen(path, "192.0.2.11") - unusable
    assert board_known_hosts(text, [ONE]).splitlines() == sorted(f"192.0.2.11 {k}" for k in picked)
    # a key revoked for every host is never passed on either
    assert board_known_hosts(f"192.0.2.11 {keys['a']}\n@revoked * {keys['a']}\n", [ONE]) == ""
    # a name is looked up lower-cased, as ssh writes it
    assert board_known_hosts(text, [Board("pi1", "PI1.example.org")]) == f"pi1.example.org {keys['a']}\n"


def test_boards_halted_over_ssh_are_those_of_powered_fleets_reached_directly(tmp_path: Path) -> None:
    front, *pis = [HarnessBoard(name=f"doc{i}", address=f"192.0.2.{10 + i}", port=2222, user="root",
                                key_path=tmp_path / "key", hostname=f"doc{i}", root_dir=tmp_path,
                                known_hosts=tmp_path / "kh") for i in range(3)]
    with StateStore.open(tmp_path / "state.db") as store:
        direct = record_board_deployment(store, board_template([front, *pis], tmp_path / "a.yaml",
                                                               jump_last=False), "direct")
        jumped = record_board_deployment(store, board_template([front, *pis], tmp_path / "b.yaml"), "jumped")
        assert [b.name for b in halted_boards(store.record(direct.id))] == ["pi1", "pi2"]
        # one board behind the front-end: the fleet is cut without a halt (daemon_groups says so)
        assert halted_boards(store.record(jumped.id)) == ()
    known = Board("x", "192.0.2.11", ssh_port=2222)
    assert missing_keys(f"[192.0.2.11]:2222 {_key(tmp_path, 'k')}\n", [ONE, TWO, known, JUMPED]) == [ONE, TWO]


def test_configure_renders_the_same_host_keys_however_the_deployment_s_file_grew(
        keys: dict[str, str], tmp_path: Path) -> None:
    """Plain in probe order, or hashed by Ansible's ssh in any order next to the front-end's key and an
    old line: the daemon's variable is the same text."""
    front, *pis = [HarnessBoard(name=f"doc{i}", address=f"192.0.2.{10 + i}", port=2222, user="root",
                                key_path=tmp_path / "key", hostname=f"doc{i}", root_dir=tmp_path,
                                known_hosts=tmp_path / "kh") for i in range(3)]
    first = f"[192.0.2.11]:2222 {keys['a']}\n[192.0.2.12]:2222 {keys['b']}\n"
    later = (_hashed(tmp_path, f"[192.0.2.10]:2222 {keys['c']}\n[192.0.2.12]:2222 {keys['b']}\n") + first
             + _hashed(tmp_path, f"[192.0.2.11]:2222 {keys['a']}\n"))
    rendered = []
    with StateStore.open(tmp_path / "state.db") as store:
        template = board_template([front, *pis], tmp_path / "a.yaml", jump_last=False)
        dep = record_board_deployment(store, template)
        for text in (first, later):
            (store.deployment_dir(dep.id) / KNOWN_HOSTS_FILE).write_text(text)
            rendered.append(run_inputs(store, dep, Settings())[1]["elastic_known_hosts"])
    assert rendered == [first, first]


# --- properties ---------------------------------------------------------------------------------------

_SETTINGS = settings(max_examples=80, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
_LINE = re.compile(r"(\S+) ([A-Za-z0-9@._+-]+) ([A-Za-z0-9+/=]+)\Z")


@_SETTINGS
@given(seed=st.integers(), extra=st.lists(st.text(max_size=60), max_size=6))
def test_the_order_of_the_lines_does_not_matter(keys: dict[str, str], seed: int, extra: list[str]) -> None:
    lines = [f"192.0.2.11 {keys['a']}", f"[192.0.2.12]:2222 {keys['b']}", f"192.0.2.11,x {keys['rsa']}",
             f"|1|bad|salt {keys['c']}", *extra]
    shuffled = lines[:]
    random.Random(seed).shuffle(shuffled)
    assert board_known_hosts("\n".join(shuffled), [ONE, TWO]) == board_known_hosts("\n".join(lines),
                                                                                     [TWO, ONE])


_HOSTILE = st.text(st.sampled_from(" \t\n\r,|[]:!#@*?\x00\x0b\x1c\u2028abc0192.x"), max_size=30)


@_SETTINGS
@given(field=_HOSTILE, address=_HOSTILE, port=st.integers(1, 65535), tail=_HOSTILE)
def test_hostile_fields_cannot_add_a_line_or_a_host(keys: dict[str, str], field: str, address: str, port: int,
                                                   tail: str) -> None:
    """Whatever the host fields of the file and the boards' addresses hold, every line out names one
    board as ssh would look it up, then a key of the file: nothing else reaches the daemon's file."""
    boards = [ONE, Board("evil", address, ssh_port=port)]
    text = f"{field} {keys['a']} {tail}\n{address} {keys['b']}\n{field}\n192.0.2.11 {keys['rsa']}{tail}\n"
    out = board_known_hosts(text, boards)
    names = {host_pattern(b.address, b.ssh_port) for b in boards}
    for line in out.splitlines():
        match = _LINE.match(line)
        assert match, line
        assert match[1] in names and f"{match[2]} {match[3]}" in (keys["a"], keys["b"], keys["rsa"])
        assert re.fullmatch(r"\[?[a-z0-9][a-z0-9.:_-]*(\]:\d+)?", match[1]), line
    assert out == "" or (out.endswith("\n") and "\n\n" not in out)


# --- against board hosts: configure learns the keys, the daemon halts with them ----------------------

def _halt_group(board: HarnessBoard, key: Path, known_hosts: Path) -> Any:
    """The board as the daemon in its pod sees it: the groups entry configure renders, with the key and
    known_hosts the pod mounts (the role's template adds both to ``power.shutdown``)."""
    (group,) = parse_groups([{"name": "pis", "cpus": 2, "memory_mib": 4096, "max": 1,
                              "nodes": [{"name": board.name, "address": board.address, "ssh_user": "root",
                                         "ssh_port": board.port}],
                              "power": {"type": "command", "power_on": "true",
                                        "shutdown": {"key": str(key), "known_hosts": str(known_hosts),
                                                     "wait_s": 10, "settle_s": 0}}}], "test")
    return group


def test_configure_learns_the_boards_keys_and_the_daemon_halts_with_them_strictly(
        board_factory: Any, tmp_path: Path) -> None:
    pi1, pi2 = board_factory(2, users=("root",), prefix="pi")
    front = HarnessBoard(name="front", address="192.0.2.10", port=22, user="root", key_path=pi1.key_path,
                         hostname="front", root_dir=tmp_path, known_hosts=tmp_path / "unused")
    with StateStore.open(tmp_path / "state.db") as store:
        dep = record_board_deployment(store, board_template([front, pi1, pi2], tmp_path / "edge.yaml",
                                                            jump_last=False))
        known = store.deployment_dir(dep.id) / KNOWN_HOSTS_FILE
        assert not known.exists() or known.read_text() == ""  # configured without create's wait
        # the site's own elastic_known_hosts (its ansible_vars file, or --vars) wins: nothing is learned
        site = tmp_path / "site.yml"
        site.write_text(yaml.safe_dump({"elastic_known_hosts": "pinned by the site\n"}))
        with_site = load_settings(env={"OSCAR_DEPLOY_PROVISIONER_ANSIBLE_VARS": str(site)}, cwd=tmp_path,
                                  home=tmp_path)
        assert not learn_board_host_keys(store, dep, with_site)
        assert not learn_board_host_keys(store, dep, Settings(), {"elastic_known_hosts": ""})
        assert not known.exists() or known.read_text() == ""
        assert run_inputs(store, dep, with_site)[1]["elastic_known_hosts"] == "pinned by the site\n"
        assert learn_board_host_keys(store, dep, Settings())
        assert not learn_board_host_keys(store, dep, Settings())  # learned: no second probe
        _, variables = run_inputs(store, dep, Settings())
    harness = pi1.known_hosts.read_text().splitlines()  # the keys the board hosts were made with
    assert variables["elastic_known_hosts"].splitlines() == sorted(harness)
    pod_known = tmp_path / "config-known_hosts"
    pod_known.write_text(variables["elastic_known_hosts"])

    install_double(pi1)
    group = _halt_group(pi1, pi1.key_path, pod_known)
    manager_for(group).power_off(group, pi1.name)
    assert not pi1.is_on() and double_calls(pi1) == ["root shutdown -h now"]

    # pi2's address answering with another key (pi1's): refused before any command runs
    install_double(pi2)
    pi1_key = next(line.split(" ", 1)[1] for line in harness if line.startswith(f"[{pi1.address}]"))
    impostor = tmp_path / "impostor-known_hosts"
    impostor.write_text(f"{host_pattern(pi2.address, pi2.port)} {pi1_key}\n")
    group = _halt_group(pi2, pi2.key_path, impostor)
    with pytest.raises(PowerError, match=r"REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification"):
        manager_for(group).power_off(group, pi2.name)
    assert pi2.is_on() and double_calls(pi2) == []
