"""What a user watching `create` or `reconfigure` sees while Ansible runs: one line per play, and one
per task when it finishes, with what it did on how many hosts and how long it took. The events are
ansible-runner's own, from a real run of a small playbook on this machine (connection local)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

PLAYBOOK = """
- name: a small play
  hosts: here
  gather_facts: false
  tasks:
    - name: write a file
      ansible.builtin.copy: {content: "x", dest: "{{ target }}", mode: "0600"}
    - name: do nothing
      ansible.builtin.debug: {msg: "hello"}
    - name: never runs
      ansible.builtin.debug: {msg: "skipped"}
      when: false
"""


def test_each_task_is_reported_as_it_finishes_with_its_outcomes(tmp_path: Path) -> None:
    ansible_runner = pytest.importorskip("ansible_runner")
    from provisioner.configure import _envvars, _Events

    (tmp_path / "project").mkdir()
    (tmp_path / "run").mkdir()
    (tmp_path / "project" / "play.yml").write_text(PLAYBOOK)
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[here]\nlocalhost ansible_connection=local "
                         f"ansible_python_interpreter={sys.executable}\n")
    lines: list[str] = []
    ticks = iter(range(0, 1000, 2))
    events = _Events(io.StringIO(), lines.append, clock=lambda: float(next(ticks)))
    result = ansible_runner.run(private_data_dir=str(tmp_path / "run"), project_dir=str(tmp_path / "project"),
                                playbook="play.yml", inventory=str(inventory), envvars=_envvars(),
                                extravars={"target": str(tmp_path / "out.txt")}, event_handler=events,
                                quiet=True)
    assert result.rc == 0, result.stdout.read()
    assert lines == ["play: a small play",
                     "  write a file: changed 1 (2 s)",
                     "  do nothing: ok 1 (2 s)",
                     "  never runs: skipped 1 (2 s)"], lines


def test_waiting_for_ssh_says_what_it_waits_for_and_how_long() -> None:
    """A booting front-end is silent for minutes: every 30 s the user is told which host and how long."""
    import socket

    from provisioner.engine.reach import SshHost, wait_for_ssh
    from provisioner.errors import RemoteError

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = int(probe.getsockname()[1])
    now = [0.0]
    said: list[tuple[str, float]] = []
    with pytest.raises(RemoteError, match=f"front \\(127.0.0.1:{closed}\\)"):
        wait_for_ssh([SshHost("front", "127.0.0.1", closed)], 75, interval_s=10,
                     on_waiting=lambda host, seconds: said.append((host.name, seconds)),
                     clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert said == [("front", 30.0), ("front", 60.0)]
