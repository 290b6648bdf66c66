"""The groups YAML as operators write it: shipped examples load, mistakes are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from elastic.groups import GroupsError, load_groups
from elastic.model import GroupNode, Taint
from provisioner.errors import BadInput

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "groups.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_full_group_is_parsed(tmp_path: Path) -> None:
    path = write(tmp_path, """
- name: pi
  cpus: 4
  memory_mib: 3800
  min: 1
  max: 2
  boot_s: 45
  cost_per_hour: 0
  priority: 20
  labels: {arch: arm64, edge: yes}
  taints: ["edge=true:NoSchedule", {key: gpu, effect: NoExecute}]
  power: {type: command, power_on: "poe on {node}", power_off: "poe off {node}"}
  nodes:
    - {name: pi-01, address: 192.0.2.11, mac: "dc:a6:32:00:00:01"}
    - {name: pi-02}
- name: cloud
  cpus: 2.5
  memory_mib: 8192
""")
    pi, cloud = load_groups(path)
    assert (pi.name, pi.cpus, pi.memory_mib, pi.min, pi.max, pi.boot_s, pi.priority) == (
        "pi", 4.0, 3800, 1, 2, 45.0, 20)
    # YAML 1.2 booleans: a bare `yes` label stays the string Kubernetes expects.
    assert pi.labels == {"arch": "arm64", "edge": "yes"}
    assert pi.taints == (Taint("edge", "true", "NoSchedule"), Taint("gpu", "", "NoExecute"))
    assert pi.nodes == (GroupNode("pi-01", "192.0.2.11", "dc:a6:32:00:00:01"), GroupNode("pi-02"))
    assert pi.power["power_on"] == "poe on {node}"
    assert (cloud.cpu_m, cloud.min, cloud.max, cloud.boot_s) == (2500, 0, 1, 60.0)


def test_shipped_trace_groups_load() -> None:
    files = sorted((REPO / "bench" / "traces").glob("*.groups.yaml"))
    assert len(files) >= 5
    for path in files:
        assert load_groups(path)


@pytest.mark.parametrize(("text", "expected"), [
    ("- {name: a, cpus: 2}", "missing 'memory_mib'"),
    ("- {name: a, cpus: -2, memory_mib: 10}", "'cpus' must be positive"),
    ("- {name: a, cpus: two, memory_mib: 10}", "'cpus' must be a number"),
    ("- {name: a, cpus: 2, memory_mib: 10, min: 3, max: 2}", "'min' (3) is greater than 'max' (2)"),
    ("- {name: a, cpus: 2, memory_mib: 10, colour: red}", "unknown key 'colour'"),
    ("- {name: a, cpus: 2, memory_mib: 10}\n- {name: a, cpus: 2, memory_mib: 10}", "name used twice"),
    ("- {name: A_b, cpus: 2, memory_mib: 10}", "DNS-style name"),
    ("- {name: a, cpus: 2, memory_mib: 10, taints: ['x:Sometimes']}", "effect 'Sometimes'"),
    ("- {name: a, cpus: 2, memory_mib: 10, max: 3, nodes: [{name: n1}]}", "more than the 1 listed"),
    ("- {name: a, cpus: 2, memory_mib: 10, power: {type: command, power_on: x}}", "'power_off'"),
    ("- {name: a, cpus: 2, memory_mib: 10, power: {type: wol}}", "needs a 'nodes' list"),
    ("{}", "non-empty list"),
    ("- [unclosed", "not valid YAML"),
])
def test_mistakes_are_named(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(GroupsError) as caught:
        load_groups(path)
    assert expected in str(caught.value)
    assert str(path) in str(caught.value)
    assert isinstance(caught.value, BadInput)


def test_yaml11_on_off_keys_are_rejected_by_name(tmp_path: Path) -> None:
    """PyYAML's YAML 1.1 would turn `on:` into True and lose the command silently."""
    path = write(tmp_path, """
- name: pi
  cpus: 4
  memory_mib: 3800
  nodes: [{name: pi-01}]
  power: {type: command, on: "poe on {node}", off: "poe off {node}"}
""")
    with pytest.raises(GroupsError, match=r"power key 'on' is not allowed.*power_on"):
        load_groups(path)


def test_unquoted_true_key_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "- {name: a, cpus: 2, memory_mib: 10, true: 1}")
    with pytest.raises(GroupsError, match="key True is not a string"):
        load_groups(path)


def test_missing_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(GroupsError, match="cannot read"):
        load_groups(tmp_path / "nope.yaml")
