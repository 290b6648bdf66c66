"""The Kubernetes API test server, driven through the real ``kubernetes`` client as the daemon drives it.

Each test checks behaviour a product would rely on: what a list/watch returns and when, what the
scheduler and kubelets do with pods, and the errors (409, 410, 429) a controller must handle.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.harness.kube_api import KubeApiServer, Timing

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def v1(kube_client: Any) -> client.CoreV1Api:
    return client.CoreV1Api(kube_client)


def _pod(name: str, cpu: str = "500m", memory: str = "256Mi", **spec: Any) -> client.V1Pod:
    annotations = spec.pop("annotations", None)
    labels = spec.pop("labels", None)
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, annotations=annotations, labels=labels),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="main",
                    image="busybox",
                    resources=client.V1ResourceRequirements(requests={"cpu": cpu, "memory": memory}),
                )
            ],
            **spec,
        ),
    )


def _node_of(v1: client.CoreV1Api, name: str, namespace: str = "default") -> str | None:
    return v1.read_namespaced_pod(name, namespace).spec.node_name


def _scheduled_condition(pod: client.V1Pod) -> client.V1PodCondition | None:
    return next((c for c in pod.status.conditions or [] if c.type == "PodScheduled"), None)


def _ready(node: client.V1Node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


# ---- list, watch, resume, 410 ----------------------------------------------------------------------
def test_lists_deserialise_into_client_models_with_resource_versions(
    kube_api: KubeApiServer, v1: Any
) -> None:
    kube_api.register_node("w1", cpus=2, memory_mib=4096, labels={"oscar/group": "cloud"})
    created = v1.create_namespaced_pod("default", _pod("p1"))
    assert created.status.phase == "Pending" and created.metadata.uid and created.metadata.creation_timestamp

    nodes = v1.list_node(label_selector="oscar/group in (cloud,edge)")
    pods = v1.list_namespaced_pod("default")
    assert isinstance(nodes, client.V1NodeList) and isinstance(pods, client.V1PodList)
    assert [n.metadata.name for n in nodes.items] == ["w1"]
    assert nodes.items[0].status.allocatable["cpu"] == "2"
    assert int(pods.metadata.resource_version) >= int(created.metadata.resource_version)
    assert v1.list_node(label_selector="oscar/group=edge").items == []
    assert v1.list_node(label_selector="!oscar/group").items == []
    with pytest.raises(ApiException) as err:
        v1.list_namespaced_pod("default", field_selector="spec.containers=x")
    assert err.value.status == 400 and "field label not supported" in err.value.body


def test_watch_sees_node_become_ready_and_pod_lifecycle(kube_api: KubeApiServer, v1: Any) -> None:
    rv = v1.list_node().metadata.resource_version
    kube_api.register_node("w1", ready_after_s=20)  # 0.2 s at the fixture's time scale
    v1.create_namespaced_pod("default", _pod("job", annotations={"harness/runtime-s": "20"}))
    seen_nodes = []
    for event in watch.Watch().stream(v1.list_node, resource_version=rv, timeout_seconds=3):
        seen_nodes.append((event["type"], _ready(event["object"])))
        if seen_nodes[-1][1]:
            break
    assert seen_nodes[0] == ("ADDED", False) and seen_nodes[-1] == ("MODIFIED", True)

    phases = []
    for event in watch.Watch().stream(
        v1.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=2
    ):
        phases.append(event["object"].status.phase)
        if phases[-1] == "Succeeded":
            break
    assert phases[0] == "Pending" and "Running" in phases and phases[-1] == "Succeeded"


def test_watch_resumes_from_a_resource_version(kube_api: KubeApiServer, v1: Any) -> None:
    v1.create_namespaced_pod("default", _pod("before"))
    listed = v1.list_namespaced_pod("default", field_selector="spec.nodeName=")
    assert [p.metadata.name for p in listed.items] == ["before"]
    v1.create_namespaced_pod("default", _pod("after"))

    events = watch.Watch().stream(
        v1.list_namespaced_pod,
        "default",
        resource_version=listed.metadata.resource_version,
        timeout_seconds=1,
    )
    names = [(e["type"], e["object"].metadata.name) for e in events]
    assert ("ADDED", "after") in names and ("ADDED", "before") not in names  # only changes after the version


def test_too_old_resource_version_gives_410_and_a_relist_recovers(kube_api_factory: Any) -> None:
    kube_api = kube_api_factory(history=10)
    v1 = client.CoreV1Api(kube_api.api_client())
    old_rv = v1.list_namespaced_config_map("default").metadata.resource_version
    for i in range(20):  # more writes than the history keeps
        v1.create_namespaced_config_map(
            "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"c{i}"))
        )

    with pytest.raises(ApiException) as err:
        list(
            watch.Watch().stream(
                v1.list_namespaced_config_map, "default", resource_version=old_rv, timeout_seconds=1
            )
        )
    assert err.value.status == 410

    relisted = v1.list_namespaced_config_map("default")
    assert len(relisted.items) == 20
    v1.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="new")))
    events = watch.Watch().stream(
        v1.list_namespaced_config_map,
        "default",
        resource_version=relisted.metadata.resource_version,
        timeout_seconds=1,
    )
    assert [(e["type"], e["object"].metadata.name) for e in events] == [("ADDED", "new")]


def test_compaction_expires_watches_and_timeout_seconds_ends_a_watch(
    kube_api: KubeApiServer, v1: Any
) -> None:
    rv = v1.list_node().metadata.resource_version
    kube_api.register_node("w1")
    kube_api.compact()
    with pytest.raises(ApiException) as err:
        list(watch.Watch().stream(v1.list_node, resource_version=rv, timeout_seconds=1))
    assert err.value.status == 410

    started = time.monotonic()
    list(
        watch.Watch().stream(
            v1.list_node, resource_version=v1.list_node().metadata.resource_version, timeout_seconds=1
        )
    )
    assert 0.9 <= time.monotonic() - started < 5


def test_watch_with_a_field_selector_reports_pods_leaving_it_as_deleted(
    kube_api: KubeApiServer, v1: Any
) -> None:
    rv = v1.list_namespaced_pod("default").metadata.resource_version
    v1.create_namespaced_pod("default", _pod("p"))
    kube_api.register_node("w1")
    kube_api.wait_until(lambda: _node_of(v1, "p"), what="the pod to be bound")
    events = watch.Watch().stream(
        v1.list_namespaced_pod,
        "default",
        field_selector="spec.nodeName=",
        resource_version=rv,
        timeout_seconds=1,
    )
    kinds = [e["type"] for e in events]
    assert kinds[0] == "ADDED" and "DELETED" in kinds


# ---- scheduler -------------------------------------------------------------------------------------
def test_cordoned_node_gets_no_new_pods(kube_api: KubeApiServer, v1: Any) -> None:
    kube_api.register_node("a", cpus=8)
    kube_api.register_node("b", cpus=8)
    kube_api.wait_until(lambda: all(_ready(n) for n in v1.list_node().items), what="nodes Ready")
    cordoned = v1.patch_node("a", {"spec": {"unschedulable": True}})
    assert cordoned.spec.unschedulable is True

    for i in range(4):
        v1.create_namespaced_pod("default", _pod(f"p{i}"))
    kube_api.wait_until(
        lambda: all(p.spec.node_name for p in v1.list_namespaced_pod("default").items), what="all pods bound"
    )
    assert {p.spec.node_name for p in v1.list_namespaced_pod("default").items} == {"b"}

    v1.patch_node("b", {"spec": {"unschedulable": True}})
    v1.create_namespaced_pod("default", _pod("stuck"))
    cond = kube_api.wait_until(
        lambda: _scheduled_condition(v1.read_namespaced_pod("stuck", "default")), what="a scheduling verdict"
    )
    assert cond.status == "False" and "2 node(s) were unschedulable" in cond.message

    v1.patch_node("a", {"spec": {"unschedulable": None}})  # uncordon: the pending pod is retried
    assert kube_api.wait_until(lambda: _node_of(v1, "stuck"), what="the pod to be bound") == "a"


def test_node_selector_and_taints_decide_where_pods_land(kube_api: KubeApiServer, v1: Any) -> None:
    kube_api.register_node("edge-1", cpus=4, labels={"oscar/group": "edge"}, arch="arm64")
    kube_api.register_node("cloud-1", cpus=4, labels={"oscar/group": "cloud"})
    kube_api.register_node(
        "gpu-1", cpus=4, gpus=1, taints=[{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]
    )
    for i in range(3):
        v1.create_namespaced_pod("default", _pod(f"edge-{i}", node_selector={"oscar/group": "edge"}))
    gpu = _pod("gpu", tolerations=[client.V1Toleration(key="nvidia.com/gpu", operator="Exists")])
    gpu.spec.containers[0].resources.limits = {"nvidia.com/gpu": "1"}
    v1.create_namespaced_pod("default", gpu)
    affinity = client.V1Affinity(
        node_affinity=client.V1NodeAffinity(
            required_during_scheduling_ignored_during_execution=client.V1NodeSelector(
                node_selector_terms=[
                    client.V1NodeSelectorTerm(
                        match_expressions=[
                            client.V1NodeSelectorRequirement(
                                key="kubernetes.io/arch", operator="In", values=["amd64"]
                            )
                        ]
                    )
                ]
            )
        )
    )
    v1.create_namespaced_pod("default", _pod("amd64", affinity=affinity))

    pods = kube_api.wait_until(
        lambda: (
            (items := v1.list_namespaced_pod("default").items)
            and all(p.spec.node_name for p in items)
            and items
        ),
        what="all pods bound",
    )
    placed = {p.metadata.name: p.spec.node_name for p in pods}
    assert {placed[f"edge-{i}"] for i in range(3)} == {"edge-1"}
    assert placed["gpu"] == "gpu-1" and placed["amd64"] == "cloud-1"


def test_a_pod_that_fits_nowhere_gets_the_unschedulable_condition(kube_api: KubeApiServer, v1: Any) -> None:
    kube_api.register_node("small", cpus=2, memory_mib=2048)
    v1.create_namespaced_pod("default", _pod("huge", cpu="16"))
    v1.create_namespaced_pod("default", _pod("nowhere", node_selector={"oscar/group": "none"}))

    huge = kube_api.wait_until(
        lambda: _scheduled_condition(v1.read_namespaced_pod("huge", "default")),
        what="the scheduler's verdict",
    )
    assert (huge.status, huge.reason) == ("False", "Unschedulable")
    assert huge.last_transition_time is not None and "1 Insufficient cpu" in huge.message
    nowhere = kube_api.wait_until(
        lambda: _scheduled_condition(v1.read_namespaced_pod("nowhere", "default")),
        what="the scheduler's verdict",
    )
    assert "didn't match Pod's node affinity/selector" in nowhere.message
    reasons = {
        e.reason for e in v1.list_namespaced_event("default", field_selector="involvedObject.name=huge").items
    }
    assert "FailedScheduling" in reasons

    # The pending list a daemon would watch: unbound pods by field selector.
    pending = v1.list_namespaced_pod("default", field_selector="spec.nodeName=,status.phase=Pending").items
    assert {p.metadata.name for p in pending} == {"huge", "nowhere"}
    kube_api.register_node("big", cpus=32, memory_mib=65536)  # capacity arrives: the pod is retried
    assert kube_api.wait_until(lambda: _node_of(v1, "huge"), what="the pod to be bound") == "big"


def test_pods_per_node_and_memory_are_respected(kube_api: KubeApiServer, v1: Any) -> None:
    kube_api.register_node("w1", cpus=64, memory_mib=1024, pods=3)
    kube_api.create_pods(5, cpus=0.1, memory_mib=100)
    kube_api.create_pod("fat", cpus=0.1, memory_mib=2048)
    kube_api.wait_until(lambda: len(kube_api.pods(node="w1")) == 3, what="three pods bound")
    for _ in range(3):  # more scheduler passes place nothing else
        kube_api.sim.tick()
    assert len(kube_api.pods(node="w1")) == 3
    fat = _scheduled_condition(v1.read_namespaced_pod("fat", "default"))
    assert "Insufficient memory" in fat.message or "Too many pods" in fat.message


def test_daemonset_pods_go_to_every_node_even_cordoned_ones(kube_api: KubeApiServer, v1: Any) -> None:
    kube_api.register_node("w1", unschedulable=True)
    kube_api.register_node("w2")
    kube_api.add_daemonset("node-exporter")
    pods = kube_api.wait_until(
        lambda: (
            (items := v1.list_namespaced_pod("kube-system").items)
            and len(items) == 2
            and all(p.status.phase == "Running" for p in items)
            and items
        ),
        what="DaemonSet pods running",
    )
    assert {p.spec.node_name for p in pods} == {"w1", "w2"}
    assert all(p.metadata.owner_references[0].kind == "DaemonSet" for p in pods)


# ---- kubelet simulation ----------------------------------------------------------------------------
def test_pod_with_a_runtime_annotation_finishes(kube_api: KubeApiServer, v1: Any) -> None:
    kube_api.register_node("w1")
    v1.create_namespaced_pod("default", _pod("job", annotations={"harness/runtime-s": "30"}))
    running = kube_api.wait_until(
        lambda: (p := v1.read_namespaced_pod("job", "default")).status.phase == "Running" and p,
        what="the pod to run",
    )
    assert running.status.start_time is not None
    done = kube_api.wait_until(
        lambda: (p := v1.read_namespaced_pod("job", "default")).status.phase == "Succeeded" and p,
        what="the pod to finish",
    )
    assert done.status.container_statuses[0].state.terminated.exit_code == 0
    assert (
        v1.list_namespaced_pod("default", field_selector="status.phase=Succeeded").items[0].metadata.name
        == "job"
    )


def test_node_readiness_delay_and_node_loss(kube_api: KubeApiServer, v1: Any) -> None:
    kube_api.register_node("slow", ready_after_s=100)  # 1 s
    v1.create_namespaced_pod("default", _pod("p"))
    node = kube_api.wait_until(lambda: (n := v1.read_node("slow")).spec.taints and n, what="not-ready taint")
    assert not _ready(node) and node.spec.taints[0].key == "node.kubernetes.io/not-ready"
    assert _node_of(v1, "p") is None
    assert kube_api.wait_until(lambda: _node_of(v1, "p"), what="binding after Ready") == "slow"

    kube_api.set_node_ready("slow", False)
    node = kube_api.wait_until(lambda: not _ready(n := v1.read_node("slow")) and n, what="node Unknown")
    assert [c.status for c in node.status.conditions if c.type == "Ready"] == ["Unknown"]
    kube_api.wait_until(
        lambda: (
            [c.status for c in v1.read_namespaced_pod("p", "default").status.conditions if c.type == "Ready"]
            == ["False"]
        ),
        what="the pods of a silent node marked not ready",
    )
    v1.delete_node("slow")
    kube_api.wait_until(
        lambda: not v1.list_namespaced_pod("default").items, what="pods of the lost node gone"
    )


# ---- eviction, leases, configmaps, patches ---------------------------------------------------------
def test_eviction_respects_pod_disruption_budgets(kube_api: KubeApiServer, v1: Any, kube_client: Any) -> None:
    policy = client.PolicyV1Api(kube_client)
    kube_api.register_node("w1")
    for i in range(2):
        v1.create_namespaced_pod("default", _pod(f"web-{i}", labels={"app": "web"}))
    v1.create_namespaced_pod("default", _pod("free"))
    kube_api.wait_until(lambda: len(kube_api.pods(phase="Running")) == 3, what="pods running")
    policy.create_namespaced_pod_disruption_budget(
        "default",
        client.V1PodDisruptionBudget(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1PodDisruptionBudgetSpec(
                min_available=1, selector=client.V1LabelSelector(match_labels={"app": "web"})
            ),
        ),
    )

    def evict(name: str) -> None:
        v1.create_namespaced_pod_eviction(
            name, "default", client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace="default"))
        )

    evict("free")  # no budget selects it
    evict("web-0")
    with pytest.raises(ApiException) as err:
        evict("web-1")
    assert err.value.status == 429 and "disruption budget" in err.value.body
    kube_api.wait_until(  # evicted pods terminate gracefully, then go
        lambda: {p.metadata.name for p in v1.list_namespaced_pod("default").items} == {"web-1"},
        what="evicted pods gone",
    )
    status = kube_api.wait_until(
        lambda: (
            (s := policy.read_namespaced_pod_disruption_budget("web", "default").status)
            and s.current_healthy == 1
            and s
        ),
        what="PDB status",
    )
    assert status.disruptions_allowed == 0 and status.desired_healthy == 1


def test_an_eviction_the_role_does_not_allow_is_forbidden(kube_api: KubeApiServer, v1: Any) -> None:
    """403 with Status reason Forbidden and the authorization filter's message, the pod untouched."""
    import json

    kube_api.register_node("w1")
    v1.create_namespaced_pod("default", _pod("web"))
    kube_api.wait_until(lambda: kube_api.pods(phase="Running"), what="pod running")
    kube_api.deny("create", "pods/eviction")
    eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name="web", namespace="default"))
    with pytest.raises(ApiException) as err:
        v1.create_namespaced_pod_eviction("web", "default", eviction)
    status = json.loads(err.value.body)
    assert (err.value.status, status["reason"], status["code"]) == (403, "Forbidden", 403)
    assert status["message"].startswith('pods "web" is forbidden: User "system:serviceaccount:')
    assert status["message"].endswith('cannot create resource "pods/eviction" in API group "" '
                                      'in the namespace "default"')
    assert [p["metadata"]["name"] for p in kube_api.pods(phase="Running")] == ["web"]
    kube_api.deny("create", "pods/eviction", denied=False)
    v1.create_namespaced_pod_eviction("web", "default", eviction)


def test_lease_conflicts_give_409(kube_client: Any) -> None:
    leases = client.CoordinationV1Api(kube_client)
    body = client.V1Lease(
        metadata=client.V1ObjectMeta(name="oscar-elastic"),
        spec=client.V1LeaseSpec(holder_identity="a", lease_duration_seconds=15),
    )
    lease = leases.create_namespaced_lease("kube-system", body)
    with pytest.raises(ApiException) as err:
        leases.create_namespaced_lease("kube-system", body)
    assert err.value.status == 409

    lease.spec.renew_time = "2026-01-01T00:00:00.000000Z"
    renewed = leases.replace_namespaced_lease("oscar-elastic", "kube-system", lease)  # a renewal by "a"
    assert int(renewed.metadata.resource_version) > int(lease.metadata.resource_version)

    lease.spec.holder_identity = "b"  # "b" acts on the stale copy it read before the renewal
    with pytest.raises(ApiException) as err:
        leases.replace_namespaced_lease("oscar-elastic", "kube-system", lease)
    assert err.value.status == 409 and "the object has been modified" in err.value.body
    with pytest.raises(ApiException) as err:
        leases.patch_namespaced_lease(
            "oscar-elastic",
            "kube-system",
            {
                "metadata": {"resourceVersion": lease.metadata.resource_version},
                "spec": {"holderIdentity": "b"},
            },
        )
    assert err.value.status == 409
    lease.metadata.resource_version = None  # an unconditional update is refused for leases
    with pytest.raises(ApiException) as err:
        leases.replace_namespaced_lease("oscar-elastic", "kube-system", lease)
    assert err.value.status == 422
    assert leases.read_namespaced_lease("oscar-elastic", "kube-system").spec.holder_identity == "a"


def test_configmaps_events_and_patch_flavours(kube_api: KubeApiServer, v1: Any) -> None:
    kube_api.register_node("w1", labels={"keep": "1"})
    v1.create_namespaced_config_map(
        "kube-system",
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="oscar-elastic-status"), data={"status": "ok"}),
    )
    patched = v1.patch_namespaced_config_map("oscar-elastic-status", "kube-system", {"data": {"groups": "2"}})
    assert patched.data == {"status": "ok", "groups": "2"}

    node = v1.patch_node(
        "w1", {"metadata": {"labels": {"added": "x", "keep": None}, "annotations": {"oscar/state": "idle"}}}
    )
    assert node.metadata.labels["added"] == "x" and "keep" not in node.metadata.labels
    node = v1.patch_node(
        "w1",
        [{"op": "add", "path": "/spec/taints", "value": [{"key": "oscar/draining", "effect": "NoSchedule"}]}],
    )  # a list body is sent as a JSON patch
    assert [t.key for t in node.spec.taints] == ["oscar/draining"]
    ignored = v1.patch_node("w1", {"status": {"capacity": {"cpu": "99"}}})  # status goes through /status
    assert ignored.status.capacity["cpu"] == "4"
    updated = v1.patch_node_status("w1", {"status": {"conditions": [{"type": "Custom", "status": "True"}]}})
    assert {"Custom", "Ready"} <= {c.type for c in updated.status.conditions}

    v1.create_namespaced_pod("default", _pod("p"))
    with pytest.raises(ApiException) as err:
        v1.patch_namespaced_pod("p", "default", {"spec": {"nodeName": "w1"}})
    assert err.value.status == 422

    v1.create_namespaced_event(
        "default",
        client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name="p."),
            reason="TriggeredScaleUp",
            message="group cloud",
            involved_object=client.V1ObjectReference(kind="Pod", name="p", namespace="default"),
        ),
    )
    reasons = [
        e.reason for e in v1.list_namespaced_event("default", field_selector="reason=TriggeredScaleUp").items
    ]
    assert reasons == ["TriggeredScaleUp"]
    with pytest.raises(ApiException) as err:
        v1.create_namespaced_config_map("nope", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x")))
    assert err.value.status == 404


# ---- by hand ---------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served_by_hand(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    port, kubeconfig = _free_port(), tmp_path / "kubeconfig"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.harness.kube_api",
            "--port",
            str(port),
            "--node",
            "w1:2:2048",
            "--kubeconfig",
            str(kubeconfig),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        assert f"127.0.0.1:{port}" in proc.stdout.readline()
        yield port, kubeconfig
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_python_dash_m_serves_with_a_kubeconfig(served_by_hand: tuple[int, Path]) -> None:
    from kubernetes import config

    _, kubeconfig = served_by_hand
    api = config.new_client_from_config(config_file=str(kubeconfig))
    nodes = client.CoreV1Api(api).list_node().items
    assert [n.metadata.name for n in nodes] == ["w1"] and nodes[0].status.capacity["memory"] == "2097152Ki"


def test_timing_scales_harness_seconds(kube_api_factory: Any) -> None:
    slow = kube_api_factory(timing=Timing(time_scale=0.05, period_s=0.02))
    slow.register_node("w1")
    slow.wait_until(lambda: slow.nodes()[0]["status"]["conditions"], what="node Ready")
    started = time.monotonic()
    slow.create_pod("job", runtime_s=10)  # 0.5 s real
    slow.wait_until(lambda: slow.pods(phase="Succeeded"), timeout=5, what="finished")
    assert 0.5 <= time.monotonic() - started <= 3  # never early; late only by scheduling passes


def test_pods_leave_an_unreachable_node_after_their_toleration(kube_api_factory: Any) -> None:
    fast = kube_api_factory(timing=Timing(time_scale=0.003, period_s=0.02))  # 300 s tolerations: 0.9 s
    v1 = client.CoreV1Api(fast.api_client())
    fast.register_node("w1")
    fast.create_pod("job")
    fast.wait_until(lambda: fast.pods(phase="Running"), what="running")
    fast.register_node("w2")  # a Ready node in the zone: not a full disruption, evictions go on
    fast.set_node_ready("w1", False)
    node = fast.wait_until(lambda: (n := v1.read_node("w1")).spec.taints and n, what="unreachable taints")
    assert {(t.key, t.effect) for t in node.spec.taints} == {
        ("node.kubernetes.io/unreachable", "NoSchedule"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
    }
    assert v1.list_namespaced_pod("default").items  # tolerated for tolerationSeconds (300 harness s)
    fast.wait_until(lambda: v1.read_namespaced_pod("job", "default").metadata.deletion_timestamp,
                    what="taint-based eviction (graceful: Terminating while the kubelet is silent)")


def test_pagination_binding_merge_patch_bookmarks_and_deletecollection(
    kube_api: KubeApiServer, v1: Any
) -> None:
    for i in range(5):
        v1.create_namespaced_config_map(
            "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"c{i}"))
        )
    first = v1.list_namespaced_config_map("default", limit=2)
    assert len(first.items) == 2 and first.metadata._continue and first.metadata.remaining_item_count == 3
    rest = v1.list_namespaced_config_map("default", limit=10, _continue=first.metadata._continue)
    assert [c.metadata.name for c in first.items + rest.items] == [f"c{i}" for i in range(5)]

    merged = kube_client_call(
        v1, "/api/v1/namespaces/default/configmaps/c0", {"data": {"a": "1"}}, "application/merge-patch+json"
    )
    assert merged["data"] == {"a": "1"}

    v1.create_namespaced_pod(
        "default", _pod("manual", scheduler_name="my-scheduler")
    )  # the harness ignores it
    kube_api.register_node("w1")
    v1.create_namespaced_binding(
        "default",
        client.V1Binding(
            metadata=client.V1ObjectMeta(name="manual"),
            target=client.V1ObjectReference(kind="Node", name="w1"),
        ),
        _preload_content=False,  # the client cannot deserialise a Status into V1Binding (real servers too)
    )
    assert _node_of(v1, "manual") == "w1"

    kinds = [
        e["type"]
        for e in watch.Watch().stream(
            v1.list_namespaced_config_map,
            "default",
            resource_version=rest.metadata.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=2,
        )
    ]
    assert "BOOKMARK" in kinds

    v1.delete_collection_namespaced_config_map("default", label_selector="!keep")
    assert v1.list_namespaced_config_map("default").items == []


def kube_client_call(v1: Any, path: str, body: Any, content_type: str) -> Any:
    """A PATCH with an explicit content type (the generated client always picks strategic merge)."""
    response = v1.api_client.call_api(
        path,
        "PATCH",
        header_params={"Content-Type": content_type, "Accept": "application/json"},
        body=body,
        response_type="object",
        _return_http_data_only=True,
    )
    return response


def test_power_commands_boot_and_silence_nodes_from_a_shell(kube_api: KubeApiServer, v1: Any) -> None:
    commands = kube_api.power_commands(
        cpus=2, memory_mib=2048, labels={"oscar/group": "edge"}, ready_after_s=20
    )
    assert "{node}" in commands["power_on"] and "{node}" in commands["power_off"]

    def run(which: str, node: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            commands[which].format(node=node), shell=True, capture_output=True, text=True, timeout=30
        )

    assert run("power_on", "board-1").returncode == 0
    node = v1.read_node("board-1")
    assert node.metadata.labels["oscar/group"] == "edge" and node.status.capacity["cpu"] == "2"
    kube_api.wait_until(lambda: _ready(v1.read_node("board-1")), what="board Ready")

    assert run("power_off", "board-1").returncode == 0
    kube_api.wait_until(lambda: not _ready(v1.read_node("board-1")), what="board NotReady")
    assert run("power_on", "board-1").returncode == 0  # booting again: the same node turns Ready
    kube_api.wait_until(lambda: _ready(v1.read_node("board-1")), what="board Ready again")

    assert run("power_off", "board-1").returncode == 0
    v1.delete_node("board-1")  # an operator removes the silent node; the board boots later
    assert run("power_on", "board-1").returncode == 0
    kube_api.wait_until(lambda: _ready(v1.read_node("board-1")), what="board registered and Ready anew")

    failed = run("power_off", "board-9")
    assert failed.returncode == 1 and 'nodes "board-9" not found' in failed.stderr


def test_nodes_follow_machines_as_k3s_agents_and_stay_when_their_vm_goes(
    kube_api: KubeApiServer, v1: Any
) -> None:
    """k3s runs no cloud node-lifecycle controller: a VM that vanishes leaves its Node (NotReady once
    the grace period passes), and a new VM under that name is refused by the node-password check
    until the Node (and with it the ``<name>.node-password.k3s`` Secret) is deleted."""
    machines: dict[str, dict[str, Any]] = {}
    kube_api.register_node("front-end")  # not the follower's: never touched by it
    kube_api.follow_machines(lambda: machines, period_s=0.02)
    machines["vm-1"] = {"cpus": 2, "labels": {"oscar/group": "cloud"}, "ready_after_s": 10, "password": "i-1"}
    kube_api.wait_until(
        lambda: (
            _ready(v1.read_node("vm-1")) if v1.list_node(field_selector="metadata.name=vm-1").items else False
        ),
        what="vm-1 registered and Ready",
    )
    secret = v1.read_namespaced_secret("vm-1.node-password.k3s", "kube-system")
    assert secret.immutable and secret.data["hash"]
    assert client.CoordinationV1Api(kube_api.api_client()).read_namespaced_lease("vm-1", "kube-node-lease")
    del machines["vm-1"]  # terminated outside anyone's control
    kube_api.wait_until(lambda: not _ready(v1.read_node("vm-1")), what="vm-1 NotReady")
    assert sorted(n.metadata.name for n in v1.list_node().items) == ["front-end", "vm-1"]

    machines["vm-1"] = {"cpus": 2, "ready_after_s": 10, "password": "i-2"}  # a new VM, same name
    time.sleep(0.3)
    assert not _ready(v1.read_node("vm-1"))  # k3s rejects its agent: the old Secret holds i-1's hash
    v1.delete_node("vm-1")
    kube_api.wait_until(lambda: v1.list_node(field_selector="metadata.name=vm-1").items
                        and _ready(v1.read_node("vm-1")), what="the new VM registered once the Node went")
    renewed = v1.read_namespaced_secret("vm-1.node-password.k3s", "kube-system")
    assert renewed.data["hash"] != secret.data["hash"]


def test_only_one_of_many_concurrent_lease_takeovers_wins(kube_api: KubeApiServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    api = kube_api.api_client()
    leases = client.CoordinationV1Api(api)
    stale = leases.create_namespaced_lease(
        "kube-system",
        client.V1Lease(
            metadata=client.V1ObjectMeta(name="leader"), spec=client.V1LeaseSpec(holder_identity="old")
        ),
    )

    def take_over(who: str) -> int:
        # Every candidate read the same version and now tries to become the holder.
        body = client.V1Lease(metadata=stale.metadata, spec=client.V1LeaseSpec(holder_identity=who))
        try:
            client.CoordinationV1Api(api).replace_namespaced_lease("leader", "kube-system", body)
            return 200
        except ApiException as exc:
            return exc.status

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(take_over, [f"replica-{i}" for i in range(8)]))
    assert sorted(codes) == [200] + [409] * 7
    assert leases.read_namespaced_lease("leader", "kube-system").spec.holder_identity.startswith("replica-")


def test_running_pods_terminate_gracefully_and_stay_on_a_silent_node(kube_api_factory: Any) -> None:
    server = kube_api_factory(timing=Timing(time_scale=0.01, period_s=0.02, termination_s=30))  # 0.3 s
    v1 = client.CoreV1Api(server.api_client())
    server.register_node("w1")
    server.register_node("w2")
    server.create_pod("a", node_selector={"kubernetes.io/hostname": "w1"})
    server.create_pod("b", node_selector={"kubernetes.io/hostname": "w2"})
    server.wait_until(lambda: len(server.pods(phase="Running")) == 2, what="pods running")

    deleted = v1.delete_namespaced_pod("a", "default")
    assert deleted.metadata.deletion_timestamp is not None  # Terminating, still listed
    assert v1.read_namespaced_pod("a", "default").metadata.deletion_grace_period_seconds == 30
    server.wait_until(lambda: not server.pods(node="w1"), what="the kubelet to finish terminating a")

    server.set_node_ready("w2", False)
    server.wait_until(lambda: not _ready(v1.read_node("w2")), what="w2 silent")
    v1.delete_namespaced_pod("b", "default")
    time.sleep(0.6)  # twice the termination time: no kubelet confirms, so the pod stays Terminating
    assert v1.read_namespaced_pod("b", "default").metadata.deletion_timestamp is not None
    v1.delete_namespaced_pod("b", "default", grace_period_seconds=0)  # kubectl delete --force
    assert v1.list_namespaced_pod("default").items == []


# ---- the node lifecycle controller, podgc and k3s, as a real control plane behaves -----------------
def _taint_set(node: Any) -> set[tuple[str, str]]:
    return {(t.key, t.effect) for t in node.spec.taints or []}


def test_a_silent_node_stays_ready_for_the_grace_period_and_its_lease_stops(
    kube_api_factory: Any,
) -> None:
    """``tryUpdateNodeHealth``: Unknown only once status and Lease are older than the node-monitor
    grace period (50 s; 0.5 s here); a running kubelet renews its kube-node-lease Lease."""
    server = kube_api_factory(timing=Timing(time_scale=0.01, period_s=0.02))
    v1 = client.CoreV1Api(server.api_client())
    leases = client.CoordinationV1Api(server.api_client())
    server.register_node("w1")
    server.wait_until(lambda: _ready(v1.read_node("w1")), what="w1 Ready")
    first = leases.read_namespaced_lease("w1", "kube-node-lease").spec.renew_time
    server.wait_until(lambda: leases.read_namespaced_lease("w1", "kube-node-lease").spec.renew_time != first,
                      what="the kubelet renewing its Lease every 10 s (0.1 s)")
    server.set_node_ready("w1", False)
    stopped = time.monotonic()
    renewed = leases.read_namespaced_lease("w1", "kube-node-lease").spec.renew_time
    time.sleep(0.25)  # half the grace period
    assert _ready(v1.read_node("w1"))  # still Ready=True, as on a real cluster
    server.wait_until(lambda: not _ready(v1.read_node("w1")), what="w1 Unknown")
    assert time.monotonic() - stopped >= 0.45
    assert leases.read_namespaced_lease("w1", "kube-node-lease").spec.renew_time == renewed


def test_partial_disruption_stops_no_execute_taints_unless_the_silent_nodes_are_excluded(
    kube_api_factory: Any,
) -> None:
    """``ComputeZoneState`` / ``setLimiterInZone``: three of four nodes silent is a partial disruption
    of a small zone, so no ``unreachable:NoExecute`` taint is added and no pod evicted; nodes labelled
    ``node.kubernetes.io/exclude-disruption`` do not count, so a fourth node failing is tainted."""
    server = kube_api_factory(timing=Timing(time_scale=0.01, period_s=0.02))
    v1 = client.CoreV1Api(server.api_client())
    for name in ("front", "b1", "b2", "b3", "b4"):
        server.register_node(name)
    server.create_pod("job", node_selector={"kubernetes.io/hostname": "b4"})
    server.wait_until(lambda: server.pods(phase="Running"), what="job running")
    for name in ("b1", "b2", "b3"):  # powered off, as idle boards are
        server.set_node_ready(name, False)
    server.wait_until(lambda: all(not _ready(v1.read_node(n)) for n in ("b1", "b2", "b3")), what="silent")
    server.set_node_ready("b4", False)  # and now a board that really crashes
    server.wait_until(lambda: not _ready(v1.read_node("b4")), what="b4 Unknown")
    time.sleep(0.3)
    assert ("node.kubernetes.io/unreachable", "NoExecute") not in _taint_set(v1.read_node("b4"))
    assert ("node.kubernetes.io/unreachable", "NoSchedule") in _taint_set(v1.read_node("b4"))
    for name in ("b1", "b2", "b3"):
        v1.patch_node(name, {"metadata": {"labels": {"node.kubernetes.io/exclude-disruption": ""}}})
    unreachable = ("node.kubernetes.io/unreachable", "NoExecute")
    server.wait_until(lambda: unreachable in _taint_set(v1.read_node("b4")),
                      what="b4 tainted once the zone is back to normal")
    server.wait_until(lambda: v1.read_namespaced_pod("job", "default").metadata.deletion_timestamp,
                      timeout=10, what="job evicted after its 300 s toleration (3 s)")
    time.sleep(0.2)
    assert v1.read_namespaced_pod("job", "default").metadata.deletion_timestamp  # Terminating: no kubelet


def test_out_of_service_lets_podgc_force_delete_the_pods_of_a_dead_node(
    kube_api_factory: Any,
) -> None:
    """``node.kubernetes.io/out-of-service:NoExecute``: the taint manager deletes the pods at once, and
    podgc's ``gcTerminating`` force-deletes them because the node is not Ready."""
    server = kube_api_factory(timing=Timing(time_scale=0.01, period_s=0.02))
    v1 = client.CoreV1Api(server.api_client())
    server.register_node("front")
    server.register_node("b1")
    server.create_pod("job", node_selector={"kubernetes.io/hostname": "b1"})
    server.wait_until(lambda: server.pods(phase="Running"), what="job running")
    server.set_node_ready("b1", False)
    v1.patch_node("b1", {"spec": {"taints": [{"key": "node.kubernetes.io/out-of-service",
                                               "value": "nodeshutdown", "effect": "NoExecute"}]}})
    time.sleep(0.2)  # still within the grace period: Ready=True, so podgc leaves it Terminating
    assert v1.read_namespaced_pod("job", "default").metadata.deletion_timestamp
    server.wait_until(lambda: not server.pods(node="b1"), what="podgc force-deleting the pod")


def test_a_cordoned_node_gets_the_unschedulable_taint_and_loses_it_when_uncordoned(
    kube_api: KubeApiServer, v1: Any
) -> None:
    """``doNoScheduleTaintingPass``: ``spec.unschedulable`` gives the NoSchedule taint
    ``node.kubernetes.io/unschedulable``, and uncordoning takes it away."""
    kube_api.register_node("w1")
    v1.patch_node("w1", {"spec": {"unschedulable": True}})
    taint = ("node.kubernetes.io/unschedulable", "NoSchedule")
    kube_api.wait_until(lambda: taint in _taint_set(v1.read_node("w1")), what="unschedulable taint")
    v1.patch_node("w1", {"spec": {"unschedulable": False}})
    kube_api.wait_until(lambda: not _taint_set(v1.read_node("w1")), what="taint removed")
