"""The daemon answers ProvisioningRequests as Kueue's provisioning admission check expects, against the
Kubernetes API test server (which serves the autoscaler's own CRD), with the real client.

No real Kueue runs here. ``KueueLike`` does what kubernetes-sigs/kueue v0.19.2
``pkg/controller/admissionchecks/provisioning/controller.go`` does, on the same objects: it creates
the PodTemplate ``ppt-<request>-<podset>`` (``createPodTemplate``) and the ProvisioningRequest
``<workload>-<check>-<attempt>`` naming it with a count (``syncOwnedProvisionRequest``), both
labelled ``kueue.x-k8s.io/managed``; it reads the request's conditions as ``syncCheckStates`` does
(Failed, CapacityRevoked, BookingExpired, Provisioned, Accepted, in that order); once the check is
Ready it creates the workload's pods with the two annotations of ``podSetUpdates``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from elastic.daemon import Daemon
from elastic.power import manager_for
from tests.test_daemon import FAST, board_group, events
from tests.test_daemon_followups import CLUSTER_CALLS, PROVREQ_STATUS

GROUP, VERSION, PLURAL = "autoscaling.x-k8s.io", "v1", "provisioningrequests"
MANAGED = {"kueue.x-k8s.io/managed": "true"}
BEST_EFFORT = "best-effort-atomic-scale-up.autoscaling.x-k8s.io"
CHECK_CAPACITY = "check-capacity.autoscaling.x-k8s.io"


class KueueLike:
    """Kueue's provisioning controller, as far as the autoscaler can see it."""

    def __init__(self, api_client: Any, namespace: str = "default") -> None:
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.namespace = namespace

    def request(self, workload: str, class_name: str, count: int, cpus: float, check: str = "prov",
                attempt: int = 1, podset: str = "main") -> str:
        name = f"{workload}-{check}-{attempt}"
        template = f"ppt-{name}-{podset}"
        self.core.create_namespaced_pod_template(self.namespace, {
            "apiVersion": "v1", "kind": "PodTemplate",
            "metadata": {"name": template, "labels": MANAGED},
            "template": {"metadata": {"labels": {"app": workload}}, "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "harness/job:latest",
                                "resources": {"requests": {"cpu": f"{int(cpus * 1000)}m",
                                                           "memory": "256Mi"}}}],
            }}})
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "ProvisioningRequest",
            "metadata": {"name": name, "labels": MANAGED},
            "spec": {"provisioningClassName": class_name, "parameters": {},
                     "podSets": [{"podTemplateRef": {"name": template}, "count": count}]}})
        return name

    def conditions(self, name: str) -> dict[str, dict[str, Any]]:
        obj = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
        return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}

    def check_state(self, name: str) -> str:
        """The admission check's state ``syncCheckStates`` derives from the request."""
        conds = self.conditions(name)

        def true(kind: str) -> bool:
            return conds.get(kind, {}).get("status") == "True"

        if true("Failed"):
            return "Retry"
        if true("CapacityRevoked"):
            return "Rejected"
        if true("BookingExpired"):
            return "Retry"
        if true("Provisioned"):
            return "Ready"
        return "Pending"

    def admit(self, name: str, kube_api: Any, class_name: str, count: int, cpus: float) -> None:
        """The workload's pods, created once the check is Ready, with ``podSetUpdates``' annotations."""
        for i in range(count):
            kube_api.create_pod(f"{name}-pod-{i}", cpus=cpus, memory_mib=256, runtime_s=100000, annotations={
                "autoscaling.x-k8s.io/consume-provisioning-request": name,
                "autoscaling.x-k8s.io/provisioning-class-name": class_name})


@pytest.fixture
def daemon_on(kube_api: Any) -> Iterator[Any]:
    started: list[Daemon] = []

    def start(groups: list[Any]) -> Daemon:
        daemon = Daemon(kube_api.api_client(), groups, {g.name: manager_for(g) for g in groups}, FAST).start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


def on_boards(kube_api: Any) -> set[str]:
    return {n["metadata"]["name"] for n in kube_api.nodes()
            if any(c["type"] == "Ready" and c["status"] == "True"
                   for c in n["status"].get("conditions") or [])}


def test_best_effort_atomic_powers_boards_on_then_is_provisioned_and_its_pods_run_there(
        kube_api: Any, daemon_on: Any) -> None:
    daemon_on([board_group(kube_api, boards=3)])
    kueue = KueueLike(kube_api.api_client())
    name = kueue.request("job-a", BEST_EFFORT, count=2, cpus=1.5)  # one 2-CPU board per pod
    assert not kube_api.pods()  # Kueue holds the Job back: nothing pending for a pod-watching scaler
    kube_api.wait_until(lambda: kueue.check_state(name) == "Ready", timeout=20, what="Provisioned")
    conds = kueue.conditions(name)
    assert conds["Accepted"]["status"] == "True"
    assert conds["Provisioned"]["reason"] == "CapacityIsProvisioned"
    assert len(on_boards(kube_api)) == 2  # all its pods, and no more
    kueue.admit(name, kube_api, BEST_EFFORT, count=2, cpus=1.5)
    kube_api.wait_until(lambda: len(kube_api.pods(phase="Running")) == 2, timeout=20, what="pods running")
    assert {p["spec"]["nodeName"] for p in kube_api.pods()} == on_boards(kube_api)
    assert len(on_boards(kube_api)) == 2


def test_best_effort_atomic_beyond_the_groups_max_fails_and_powers_nothing_on(
        kube_api: Any, daemon_on: Any) -> None:
    daemon_on([board_group(kube_api, boards=2)])
    kueue = KueueLike(kube_api.api_client())
    name = kueue.request("job-b", BEST_EFFORT, count=3, cpus=1.5)
    kube_api.wait_until(lambda: kueue.check_state(name) == "Retry", timeout=20, what="Failed")
    assert kueue.conditions(name)["Failed"]["reason"] == "CapacityIsNotFound"
    assert not kube_api.nodes()  # all or nothing


def test_check_capacity_without_room_stays_not_provisioned_and_with_room_is_provisioned(
        kube_api: Any, daemon_on: Any) -> None:
    daemon_on([board_group(kube_api, boards=2)])
    kueue = KueueLike(kube_api.api_client())
    name = kueue.request("job-c", CHECK_CAPACITY, count=1, cpus=1.0)
    kube_api.wait_until(lambda: "Provisioned" in kueue.conditions(name), timeout=20, what="an answer")
    conds = kueue.conditions(name)
    assert (conds["Provisioned"]["status"], conds["Provisioned"]["reason"]) == ("False", "CapacityIsNotFound")
    assert kueue.check_state(name) == "Pending" and not kube_api.nodes()  # no scale-up for check-capacity
    # a pending pod brings a board on; the request, checked again every pass, finds the room left on it
    kube_api.create_pod("other", cpus=1.0, runtime_s=100000)
    kube_api.wait_until(lambda: kube_api.pods(phase="Running"), timeout=20, what="other runs")
    kube_api.wait_until(lambda: kueue.check_state(name) == "Ready", timeout=20, what="Provisioned")
    assert kueue.conditions(name)["Provisioned"]["reason"] == "CapacityIsFound"
    # that room is booked: a later request of the same size finds none
    second = kueue.request("job-d", CHECK_CAPACITY, count=1, cpus=1.0)
    kube_api.wait_until(lambda: "Provisioned" in kueue.conditions(second), timeout=20, what="an answer")
    assert kueue.check_state(second) == "Pending" and len(kube_api.nodes()) == 1


def test_a_pod_watched_by_oscar_s_rescheduler_gets_an_event_with_the_expected_ready_time(
        kube_api: Any, daemon_on: Any) -> None:
    daemon_on([board_group(kube_api, boards=1)])
    kube_api.create_pod("delegable", cpus=1.0, runtime_s=1000, labels={"oscar_rescheduler": "0",
                                                                       "oscar_service": "svc"})
    kube_api.create_pod("plain", cpus=0.5, runtime_s=1000)
    found = kube_api.wait_until(lambda: [e for e in events(kube_api) if e["reason"] == "NodePoweringOn"],
                                timeout=20, what="NodePoweringOn event")
    (event,) = found
    assert event["involvedObject"]["name"] == "delegable"
    assert "expected Ready in 1s" in event["message"]  # the group's boot_s
    assert "OSCAR's rescheduler threshold for it is 0s" in event["message"]
    pod = kube_api.get("pods", "delegable", "default")
    assert pod["metadata"]["labels"] == {"oscar_rescheduler": "0", "oscar_service": "svc"}  # not patched


def test_the_server_refuses_a_request_its_crd_schema_refuses(kube_api: Any) -> None:
    custom = client.CustomObjectsApi(kube_api.api_client())
    bad = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ProvisioningRequest", "metadata": {"name": "bad"},
           "spec": {"provisioningClassName": BEST_EFFORT, "podSets": [{"podTemplateRef": {"name": "x"}}]}}
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, bad)
    assert caught.value.status == 422 and "count" in caught.value.body


def test_the_status_write_is_a_declared_call() -> None:
    assert PROVREQ_STATUS in CLUSTER_CALLS


def test_a_request_naming_a_missing_pod_template_is_failed(kube_api: Any, daemon_on: Any) -> None:
    daemon_on([board_group(kube_api, boards=1)])
    custom = client.CustomObjectsApi(kube_api.api_client())
    custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ProvisioningRequest", "metadata": {"name": "orphan"},
        "spec": {"provisioningClassName": BEST_EFFORT, "parameters": {},
                 "podSets": [{"podTemplateRef": {"name": "ppt-gone"}, "count": 1}]}})
    kueue = KueueLike(kube_api.api_client())
    kube_api.wait_until(lambda: kueue.check_state("orphan") == "Retry", timeout=20, what="Failed")
    failed = kueue.conditions("orphan")["Failed"]
    assert failed["reason"] == "FailedToCreatePods" and "ppt-gone" in failed["message"]
    assert not kube_api.nodes()


def test_the_rescheduler_notice_says_when_the_threshold_leaves_time_for_the_boot() -> None:
    from elastic.actuator import rescheduler_notice
    from elastic.model import NodeGroup

    group = NodeGroup("cloud", cpus=2, memory_mib=4096, boot_s=90)
    pod = {"metadata": {"labels": {"oscar_rescheduler": "120"}, "creationTimestamp": "1970-01-01T00:00:10Z"}}
    within = rescheduler_notice(pod, "w-1", group, 20.0)
    assert within == ("node w-1 of group cloud powering on for this pod: expected Ready in 90s (pending 10s "
                      "so far); within OSCAR's rescheduler threshold for it (120s)")
    late = rescheduler_notice({"metadata": {**pod["metadata"], "labels": {"oscar_rescheduler": "30"}}},
                              "w-1", group, 20.0)
    assert late is not None and "may send the pod to another cluster first" in late and "105s or more" in late
    assert rescheduler_notice({"metadata": {"labels": {}}}, "w-1", group, 20.0) is None


def test_booked_capacity_that_goes_away_is_revoked(kube_api: Any, daemon_on: Any) -> None:
    daemon_on([board_group(kube_api, boards=1)])
    kueue = KueueLike(kube_api.api_client())
    name = kueue.request("job-e", BEST_EFFORT, count=1, cpus=1.5)
    kube_api.wait_until(lambda: kueue.check_state(name) == "Ready", timeout=20, what="Provisioned")
    kube_api.set_node_ready("edge-0", False)  # the board lost power before Kueue's pod came
    kube_api.wait_until(lambda: kueue.check_state(name) == "Rejected", timeout=20, what="CapacityRevoked")
    assert kueue.conditions(name)["CapacityRevoked"]["reason"] == "CapacityIsRevoked"
