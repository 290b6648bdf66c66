"""``oscar-deploy check``: read the cluster and the endpoints, hand them to ``provisioner.health``.

The edges of the check: the Kubernetes API through the kubeconfig ``create`` fetched (with the
``kubernetes`` client), OSCAR's ``/health`` and MinIO's ``/minio/health/live`` through the endpoints
the deployment's outputs give, and, with ``deep``, one round trip through OSCAR's REST API and
MinIO's S3 API. The judgement is ``provisioner.health``'s.

The endpoints' certificates are verified. Without a DNS name they come from the cluster's own CAs
(cert-manager's self-signed issuer for OSCAR's ingress, the deployment's CA for MinIO), so the
``ca.crt`` cert-manager writes into their TLS Secrets (``oscar/oscar-tls``, ``minio/minio-tls``),
read through the authenticated API, is the trust anchor; with a DNS name the system's CAs are.

OSCAR's API (grycap/oscar ``main.go``, ``pkg/handlers``): ``GET /health`` answers 200 ``Ok``;
``POST /system/services`` takes the service definition as JSON (basic auth) and answers 201;
``DELETE /system/services/NAME`` answers 204 and removes the service's buckets. A file put in the
service's input path runs the service, whose script reads ``$INPUT_FILE_PATH`` and writes into
``$TMP_OUTPUT_DIR``, uploaded to its output path (docs/oscar-service.md). MinIO's liveness probe
``/minio/health/live`` answers 200 without authentication (docs/metrics/healthcheck/README.md).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import secrets as random
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from provisioner.health import (
    HELM_NAMESPACE,
    Row,
    Workload,
    expected,
    judge_deployment,
    judge_helmchart,
    judge_http,
    judge_nodes,
)

DEEP_IMAGE = "ghcr.io/grycap/cowsay"
"""OSCAR's own example image (docs/deployment-api.md); the deep check's script only copies a file."""
DEEP_SCRIPT = '#!/bin/sh\ncp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/"\n'
TLS_SECRETS = {"oscar": ("oscar", "oscar-tls"), "minio": ("minio", "minio-tls")}


@dataclasses.dataclass(frozen=True)
class Target:
    """What the check needs to know about a deployment (credentials only for ``deep``)."""

    kubeconfig: Path
    components: tuple[str, ...]
    labels: Mapping[str, Mapping[str, str]]
    """Group name → the labels k3s gives its nodes."""
    endpoints: Mapping[str, str]
    """``oscar`` and ``minio`` → the base URL the outputs give (absent when the template has none)."""
    oscar_user: str = "oscar"
    oscar_password: str = dataclasses.field(default="", repr=False)
    minio_access_key: str = "minio"
    minio_secret_key: str = dataclasses.field(default="", repr=False)


def target_for(store: Any, deployment: Any) -> Target:
    """The check's view of a recorded deployment; ``NotFound`` (from ``kubeconfig_path``) when its
    configuration never fetched a kubeconfig."""
    from provisioner.configure import (
        filled,
        kubeconfig_path,
        recorded_component_properties,
        service_logins,
    )
    from provisioner.engine.views import local_values, outputs
    from provisioner.record import node_labels, read_record

    kubeconfig = kubeconfig_path(store, deployment)
    record, _migrated = read_record(deployment.plan)
    secrets = store.secrets(deployment.id)
    shown = {o["name"]: str(o["value"]) for o in outputs(
        deployment, store.nodes(deployment.id), secrets, show_secrets=True,
        local=local_values(store.deployment_dir(deployment.id)))}
    endpoints = {key: shown[f"{key}_endpoint"] for key in ("oscar", "minio")
                 if "://" in shown.get(f"{key}_endpoint", "")}
    props = {str(c["name"]).lower(): filled(dict(c.get("properties") or {}), secrets)
             for c in recorded_component_properties(record) or []}
    logins = service_logins(props, secrets)
    components = tuple(props) or tuple(c.name.lower() for c in record.components)
    return Target(
        kubeconfig=kubeconfig, components=components,
        labels={g.name: node_labels(g.name, g.role, g.arch, g.labels) for g in record.groups},
        endpoints=endpoints,
        oscar_user=logins["oscar_username"], oscar_password=logins["oscar_password"],
        minio_access_key=logins["minio_access_key"], minio_secret_key=logins["minio_secret_key"])


# --- Kubernetes ---------------------------------------------------------------------------------------


class _Cluster:
    """The few reads the check makes, each object as the API serves it: raw JSON, not the client's
    models, which refuse an object missing a field they require (the check must read what is there)."""

    def __init__(self, api: Any) -> None:
        from kubernetes import client

        self.api = api
        self.core, self.apps = client.CoreV1Api(api), client.AppsV1Api(api)
        self.batch, self.custom = client.BatchV1Api(api), client.CustomObjectsApi(api)

    @staticmethod
    def raw(read: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        return dict(json.loads(read(*args, _preload_content=False, **kwargs).data))

    def optional(self, read: Callable[..., Any], *args: Any) -> dict[str, Any] | None:
        from kubernetes.client.rest import ApiException

        try:
            return self.raw(read, *args)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def items(self, read: Callable[..., Any], *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        """The list's items; none when the resource is not served (a CRD not installed)."""
        from kubernetes.client.rest import ApiException

        try:
            return list(self.raw(read, *args, **kwargs).get("items") or [])
        except ApiException as error:
            if error.status == 404:
                return []
            raise

    def pods(self, namespace: str, selector: Mapping[str, str]) -> list[dict[str, Any]]:
        labels = ",".join(f"{k}={v}" for k, v in selector.items())
        return self.items(self.core.list_namespaced_pod, namespace, label_selector=labels)

    def events(self, namespace: str) -> list[dict[str, Any]]:
        return self.items(self.core.list_namespaced_event, namespace)

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        found = self.optional(self.core.read_namespaced_secret, name, namespace)
        data = ((found or {}).get("data") or {}).get(key)
        return base64.b64decode(data).decode() if data else None


def kube_rows(api: Any, target: Target) -> list[Row]:
    """Nodes, HelmCharts and their install Jobs, Deployments."""
    cluster = _Cluster(api)
    # read raw: the client's VersionInfo model refuses a /version without every build field
    server = str(api.call_api("/version", "GET", response_type="object", auth_settings=["BearerToken"],
                              _return_http_data_only=True).get("gitVersion") or "")
    nodes = cluster.items(cluster.core.list_node)
    rows = judge_nodes(nodes, target.labels, server, cluster.events("default"))
    charts, workloads = expected(target.components)
    helm_events = cluster.events(HELM_NAMESPACE)
    listed = {str(c["metadata"]["name"]): c for c in cluster.items(
        cluster.custom.list_namespaced_custom_object, "helm.cattle.io", "v1", HELM_NAMESPACE, "helmcharts")}
    ours = {name: component for component, name in charts}
    # every HelmChart there: ours, and those k3s itself deploys (traefik, traefik-crd)
    for name in [*ours, *sorted(set(listed) - set(ours))]:
        component = ours.get(name, "k3s")
        chart = listed.get(name)
        job_name = str(((chart or {}).get("status") or {}).get("jobName") or f"helm-install-{name}")
        job = cluster.optional(cluster.batch.read_namespaced_job, job_name, HELM_NAMESPACE)
        pods = cluster.pods(HELM_NAMESPACE, {"job-name": job_name}) if job else []
        rows.append(judge_helmchart(component, name, chart, job, pods, helm_events))
    events: dict[str, list[dict[str, Any]]] = {}
    for workload in workloads:
        rows.append(_workload_row(cluster, workload, events))
    return rows


def _workload_row(cluster: _Cluster, workload: Workload, events: dict[str, list[dict[str, Any]]]) -> Row:
    deployment = cluster.optional(cluster.apps.read_namespaced_deployment, workload.name, workload.namespace)
    pods: list[dict[str, Any]] = []
    if deployment is not None:
        selector = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        pods = cluster.pods(workload.namespace, selector) if selector else []
        if workload.namespace not in events:
            events[workload.namespace] = cluster.events(workload.namespace)
    return judge_deployment(workload, deployment, pods, events.get(workload.namespace, []))


def api_client(kubeconfig: Path) -> Any:
    """A client that gives up on an unreachable API server after one retry, not urllib3's three."""
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    configuration.retries = 1
    return client.ApiClient(configuration)


def tls_authorities(api: Any) -> dict[str, str]:
    """``oscar``/``minio`` → the CA (PEM) cert-manager recorded for their certificate, if any."""
    cluster = _Cluster(api)
    found = {}
    for key, (namespace, name) in TLS_SECRETS.items():
        with contextlib.suppress(Exception):  # no Secret, no access: the system's CAs are used instead
            if pem := cluster.secret_value(namespace, name, "ca.crt"):
                found[key] = pem
    return found


# --- HTTP ---------------------------------------------------------------------------------------------


def _context(url: str, ca_pem: str | None) -> ssl.SSLContext | None:
    if not url.startswith("https:"):
        return None
    return ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()


def http(method: str, url: str, *, ca_pem: str | None = None, timeout: float = 10.0,
         body: bytes | None = None, headers: Mapping[str, str] | None = None) -> tuple[int | None, str, str]:
    """(status, body, error): the answer, or why there was none (error names the cause)."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=_context(url, ca_pem)) as answer:
            return answer.status, answer.read(4096).decode(errors="replace"), ""
    except urllib.error.HTTPError as error:
        return error.code, error.read(4096).decode(errors="replace"), ""
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return None, "", f"not reachable: {reason}"


def _join(base: str, path: str) -> str:
    return base.rstrip("/") + "/" + path.lstrip("/")


def http_rows(target: Target, authorities: Mapping[str, str], timeout: float = 10.0) -> list[Row]:
    rows = []
    if "oscar" in target.endpoints:
        url = _join(target.endpoints["oscar"], "health")
        answer = http("GET", url, ca_pem=authorities.get("oscar"), timeout=timeout)
        rows.append(judge_http("oscar", url, *answer, expect_body="Ok"))
    if "minio" in target.endpoints:
        url = _join(target.endpoints["minio"], "minio/health/live")
        answer = http("GET", url, ca_pem=authorities.get("minio"), timeout=timeout)
        rows.append(judge_http("minio", url, *answer))
    return rows


# --- the deep check -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _ca_file(pem: str | None) -> Iterator[str | bool]:
    """botocore verifies against a file: the PEM in an owner-only temporary file, else True."""
    if not pem:
        yield True
        return
    fd, path = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(pem)
        yield path
    finally:
        os.unlink(path)


def deep_rows(target: Target, authorities: Mapping[str, str], wait_s: float = 300.0,
              poll_s: float = 5.0, timeout: float = 30.0) -> list[Row]:
    """Create one OSCAR service, put a file in its input, read its output back through MinIO, and
    remove the service; a row per step. The service is removed even when a step fails."""
    if not {"oscar", "minio"} <= set(target.endpoints):
        return [Row("deep", "endpoints", False, "the outputs give no oscar_endpoint or minio_endpoint")]
    name = f"oscar-deploy-check-{random.token_hex(3)}"
    oscar, ca = target.endpoints["oscar"], authorities.get("oscar")
    auth = base64.b64encode(f"{target.oscar_user}:{target.oscar_password}".encode()).decode()
    headers = {"Authorization": f"Basic {auth}", "Content-Type": "application/json"}
    service = {"name": name, "image": DEEP_IMAGE, "script": DEEP_SCRIPT, "cpu": "0.1", "memory": "128Mi",
               "input": [{"storage_provider": "minio.default", "path": f"{name}/in"}],
               "output": [{"storage_provider": "minio.default", "path": f"{name}/out"}]}
    status, body, error = http("POST", _join(oscar, "system/services"), ca_pem=ca, timeout=timeout,
                               body=json.dumps(service).encode(), headers=headers)
    created = status in (200, 201)
    rows = [Row("deep", f"oscar service {name}", created,
                "created" if created else error or f"HTTP {status}: {' '.join(body.split())[:120]}")]
    if not created:
        return rows
    try:
        rows += _round_trip(target, authorities.get("minio"), name, wait_s, poll_s, timeout)
    finally:
        status, body, error = http("DELETE", _join(oscar, f"system/services/{name}"), ca_pem=ca,
                                   timeout=timeout, headers=headers)
        rows.append(Row("deep", f"oscar service {name}", status in (200, 204),
                        "removed (with its buckets)" if status in (200, 204)
                        else f"not removed: {error or f'HTTP {status}: {body.strip()[:120]}'}"))
    return rows


def _round_trip(target: Target, ca: str | None, name: str, wait_s: float, poll_s: float,
                timeout: float) -> list[Row]:
    import botocore.session
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    payload = f"oscar-deploy check {random.token_hex(8)}\n".encode()
    with _ca_file(ca) as verify:
        s3 = botocore.session.get_session().create_client(
            "s3", endpoint_url=target.endpoints["minio"], region_name="us-east-1", verify=verify,
            aws_access_key_id=target.minio_access_key, aws_secret_access_key=target.minio_secret_key,
            config=Config(s3={"addressing_style": "path"}, connect_timeout=timeout, read_timeout=timeout,
                          retries={"max_attempts": 2}))
        try:
            s3.put_object(Bucket=name, Key="in/check.txt", Body=payload)
        except (BotoCoreError, ClientError) as error:
            return [Row("deep", f"s3://{name}/in/check.txt", False, f"upload failed: {error}")]
        rows = [Row("deep", f"s3://{name}/in/check.txt", True, f"uploaded {len(payload)} bytes")]
        started = time.monotonic()
        while True:
            try:
                listed = s3.list_objects_v2(Bucket=name, Prefix="out/").get("Contents") or []
                if listed:
                    key = str(listed[0]["Key"])
                    got = s3.get_object(Bucket=name, Key=key)["Body"].read()
                    same = got == payload
                    return [*rows, Row("deep", f"s3://{name}/{key}", same,
                                       f"output read back after {time.monotonic() - started:.0f} s" if same
                                       else f"output differs from the input ({len(got)} bytes)")]
            except (BotoCoreError, ClientError) as error:
                return [*rows, Row("deep", f"s3://{name}/out/", False, f"cannot read the output: {error}")]
            if time.monotonic() - started > wait_s:
                return [*rows, Row("deep", f"s3://{name}/out/", False, f"no output after {wait_s:.0f} s "
                                   f"(OSCAR's job logs: GET /system/logs/{name})")]
            time.sleep(poll_s)


def run_check(target: Target, deep: bool = False, timeout: float = 10.0, deep_wait_s: float = 300.0,
              deep_poll_s: float = 5.0, api: Any = None) -> list[Row]:
    """Every row of the check. An unreachable API server is one failing row; the HTTP checks still run."""
    from kubernetes.client.rest import ApiException
    from kubernetes.config.config_exception import ConfigException
    from urllib3.exceptions import HTTPError

    rows: list[Row] = []
    authorities: dict[str, str] = {}
    try:
        api = api or api_client(target.kubeconfig)
        rows += kube_rows(api, target)
        authorities = tls_authorities(api)
    except ApiException as error:  # answered, but refused (403: the kubeconfig's user may not read)
        rows.append(Row("kubernetes", str(target.kubeconfig), False,
                        f"API server refused: {error.status} {error.reason}"))
    except (HTTPError, OSError) as error:
        rows.append(Row("kubernetes", str(target.kubeconfig), False,
                        f"API server not answering: {' '.join(str(error).split())[:160]}"))
    except ConfigException as error:
        rows.append(Row("kubernetes", str(target.kubeconfig), False, f"not a usable kubeconfig: {error}"))
    rows += http_rows(target, authorities, timeout)
    if deep:
        rows += deep_rows(target, authorities, wait_s=deep_wait_s, poll_s=deep_poll_s)
    return rows


class Unreachable(Exception):
    """The API server did not answer the first time: nothing to wait for (``create`` skips the check)."""


def settle(target: Target, progress: Any, timeout_s: float = 600.0, interval_s: float = 15.0,
           check: Callable[[Target], list[Row]] = run_check, clock: Callable[[], float] = time.monotonic,
           sleep: Callable[[float], None] = time.sleep) -> list[Row]:
    """Check until everything passes or ``timeout_s`` ran out (charts install and images pull for
    minutes after the configuration): the last rows. Progress is the number of passing rows; a line
    names what is still failing whenever that changes. ``Unreachable`` when the API server does not
    answer at first (then there is no cluster to wait for)."""
    import logging

    log = logging.getLogger("provisioner.check")
    started = clock()
    rows = check(target)
    if any(r.component == "kubernetes" and not r.ok for r in rows):
        raise Unreachable(next(r.detail for r in rows if r.component == "kubernetes"))
    with progress.phase("checking the cluster", total=len(rows)) as phase:
        shown, waiting = 0, ""
        while True:
            passing = sum(r.ok for r in rows)
            if passing > shown:
                phase.advance(passing - shown)
                shown = passing
            failing = ", ".join(dict.fromkeys(r.component for r in rows if not r.ok))
            if failing and failing != waiting:
                log.info("check: %d/%d ok, waiting for %s", passing, len(rows), failing)
                waiting = failing
            if not failing or clock() - started + interval_s > timeout_s:
                return rows
            sleep(interval_s)
            rows = check(target)


def render(rows: Sequence[Row]) -> str:
    """The table the CLI prints: a line per row, failures with their hint."""
    table = [("COMPONENT", "OBJECT", "OK", "DETAIL")] + [
        (r.component, r.object, "yes" if r.ok else "NO", r.detail) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)), row[3]]).rstrip()
                     for row in table)
