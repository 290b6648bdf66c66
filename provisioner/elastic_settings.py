"""Every setting of the elasticity daemon, declared once: its name, type, default, the part that
reads it, and why it exists.

``[elastic]`` of the configuration (``provisioner.config.ElasticSettings``), the policy's
``elastic.model.PolicySettings``, the actuator's and the daemon's settings and the simulator's all
take their keys and defaults from ``ELASTIC``, so a simulated run predicts the daemon's behaviour and
no default can drift between them. It sits in a low layer (standard library only) that both the
provisioner and the elastic decision core may import; it reads no file.

To add a setting: one ``Knob`` here, and the field in the dataclass of its ``part`` with its default
taken from here (``knob_float``/``knob_int``/``knob_str``); ``elastic.daemon.settings_from_config``
and the configuration pick it up by name.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

Part = Literal["policy", "actuator", "daemon", "service"]
"""Who reads it: ``decide()``'s ``PolicySettings``, the actuator, the daemon's loop, or the service
around it (the metrics port)."""


@dataclasses.dataclass(frozen=True)
class Knob:
    name: str
    default: float | int | str | bool
    part: Part
    doc: str = ""


ELASTIC: tuple[Knob, ...] = (
    Knob("idle_time_s", 60.0, "policy",
         "A worker with no user pods this long is drained and powered off (about one boot time)."),
    Knob("adaptive_idle", True, "policy",
         "Sooner, when the recent arrival rate says the node will not be needed within a boot."),
    Knob("cooldown_s", 30.0, "policy", "A node is never powered off this soon after its power-on."),
    Knob("max_wait_poweron_s", 600.0, "policy",
         "A node not Ready this long after power-on is failed and removed."),
    Knob("max_wait_poweroff_s", 300.0, "policy"),
    Knob("max_total_unready_percentage", 45.0, "policy",
         "More unready nodes than this share of those expected up (and than ok_total_unready_count): "
         "none is failed or replaced."),
    Knob("ok_total_unready_count", 3, "policy",
         "Unready nodes always tolerated, whatever max_total_unready_percentage says."),
    Knob("extra_free", 0, "policy", "Spare idle nodes kept on."),
    Knob("max_booting", 0, "policy", "Nodes powering on at once; 0 means unlimited."),
    Knob("max_nodes", 0, "policy", "Cluster-wide cap on workers; 0 means only the groups' max."),
    Knob("pending_grace_s", 30.0, "policy",
         "A pod pending with no node and no Unschedulable condition this long counts as demand."),
    Knob("wait_target_s", 90.0, "policy",
         "A pending pod that past run times say gets room sooner than a boot, or within this long, "
         "waits; 0: never."),
    Knob("batch_idle_s", 0.2, "daemon"),
    Knob("batch_max_s", 2.0, "daemon"),
    Knob("tick_s", 10.0, "daemon"),
    Knob("backoff_min_s", 300.0, "actuator"),
    Knob("backoff_max_s", 1800.0, "actuator"),
    Knob("system_namespaces", "kube-system,kube-public,kube-node-lease", "policy",
         "Pods in these namespaces never keep a node on (comma-separated)."),
    Knob("metrics_port", 9153, "service"),
    Knob("metrics_address", "127.0.0.1", "service",
         "Where the metrics listen: this machine only; in its pod, the pod's own address (the "
         "Deployment sets it from status.podIP), so only the pod network reaches them."),
    Knob("drain_timeout_s", 120.0, "actuator",
         "How long a scale-down retries evictions (PodDisruptionBudgets) before it is undone."),
    Knob("eviction_retry_s", 2.0, "actuator", "Wait between eviction attempts while draining."),
    Knob("namespace", "kube-system", "daemon",
         "Namespace of the daemon's Lease and status/requests ConfigMaps (the ``nodes`` commands too)."),
    Knob("service_account_dir", "/var/run/secrets/kubernetes.io/serviceaccount", "service",
         "In a pod: where the service account's ``token`` and ``ca.crt`` are (Kubernetes mounts them here)."),
)

_BY_NAME = {knob.name: knob for knob in ELASTIC}


def knob(name: str) -> Knob:
    return _BY_NAME[name]


def knob_float(name: str) -> float:
    return float(_BY_NAME[name].default)


def knob_bool(name: str) -> bool:
    value = _BY_NAME[name].default
    if not isinstance(value, bool):
        raise TypeError(f"elastic setting {name} is not true/false")
    return value


def knob_int(name: str) -> int:
    value = _BY_NAME[name].default
    if not isinstance(value, int):
        raise TypeError(f"elastic setting {name} is not a whole number")
    return value


def knob_str(name: str) -> str:
    return str(_BY_NAME[name].default)


def namespaces(text: str) -> frozenset[str]:
    """``system_namespaces`` as the policy reads it (the configuration writes it comma-separated)."""
    return frozenset(part.strip() for part in text.split(",") if part.strip())


def of_part(part: Part) -> tuple[Knob, ...]:
    return tuple(k for k in ELASTIC if k.part == part)
