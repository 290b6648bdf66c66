"""The daemon against a control plane that behaves as kube-controller-manager, podgc and k3s do.

The Kubernetes API test server keeps a powered-off Node ``Ready`` for the node-monitor grace period
(50 s, 0.5 s here), adds ``unreachable:NoExecute`` taints only as the zone's disruption mode allows,
leaves pods Terminating on a silent node until podgc or the node returns, and refuses (as k3s does) a
new machine under a name whose node-password Secret remains (see ``tests/harness/kube/nodes.py``).
Each test here is a case where a daemon written against a simpler server goes wrong on a real
cluster. Harness time runs 100× faster than wall time; the daemon's timers are set to match.
"""

from __future__ import annotations

import dataclasses
import shlex
import time
from pathlib import Path
from typing import Any

import boto3
from click.testing import CliRunner

from elastic.lifecycle import POWERED_ON_AT
from provisioner.cli import main
from tests.test_daemon import FAST, board_group, ready, start_daemon, state  # noqa: F401 (fixture)
from tests.test_daemon_cloud import REGION, cloud, cloud_power, running_instances  # noqa: F401 (fixtures)

EXCLUDE = "node.kubernetes.io/exclude-disruption"
OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"


def logged(group: Any, log: Path) -> Any:
    """The group with its power-off command also appending the node's name to ``log``."""
    power = dict(group.power)
    power["power_off"] = f"echo {{node}} >> {shlex.quote(str(log))} && {power['power_off']}"
    return dataclasses.replace(group, power=power)


def labels(kube_api: Any, node: str) -> dict[str, str]:
    return dict(kube_api.get("nodes", node)["metadata"].get("labels") or {})


def taint_keys(kube_api: Any, node: str) -> set[str]:
    return {t["key"] for t in kube_api.get("nodes", node)["spec"].get("taints") or []}


def front_end(kube_api: Any) -> None:
    """The k3s server: Ready, in no group, and tainted so that jobs go to the workers."""
    kube_api.register_node("front-end", taints=[{"key": "node-role.kubernetes.io/control-plane",
                                                 "effect": "NoSchedule"}])


def request(kube_api: Any, tmp_path: Path, *args: str) -> None:
    kubeconfig = str(kube_api.write_kubeconfig(tmp_path / "kubeconfig"))
    result = CliRunner().invoke(main, ["nodes", "--kubeconfig", kubeconfig, *args])
    assert result.exit_code == 0, result.output


def test_a_board_powered_off_and_needed_again_5_s_later_is_powered_on_within_one_batch(
        kube_api: Any, start_daemon: Any) -> None:  # noqa: F811
    """After the cut its Node still says Ready for the grace period: the daemon must not take that for
    a board that is on (idle, then unknown, then stuck until ``max_wait_poweron_s``)."""
    group = board_group(kube_api, boards=1)
    daemon = start_daemon([group])
    kube_api.create_pod("first", cpus=1.0, runtime_s=20)
    kube_api.wait_until(lambda: kube_api.pods(phase="Succeeded"), timeout=15, what="first job done")
    kube_api.wait_until(lambda: state(kube_api, "edge-0") == "off", timeout=15, what="board off")
    assert ready(kube_api, "edge-0")  # the Node still says Ready: the grace period has not passed
    time.sleep(5 * 0.01)  # 5 harness seconds later the board is needed again
    needed = time.time()
    kube_api.create_pod("second", cpus=1.0, runtime_s=100000)
    annotated = kube_api.wait_until(
        lambda: (kube_api.get("nodes", "edge-0")["metadata"].get("annotations") or {}).get(POWERED_ON_AT),
        timeout=15, what="edge-0 powered on again")
    settings = daemon.settings
    assert float(annotated) - needed <= settings.batch_max_s + settings.tick_s
    kube_api.wait_until(lambda: kube_api.pods(phase="Running"), timeout=15, what="second job runs")
    assert EXCLUDE not in labels(kube_api, "edge-0")


def test_boards_powered_off_leave_the_zone_s_health_so_a_crashed_board_s_pods_are_evicted(
        kube_api: Any, start_daemon: Any) -> None:  # noqa: F811
    """Three boards off of four, plus the front-end, would be a partial disruption (the controller
    then adds no ``unreachable:NoExecute`` taint): with the ``exclude-disruption`` label on the boards
    the daemon powered off, the zone stays normal and the pods of the board that crashes are evicted."""
    front_end(kube_api)
    group = board_group(kube_api, boards=4)
    start_daemon([group])
    kube_api.create_pods(3, "short", cpus=1.5, runtime_s=20)
    kube_api.wait_until(lambda: len(kube_api.pods(phase="Succeeded")) == 3, timeout=20,
                        what="short jobs done")
    used = {p["spec"]["nodeName"] for p in kube_api.pods()}
    kube_api.wait_until(lambda: all(state(kube_api, b) == "off" for b in used), timeout=20,
                        what="the three boards off")
    assert all(labels(kube_api, b).get(EXCLUDE) for b in used)
    kube_api.create_pod("long", cpus=1.5, runtime_s=100000)
    kube_api.wait_until(lambda: kube_api.pods(phase="Running"), timeout=20, what="long job running")
    board = kube_api.get("pods", "long", "default")["spec"]["nodeName"]
    assert EXCLUDE not in labels(kube_api, board)
    kube_api.set_node_ready(board, False)  # it crashes: the daemon did not power it off
    kube_api.wait_until(lambda: "node.kubernetes.io/unreachable" in taint_keys(kube_api, board)
                        and any(t.get("effect") == "NoExecute"
                                for t in kube_api.get("nodes", board)["spec"].get("taints") or []),
                        timeout=10, what="unreachable:NoExecute on the crashed board")
    kube_api.wait_until(lambda: kube_api.get("pods", "long", "default")["metadata"].get("deletionTimestamp"),
                        timeout=10, what="its pod evicted after the 300 s toleration (3 s)")


def test_poweroff_of_a_hung_board_cuts_its_power_then_marks_it_out_of_service(
        kube_api: Any, start_daemon: Any, tmp_path: Path) -> None:  # noqa: F811
    """Draining a board whose kubelet hangs leaves its pods Terminating for ever; the daemon cuts the
    power first, then taints the board out-of-service, and podgc removes the pods."""
    front_end(kube_api)
    cuts = tmp_path / "cuts"
    settings = dataclasses.replace(FAST, policy=dataclasses.replace(FAST.policy, idle_time_s=60.0))
    start_daemon([logged(board_group(kube_api, boards=1), cuts)], settings)
    kube_api.create_pod("job", cpus=1.0, runtime_s=100000)
    kube_api.wait_until(lambda: kube_api.pods(phase="Running"), timeout=15, what="job running")
    kube_api.wait_until(lambda: state(kube_api, "edge-0") == "used", timeout=10, what="board used")
    kube_api.set_node_ready("edge-0", False)  # the board hangs
    kube_api.wait_until(lambda: state(kube_api, "edge-0") == "unknown", timeout=10, what="board unknown")
    request(kube_api, tmp_path, "poweroff", "edge-0")
    kube_api.wait_until(lambda: cuts.exists() and cuts.read_text().split() == ["edge-0"], timeout=10,
                        what="the power cut")
    kube_api.wait_until(lambda: not kube_api.pods(node="edge-0"), timeout=10, what="its pod removed by podgc")
    kube_api.wait_until(lambda: state(kube_api, "edge-0") == "off", timeout=10, what="board off")
    assert OUT_OF_SERVICE in taint_keys(kube_api, "edge-0")

    kube_api.create_pod("again", cpus=1.0, runtime_s=100000)  # power-on takes the taint away again
    kube_api.wait_until(lambda: kube_api.pods(phase="Running"), timeout=15, what="a job runs there again")
    assert OUT_OF_SERVICE not in taint_keys(kube_api, "edge-0") and EXCLUDE not in labels(kube_api, "edge-0")


def test_poweron_of_an_unknown_cloud_worker_replaces_it_under_a_new_name(
        kube_api: Any, ec2_emulator: Any, cloud: Any, start_daemon: Any, tmp_path: Path) -> None:  # noqa: F811
    """A second VM under the old name would be refused by k3s (the old Node's node-password Secret):
    the unknown worker is removed, VM and Node, and a new one with a fresh name takes its place."""
    group, power = cloud
    settings = dataclasses.replace(FAST, policy=dataclasses.replace(FAST.policy, idle_time_s=60.0))
    start_daemon([group], settings, managers={"cloud": power})
    kube_api.create_pod("job", cpus=1.5, runtime_s=100000)
    kube_api.wait_until(lambda: kube_api.pods(phase="Running"), timeout=30, what="job running")
    old = kube_api.get("pods", "job", "default")["spec"]["nodeName"]
    kube_api.set_node_ready(old, False)  # the VM hangs; its instance still runs
    kube_api.wait_until(lambda: state(kube_api, old) == "unknown", timeout=10, what="worker unknown")
    request(kube_api, tmp_path, "poweron", old)
    kube_api.wait_until(lambda: old not in {n["metadata"]["name"] for n in kube_api.nodes()}, timeout=20,
                        what="the old Node deleted")
    fresh = kube_api.wait_until(
        lambda: [n["metadata"]["name"] for n in kube_api.nodes()
                 if n["metadata"]["name"] != old and ready(kube_api, n["metadata"]["name"])],
        timeout=30, what="a new worker Ready")
    assert fresh[0].startswith("oscar-deploy-") and fresh[0] != old
    kube_api.wait_until(lambda: [i["tags"]["Name"] for i in running_instances(ec2_emulator)] == fresh,
                        timeout=10, what="only the new worker's VM left")


def test_a_worker_whose_vm_is_terminated_outside_the_daemon_loses_its_node_at_once(
        kube_api: Any, ec2_emulator: Any, cloud: Any, start_daemon: Any) -> None:  # noqa: F811
    """k3s has no cloud node-lifecycle controller: the Node of a terminated VM stays, NotReady, and
    would count toward the group's max until ``max_wait_poweron_s``."""
    group, power = cloud
    group = dataclasses.replace(group, max=1)
    settings = dataclasses.replace(FAST, policy=dataclasses.replace(FAST.policy, idle_time_s=60.0))
    daemon = start_daemon([group], settings, managers={"cloud": power})
    kube_api.create_pod("job", cpus=1.5, runtime_s=100000)
    kube_api.wait_until(lambda: kube_api.pods(phase="Running"), timeout=30, what="job running")
    worker = kube_api.get("pods", "job", "default")["spec"]["nodeName"]
    (instance,) = running_instances(ec2_emulator)
    boto = boto3.client("ec2", endpoint_url=ec2_emulator.endpoint, region_name=REGION,
                        aws_access_key_id="AKIDOTHERUSER", aws_secret_access_key="x")
    boto.terminate_instances(InstanceIds=[instance["id"]])  # a spot reclaim, or someone at the console
    gone = time.monotonic()
    kube_api.wait_until(lambda: worker not in {n["metadata"]["name"] for n in kube_api.nodes()},
                        timeout=10, what="the worker's Node deleted")
    assert time.monotonic() - gone < daemon.settings.policy.max_wait_poweron_s / 2
    kube_api.create_pod("next", cpus=1.5, runtime_s=100000)  # the group's max (1) is free again
    kube_api.wait_until(lambda: kube_api.get("pods", "next", "default")["status"]["phase"] == "Running",
                        timeout=30, what="a new worker for it")
    assert kube_api.get("pods", "next", "default")["spec"]["nodeName"] != worker
