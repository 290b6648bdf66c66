"""The Infrastructure Manager's conventions, mapped onto ours.

The IM Dashboard's templates (``tosca.nodes.indigo.*``, ``tosca.nodes.ec3.*``) describe the same
cluster with other words: a Compute hosting an ``LRMS.FrontEnd`` is the front-end; a worker
group's bounds sit on the hosted ``LRMS.WorkerNode``'s ``wn`` capability; CLUES settings are a
``config_options`` list; the OSCAR node installs MinIO and Knative too. Properties we do not
implement are reported once each, by name; component versions are ignored (our versions file
decides, and the IM's own pins break Kubernetes' version-skew policy).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from provisioner.spec import ElasticSpec
from provisioner.template.values import host_of

IM_FRONT_END = "tosca.nodes.indigo.LRMS.FrontEnd"
IM_WORKER_NODE = "tosca.nodes.indigo.LRMS.WorkerNode"
IM_K8S_FRONT_END = "tosca.nodes.indigo.LRMS.FrontEnd.Kubernetes"
IM_OSCAR = "tosca.nodes.indigo.OSCAR"
IM_ELASTIC = "tosca.nodes.ec3.ElasticCluster"

IMPLEMENTED: Mapping[str, frozenset[str]] = {
    IM_K8S_FRONT_END: frozenset({"admin_username", "admin_token", "version", "public_dns_name",
                                 "cert_manager", "cert_user_email", "install_nfs_client",
                                 "install_metrics", "cri_runtime", "ingress_type", "csi_driver"}),
    "tosca.nodes.indigo.LRMS.WorkerNode.Kubernetes": frozenset({"front_end_ip", "version",
                                                                "cri_runtime", "csi_driver"}),
    IM_OSCAR: frozenset({"password", "minio_secretkey", "minio_accesskey", "dns_host",
                         "minio_dns_host", "minio_dns_host_console"}),
    IM_ELASTIC: frozenset({"config_options", "kube_token", "powermanager_plugin", "im_auth",
                           "auth_token", "secret_token", "kube_wn_cpus", "kube_wn_mem"}),
}
"""Per IM type, the properties oscar-deploy honours (or makes moot); others set get a warning."""

EXPECTED_VALUES = {"cri_runtime": "containerd", "csi_driver": "NFS"}
"""k3s runs containerd and we provide NFS: another value cannot be honoured."""

CLUES_OPTIONS = {"IDLE_TIME": "idle_time_s", "MAX_WAIT_POWERON": "max_wait_poweron_s",
                 "MAX_WAIT_POWEROFF": "max_wait_poweroff_s", "EXTRA_NODES_FREE": "extra_free"}
CLUES_MOOT = frozenset({"SCHEDULER_CLASSES", "PERIOD_LIFECYCLE", "PERIOD_MONITORING_NODES",
                        "RECONSIDER_JOB_TIME", "CLUES_REQUEST_WAIT_TIMEOUT"})
"""CLUES tuning our daemon does not need: it watches instead of polling."""


def is_im_type(type_name: str) -> bool:
    return type_name.startswith(("tosca.nodes.indigo.", "tosca.nodes.ec3."))


def warn_unimplemented(name: str, type_name: str, properties: Mapping[str, Any],
                       evaluate: Callable[[Any], Any], defaults: Mapping[str, Any],
                       warn: Callable[[str, str], None]) -> None:
    """One warning per IM property name set to something we cannot honour (a value that is
    empty, false or the type's own default changes nothing, so it is not worth a warning)."""
    implemented = next((props for im_type, props in IMPLEMENTED.items() if type_name == im_type),
                       frozenset())
    for prop, raw in properties.items():
        value = evaluate(raw)
        if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
            continue  # an attribute known only after create: already warned about
        if prop in EXPECTED_VALUES and value not in (None, "", EXPECTED_VALUES[prop]):
            warn(f"property:{prop}", f"node {name}: {prop} = {value!r} is not supported "
                 f"(oscar-deploy uses {EXPECTED_VALUES[prop]}); ignored")
        elif prop not in implemented and prop not in EXPECTED_VALUES and value not in (
                None, "", False, [], {}) and value != defaults.get(prop):
            warn(f"property:{prop}", f"IM property '{prop}' (node {name}) is not implemented by "
                 "oscar-deploy; ignored")


def elastic_from_clues(options: Any, warn: Callable[[str, str], None], node: str) -> ElasticSpec:
    """ElasticSpec from the IM's ``config_options`` list (already evaluated)."""
    settings: dict[str, float | int] = {}
    unknown = []
    for option in options if isinstance(options, list) else []:
        if not isinstance(option, dict):
            continue
        key = str(option.get("option", ""))
        value = option.get("value")
        if key in CLUES_OPTIONS:
            try:
                number = float(str(value).strip())
            except ValueError:
                warn(f"clues:{key}", f"node {node}: CLUES option {key} = {value!r} is not a number; "
                     "ignored")
                continue
            field = CLUES_OPTIONS[key]
            settings[field] = int(number) if field == "extra_free" else number
        elif key not in CLUES_MOOT:
            unknown.append(key)
    if unknown:
        warn("clues:unknown", f"node {node}: CLUES options not implemented (ignored): "
             f"{', '.join(unknown)}")
    return ElasticSpec(**settings)  # type: ignore[arg-type]


def endpoint_cidrs(nodes: Mapping[str, Any], front: str,
                   evaluate: Callable[[Any, str], Any]) -> dict[int, tuple[str, str | None]]:
    """The IM's per-port ``remote_cidr`` (``endpoint`` capability ``ports``) on the front-end and the
    nodes it hosts: port → (CIDR, the input that feeds it, if one does). ``evaluate(value, node)``.

    The IM's ``kubernetes.yaml`` restricts 80/443 to its ``kube_allowed_cidr`` input this way."""
    found: dict[int, tuple[str, str | None]] = {}
    for name, node in nodes.items():
        if not isinstance(node, dict) or (name != front and host_of(node) != front):
            continue
        endpoint = ((node.get("capabilities") or {}).get("endpoint") or {})
        ports = (endpoint.get("properties") or {}).get("ports") if isinstance(endpoint, dict) else None
        if not isinstance(ports, dict):
            continue
        for spec in ports.values():
            if not isinstance(spec, dict) or spec.get("remote_cidr") in (None, ""):
                continue
            raw = spec["remote_cidr"]
            cidr = evaluate(raw, name)
            port = evaluate(spec.get("source"), name)
            if cidr in (None, "") or isinstance(port, bool) or not isinstance(port, int):
                continue
            feeding = raw.get("get_input") if isinstance(raw, dict) else None
            found[port] = (str(cidr), feeding if isinstance(feeding, str) else None)
    return found

