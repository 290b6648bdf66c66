"""The daemon's parts on their own: lifecycle transitions and backoff (pure), API objects → model,
the Wake-on-LAN packet on the wire, the watch's relist after ``410 Gone``, the metrics exposition
under ``promtool``, draining against a PodDisruptionBudget, and the ``nodes`` commands."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from kubernetes import client

from elastic.kubeapi import KubeApi
from elastic.lifecycle import (
    Backoff,
    Ledger,
    Record,
    first_sight,
    from_annotations,
    load_dump,
    next_backoff,
    observe,
)
from elastic.metrics import Metrics
from elastic.model import GroupNode, NodeGroup, NodeState, NotTriggeredReason
from elastic.power import CommandPower, PowerError, WolPower, fill, magic_packet
from elastic.view import pod_info, quantity
from elastic.watch import Informer
from provisioner.cli import main
from provisioner.errors import BadInput
from tests.test_daemon import FAST, board_group, ready, start_daemon, state  # noqa: F401 (fixture)

GROUP = NodeGroup("edge", cpus=2, memory_mib=4096, max=2,
                  nodes=(GroupNode("b1", "10.0.0.1", "aa:bb:cc:dd:ee:01"), GroupNode("b2")))


# ---- lifecycle (pure) ------------------------------------------------------------------------------

def test_a_powering_on_node_becomes_idle_when_ready_then_used_then_idle_again() -> None:
    rec = Record("b1", "edge", NodeState.POWERING_ON, 100.0, powered_on_at=100.0)
    assert observe(rec, ready=False, user_pods=0, now=150.0) == rec  # still booting
    idle = observe(rec, ready=True, user_pods=0, now=160.0)
    assert (idle.state, idle.since, idle.idle_since) == (NodeState.IDLE, 160.0, 160.0)
    assert idle.powered_on_at == 100.0
    used = observe(idle, ready=True, user_pods=2, now=170.0)
    assert (used.state, used.idle_since) == (NodeState.USED, None)
    again = observe(used, ready=True, user_pods=0, now=200.0)
    assert (again.state, again.idle_since) == (NodeState.IDLE, 200.0)
    assert observe(again, ready=True, user_pods=0, now=260.0).idle_since == 200.0  # the idle clock runs on
    assert observe(again, ready=False, user_pods=0, now=270.0).state is NodeState.UNKNOWN


def test_ready_after_the_daemon_s_own_power_action_is_believed_only_once_the_node_speaks_again() -> None:
    """A Node says Ready for the node-monitor grace period after its power is cut: an ``off`` board
    stays off (and can be powered on at once) until it was seen not Ready or its Lease was renewed
    after the cut; the same goes for a board powered on while its Node still looked Ready."""
    off = Record("b1", "edge", NodeState.OFF, 100.0, acted_at=100.0)
    assert observe(off, ready=True, user_pods=0, now=110.0, lease_renewed=95.0) == off  # stale Ready
    assert observe(off, ready=True, user_pods=0, now=110.0) == off  # no Lease at all
    seen_down = observe(off, ready=False, user_pods=0, now=150.0)
    assert (seen_down.state, seen_down.acted_at) == (NodeState.OFF, None)
    assert observe(seen_down, ready=True, user_pods=0, now=160.0).state is NodeState.IDLE  # on by hand
    booting = Record("b1", "edge", NodeState.POWERING_ON, 105.0, powered_on_at=105.0, acted_at=105.0)
    assert observe(booting, ready=True, user_pods=0, now=106.0, lease_renewed=99.0) == booting
    up = observe(booting, ready=True, user_pods=0, now=120.0, lease_renewed=118.0)
    assert (up.state, up.acted_at) == (NodeState.IDLE, None)
    assert from_annotations("b1", {k: v for k, v in off.annotations().items() if v}, "edge") == off


def test_operator_and_transitional_states_are_left_alone() -> None:
    for state_ in (NodeState.DISABLED, NodeState.FAILED, NodeState.POWERING_OFF):
        rec = Record("b1", "edge", state_, 1.0)
        assert observe(rec, ready=True, user_pods=3, now=9.0) == rec


def test_first_sight_of_a_not_ready_node_is_off_for_a_board_and_booting_for_a_cloud_worker() -> None:
    assert first_sight("b1", "edge", ready=False, user_pods=0, now=50.0).state is NodeState.OFF
    cloud = first_sight("w1", "cloud", ready=False, user_pods=0, now=50.0, registered_at=40.0, fleet=False)
    assert (cloud.state, cloud.powered_on_at) == (NodeState.POWERING_ON, 40.0)
    assert first_sight("b1", "edge", ready=True, user_pods=1, now=50.0).state is NodeState.USED


def test_backoff_doubles_up_to_its_max_and_the_ledger_resets_it_after_a_success() -> None:
    b1 = next_backoff(None, 0.0, 300, 1800)
    b2 = next_backoff(b1, 1000.0, 300, 1800)
    b4 = next_backoff(next_backoff(b2, 2000.0, 300, 1800), 5000.0, 300, 1800)
    assert (b1.until, b2.until, b4.until, b4.failures) == (300.0, 1600.0, 6800.0, 4)
    assert next_backoff(Backoff(9, 0), 0.0, 300, 1800).until == 1800.0
    ledger = Ledger()
    ledger.fail_group("edge", 0.0, 300, 1800)
    ledger.put(Record("b2", "edge", NodeState.FAILED, 5.0))
    ledger.put(Record("b1", "edge", NodeState.USED, 5.0))
    records, backoff = load_dump(ledger.dump(registered={"b1"}))  # what the status ConfigMap keeps
    assert [r.name for r in records] == ["b2"] and backoff["edge"].failures == 1
    ledger.succeed_group("edge")
    assert ledger.backoff_until() == {}
    assert load_dump("not json") == ([], {})


# ---- view ------------------------------------------------------------------------------------------

def test_a_pod_manifest_becomes_the_policy_s_pod(kube_api: Any) -> None:
    pod = kube_api.pod_manifest("p", cpus=1.5, memory_mib=300, gpus=1, node_selector={"arch": "arm64"},
                                tolerations=[{"key": "edge", "operator": "Exists"}], owner_kind="DaemonSet")
    pod["metadata"].update(namespace="ns", creationTimestamp="2026-01-01T00:00:00Z")
    pod["spec"]["initContainers"] = [{"name": "i", "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}}]
    pod["status"] = {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "lastTransitionTime": "2026-01-01T00:00:05Z"}]}
    info = pod_info(pod)
    assert (info.key, info.cpu_m, info.memory_mib, info.gpus) == ("ns/p", 2000, 1024, 1)
    assert info.node_selector == {"arch": "arm64"} and info.tolerations[0].operator == "Exists"
    assert info.daemonset and info.unschedulable_since == info.created_at + 5
    assert pod_info(pod, unschedulable_seen_at=123.5).unschedulable_since == 123.5
    assert quantity("1.5Gi") == 1.5 * 2**30 and quantity("250m") * 1000 == 250


# ---- power managers ----------------------------------------------------------------------------------

def test_wake_on_lan_sends_the_magic_packet_to_the_configured_address() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(5)
        WolPower("127.0.0.1", receiver.getsockname()[1]).power_on(GROUP, "b1")
        packet, _ = receiver.recvfrom(1024)
    assert packet == b"\xff" * 6 + bytes.fromhex("aabbccddee01") * 16 and len(packet) == 102
    with pytest.raises(PowerError, match="no 'mac'"):
        WolPower("127.0.0.1", 9).power_on(GROUP, "b2")
    with pytest.raises(BadInput, match="MAC address"):
        magic_packet("aa:bb")


def test_power_commands_get_placeholders_as_arguments_and_report_failures(tmp_path: Path) -> None:
    assert fill("plug {address} {node} '{group}' ${HOME}") == """plug "$3" "$1" ''"$2"'' ${HOME}"""
    out = tmp_path / "out"
    command = f"echo $OSCAR_NODE {{address}} 'g={{group}}' \"{{node}}\" > {out}"
    CommandPower(command, "true").power_on(GROUP, "b1")
    assert out.read_text().split() == ["b1", "10.0.0.1", "g=edge", "b1"]
    with pytest.raises(PowerError, match=r"status 3: port 7 is dead"):
        CommandPower("echo 'port 7 is dead' >&2; exit 3", "true").power_on(GROUP, "b1")
    with pytest.raises(PowerError, match=r"still running after 0\.2s"):
        CommandPower("sleep 5", "true", timeout_s=0.2).power_on(GROUP, "b1")


def test_power_commands_do_not_inherit_the_daemons_secrets(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon's environment holds the cluster token and cloud keys; a plug's command needs none."""
    monkeypatch.setenv("K3S_TOKEN", "K10secret::server:abc")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "cloud-secret")
    out = tmp_path / "env"
    CommandPower(f"env > {out}", "true").power_on(GROUP, "b1")
    seen = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert "K3S_TOKEN" not in seen and "AWS_SECRET_ACCESS_KEY" not in seen
    assert "cloud-secret" not in out.read_text() and "K10secret" not in out.read_text()
    assert seen["OSCAR_NODE"] == "b1" and seen["PATH"]


# ---- watch ------------------------------------------------------------------------------------------

def test_the_watch_relists_after_410_gone_and_misses_nothing(kube_api: Any) -> None:
    seen: list[tuple[str, str]] = []
    informer = Informer(KubeApi(kube_api.api_client()), "nodes",
                        lambda kind, new, old: seen.append((kind, ((new or old) or {}).get("metadata", {})
                                                           .get("name", ""))),
                        watch_timeout_s=1).start()
    try:
        assert informer.synced.wait(5)
        kube_api.register_node("n1")
        kube_api.wait_until(lambda: informer.get("/n1"), timeout=5, what="n1 cached")
        kube_api.compact()  # history gone: the next resume from an old version gets 410
        kube_api.register_node("n2")
        kube_api.delete_node("n1")
        kube_api.wait_until(lambda: informer.relists >= 1 or informer.get("/n2"), timeout=10, what="n2")
        kube_api.wait_until(lambda: informer.get("/n2") and not informer.get("/n1"), timeout=10,
                            what="cache current")
    finally:
        informer.stop()
    assert ("ADDED", "n1") in seen and ("ADDED", "n2") in seen and ("DELETED", "n1") in seen


# ---- metrics -----------------------------------------------------------------------------------------

PROMTOOL = os.environ.get("PROMTOOL") or str(
    Path(__file__).resolve().parents[1] / ".cache/prometheus/usr/bin/promtool")


@pytest.mark.skipif(not Path(PROMTOOL).is_file(),
                    reason="promtool not found ($PROMTOOL is set by scripts/test.sh)")
def test_metrics_pass_promtool_check_metrics() -> None:
    promtool = PROMTOOL
    metrics = Metrics()
    metrics.set_nodes(["edge", "cloud"], {("edge", "idle"): 2, ("cloud", "powering_on"): 1})
    metrics.scale_ups.labels("cloud", "pending_pods").inc()
    metrics.scale_downs.labels("edge", "idle").inc()
    metrics.power_on_failures.labels("cloud").inc()
    metrics.decision_duration.observe(0.01)
    metrics.pending_to_request.observe(0.3)
    metrics.last_activity.labels("main").set(time.time())
    metrics.unschedulable_pods.set(4)
    metrics.leader.set(1)
    metrics.set_not_triggered([NotTriggeredReason.MAX_SIZE, NotTriggeredReason.MAX_SIZE])
    metrics.drain_failures.labels("edge").inc()
    metrics.unready_brake.set(0)
    text = metrics.exposition()
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert b'oscar_deploy_elastic_nodes{group="edge",state="idle"} 2.0' in text
    assert b'oscar_deploy_elastic_nodes{group="edge",state="off"} 0.0' in text
    assert b'oscar_deploy_elastic_not_triggered_pods{reason="max_size"} 2.0' in text
    assert b'oscar_deploy_elastic_not_triggered_pods{reason="no_group_fits"} 0.0' in text


# ---- drain against a PodDisruptionBudget, operator requests ------------------------------------------

@pytest.mark.parametrize("annotation", [{"karpenter.sh/do-not-disrupt": "true"},
                                        {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}],
                         ids=["karpenter", "cluster-autoscaler"])
def test_a_pod_that_asks_not_to_be_disrupted_keeps_its_node_on(
        kube_api: Any, start_daemon: Any, tmp_path: Path, annotation: dict[str, str]) -> None:  # noqa: F811
    """Asked to power a node off, the daemon evicts nothing while a pod there carries Karpenter's or
    the Cluster Autoscaler's do-not-disrupt annotation: the node is uncordoned and stays on, and an
    Event says why."""
    group = board_group(kube_api, "edge", boards=1)
    kube_api.register_node("edge-0", cpus=2, memory_mib=4096)
    kube_api.create_pod("keep", cpus=0.5, annotations=annotation)
    kube_api.create_pod("other", cpus=0.5)
    kube_api.wait_until(lambda: len(kube_api.pods(phase="Running")) == 2, timeout=10, what="both running")
    start_daemon([group])
    kube_api.wait_until(lambda: state(kube_api, "edge-0") == "used", timeout=10, what="edge-0 used")
    kubeconfig = kube_api.write_kubeconfig(tmp_path / "kubeconfig")
    result = CliRunner().invoke(main, ["nodes", "--kubeconfig", str(kubeconfig), "poweroff", "edge-0"])
    assert result.exit_code == 0, result.output

    def refused() -> bool:
        messages = [e.get("message") or "" for e in kube_api.store.list("events", None)[0]]
        return any("not powered off" in m and "asks not to be disrupted" in m for m in messages)

    kube_api.wait_until(refused, timeout=10, what="the refusal's Event")
    assert sorted(p["metadata"]["name"] for p in kube_api.pods(phase="Running")) == ["keep", "other"]
    kube_api.wait_until(lambda: not kube_api.get("nodes", "edge-0")["spec"].get("unschedulable"),
                        timeout=10, what="edge-0 uncordoned")
    assert state(kube_api, "edge-0") == "used" and ready(kube_api, "edge-0")


def test_poweroff_drains_through_the_eviction_api_and_waits_for_the_budget(
        kube_api: Any, start_daemon: Any, kube_client: Any, tmp_path: Path) -> None:  # noqa: F811
    group = board_group(kube_api, "edge", boards=1)
    kube_api.register_node("edge-0", cpus=2, memory_mib=4096)
    for i in range(2):
        kube_api.create_pod(f"web-{i}", cpus=0.5, labels={"app": "web"})
    kube_api.wait_until(lambda: len(kube_api.pods(phase="Running")) == 2, timeout=10, what="web running")
    policy = client.PolicyV1Api(kube_client)
    policy.create_namespaced_pod_disruption_budget("default", {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}})
    start_daemon([group])
    kube_api.wait_until(lambda: state(kube_api, "edge-0") == "used", timeout=10, what="edge-0 used")

    kubeconfig = kube_api.write_kubeconfig(tmp_path / "kubeconfig")
    result = CliRunner().invoke(main, ["nodes", "--kubeconfig", str(kubeconfig), "poweroff", "edge-0"])
    assert result.exit_code == 0, result.output
    # one pod goes; the budget holds the other while the node stays cordoned and powering off
    kube_api.wait_until(lambda: [p["metadata"]["name"] for p in kube_api.pods()] == ["web-1"], timeout=10,
                        what="web-0 evicted")
    time.sleep(0.5)
    assert state(kube_api, "edge-0") == "powering_off" and ready(kube_api, "edge-0")
    assert kube_api.get("nodes", "edge-0")["spec"]["unschedulable"] is True
    policy.delete_namespaced_pod_disruption_budget("web", "default")  # the retry now gets through
    kube_api.wait_until(lambda: state(kube_api, "edge-0") == "off", timeout=10, what="edge-0 off")
    assert kube_api.pods() == []

    status = CliRunner().invoke(main, ["nodes", "--kubeconfig", str(kubeconfig), "status", "-o", "json"])
    assert status.exit_code == 0, status.output
    rows = json.loads(status.stdout)
    assert [(r["name"], r["group"], r["state"]) for r in rows] == [("edge-0", "edge", "off")]


def test_nodes_disable_enable_and_reset_go_through_the_leader(
        kube_api: Any, start_daemon: Any, tmp_path: Path) -> None:  # noqa: F811
    group = board_group(kube_api, "edge", boards=2)
    daemon = start_daemon([group])
    kubeconfig = str(kube_api.write_kubeconfig(tmp_path / "kc"))

    def nodes(*args: str) -> Any:
        result = CliRunner().invoke(main, ["nodes", "--kubeconfig", kubeconfig, *args])
        assert result.exit_code == 0, result.output
        return result

    nodes("disable", "edge-0")
    kube_api.wait_until(lambda: (r := daemon.ledger.get("edge-0")) and r.state is NodeState.DISABLED,
                        timeout=10, what="edge-0 disabled")
    kube_api.create_pods(2, "job", cpus=1.5, runtime_s=100000)  # two pods, but edge-0 is not to be touched
    kube_api.wait_until(lambda: kube_api.pods(phase="Running"), timeout=10, what="one pod running")
    time.sleep(0.5)
    assert [p["spec"].get("nodeName") for p in kube_api.pods(phase="Running")] == ["edge-1"]
    assert state(kube_api, "edge-0") is None  # never powered on

    nodes("enable", "edge-0")
    kube_api.wait_until(lambda: len(kube_api.pods(phase="Running")) == 2, timeout=10, what="both running")
    table = nodes("--groups", str(write_groups(tmp_path, group)), "status").output
    assert "edge-0" in table and "used" in table

    missing = CliRunner().invoke(main, ["nodes", "--kubeconfig", str(tmp_path / "nope"), "status"])
    assert missing.exit_code == 2 and "kubeconfig file not found" in missing.output


def write_groups(tmp_path: Path, group: NodeGroup) -> Path:
    import yaml

    path = tmp_path / "groups.yaml"
    path.write_text(yaml.safe_dump([{"name": group.name, "cpus": group.cpus, "memory_mib": group.memory_mib,
                                     "max": group.max, "nodes": [{"name": n.name} for n in group.nodes],
                                     "power": dict(group.power)}]))
    return path


class CuttableProxy:
    """A TCP proxy to the API server whose link can be cut (every connection reset, new ones refused)
    and restored: what a flaky network or an API server restart looks like to a watch."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client_sock, _ = self.listener.accept()
            except OSError:
                return
            if not self.up.is_set():
                client_sock.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.conns += [client_sock, upstream]
            for a, b in ((client_sock, upstream), (upstream, client_sock)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up.clear()
        with self.lock:
            for s in self.conns:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            self.conns.clear()

    def restore(self) -> None:
        self.up.set()

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_the_watch_reconnects_with_backoff_and_resumes_where_it_stopped(kube_api: Any) -> None:
    proxy = CuttableProxy(kube_api.port)
    config = client.Configuration()
    config.host = f"http://127.0.0.1:{proxy.port}"
    informer = Informer(KubeApi(client.ApiClient(config)), "nodes", watch_timeout_s=30).start()
    try:
        assert informer.synced.wait(5)
        kube_api.register_node("n1")
        kube_api.wait_until(lambda: informer.get("/n1"), timeout=5, what="n1 cached")
        proxy.cut()
        kube_api.register_node("n2")  # happens while the watch is down
        time.sleep(1.5)  # a few failed reconnects, spaced by the backoff
        assert informer.reconnects >= 2 and informer.get("/n2") is None
        proxy.restore()
        kube_api.wait_until(lambda: informer.get("/n2"), timeout=15, what="n2 after the reconnect")
        assert informer.relists == 0  # resumed from its resourceVersion: no full relist was needed
    finally:
        informer.stop()
        proxy.close()


def test_the_watch_relists_when_the_watch_request_itself_is_answered_410(kube_api: Any) -> None:
    """An expired resourceVersion may come back as the status of the watch request, not as an ERROR
    event in a 200 stream; client-go relists on both, and so must the informer (not reconnect forever)."""
    kube_api.answer_expired_watches_with_status()
    proxy = CuttableProxy(kube_api.port)
    config = client.Configuration()
    config.host = f"http://127.0.0.1:{proxy.port}"
    informer = Informer(KubeApi(client.ApiClient(config)), "nodes", watch_timeout_s=30).start()
    try:
        assert informer.synced.wait(5)
        kube_api.register_node("n1")
        kube_api.wait_until(lambda: informer.get("/n1"), timeout=5, what="n1 cached")
        proxy.cut()
        kube_api.register_node("n2")
        kube_api.compact()  # the informer's resourceVersion is now too old
        proxy.restore()
        kube_api.wait_until(lambda: informer.get("/n2"), timeout=10, what="n2 cached after a relist")
        assert informer.relists >= 1
    finally:
        informer.stop()
        proxy.close()


def test_the_daemon_s_defaults_are_the_config_s_defaults() -> None:
    """The simulator and benchmarks run ``PolicySettings()``; the daemon runs ``[elastic]`` of the config.
    The two sets of defaults must be one, or a simulated result stops predicting production."""
    from elastic.daemon import DaemonSettings, settings_from_config
    from provisioner.config import ElasticSettings

    assert settings_from_config(ElasticSettings()) == DaemonSettings()


def test_a_new_machine_never_gets_a_name_a_node_record_or_earlier_machine_had() -> None:
    """k3s keeps a name's node-password Secret until its Node is deleted and refuses a new machine
    under that name, so a power-on's fresh name skips every name in use or used before."""
    from elastic.actuator import Actuator

    class Names:
        ephemeral = True

        def __init__(self, names: list[str]) -> None:
            self.names = names

        def new_name(self, group: NodeGroup) -> str:
            return self.names.pop(0)

    ledger = Ledger()
    ledger.put(Record("w-1", "cloud", NodeState.UNKNOWN, 1.0))
    actuator = Actuator(None, ledger, {}, {}, Metrics(),  # type: ignore[arg-type]
                        node_object=lambda name: {"metadata": {"name": name}} if name == "w-2" else None,
                        pods_on=lambda name: [], pod_object=lambda key: None,
                        unschedulable_seen=lambda key: None)
    try:
        names = Names(["w-1", "w-2", "w-3", "w-3", "w-4"])
        assert actuator._fresh_name(names, GROUP) == "w-3"
        assert actuator._fresh_name(names, GROUP) == "w-4"
        with pytest.raises(PowerError, match="no unused node name"):
            actuator._fresh_name(Names(["w-1"] * 20), GROUP)
    finally:
        actuator.shutdown()


def test_a_drain_does_not_wait_on_a_pod_terminating_long_past_its_grace_period() -> None:
    from elastic.actuator import LONG_TERMINATING_S, _long_terminating
    from elastic.kubeapi import rfc3339

    pod = {"metadata": {"name": "p", "deletionTimestamp": rfc3339(1000.0)}}
    assert not _long_terminating(pod, 1000.0 + LONG_TERMINATING_S - 1)
    assert _long_terminating(pod, 1000.0 + LONG_TERMINATING_S + 1)
    assert not _long_terminating({"metadata": {"name": "q"}}, 5000.0)

# ---- run-time history (what decide() learns run times from) ----------------------------------------

def _job_pod(name: str, service: str | None, created: str, phase: str = "Running", started: str | None = None,
             finished: str | None = None) -> dict[str, Any]:
    labels = {"oscar_service": service} if service else {}
    status: dict[str, Any] = {"phase": phase}
    if started:
        status["startTime"] = started
    if finished:
        status["containerStatuses"] = [{"name": "oscar-container",
                                        "state": {"terminated": {"exitCode": 0, "finishedAt": finished}}}]
    meta = {"name": name, "namespace": "oscar-svc", "labels": labels, "creationTimestamp": created}
    return {"metadata": meta,
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]},
            "status": status}


def test_history_learns_each_finished_pod_once_per_service_and_counts_arrivals() -> None:
    from elastic.history import HistoryKeeper

    keeper = HistoryKeeper()
    running = _job_pod("a", "thumbs", "2026-01-01T10:00:00Z", started="2026-01-01T10:00:05Z")
    keeper.observe([running])
    assert keeper.snapshot().runtimes == {} and len(keeper.snapshot().arrivals) == 1
    done = _job_pod("a", "thumbs", "2026-01-01T10:00:00Z", "Succeeded", "2026-01-01T10:00:05Z",
                    "2026-01-01T10:01:05Z")
    other = _job_pod("b", None, "2026-01-01T10:00:30Z", "Succeeded", "2026-01-01T10:00:40Z",
                     "2026-01-01T10:00:50Z")
    keeper.observe([done, other])
    keeper.observe([done, other])  # listed again (every pass): counted once
    history = keeper.snapshot()
    assert history.runtimes == {"oscar-svc/thumbs": (60.0,), "oscar-svc/1000m/1024Mi": (10.0,)}
    assert len(history.arrivals) == 2 and list(history.arrivals) == sorted(history.arrivals)
    # the pod as the policy sees it names the same owner, and when it started
    info = pod_info(running)
    assert info.owner == "oscar-svc/thumbs" and info.started_at is not None


def test_history_stays_bounded() -> None:
    from elastic.history import HistoryKeeper
    from elastic.model import HISTORY_ARRIVALS, HISTORY_RUNS

    keeper = HistoryKeeper()
    pods = [_job_pod(f"p{i}", "s", f"2026-01-01T10:{i // 60 % 60:02d}:{i % 60:02d}Z", "Succeeded",
                     "2026-01-01T11:00:00Z", "2026-01-01T11:00:30Z") for i in range(3 * HISTORY_ARRIVALS)]
    keeper.observe(pods)
    history = keeper.snapshot()
    assert len(history.runtimes["oscar-svc/s"]) == HISTORY_RUNS and len(history.arrivals) == HISTORY_ARRIVALS


@pytest.mark.parametrize("answer", ["500", "403"])
def test_an_eviction_error_other_than_429_fails_the_drain_and_the_node_is_never_powered_off(
        kube_api: Any, start_daemon: Any, kube_client: Any, tmp_path: Path, answer: str) -> None:  # noqa: F811
    """The API server refuses the eviction otherwise than with 429: 500 when two PodDisruptionBudgets
    select the pod (pkg/registry/core/pod/storage/eviction.go), 403 when the daemon's Role lacks
    ``create pods/eviction``. The drain fails at once: the node is uncordoned, stays on and used with
    its pod, backs off, and is not powered off even long past ``max_wait_poweroff_s``."""
    group = board_group(kube_api, "edge", boards=1)
    kube_api.register_node("edge-0", cpus=2, memory_mib=4096)
    kube_api.create_pod("web-0", cpus=0.5, labels={"app": "web"})
    kube_api.wait_until(lambda: len(kube_api.pods(phase="Running")) == 1, timeout=10, what="web running")
    policy = client.PolicyV1Api(kube_client)
    if answer == "500":
        for name in ("web-a", "web-b"):
            policy.create_namespaced_pod_disruption_budget("default", {
                "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name},
                "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}})
    else:
        kube_api.deny("create", "pods/eviction")
    said = {"500": "more than one PodDisruptionBudget",
            "403": 'cannot create resource "pods/eviction" in API group "" in the namespace "default"',
            }[answer]
    quick = dataclasses.replace(FAST, policy=dataclasses.replace(FAST.policy, max_wait_poweroff_s=1.0))
    daemon = start_daemon([group], quick)
    kube_api.wait_until(lambda: state(kube_api, "edge-0") == "used", timeout=10, what="edge-0 used")

    kubeconfig = kube_api.write_kubeconfig(tmp_path / "kubeconfig")
    result = CliRunner().invoke(main, ["nodes", "--kubeconfig", str(kubeconfig), "poweroff", "edge-0"])
    assert result.exit_code == 0, result.output

    def refused() -> bool:
        messages = [e.get("message") or "" for e in kube_api.store.list("events", None)[0]]
        return any(f"not powered off: the eviction of default/web-0 failed: {answer}" in m and said in m
                   for m in messages)

    kube_api.wait_until(refused, timeout=10, what="the failed drain's Event")
    time.sleep(4 * quick.policy.max_wait_poweroff_s)  # long past the power-off timer
    assert [p["metadata"]["name"] for p in kube_api.pods(phase="Running")] == ["web-0"]
    assert state(kube_api, "edge-0") == "used" and ready(kube_api, "edge-0")
    assert not kube_api.get("nodes", "edge-0")["spec"].get("unschedulable")
    sample = daemon.metrics.registry.get_sample_value
    assert sample("oscar_deploy_elastic_drain_failures_total", {"group": "edge"}) == 1.0
    assert sample("oscar_deploy_elastic_scale_downs_total", {"group": "edge", "reason": "failed"}) is None


def test_the_unready_brake_keeps_nodes_when_too_many_are_unready_at_once(
        kube_api: Any, start_daemon: Any) -> None:  # noqa: F811
    """Four of four boards go NotReady together (a switch died): more than ok_total_unready_count (3)
    and than 45 %, so none is counted off or failed; the status ConfigMap and the gauge say why, and
    both clear when the boards come back."""
    group = board_group(kube_api, "edge", boards=4)
    for i in range(4):
        kube_api.register_node(f"edge-{i}", cpus=2, memory_mib=4096)
    policy = dataclasses.replace(FAST.policy, max_wait_poweron_s=1.0, idle_time_s=600.0, adaptive_idle=False)
    daemon = start_daemon([group], dataclasses.replace(FAST, policy=policy))
    kube_api.wait_until(lambda: all(state(kube_api, f"edge-{i}") == "idle" for i in range(4)), timeout=10,
                        what="four idle boards")
    for i in range(4):
        kube_api.set_node_ready(f"edge-{i}", False)

    def status() -> str:
        with contextlib.suppress(Exception):  # not written yet
            data = kube_api.get("configmaps", "oscar-deploy-elastic-status", "kube-system")["data"]
            return str(data["status"])
        return ""

    kube_api.wait_until(lambda: "Health: Unhealthy (unready brake" in status(), timeout=10,
                        what="the brake in the status")
    assert "4 of 4 node(s) expected up unready" in status()
    time.sleep(4 * policy.max_wait_poweron_s)  # long past the glitch rule's wait
    assert [state(kube_api, f"edge-{i}") for i in range(4)] == ["unknown"] * 4
    sample = daemon.metrics.registry.get_sample_value
    assert sample("oscar_deploy_elastic_unready_brake") == 1.0
    for i in range(4):
        kube_api.set_node_ready(f"edge-{i}", True)
    kube_api.wait_until(lambda: "Health: Healthy" in status(), timeout=10, what="healthy again")
    assert sample("oscar_deploy_elastic_unready_brake") == 0.0
