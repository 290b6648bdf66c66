"""Whether a deployment's cluster works: Kubernetes objects and HTTP answers in, table rows out.

Pure: ``provisioner.check`` reads the objects (as the API serves them: plain JSON dicts) and the
HTTP answers, these functions judge them. Each failing row names the object and gives the hint an
operator would look for next: the condition's reason and message, the waiting or terminated reason
of a pod's container, the object's last event.

What is checked, and where each name comes from:

- HelmCharts in ``kube-system`` (the roles' templates: ``csi-driver-nfs``, ``minio``, ``oscar``),
  judged as k3s's helm-controller does (``pkg/controllers/chart/chart.go``): the chart's ``Failed``
  condition, then its Job ``status.jobName`` (``helm-install-<name>``) and that Job's ``Complete`` or
  ``Failed`` condition.
- Deployments, available as ``kubectl rollout status`` reads them: ``Available`` true, no
  ``ReplicaFailure``, ``Progressing`` not false (``ProgressDeadlineExceeded``). Names from upstream:
  Knative Serving's ``config/core/deployments`` (activator, autoscaler, controller, webhook in
  ``knative-serving``), net-kourier's ``config/300-gateway.yaml`` (``3scale-kourier-gateway`` in
  ``kourier-system``) and ``config/300-controller.yaml`` (``net-kourier-controller``), cert-manager's
  chart as its static manifest renders it (release ``cert-manager``: ``cert-manager``,
  ``cert-manager-cainjector``, ``cert-manager-webhook``), the MinIO chart's ``minio.fullname`` for
  release ``minio`` (``minio``), the OSCAR chart's ``oscar`` Deployment, our daemon's
  ``oscar-deploy-elastic``.
- Nodes: Ready, the labels k3s gives them (``record.node_labels``), and the kubelet's version against
  the API server's under Kubernetes' version skew policy (kubernetes/website
  ``content/en/releases/version-skew-policy.md``: "``kubelet`` must not be newer than
  ``kube-apiserver``", "may be up to three minor versions older than ``kube-apiserver`` (``kubelet``
  < 1.25 may only be up to two minor versions older)").
  A node the elastic daemon powered off (annotation ``oscar-deploy/state``) may be NotReady.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Obj = Mapping[str, Any]

HELM_NAMESPACE = "kube-system"
"""Where the roles put their HelmCharts and where helm-controller runs their install Jobs."""
MAX_KUBELET_MINOR_SKEW = 3
"""Kubernetes' version skew policy: a kubelet may be up to three minor versions older than the API
server, never newer; one older than 1.25 only two."""
ELASTIC_STATE = "oscar-deploy/state"
"""The elastic daemon's lifecycle annotation on Node objects (``elastic.lifecycle.STATE``)."""
POWERED_OFF = frozenset({"off", "powering_off", "disabled"})
"""Daemon states in which a NotReady node is expected (``elastic.model.NodeState``)."""


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the check: which part, which object, whether it works, and why not."""

    component: str
    object: str
    ok: bool
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Workload:
    component: str
    namespace: str
    name: str

    @property
    def label(self) -> str:
        return f"deployment {self.namespace}/{self.name}"


def expected(components: Iterable[str]) -> tuple[list[tuple[str, str]], list[Workload]]:
    """The (component, HelmChart name) pairs and the Deployments a deployment with ``components``
    (the template's, lower case) runs. NFS and cert-manager are always installed (site.yml)."""
    names = {c.lower().replace("_", "-") for c in components}
    charts = [("nfs", "csi-driver-nfs")]
    workloads = [Workload("cert-manager", "cert-manager", n)
                 for n in ("cert-manager", "cert-manager-cainjector", "cert-manager-webhook")]
    if "minio" in names:
        charts.append(("minio", "minio"))
        workloads.append(Workload("minio", "minio", "minio"))
    if names & {"knative", "knative-serving"}:  # the template's name, or the record's component
        workloads += [Workload("knative", "knative-serving", n)
                      for n in ("activator", "autoscaler", "controller", "webhook")]
        workloads += [Workload("kourier", "kourier-system", "3scale-kourier-gateway"),
                      Workload("kourier", "knative-serving", "net-kourier-controller")]
    if "oscar" in names:
        charts.append(("oscar", "oscar"))
        workloads.append(Workload("oscar", "oscar", "oscar"))
    if "elastic" in names:
        workloads.append(Workload("elastic", "oscar-deploy", "oscar-deploy-elastic"))
    return charts, workloads


# --- small readers over API objects -----------------------------------------------------------------


def _conditions(obj: Obj | None) -> dict[str, Obj]:
    return {str(c.get("type")): c for c in ((obj or {}).get("status") or {}).get("conditions") or []}


def _is_true(condition: Obj | None) -> bool:
    return bool(condition) and str((condition or {}).get("status")) == "True"


def _why(condition: Obj) -> str:
    reason, message = condition.get("reason") or "", " ".join(str(condition.get("message") or "").split())
    return f"{reason}: {message}" if reason and message else reason or message


def _time(event: Obj) -> str:
    series = event.get("series") or {}
    return str(event.get("lastTimestamp") or series.get("lastObservedTime") or event.get("eventTime")
               or (event.get("metadata") or {}).get("creationTimestamp") or "")


def last_event(events: Sequence[Obj], names: Iterable[str]) -> str:
    """The most recent event about one of the objects ``names`` (Warnings first), as ``event
    Reason: message``; empty when there is none."""
    wanted = set(names)
    about = [e for e in events
             if (e.get("involvedObject") or e.get("regarding") or {}).get("name") in wanted]
    if not about:
        return ""
    warnings = [e for e in about if e.get("type") == "Warning"]
    event = max(warnings or about, key=_time)
    message = " ".join(str(event.get("message") or event.get("note") or "").split())
    return f"event {event.get('reason') or ''}: {message}".rstrip(": ")


def pod_hint(pods: Sequence[Obj]) -> str:
    """Why the first troubled pod is not running: a container's waiting reason (CrashLoopBackOff,
    ImagePullBackOff...) or its last termination, or the pod's unschedulable condition."""
    for pod in pods:
        name = (pod.get("metadata") or {}).get("name", "?")
        status = pod.get("status") or {}
        for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
            state = cs.get("state") or {}
            if cs.get("ready") and "running" in state:
                continue
            waiting, terminated = state.get("waiting"), state.get("terminated")
            container = cs.get("name") or "a container"
            last = (cs.get("lastState") or {}).get("terminated")
            if waiting and waiting.get("reason"):
                text = f"pod {name}: {container} {_why(waiting)}"
                if last and last.get("reason"):
                    text += f" (last exit {last.get('exitCode')}, {last.get('reason')})"
                return text
            if terminated and (terminated.get("exitCode") or 0) != 0:
                code = terminated.get("exitCode")
                return f"pod {name}: {container} exited {code} ({_why(terminated)})"
        scheduled = _conditions(pod).get("PodScheduled")
        if scheduled is not None and not _is_true(scheduled):
            return f"pod {name}: {_why(scheduled)}"
        if status.get("phase") == "Failed":
            return f"pod {name}: {status.get('reason') or 'Failed'} {status.get('message') or ''}".rstrip()
    return ""


def _hints(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _names(pods: Sequence[Obj]) -> list[str]:
    return [str((p.get("metadata") or {}).get("name")) for p in pods]


# --- judgements -----------------------------------------------------------------------------------


def judge_deployment(workload: Workload, deployment: Obj | None, pods: Sequence[Obj] = (),
                     events: Sequence[Obj] = ()) -> Row:
    """A Deployment is fine when available with no replica failure and a rollout not stalled."""
    if deployment is None:
        return Row(workload.component, workload.label, False,
                   "not found (the configuration did not install it: `oscar-deploy reconfigure ID`)")
    status = deployment.get("status") or {}
    conditions = _conditions(deployment)
    wanted = int((deployment.get("spec") or {}).get("replicas", 1) or 0)
    counts = f"{int(status.get('availableReplicas') or 0)}/{wanted} available"
    problems = [_why(c) for t, c in conditions.items()
                if (t == "ReplicaFailure" and _is_true(c))
                or (t == "Progressing" and str(c.get("status")) == "False")]
    available = conditions.get("Available")
    if available is None or not _is_true(available):
        problems.insert(0, _why(available) if available else "no Available condition yet")
    if not problems:
        return Row(workload.component, workload.label, True, counts)
    name = str((deployment.get("metadata") or {}).get("name"))
    return Row(workload.component, workload.label, False,
               _hints(counts, *problems, pod_hint(pods), last_event(events, [name, *_names(pods)])))


def judge_helmchart(component: str, name: str, chart: Obj | None, job: Obj | None,
                    pods: Sequence[Obj] = (), events: Sequence[Obj] = ()) -> Row:
    """A HelmChart is installed when helm-controller's Job for it completed."""
    label = f"helmchart {HELM_NAMESPACE}/{name}"
    if chart is None:
        return Row(component, label, False,
                   "not found (the configuration did not write it: `oscar-deploy reconfigure ID`)")
    job_name = str((chart.get("status") or {}).get("jobName") or f"helm-install-{name}")
    failed = _conditions(chart).get("Failed")
    if _is_true(failed):
        return Row(component, label, False, _hints(_why(failed or {}), pod_hint(pods),
                                                   last_event(events, [name, job_name, *_names(pods)])))
    if job is None:
        return Row(component, label, False, _hints(f"job {job_name} not found (helm-controller has not "
                                                   f"started it)", last_event(events, [name])))
    job_conditions = _conditions(job)
    if _is_true(job_conditions.get("Complete")):
        return Row(component, label, True, f"installed (job {job_name} complete)")
    if _is_true(job_conditions.get("Failed")):
        failure = f"job {job_name} failed: {_why(job_conditions['Failed'])}"
        return Row(component, label, False,
                   _hints(failure, pod_hint(pods), last_event(events, [job_name, *_names(pods)])))
    return Row(component, label, False, _hints(f"job {job_name} still running", pod_hint(pods),
                                               last_event(events, [job_name, *_names(pods)])))


_VERSION = re.compile(r"^v?(\d+)\.(\d+)")


def minor(version: str) -> tuple[int, int] | None:
    """``v1.36.1+k3s1`` → (1, 36); None when it is no Kubernetes version."""
    found = _VERSION.match(version.strip())
    return (int(found.group(1)), int(found.group(2))) if found else None


def version_skew(kubelet: str, server: str) -> str:
    """What breaks the version skew policy, empty if nothing does."""
    k, s = minor(kubelet), minor(server)
    if k is None or s is None:
        return ""
    if k > s:
        return f"kubelet {kubelet} is newer than the API server {server} (not supported)"
    allowed = MAX_KUBELET_MINOR_SKEW if k >= (1, 25) else 2
    if k[0] == s[0] and s[1] - k[1] > allowed:
        return (f"kubelet {kubelet} is {s[1] - k[1]} minor versions older than the API server {server} "
                f"(at most {allowed} are supported)")
    return ""


def judge_nodes(nodes: Sequence[Obj], expected_labels: Mapping[str, Mapping[str, str]], server_version: str,
                events: Sequence[Obj] = ()) -> list[Row]:
    """A row per Node: Ready (or powered off by the daemon), carrying its group's labels, with a
    kubelet the API server supports. ``expected_labels``: group name → the labels k3s gives its
    nodes. A deployment without a Ready front-end gets a row saying so."""
    rows: list[Row] = []
    front_ready = False
    for node in sorted(nodes, key=lambda n: str((n.get("metadata") or {}).get("name"))):
        meta = node.get("metadata") or {}
        name, labels = str(meta.get("name")), dict(meta.get("labels") or {})
        group = labels.get("oscar-deploy/group", "")
        state = str((meta.get("annotations") or {}).get(ELASTIC_STATE, ""))
        ready = _conditions(node).get("Ready")
        kubelet = str(((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion") or "")
        problems: list[str] = []
        if not _is_true(ready) and state not in POWERED_OFF:
            problems.append("NotReady" + (f" ({_why(ready)})" if ready else ""))
        if group not in expected_labels:
            problems.append(f"label oscar-deploy/group={group or '(none)'} names no group of the deployment")
        else:
            missing = [f"{k}={v}" for k, v in expected_labels[group].items() if labels.get(k) != v]
            if missing:
                problems.append("labels missing: " + ", ".join(missing))
        if skew := version_skew(kubelet, server_version):
            problems.append(skew)
        if labels.get("oscar-deploy/role") == "front-end" and _is_true(ready):
            front_ready = True
        what = "Ready" if _is_true(ready) else f"off ({state})" if state in POWERED_OFF else "NotReady"
        detail = _hints(*problems, last_event(events, [name])) if problems else f"{what}, {group}, {kubelet}"
        rows.append(Row("nodes", f"node {name}", not problems, detail))
    if not front_ready:
        rows.insert(0, Row("nodes", "front-end", False,
                           "no Ready node labelled oscar-deploy/role=front-end (is k3s running there? "
                           "`oscar-deploy ssh ID front -- systemctl status k3s`)"))
    return rows


def judge_http(component: str, url: str, status: int | None, body: str = "", error: str = "",
               expect_body: str | None = None) -> Row:
    """An HTTP health endpoint: 200 (and ``expect_body`` when given), else what came back."""
    if error:
        return Row(component, url, False, error)
    if status != 200:
        return Row(component, url, False, f"HTTP {status}: {' '.join(body.split())[:120]}")
    if expect_body is not None and body.strip() != expect_body:
        return Row(component, url, False, f"HTTP 200 but {body.strip()[:60]!r}, not {expect_body!r}")
    return Row(component, url, True, f"HTTP 200 {body.strip()[:20]}".rstrip())


def passed(rows: Sequence[Row]) -> bool:
    return bool(rows) and all(r.ok for r in rows)
