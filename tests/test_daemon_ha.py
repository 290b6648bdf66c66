"""Restart safety and HA: two daemons at once (only the Lease holder acts), and ``kill -9`` of the
``oscar-deploy daemon`` process followed by a restart that carries on from Node annotations and the
status ConfigMap, with no board powered on twice and none left on."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_daemon import FAST, board_group, ready, start_daemon, state  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[1]
LEASE = "oscar-deploy-elastic"


def logged_group(kube_api: Any, log: Path, **kwargs: Any) -> Any:
    """A board group whose power-on command also appends the board's name to ``log``."""
    group = board_group(kube_api, **kwargs)
    power = dict(group.power)
    power["power_on"] = f"echo {{node}} >> {shlex.quote(str(log))} && {power['power_on']}"
    return dataclasses.replace(group, power=power)


def powered(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_two_daemons_only_the_lease_holder_acts_and_a_standby_takes_over(
        kube_api: Any, start_daemon: Any, tmp_path: Path) -> None:  # noqa: F811 (the imported fixture)
    log = tmp_path / "power-on.log"
    group = logged_group(kube_api, log, boards=3)
    first = start_daemon([group], identity="replica-a")
    second = start_daemon([group], identity="replica-b")
    kube_api.wait_until(lambda: first.elector.is_leader() or second.elector.is_leader(), timeout=10,
                        what="a leader")
    leader, standby = (first, second) if first.elector.is_leader() else (second, first)
    assert not standby.elector.is_leader()

    kube_api.create_pods(2, "job", cpus=1.5, runtime_s=100000)
    kube_api.wait_until(lambda: len(kube_api.pods(phase="Running")) == 2, timeout=20, what="pods running")
    time.sleep(1.0)  # more passes of both replicas
    assert sorted(powered(log)) == ["edge-0", "edge-1"]  # each board once: one replica acted
    assert standby.passes == 0 and leader.passes > 0
    lease = kube_api.get("leases", "oscar-deploy-elastic", "kube-system")
    assert lease["spec"]["holderIdentity"] == leader.elector.identity

    leader.stop()  # releases the Lease: the standby leads within a retry period
    kube_api.wait_until(standby.elector.is_leader, timeout=10, what="standby leading")
    kube_api.create_pod("more", cpus=1.5, runtime_s=100000)
    kube_api.wait_until(lambda: len(kube_api.pods(phase="Running")) == 3, timeout=20, what="third pod")
    time.sleep(0.5)
    assert sorted(powered(log)) == ["edge-0", "edge-1", "edge-2"]


@pytest.fixture
def daemon_process(kube_api: Any, tmp_path: Path) -> Iterator[Any]:
    """``start(groups_file)`` runs ``oscar-deploy daemon`` as a process with short timers."""
    kubeconfig = kube_api.write_kubeconfig(tmp_path / "kubeconfig")
    procs: list[subprocess.Popen[str]] = []
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OSCAR_DEPLOY_")},
        "OSCAR_DEPLOY_CONFIG": str(tmp_path / "oscar-deploy.cfg"),
        "OSCAR_DEPLOY_ELASTIC_IDLE_TIME_S": "1", "OSCAR_DEPLOY_ELASTIC_COOLDOWN_S": "0",
        "OSCAR_DEPLOY_ELASTIC_TICK_S": "0.3", "OSCAR_DEPLOY_ELASTIC_MAX_WAIT_POWERON_S": "30",
        "OSCAR_DEPLOY_ELASTIC_PENDING_GRACE_S": "5", "PYTHONPATH": str(REPO),
    }
    (tmp_path / "oscar-deploy.cfg").write_text("[elastic]\n")

    def start(groups_file: Path, identity: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "provisioner.cli", "daemon", "--kubeconfig", str(kubeconfig),
             "--groups", str(groups_file), "--metrics-port", "0", "--lease-duration", "2",
             "--identity", identity, "--log-format", "json"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def write_groups(path: Path, group: Any) -> Path:
    path.write_text(yaml.safe_dump([{
        "name": group.name, "cpus": group.cpus, "memory_mib": group.memory_mib, "max": group.max,
        "priority": group.priority, "nodes": [{"name": n.name, "address": n.address} for n in group.nodes],
        "power": dict(group.power),
    }]))
    return path


@pytest.mark.slow
def test_kill_9_and_restart_carries_on_from_annotations(kube_api: Any, daemon_process: Any,
                                                       tmp_path: Path) -> None:
    log = tmp_path / "power-on.log"
    # boards take 1 s (100 harness s) to turn Ready, so the kill lands while they boot
    group = logged_group(kube_api, log, boards=3, ready_after_s=100)
    groups_file = write_groups(tmp_path / "groups.yaml", group)
    first = daemon_process(groups_file, "replica-a")
    kube_api.create_pods(2, "job", cpus=1.5, runtime_s=300)
    kube_api.wait_until(lambda: len(powered(log)) == 2, timeout=30, what="two power-ons")
    kube_api.wait_until(lambda: all(state(kube_api, n) == "powering_on" for n in powered(log)),
                        timeout=10, what="powering_on recorded on the Nodes")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)

    second = daemon_process(groups_file, "replica-b")
    kube_api.wait_until(lambda: len(kube_api.pods(phase="Running")) == 2, timeout=30, what="pods running")
    kube_api.wait_until(lambda: len(kube_api.pods(phase="Succeeded")) == 2, timeout=30, what="pods done")
    boards = sorted(set(powered(log)))
    kube_api.wait_until(lambda: all(state(kube_api, n) == "off" for n in boards), timeout=30,
                        what="boards powered off by the restarted daemon")
    assert sorted(powered(log)) == boards and len(boards) == 2  # nobody powered twice, no third board
    assert second.poll() is None
    lease = kube_api.get("leases", "oscar-deploy-elastic", "kube-system")
    assert lease["spec"]["holderIdentity"] == "replica-b"

    second.send_signal(signal.SIGTERM)  # a clean stop: exit 0 and the Lease released
    output, _ = second.communicate(timeout=20)
    assert second.returncode == 0, output
    logs = [json.loads(line) for line in output.splitlines() if line.strip()]  # structured: JSON lines
    assert any(e["logger"] == "elastic.actuator" and "power off" in e["message"] for e in logs)
    assert not kube_api.get("leases", "oscar-deploy-elastic", "kube-system")["spec"].get("holderIdentity")


KILL_RUNS = int(os.environ.get("ELASTIC_KILL_RUNS", "20"))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(KILL_RUNS))
def test_kill_9_at_a_random_moment_leaves_nothing_extra_on_and_drains_no_busy_node(
        kube_api: Any, daemon_process: Any, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    log = tmp_path / "power-on.log"
    jobs = rng.randint(1, 3)
    group = logged_group(kube_api, log, boards=4, ready_after_s=rng.choice([0, 30, 80]))
    groups_file = write_groups(tmp_path / "groups.yaml", group)
    first = daemon_process(groups_file, "replica-a")
    kube_api.create_pods(jobs, "job", cpus=1.5, runtime_s=rng.uniform(150, 300))
    time.sleep(rng.uniform(0.0, 4.0))  # before, during or after the power-ons
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)

    daemon_process(groups_file, "replica-b")
    kube_api.wait_until(lambda: len(kube_api.pods(phase="Succeeded")) == jobs, timeout=40, what="jobs done")
    kube_api.wait_until(lambda: all(state(kube_api, n) == "off" for n in set(powered(log))), timeout=40,
                        what="every board powered on was powered off")
    assert len(powered(log)) == jobs  # one board per job: none powered on twice or beyond demand
    kube_api.wait_until(lambda: not any(ready(kube_api, f"edge-{i}") for i in range(4)), timeout=20,
                        what="every kubelet stopped")  # a silent kubelet turns NotReady after a grace
    # no user pod was evicted from a busy node: every job ran to completion where it started
    assert all(p["status"]["phase"] == "Succeeded" for p in kube_api.pods())


def test_a_replica_whose_clock_runs_ahead_does_not_take_a_lease_that_is_being_renewed(kube_api: Any) -> None:
    """client-go measures a Lease's expiry on the local clock from when it last saw the record change
    (``observedTime``), never by comparing the holder's ``renewTime`` with its own clock: a replica an
    hour ahead must not depose a live leader, and takes over only when the record stops changing."""
    from elastic.kubeapi import KubeApi
    from elastic.leader import LeaderElector

    holder = LeaderElector(KubeApi(kube_api.api_client()), identity="holder", lease_duration_s=15,
                           renew_deadline_s=10)
    assert holder.try_acquire_or_renew()
    skewed_now = [time.time() + 3600.0]
    other = LeaderElector(KubeApi(kube_api.api_client()), identity="skewed", lease_duration_s=15,
                          renew_deadline_s=10, clock=lambda: skewed_now[0])
    assert not other.try_acquire_or_renew()  # renewed a moment ago, whatever our clock says
    skewed_now[0] += 10
    assert holder.try_acquire_or_renew()  # the holder renews: the record changes
    skewed_now[0] += 10  # 20 s since our first look, 10 s since the record last changed
    assert not other.try_acquire_or_renew()
    skewed_now[0] += 16  # the holder stopped renewing 16 s (of our clock) ago
    assert other.try_acquire_or_renew()
    lease = KubeApi(kube_api.api_client()).coordination.read_namespaced_lease(LEASE, "kube-system")
    assert lease.spec.holder_identity == "skewed" and lease.spec.lease_transitions == 1
