"""The board hosts behave like separate machines to ssh and to real Ansible, and leave nothing
behind: each has its own address, hostname, processes and files; one can be powered off and on."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.harness.boards import Board, availability, leftovers, power_command, stop, write_inventory

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent


def ansible(tool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the venv's real ansible / ansible-playbook, away from any ansible.cfg in the repository."""
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
           "ANSIBLE_RETRY_FILES_ENABLED": "0"}
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    return subprocess.run([str(BIN / tool), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_each_board_answers_over_ssh_with_its_own_hostname_and_processes(board_hosts: list[Board]) -> None:
    assert len({b.address for b in board_hosts}) == 3
    for board in board_hosts:
        out = board.run("hostname; echo $SSH_CONNECTION; ps -e -o pid=,comm=").stdout.splitlines()
        assert out[0] == board.hostname
        assert out[1].split()[2:] == [board.address, str(board.port)]
        processes = [line.split() for line in out[2:]]
        assert processes[0][0] == "1"  # its own pid namespace: its init is pid 1 ...
        assert len(processes) < 10  # ... and none of the host's processes are visible


def test_a_file_written_under_etc_stays_on_its_board(board_hosts: list[Board]) -> None:
    name = f"oscar-board-probe-{uuid.uuid4().hex[:8]}"
    first, second, _ = board_hosts
    first.run(f"echo {first.name} > /etc/{name} && mkdir -p /usr/local/bin && touch /usr/local/bin/{name}")
    assert first.run(f"cat /etc/{name}").stdout.strip() == first.name
    for path in (f"/etc/{name}", f"/usr/local/bin/{name}"):
        assert second.run(f"test -e {path}", check=False).returncode == 1
        assert not Path(path).exists()


def test_a_non_root_user_logs_in_with_the_fleet_key(board_hosts: list[Board]) -> None:
    board = board_hosts[2]
    assert board.run("id -un; echo $HOME", user="pi").stdout.split() == ["pi", "/home/pi"]
    assert "pi:" not in Path("/etc/passwd").read_text()  # the user exists in the board's /etc only


def test_ansible_ping_reaches_all_three_boards_without_an_ssh_mux(
    board_hosts: list[Board], tmp_path: Path
) -> None:
    inventory = write_inventory(board_hosts, tmp_path / "hosts.ini")
    result = ansible("ansible", "-vvv", "-i", str(inventory), "all", "-m", "ping", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for board in board_hosts:
        assert f"{board.name} | SUCCESS" in result.stdout
    # A ControlPersist master would outlive the run and answer for a board torn down later.
    commands = [line for line in result.stdout.splitlines() if "SSH: EXEC" in line]
    assert len(commands) >= 3
    assert all("ControlMaster=no" in c and "ControlPersist" not in c for c in commands), commands[0]


def test_ansible_logs_in_as_the_non_root_user_when_the_inventory_says_so(
    board_hosts: list[Board], tmp_path: Path
) -> None:
    inventory = write_inventory(board_hosts, tmp_path / "pi.ini", user="pi")
    result = ansible("ansible", "-i", str(inventory), "all", "-m", "command", "-a", "id -un", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for board in board_hosts:
        assert f"{board.name} | CHANGED | rc=0 >>\npi\n" in result.stdout, result.stdout


@pytest.mark.slow
def test_ansible_playbook_writes_a_file_on_every_board_and_is_idempotent(
    board_hosts: list[Board], tmp_path: Path
) -> None:
    inventory = write_inventory(board_hosts, tmp_path / "hosts.ini")
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        "- hosts: all\n"
        "  gather_subset: [min]\n"
        "  tasks:\n"
        "    - ansible.builtin.copy:\n"
        "        dest: /etc/oscar-board-play.txt\n"
        "        content: \"{{ ansible_hostname }} {{ ansible_default_ipv4 is defined }}\\n\"\n"
        "        mode: '0644'\n"
    )
    first = ansible("ansible-playbook", "-i", str(inventory), str(playbook), cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    for board in board_hosts:
        assert board.run("cut -d' ' -f1 /etc/oscar-board-play.txt").stdout.strip() == board.hostname
    second = ansible("ansible-playbook", "-i", str(inventory), str(playbook), cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.count("changed=0") == 3, second.stdout
    assert not Path("/etc/oscar-board-play.txt").exists()


@pytest.mark.slow
def test_a_powered_off_board_is_reported_unreachable_by_name(
    board_hosts: list[Board], tmp_path: Path
) -> None:
    inventory = write_inventory(board_hosts, tmp_path / "hosts.ini")
    board = board_hosts[1]
    board.run("echo kept > /root/disk.txt")
    board.power_off()
    try:
        assert not board.is_on()
        result = ansible("ansible", "-i", str(inventory), "all", "-m", "ping", cwd=tmp_path)
        assert result.returncode != 0
        assert f"{board.name} | UNREACHABLE" in result.stdout, result.stdout
        for other in (board_hosts[0], board_hosts[2]):
            assert f"{other.name} | SUCCESS" in result.stdout
        # The same by hand, as the elastic daemon's `command` power type runs it.
        power_on = power_command(board_hosts, "poweron").format(node=board.name)
        assert subprocess.run(power_on, shell=True, capture_output=True, timeout=30).returncode == 0
        assert board.is_on()
    finally:
        if not board.is_on():
            board.power_on()
    # Powered on again: same address and host key (known_hosts is strict), its files kept like a disk.
    assert board.run("hostname; cat /root/disk.txt").stdout.split() == [board.hostname, "kept"]


def test_teardown_leaves_no_process_no_mount_no_file(board_factory: Any) -> None:
    fleet: list[Board] = board_factory(2, prefix="short")
    running = leftovers(fleet)
    assert any("sshd" in line for line in running)  # the check sees a running board ...
    roots = [b.root_dir for b in fleet]
    stop(fleet)
    assert leftovers(fleet) == []  # ... and nothing of them after teardown
    sshd = subprocess.run(["pgrep", "-af", "sshd"], capture_output=True, text=True).stdout
    assert not {line.split()[0] for line in running} & {line.split()[0] for line in sshd.splitlines()}
    mounts = Path("/proc/self/mountinfo").read_text()
    assert not any(str(root) in mounts for root in roots)
    assert not any(root.exists() for root in roots)
    assert not any(b.is_on() for b in fleet)


def test_boards_by_hand_up_poweroff_down(tmp_path: Path) -> None:
    if reason := availability():
        pytest.skip(reason)
    base = tmp_path / "fleet"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tests.harness.boards", "--dir", str(base), *args],
                              cwd=REPO, capture_output=True, text=True, timeout=60)

    up = cli("up", "--count", "2")
    try:
        assert up.returncode == 0, up.stderr
        assert (base / "inventory.ini").exists()
        assert cli("poweroff", "board-2").returncode == 0
        status = {line.split()[0]: line.split()[2] for line in cli("status").stdout.splitlines()}
        assert status == {"board-1": "on", "board-2": "off"}
        assert "no board named 'board-9'" in cli("poweron", "board-9").stderr
    finally:
        down = cli("down")
    assert down.returncode == 0, down.stderr
    assert not base.exists()


def test_without_root_the_harness_says_why_instead_of_failing() -> None:
    if os.geteuid() != 0:
        assert "need root" in (availability() or "")
        return
    # The harness modules (stdlib only) copied where nobody can read them, and the base interpreter:
    # a checkout under root's 0700 home (a fresh Debian's /root) is unreadable to that user.
    # (pytest's tmp_path is under a 0700 directory too, hence a directory of its own in /tmp.)
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="oscar-nobody-") as tmp:
        copy = Path(tmp)
        (copy / "tests" / "harness").mkdir(parents=True)
        for name in ("tests/__init__.py", "tests/harness/__init__.py", "tests/harness/boards.py",
                     "tests/harness/board_files.py"):
            shutil.copy(REPO / name, copy / name)
        for path in [copy, *copy.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        probe = "from tests.harness.boards import availability; print(availability())"
        result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                 os.path.realpath(sys.executable), "-c", probe], cwd=copy,
                                capture_output=True, text=True,
                                env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(copy)})
    assert result.returncode == 0, result.stderr
    assert "need root" in result.stdout
