"""``oscar-deploy check``: what it says about a cluster, read from the Kubernetes API test server loaded
with status samples copied from upstream (``tests/upstream/kube/``, PROVENANCE.md), and from OSCAR and
MinIO stand-ins on 127.0.0.1 (``tests/harness/oscar_api.py`` says what they do not do)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from kubernetes import client

from provisioner.check import Target, run_check
from provisioner.cli import main
from provisioner.health import expected, version_skew
from provisioner.record import node_labels
from tests.harness.oscar_api import MinioStandIn, OscarStandIn

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "tests/upstream/kube"
COMPONENTS = ("minio", "knative", "oscar", "elastic")
FRONT_LABELS = node_labels("front", "front-end", "amd64", {})
SERVER_VERSION = "v1.33.0"  # what the test server's /version answers


def sample(name: str) -> Any:
    return yaml.safe_load((SAMPLES / name).read_text())


def named(text: str, name: str) -> Any:
    """A helm-controller status sample for the chart ``name`` (its ``NAME`` placeholders filled)."""
    return yaml.safe_load(text.replace("NAME", name))


# --- loading the test server as controllers would: create the object, then write its status ----------


def put_node(api: Any, name: str, labels: dict[str, str], *, kubelet: str | None = SERVER_VERSION,
             annotations: dict[str, str] | None = None) -> None:
    """The upstream Node sample under another name and labels; ``kubelet`` replaces its kubelet
    version (None keeps the sample's v1.23.3). The test server's simulated kubelet keeps it Ready."""
    node = sample("node-kube-worker-1.yaml")
    status = node.pop("status")
    node["metadata"] = {"name": name, "labels": {**node["metadata"]["labels"], **labels},
                        "annotations": {**node["metadata"]["annotations"], **(annotations or {})}}
    if kubelet:
        status["nodeInfo"]["kubeletVersion"] = kubelet
    v1 = client.CoreV1Api(api)
    v1.create_node(node)
    v1.replace_node_status(name, {"metadata": {"name": name}, "status": status})


def stop_kubelet(kube_api: Any, name: str) -> None:
    """The node's kubelet stops; the test server's node lifecycle controller marks it Unknown after
    its grace period, as kube-controller-manager does."""
    kube_api.set_node_ready(name, False)
    kube_api.wait_until(lambda: any(c["type"] == "Ready" and c["status"] == "Unknown" for c in
                                    kube_api.get("nodes", name)["status"]["conditions"]), what="NotReady")


def down_ready_condition() -> str:
    """What the documentation's down node shows for Ready, as the check prints a condition."""
    (ready,) = [c for c in sample("node-kube-worker-1-notready-conditions.yaml")["conditions"]
                if c["type"] == "Ready"]
    return f"NotReady ({ready['reason']}: {ready['message']})"


def put_deployment(api: Any, namespace: str, name: str, status: dict[str, Any]) -> None:
    apps = client.AppsV1Api(api)
    labels = {"app": name}
    apps.create_namespaced_deployment(namespace, {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": name, "image": name}]}}}})
    apps.replace_namespaced_deployment_status(name, namespace, {"metadata": {"name": name}, "status": status})


def put_pod(api: Any, namespace: str, name: str, labels: dict[str, str], status: dict[str, Any],
            node: str) -> None:
    """The upstream running Pod sample as ``name`` on ``node`` (one whose kubelet is stopped, so
    nothing changes the status), then ``status`` over the sample's."""
    pod = sample("pod-nginx-running.yaml")
    full_status = {**pod.pop("status"), **status}
    pod["metadata"] = {"name": name, "namespace": namespace, "labels": labels}
    pod["spec"]["nodeName"] = node  # the sample's kube-worker-1 is no Node here: podgc would delete it
    v1 = client.CoreV1Api(api)
    v1.create_namespaced_pod(namespace, pod)
    # raw answers: the client's models refuse the documentation's elided container status
    v1.replace_namespaced_pod_status(name, namespace, {"metadata": {"name": name}, "status": full_status},
                                     _preload_content=False)


def put_chart(api: Any, name: str, status_sample: str, job_conditions: list[Any] | None) -> None:
    custom, batch = client.CustomObjectsApi(api), client.BatchV1Api(api)
    text = (SAMPLES / status_sample).read_text()
    custom.create_namespaced_custom_object("helm.cattle.io", "v1", "kube-system", "helmcharts", {
        "apiVersion": "helm.cattle.io/v1", "kind": "HelmChart", "metadata": {"name": name},
        "spec": {"chart": f"https://%{{KUBERNETES_API}}%/static/charts/{name}.tgz"}})
    custom.replace_namespaced_custom_object_status(
        "helm.cattle.io", "v1", "kube-system", "helmcharts", name,
        {"apiVersion": "helm.cattle.io/v1", "kind": "HelmChart", "metadata": {"name": name},
         "status": named(text, name)})
    if job_conditions is None:
        return
    job = f"helm-install-{name}"
    batch.create_namespaced_job("kube-system", {
        "metadata": {"name": job}, "spec": {"template": {"spec": {
            "restartPolicy": "OnFailure",
            "containers": [{"name": "helm", "image": "rancher/klipper-helm"}]}}}})
    batch.replace_namespaced_job_status(job, "kube-system", {"metadata": {"name": job},
                                                             "status": {"conditions": job_conditions}})


COMPLETE = [{"type": "Complete", "status": "True"}]
"""What helm-controller's jobComplete looks for (chart.go: a True ``batch.JobComplete`` condition)."""


def healthy_cluster(api: Any) -> None:
    """A cluster where everything works: Ready front-end, charts installed, Deployments available."""
    put_node(api, "front", FRONT_LABELS)
    charts, workloads = expected(COMPONENTS)
    for _component, name in charts:
        put_chart(api, name, "helmchart-status-job-created.yaml", COMPLETE)
    available = {**sample("deployment-conditions-complete.yaml"), "replicas": 1, "availableReplicas": 1}
    v1 = client.CoreV1Api(api)
    for namespace in sorted({w.namespace for w in workloads}):
        v1.create_namespace({"metadata": {"name": namespace}})
    for workload in workloads:
        put_deployment(api, workload.namespace, workload.name, available)


@pytest.fixture
def kube_api(kube_api_factory: Any) -> Any:
    """The test server at real speed: the Nodes written here have no kubelet renewing them, and the
    node lifecycle's grace period (40 s) must not run out during a test."""
    from tests.harness.kube.nodes import ControlPlane
    from tests.harness.kube_api import Timing

    return kube_api_factory(timing=Timing(time_scale=1.0,
                                          control_plane=ControlPlane(node_monitor_grace_s=0.5)))


@pytest.fixture
def stand_ins() -> Iterator[tuple[OscarStandIn, MinioStandIn]]:
    with MinioStandIn() as minio, OscarStandIn(minio) as oscar:
        yield oscar, minio


def target(kubeconfig: Path, oscar: OscarStandIn, minio: MinioStandIn) -> Target:
    return Target(kubeconfig=kubeconfig, components=COMPONENTS, labels={"front": FRONT_LABELS},
                  endpoints={"oscar": oscar.url, "minio": minio.url}, oscar_user=oscar.user,
                  oscar_password=oscar.password, minio_access_key="minio", minio_secret_key="minio-secret")


def failures(rows: list[Any]) -> dict[str, str]:
    return {r.object: r.detail for r in rows if not r.ok}


# --- the judgement, against the test server ------------------------------------------------------------


def test_a_working_cluster_passes_every_check(kube_api: Any, tmp_path: Path, stand_ins: Any) -> None:
    api = kube_api.api_client()
    healthy_cluster(api)
    rows = run_check(target(kube_api.write_kubeconfig(tmp_path / "kc"), *stand_ins))
    assert failures(rows) == {}
    objects = {r.object for r in rows}
    assert {"node front", "helmchart kube-system/minio", "helmchart kube-system/oscar",
            "helmchart kube-system/csi-driver-nfs", "deployment minio/minio", "deployment oscar/oscar",
            "deployment knative-serving/activator", "deployment kourier-system/3scale-kourier-gateway",
            "deployment knative-serving/net-kourier-controller",
            "deployment cert-manager/cert-manager-webhook",
            "deployment oscar-deploy/oscar-deploy-elastic"} <= objects
    assert any(r.object.endswith("/health") and r.detail == "HTTP 200 Ok" for r in rows)
    assert any(r.object.endswith("/minio/health/live") and r.ok for r in rows)


def test_each_failure_names_the_object_and_its_hint(kube_api: Any, tmp_path: Path, stand_ins: Any) -> None:
    api = kube_api.api_client()
    healthy_cluster(api)
    apps = client.AppsV1Api(api)
    # MinIO: the Deployment status of Kubernetes' documentation (a quota stops its ReplicaSet) and an
    # image that cannot be pulled (the documentation's ImagePullBackOff container status)
    apps.replace_namespaced_deployment_status("minio", "minio", {
        "metadata": {"name": "minio"}, **sample("deployment-status-replicafailure.yaml")})
    put_node(api, "wn-1", FRONT_LABELS)  # a worker is down, as the documentation's node
    stop_kubelet(kube_api, "wn-1")
    put_pod(api, "minio", "minio-7d9c5-x2x4z", {"app": "minio"}, sample("pod-imagepullbackoff-status.yaml"),
            node="wn-1")
    # OSCAR's chart: helm-controller gave up on its install Job (failurePolicy abort), whose status
    # is the documentation's failed Job
    client.CustomObjectsApi(api).delete_namespaced_custom_object("helm.cattle.io", "v1", "kube-system",
                                                                 "helmcharts", "oscar")
    client.BatchV1Api(api).delete_namespaced_job("helm-install-oscar", "kube-system")
    put_chart(api, "oscar", "helmchart-status-job-failed.yaml",
              sample("job-status-podfailurepolicy.yaml")["conditions"])
    # the daemon's Deployment was never installed
    apps.delete_namespaced_deployment("oscar-deploy-elastic", "oscar-deploy")
    # and the scheduler cannot place the webhook's pod: the documentation's FailedScheduling event
    event = sample("event-failedscheduling.yaml")
    client.CoreV1Api(api).create_namespaced_event("cert-manager", {
        **event, "metadata": {"name": "webhook.1"},
        "involvedObject": {**event["involvedObject"], "name": "cert-manager-webhook",
                           "namespace": "cert-manager"}})
    apps.replace_namespaced_deployment_status("cert-manager-webhook", "cert-manager", {
        "metadata": {"name": "cert-manager-webhook"}, "status": {"replicas": 1, "conditions": [
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
             "message": "Deployment does not have minimum availability."}]}})

    rows = run_check(target(kube_api.write_kubeconfig(tmp_path / "kc"), *stand_ins))
    found = failures(rows)
    assert set(found) == {"deployment minio/minio", "helmchart kube-system/oscar",
                          "deployment oscar-deploy/oscar-deploy-elastic", "node wn-1",
                          "deployment cert-manager/cert-manager-webhook"}
    assert ("FailedCreate: Error creating: pods \"nginx-deployment-4262182780-\" is forbidden: "
            "exceeded quota") in found["deployment minio/minio"]
    assert ("pod minio-7d9c5-x2x4z: a container ImagePullBackOff: Back-off pulling image "
            "\"non-existing-repo/non-existing-image:example\"") in found["deployment minio/minio"]
    assert found["helmchart kube-system/oscar"].startswith(
        "Job failed: Job has reached configured number of retries without succeeding")
    assert "not found" in found["deployment oscar-deploy/oscar-deploy-elastic"]
    assert found["node wn-1"].startswith(down_ready_condition())
    assert ("MinimumReplicasUnavailable: Deployment does not have minimum availability.; "
            "event FailedScheduling: pod (nginx-deployment-1370807587-fz9sd) failed to fit in any node "
            "fit failure") in found["deployment cert-manager/cert-manager-webhook"]


def test_a_running_install_job_and_a_missing_front_end_are_reported(kube_api: Any, tmp_path: Path,
                                                                     stand_ins: Any) -> None:
    api = kube_api.api_client()
    put_chart(api, "csi-driver-nfs", "helmchart-status-job-created.yaml", [])
    put_chart(api, "traefik", "helmchart-status-job-created.yaml", COMPLETE)  # k3s's own chart
    put_chart(api, "traefik-crd", "helmchart-status-job-created.yaml", None)
    put_node(api, "pi1", node_labels("pis", "edge", "arm64", {}))
    rows = run_check(dataclass_replace(target(kube_api.write_kubeconfig(tmp_path / "kc"), *stand_ins),
                                       components=(), labels={"front": FRONT_LABELS}))
    found = failures(rows)
    assert found["helmchart kube-system/csi-driver-nfs"] == "job helm-install-csi-driver-nfs still running"
    k3s = {r.object: r.ok for r in rows if r.component == "k3s"}
    assert k3s == {"helmchart kube-system/traefik": True, "helmchart kube-system/traefik-crd": False}
    assert found["helmchart kube-system/traefik-crd"].startswith("job helm-install-traefik-crd not found")
    assert "no Ready node labelled oscar-deploy/role=front-end" in found["front-end"]
    assert found["node pi1"] == "label oscar-deploy/group=pis names no group of the deployment"
    assert found["deployment cert-manager/cert-manager"].startswith("not found")


def dataclass_replace(value: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(value, **changes)


def test_kubelet_version_skew_follows_upstream_policy(kube_api: Any, tmp_path: Path, stand_ins: Any) -> None:
    # the documentation's node runs kubelet v1.23.3; the test server is v1.33.0: ten minors behind
    put_node(kube_api.api_client(), "front", FRONT_LABELS, kubelet=None)
    rows = run_check(target(kube_api.write_kubeconfig(tmp_path / "kc"), *stand_ins))
    assert failures(rows)["node front"] == ("kubelet v1.23.3 is 10 minor versions older than the API server "
                                            "v1.33.0-harness (at most 2 are supported)")
    assert version_skew("v1.33.4+k3s1", "v1.36.1+k3s1") == ""  # three older: supported
    assert "4 minor versions older" in version_skew("v1.32.0", "v1.36.1+k3s1")
    assert "newer than the API server" in version_skew("v1.37.0", "v1.36.1+k3s1")
    assert "(at most 2 are supported)" in version_skew("v1.24.9", "v1.27.0")  # before 1.25: two
    assert version_skew("v1.25.0", "v1.28.2") == ""


def test_a_node_the_daemon_powered_off_may_be_not_ready(kube_api: Any, tmp_path: Path,
                                                        stand_ins: Any) -> None:
    api = kube_api.api_client()
    put_node(api, "front", FRONT_LABELS)
    wn = node_labels("wn", "worker", "amd64", {})
    put_node(api, "wn-0", wn, annotations={"oscar-deploy/state": "off"})
    put_node(api, "wn-1", wn)
    stop_kubelet(kube_api, "wn-0")
    stop_kubelet(kube_api, "wn-1")
    both = dataclass_replace(target(kube_api.write_kubeconfig(tmp_path / "kc"), *stand_ins),
                             labels={"front": FRONT_LABELS, "wn": wn})
    found = failures(run_check(both))
    assert "node wn-0" not in found and found["node wn-1"].startswith(down_ready_condition())


def test_endpoints_that_do_not_answer_are_failures(kube_api: Any, tmp_path: Path) -> None:
    healthy_cluster(kube_api.api_client())
    with MinioStandIn(live=False) as minio, OscarStandIn(minio) as oscar:
        gone = dataclass_replace(target(kube_api.write_kubeconfig(tmp_path / "kc"), oscar, minio),
                                 endpoints={"oscar": "http://127.0.0.1:9/", "minio": minio.url})
        found = failures(run_check(gone, timeout=2))
    assert found["http://127.0.0.1:9/health"].startswith("not reachable: ")
    assert found[f"{minio.url}minio/health/live"] == "HTTP 503: "


def test_an_unreachable_api_server_is_one_failing_row(tmp_path: Path, kube_api: Any, stand_ins: Any) -> None:
    kubeconfig = kube_api.write_kubeconfig(tmp_path / "kc")
    kube_api.stop()
    rows = run_check(target(kubeconfig, *stand_ins))
    assert [r.component for r in rows if not r.ok] == ["kubernetes"]
    assert "API server not answering" in rows[0].detail


# --- --deep against the OSCAR and MinIO stand-ins ----------------------------------------------------


def test_deep_runs_one_service_through_oscar_and_minio_and_removes_it(kube_api: Any, tmp_path: Path,
                                                                       stand_ins: Any) -> None:
    oscar, minio = stand_ins
    healthy_cluster(kube_api.api_client())
    rows = run_check(target(kube_api.write_kubeconfig(tmp_path / "kc"), oscar, minio), deep=True,
                     deep_wait_s=10, deep_poll_s=0.1)
    deep = [r for r in rows if r.component == "deep"]
    assert all(r.ok for r in deep), deep
    assert [r.detail.split(" ")[0] for r in deep] == ["created", "uploaded", "output", "removed"]
    assert oscar.services == {}  # removed, and its bucket with it
    assert minio.s3().list_buckets()["Buckets"] == []
    methods = [(m, p.split("/")[2] if p.count("/") > 1 else p, code) for m, p, code in oscar.requests
               if p.startswith("/system")]
    assert methods == [("POST", "services", 201), ("DELETE", "services", 204)]


def test_deep_reports_a_service_that_never_answers_and_still_removes_it(kube_api: Any,
                                                                        tmp_path: Path) -> None:
    healthy_cluster(kube_api.api_client())
    with MinioStandIn() as minio, OscarStandIn(minio, run=False) as oscar:
        rows = run_check(target(kube_api.write_kubeconfig(tmp_path / "kc"), oscar, minio), deep=True,
                         deep_wait_s=0.5, deep_poll_s=0.1)
        assert oscar.services == {}
    found = failures(rows)
    (output,) = [k for k in found if k.endswith("/out/")]
    assert found[output].startswith(
        "no output after 0 s (OSCAR's job logs: GET /system/logs/oscar-deploy-check-")


def test_deep_with_a_wrong_password_stops_at_the_service(kube_api: Any, tmp_path: Path,
                                                         stand_ins: Any) -> None:
    oscar, minio = stand_ins
    healthy_cluster(kube_api.api_client())
    wrong = dataclass_replace(target(kube_api.write_kubeconfig(tmp_path / "kc"), oscar, minio),
                              oscar_password="wrong")
    deep = [r for r in run_check(wrong, deep=True, deep_wait_s=1) if r.component == "deep"]
    assert [(r.ok, r.detail) for r in deep] == [(False, "HTTP 401: ")]


# --- the command ----------------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Any]:
    from provisioner.state import StateStore

    with StateStore.open(tmp_path / "state.db") as opened:
        yield opened


def recorded(store: Any, oscar_url: str | None = None, minio_url: str | None = None) -> Any:
    """A deployment of the shipped AWS template recorded as ``create`` does, its front-end at
    127.0.0.1; the outputs point at the stand-ins when their URLs are given."""
    from provisioner.config import Settings
    from provisioner.engine.create import recorded_plan
    from provisioner.engine.targets import group_targets
    from provisioner.plan import make_plan
    from provisioner.template import load_cluster_spec

    spec = load_cluster_spec([REPO / "tosca/templates/oscar-aws.yaml"], {})
    plan = make_plan(spec, Settings())
    document = json.loads(json.dumps(recorded_plan(plan, group_targets(plan))))
    for output in document.get("outputs") or []:
        if output["name"] == "oscar_endpoint" and oscar_url:
            output["value"] = oscar_url
        if output["name"] == "minio_endpoint" and minio_url:
            output["value"] = minio_url
    dep = store.create_deployment("demo", plan=document, templates=["oscar-aws"], inputs=dict(spec.inputs),
                                  status="created")
    store.record_node(dep.id, group="front", name="front-1", provider="aws",
                      addresses={"public": ["127.0.0.1"]}, state="running")
    store.set_secret(dep.id, "oscar_password", "oscar-password")
    store.set_secret(dep.id, "minio_password", "minio-secret")
    return store.get(dep.id)


def test_the_command_prints_a_table_and_exits_0_when_all_is_well(kube_api: Any, store: Any,
                                                                   stand_ins: Any) -> None:
    from provisioner.configure import KUBECONFIG_FILE
    from provisioner.record import read_record

    oscar, minio = stand_ins
    dep = recorded(store, oscar.url, minio.url)
    kube_api.write_kubeconfig(store.deployment_dir(dep.id) / KUBECONFIG_FILE)
    record = read_record(dep.plan)[0]
    api = kube_api.api_client()
    healthy_cluster(api)
    front = record.front_end
    assert front is not None
    labels = node_labels(front.name, front.role, front.arch, front.labels)
    client.CoreV1Api(api).patch_node("front", {"metadata": {"labels": labels}})
    result = CliRunner().invoke(main, ["--state", str(store.path), "check", "demo"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["COMPONENT", "OBJECT", "OK", "DETAIL"]
    assert any(line.split()[:3] == ["oscar", "deployment", "oscar/oscar"] for line in lines[1:])
    assert {line[lines[0].index("OK"):].split()[0] for line in lines[1:]} == {"yes"}
    as_json = CliRunner().invoke(main, ["--state", str(store.path), "check", "demo", "-o", "json"])
    doc = json.loads(as_json.output)
    assert as_json.exit_code == 0 and doc["ok"] is True and {c["component"] for c in doc["checks"]} >= {
        "nodes", "nfs", "minio", "knative", "kourier", "cert-manager", "oscar"}
    assert "oscar-password" not in as_json.output and "minio-secret" not in as_json.output


def test_the_command_exits_1_on_a_failure_and_names_it(kube_api: Any, store: Any, stand_ins: Any) -> None:
    from provisioner.configure import KUBECONFIG_FILE

    oscar, minio = stand_ins
    dep = recorded(store, oscar.url, minio.url)
    kube_api.write_kubeconfig(store.deployment_dir(dep.id) / KUBECONFIG_FILE)
    result = CliRunner().invoke(main, ["--state", str(store.path), "check", "demo", "-o", "json"])
    doc = json.loads(result.output)
    assert result.exit_code == 1 and doc["ok"] is False
    missing = {c["object"]: c["detail"] for c in doc["checks"] if not c["ok"]}
    assert missing["helmchart kube-system/minio"].startswith("not found")


def test_an_unknown_deployment_exits_2(store: Any) -> None:
    result = CliRunner().invoke(main, ["--state", str(store.path), "check", "nope"])
    assert result.exit_code == 2
    assert result.output.strip().endswith("no deployment with id or name 'nope' in " + str(store.path))


def test_without_a_kubeconfig_it_says_how_to_get_one(store: Any) -> None:
    dep = recorded(store)
    result = CliRunner().invoke(main, ["--state", str(store.path), "check", dep.name])
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert "has no kubeconfig yet" in line and "`oscar-deploy reconfigure demo`" in line
    assert "/etc/rancher/k3s/k3s.yaml" in line


def test_the_expected_names_are_the_roles_and_upstream_ones() -> None:
    """Namespaces and HelmChart names as the roles write them (their templates and defaults)."""
    roles = REPO / "playbooks/roles"
    minio = yaml.safe_load((roles / "minio/defaults/main.yml").read_text())
    oscar = yaml.safe_load((roles / "oscar/defaults/main.yml").read_text())
    elastic = yaml.safe_load((roles / "elastic/defaults/main.yml").read_text())
    charts, workloads = expected(COMPONENTS)
    namespaces = {w.component: w.namespace for w in workloads}
    assert namespaces["minio"] == minio["minio_namespace"] and namespaces["oscar"] == oscar["oscar_namespace"]
    assert namespaces["elastic"] == elastic["elastic_namespace"]
    for _component, name in charts:
        found = [p for p in roles.glob("*/templates/*.j2") if f"kind: HelmChart\nmetadata:\n  name: {name}\n"
                 in p.read_text()]
        assert found, name
    assert copy.deepcopy(expected(())[0]) == [("nfs", "csi-driver-nfs")]


# --- `create` ends with the check -------------------------------------------------------------------


def test_create_waits_for_the_cluster_to_settle_and_says_what_it_waits_for(
        kube_api: Any, tmp_path: Path, stand_ins: Any, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from provisioner.check import settle
    from provisioner.engine.progress import NullProgress

    api = kube_api.api_client()
    healthy_cluster(api)
    apps = client.AppsV1Api(api)
    apps.replace_namespaced_deployment_status("oscar", "oscar", {"metadata": {"name": "oscar"}, "status": {
        "replicas": 1, "conditions": [{"type": "Available", "status": "False",
                                       "reason": "MinimumReplicasUnavailable",
                                       "message": "Deployment does not have minimum availability."}]}})
    ready = {**sample("deployment-conditions-complete.yaml"), "replicas": 1, "availableReplicas": 1}
    checks: list[int] = []

    def check(what: Target) -> list[Any]:
        rows = run_check(what)
        checks.append(len(rows))
        if len(checks) == 2:  # OSCAR comes up after the second look
            apps.replace_namespaced_deployment_status("oscar", "oscar",
                                                      {"metadata": {"name": "oscar"}, "status": ready})
        return rows

    progress = NullProgress()
    with caplog.at_level(logging.INFO, logger="provisioner.check"):
        rows = settle(target(kube_api.write_kubeconfig(tmp_path / "kc"), *stand_ins), progress,
                      timeout_s=30, interval_s=0.1, check=check)
    assert len(checks) == 3
    assert failures(rows) == {} and progress.phases == ["checking the cluster"]
    assert f"check: {len(rows) - 1}/{len(rows)} ok, waiting for oscar" in caplog.text


def test_create_gives_up_after_its_timeout_with_the_failures(kube_api: Any, tmp_path: Path,
                                                             stand_ins: Any) -> None:
    from provisioner.check import settle
    from provisioner.engine.progress import NullProgress

    put_node(kube_api.api_client(), "front", FRONT_LABELS)
    clock = iter(range(0, 1000, 10))
    rows = settle(target(kube_api.write_kubeconfig(tmp_path / "kc"), *stand_ins), NullProgress(),
                  timeout_s=30, interval_s=10, clock=lambda: float(next(clock)), sleep=lambda s: None)
    assert "helmchart kube-system/minio" in failures(rows)


def test_create_skips_the_check_when_there_is_no_cluster(store: Any, tmp_path: Path, kube_api: Any,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from provisioner.cli import Context, _final_check
    from provisioner.configure import KUBECONFIG_FILE

    dep = recorded(store)
    context = Context(None, str(store.path), -1)
    _final_check(context, store, dep, 30)
    assert capsys.readouterr().err.strip() == ("check: skipped, no kubeconfig was fetched "
                                               "(`oscar-deploy check demo` once there is one)")
    kube_api.write_kubeconfig(store.deployment_dir(dep.id) / KUBECONFIG_FILE)
    kube_api.stop()
    _final_check(context, store, dep, 30)
    err = capsys.readouterr().err.strip()
    assert err.startswith("check: skipped, API server not answering: ") and err.endswith(
        "(`oscar-deploy check demo` later)")


def test_a_kubeconfig_that_names_no_cluster_is_one_failing_row(tmp_path: Path, stand_ins: Any) -> None:
    empty = tmp_path / "kc"
    empty.write_text("{}\n")
    rows = run_check(target(empty, *stand_ins))
    assert [(r.component, r.ok) for r in rows if r.component == "kubernetes"] == [("kubernetes", False)]
    assert rows[0].detail.startswith("not a usable kubeconfig: ")
    assert all(r.ok for r in rows[1:])  # the endpoints are still checked


def test_the_endpoints_certificate_is_verified_against_the_clusters_own_ca(kube_api: Any,
                                                                           tmp_path: Path) -> None:
    """Without a DNS name OSCAR's certificate comes from the deployment's CA: cert-manager writes it
    as ``ca.crt`` into the TLS Secret, which the check reads through the API to verify the endpoint."""
    import base64

    from tests.harness.kube.tls import ServingCert

    api = kube_api.api_client()
    healthy_cluster(api)
    cert = ServingCert.create(tmp_path / "tls")
    kubeconfig = kube_api.write_kubeconfig(tmp_path / "kc")
    with MinioStandIn() as minio, OscarStandIn(minio, tls=cert) as oscar:
        health = f"{oscar.url}health"
        untrusted = failures(run_check(target(kubeconfig, oscar, minio)))
        client.CoreV1Api(api).create_namespaced_secret("oscar", {
            "metadata": {"name": "oscar-tls"}, "type": "kubernetes.io/tls",
            "data": {"ca.crt": base64.b64encode(cert.ca_file.read_bytes()).decode()}})
        trusted = failures(run_check(target(kubeconfig, oscar, minio)))
    assert health.startswith("https://") and "CERTIFICATE_VERIFY_FAILED" in untrusted[health]
    assert trusted == {}
