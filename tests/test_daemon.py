"""The elastic daemon end to end against the Kubernetes API test server, with the real client.

Boards are powered by ``command`` power whose commands are the harness's ``ctl`` tool: power-on
boots the board (its Node registers and turns Ready), power-off stops its kubelet. Harness time runs
100× faster than wall time (a 50 s job runs 0.5 s); the daemon's own timers are set short to match.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from elastic.actuator import ActuatorSettings
from elastic.daemon import Daemon, DaemonSettings
from elastic.lifecycle import POWERED_ON_AT, STATE
from elastic.model import GroupNode, NodeGroup, PolicySettings
from elastic.power import manager_for
from provisioner.cli import main

FAST = DaemonSettings(
    policy=PolicySettings(idle_time_s=1.0, cooldown_s=0.0, max_wait_poweron_s=20.0, max_wait_poweroff_s=20.0,
                          pending_grace_s=5.0),
    actuator=ActuatorSettings(backoff_min_s=3.0, backoff_max_s=10.0, drain_timeout_s=5.0,
                              eviction_retry_s=0.1, power_off_retry_s=0.5),
    batch_idle_s=0.2, batch_max_s=2.0, tick_s=0.3,
    lease_duration_s=2.0, renew_deadline_s=1.5, lease_retry_s=0.2,
)


def board_group(kube_api: Any, name: str = "edge", boards: int = 3, priority: int = 10, cpus: float = 2,
                memory_mib: int = 4096, ready_after_s: float = 20, **power_options: Any) -> NodeGroup:
    commands = kube_api.power_commands(cpus=cpus, memory_mib=memory_mib, ready_after_s=ready_after_s,
                                       **power_options)
    return NodeGroup(
        name=name, cpus=cpus, memory_mib=memory_mib, min=0, max=boards, boot_s=1, priority=priority,
        nodes=tuple(GroupNode(f"{name}-{i}", address=f"127.0.0.{i + 1}") for i in range(boards)),
        power={"type": "command", **commands, "timeout_s": 30},
    )


@pytest.fixture
def start_daemon(kube_api: Any) -> Iterator[Any]:
    started: list[Daemon] = []

    def start(groups: list[NodeGroup], settings: DaemonSettings = FAST, **kwargs: Any) -> Daemon:
        managers = kwargs.pop("managers", None) or {g.name: manager_for(g) for g in groups}
        daemon = Daemon(kube_api.api_client(), groups, managers, settings, **kwargs).start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


def state(kube_api: Any, node: str) -> str | None:
    try:
        obj = kube_api.get("nodes", node)
    except Exception:  # not registered (yet)
        return None
    return (obj["metadata"].get("annotations") or {}).get(STATE)


def ready(kube_api: Any, node: str) -> bool:
    try:
        obj = kube_api.get("nodes", node)
    except Exception:
        return False
    return any(c["type"] == "Ready" and c["status"] == "True" for c in obj["status"].get("conditions") or [])


def test_pending_pods_power_boards_on_and_idle_boards_are_drained_and_powered_off(
        kube_api: Any, start_daemon: Any) -> None:
    group = board_group(kube_api)
    daemon = start_daemon([group])
    # three 1.5-CPU jobs: one per 2-CPU board, so all three boards are needed
    kube_api.create_pods(3, "job", cpus=1.5, memory_mib=512, runtime_s=80)

    kube_api.wait_until(lambda: len(kube_api.pods(phase="Running")) == 3, timeout=20, what="pods running")
    nodes_used = {p["spec"]["nodeName"] for p in kube_api.pods()}
    assert nodes_used == {"edge-0", "edge-1", "edge-2"}
    kube_api.wait_until(lambda: all(state(kube_api, n) == "used" for n in nodes_used), timeout=10,
                        what="boards recorded as used")

    kube_api.wait_until(lambda: len(kube_api.pods(phase="Succeeded")) == 3, timeout=20, what="pods done")
    # idle for idle_time_s (1 s) → cordoned, drained, powered off: the kubelet stops, the state says off
    kube_api.wait_until(lambda: all(state(kube_api, n) == "off" for n in nodes_used), timeout=20,
                        what="boards off")
    for name in nodes_used:
        node = kube_api.get("nodes", name)
        assert node["spec"].get("unschedulable") is True
        assert POWERED_ON_AT not in (node["metadata"].get("annotations") or {})
    kube_api.wait_until(lambda: not any(ready(kube_api, n) for n in nodes_used), timeout=20,
                        what="kubelets stopped")
    text = daemon.metrics.exposition().decode()
    assert 'oscar_deploy_elastic_scale_ups_total{group="edge",reason="pending_pods"} 3.0' in text
    reasons = {(e["involvedObject"]["name"], e["reason"]) for e in events(kube_api)}
    assert {("job-0", "TriggeredScaleUp"), ("edge-0", "ScaleDown")} <= reasons
    assert 'oscar_deploy_elastic_scale_downs_total{group="edge",reason="idle"} 3.0' in text

    # a new job powers one board on again: uncordoned, Ready, the job runs there
    kube_api.create_pod("again", cpus=1.0, runtime_s=1000)
    kube_api.wait_until(lambda: kube_api.pods(phase="Running"), timeout=20, what="job runs again")
    again = kube_api.get("pods", "again", "default")["spec"]["nodeName"]
    assert kube_api.get("nodes", again)["spec"].get("unschedulable") in (None, False)
    assert sum(1 for n in nodes_used if ready(kube_api, n)) == 1


def events(kube_api: Any) -> list[dict[str, Any]]:
    return kube_api.store.list("events")[0]


def test_a_pod_no_group_can_take_gets_a_not_triggered_event(kube_api: Any, start_daemon: Any) -> None:
    daemon = start_daemon([board_group(kube_api)])
    kube_api.create_pod("huge", cpus=16, runtime_s=10)
    found = kube_api.wait_until(lambda: [e for e in events(kube_api) if e["reason"] == "NotTriggerScaleUp"],
                                timeout=10, what="NotTriggerScaleUp event")
    assert found[0]["involvedObject"]["name"] == "huge" and found[0]["source"]["component"]
    assert "pod didn't trigger scale-up" in found[0]["message"]
    kube_api.wait_until(  # published at the end of the pass that sent the event
        lambda: daemon.metrics.registry.get_sample_value("oscar_deploy_elastic_unschedulable_pods") == 1,
        timeout=5, what="unschedulable_pods gauge")
    assert not daemon.ledger.records() or all(r.state.value == "off" for r in daemon.ledger.records())


def test_a_full_edge_group_sends_the_rest_to_the_next_group(kube_api: Any, start_daemon: Any) -> None:
    edge = board_group(kube_api, "edge", boards=1, priority=10)
    burst = board_group(kube_api, "burst", boards=2, priority=1)
    start_daemon([edge, burst])
    kube_api.create_pods(3, "job", cpus=1.5, runtime_s=1000)
    kube_api.wait_until(lambda: len(kube_api.pods(phase="Running")) == 3, timeout=20, what="pods running")
    assert sorted(p["spec"]["nodeName"] for p in kube_api.pods()) == ["burst-0", "burst-1", "edge-0"]


def test_a_board_that_never_registers_fails_and_its_pods_go_to_the_next_group(
        kube_api: Any, start_daemon: Any, tmp_path: Path) -> None:
    edge = board_group(kube_api, "edge", boards=1, priority=10)
    # its power-on "works" but the board never boots (a dead PoE port)
    edge = dataclasses.replace(edge, power={**edge.power, "power_on": "true"})
    burst = board_group(kube_api, "burst", boards=1, priority=1)
    settings = dataclasses.replace(FAST, policy=dataclasses.replace(FAST.policy, max_wait_poweron_s=1.5))
    daemon = start_daemon([edge, burst], settings)
    kube_api.create_pod("job", cpus=1.5, runtime_s=1000)

    kube_api.wait_until(lambda: kube_api.pods(phase="Running"), timeout=20, what="pod running")
    assert kube_api.get("pods", "job", "default")["spec"]["nodeName"] == "burst-0"
    kube_api.wait_until(lambda: (r := daemon.ledger.get("edge-0")) is not None and r.state.value == "failed",
                        timeout=10, what="edge-0 failed")  # its worker also ran the power-off command
    assert daemon.ledger.backoff()["edge"].failures == 1

    def status() -> dict[str, str]:
        return kube_api.get("configmaps", "oscar-deploy-elastic-status", "kube-system")["data"]

    kube_api.wait_until(lambda: '"failed"' in status()["state"], timeout=10, what="status ConfigMap")
    assert "edge-0" in status()["state"] and "Backoff" in status()["status"]
    text = daemon.metrics.exposition().decode()
    assert 'oscar_deploy_elastic_power_on_failures_total{group="edge"} 1.0' in text

    # the operator fixed the port: `nodes reset` puts the board back to off, usable again
    kubeconfig = str(kube_api.write_kubeconfig(tmp_path / "kubeconfig"))
    result = CliRunner().invoke(main, ["nodes", "--kubeconfig", kubeconfig, "reset", "edge-0"])
    assert result.exit_code == 0, result.output
    kube_api.wait_until(lambda: (r := daemon.ledger.get("edge-0")) is not None and r.state.value == "off",
                        timeout=10, what="edge-0 reset to off")


def test_latency_from_unschedulable_to_power_on_request_is_recorded(kube_api: Any, start_daemon: Any) -> None:
    group = board_group(kube_api, boards=1)
    daemon = start_daemon([group])
    time.sleep(0.5)  # leader, synced
    kube_api.create_pod("job", cpus=1.0, runtime_s=1000)
    kube_api.wait_until(lambda: kube_api.pods(phase="Running"), timeout=20, what="pod running")
    sample = daemon.metrics.registry.get_sample_value
    samples = sample("oscar_deploy_elastic_pending_to_request_seconds_count")
    total = sample("oscar_deploy_elastic_pending_to_request_seconds_sum")
    assert samples == 1 and total is not None and total < 1.0


def test_a_board_that_loses_power_is_counted_off_and_powered_on_again_when_needed(
        kube_api: Any, start_daemon: Any) -> None:
    group = board_group(kube_api, boards=1)
    # idle long enough that the daemon itself would not power the board off during the test
    settings = dataclasses.replace(FAST, policy=dataclasses.replace(FAST.policy, max_wait_poweron_s=1.0,
                                                                    idle_time_s=60.0, adaptive_idle=False))
    start_daemon([group], settings)
    kube_api.create_pod("first", cpus=1.0, runtime_s=20)
    kube_api.wait_until(lambda: kube_api.pods(phase="Succeeded"), timeout=10, what="first job done")
    kube_api.set_node_ready("edge-0", False)  # the plug was pulled: no power-off by the daemon
    kube_api.wait_until(lambda: state(kube_api, "edge-0") == "unknown", timeout=10, what="edge-0 unknown")
    kube_api.wait_until(lambda: state(kube_api, "edge-0") == "off", timeout=10, what="glitch: counted off")
    kube_api.create_pod("second", cpus=1.0, runtime_s=100000)
    kube_api.wait_until(lambda: kube_api.pods(phase="Running"), timeout=20, what="second job runs")
    assert kube_api.get("pods", "second", "default")["spec"]["nodeName"] == "edge-0"
