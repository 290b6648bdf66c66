"""The elastic daemon's data: what ``decide()`` sees and what it answers. Pure data, no I/O.

The daemon builds a ``ClusterView`` from the Kubernetes API (plus its knowledge of boards that are
off and cloud instances still booting); the simulator builds one from its virtual cluster. Both hand
it, with the ``NodeGroup``s, an injected ``now`` and ``PolicySettings``, to ``elastic.policy.decide``
and carry out the returned ``Decision``. Keeping these types free of the ``kubernetes`` client and of
libcloud is what lets a simulated result predict production behaviour.

Units: CPU in millicores (``cpu_m``: 1 CPU = 1000), memory in MiB, times in seconds (``now`` and
every ``*_at``/``*_since`` on the same clock).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from provisioner.elastic_settings import knob_bool, knob_float, knob_int, knob_str, namespaces

# re-exported: these types and the rules about them live in provisioner.podrules
from provisioner.podrules import MatchExpression as MatchExpression
from provisioner.podrules import Taint as Taint
from provisioner.podrules import Toleration as Toleration


class NodeState(enum.StrEnum):
    """CLUES's node states. Stored as the annotation ``oscar-deploy/state`` on Node objects."""

    OFF = "off"
    POWERING_ON = "powering_on"
    IDLE = "idle"
    USED = "used"
    POWERING_OFF = "powering_off"
    FAILED = "failed"
    DISABLED = "disabled"
    UNKNOWN = "unknown"


@dataclasses.dataclass(frozen=True, slots=True)
class PodInfo:
    """A pod as the policy needs it. ``key`` is ``namespace/name``."""

    key: str
    namespace: str
    cpu_m: int = 0
    memory_mib: int = 0
    gpus: int = 0
    node_selector: Mapping[str, str] = dataclasses.field(default_factory=dict)
    affinity_terms: tuple[tuple[MatchExpression, ...], ...] = ()
    """Required node affinity: the pod fits a node matching ANY term (all expressions of a term)."""
    tolerations: tuple[Toleration, ...] = ()
    node_name: str | None = None
    """Bound node, None while pending."""
    phase: str = "Pending"
    """Pending, Running, Succeeded, Failed, Unknown."""
    created_at: float = 0.0
    unschedulable_since: float | None = None
    """When PodScheduled=False with reason Unschedulable was set; None if not (yet) so."""
    daemonset: bool = False
    mirror: bool = False
    evictable: bool = True
    """False where a PodDisruptionBudget (or a do-not-evict annotation) forbids it now."""
    owner: str = ""
    """What makes pods alike in run time: the OSCAR service of the Job (its ``oscar_service``
    label) or the owner's name; "" when unknown. Keys ``RunHistory.runtimes``."""
    started_at: float | None = None
    """When it started running (``status.startTime``); None while pending."""


@dataclasses.dataclass(frozen=True, slots=True)
class NodeInfo:
    """A worker node the daemon manages or knows of, on or off.

    Off edge boards and cloud instances that are booting but not yet registered appear here too
    (``registered=False``), so capacity on its way is counted before anything new is powered on.
    """

    name: str
    group: str
    state: NodeState
    state_since: float
    """When the node entered ``state``."""
    cpu_m: int
    """Allocatable CPU."""
    memory_mib: int
    gpus: int = 0
    max_pods: int = 110
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    registered: bool = True
    """A Node object exists in the API."""
    ready: bool = False
    cordoned: bool = False
    powered_on_at: float | None = None
    """When power-on was requested; guards the cooldown and ``max_wait_poweron``."""
    idle_since: float | None = None
    """When its last user pod went away (None while it runs user pods)."""


@dataclasses.dataclass(frozen=True, slots=True)
class GroupNode:
    """A named machine of a fixed fleet (edge boards): what the ``nodes:`` list of a group gives."""

    name: str
    address: str | None = None
    mac: str | None = None
    ssh_user: str | None = None
    """This board's SSH login for the shutdown before a power cut, over the group's ``power.shutdown``."""
    ssh_port: int | None = None
    ssh_key: str | None = None


@dataclasses.dataclass(frozen=True)
class NodeGroup:
    """A group of interchangeable worker nodes (the groups YAML).

    ``power`` is the actuator's business (``{type: cloud|command|wol, ...}``); the policy never reads
    it. A group with ``nodes`` can only power on those named machines; a group without them (cloud)
    gets new ones, named by the actuator.
    """

    name: str
    cpus: float
    memory_mib: int
    min: int = 0
    max: int = 1
    boot_s: float = 60.0
    cost_per_hour: float = 0.0
    priority: int = 0
    """Higher is tried first (edge boards get the higher number)."""
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    gpus: int = 0
    max_pods: int = 110
    nodes: tuple[GroupNode, ...] = ()
    power: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def cpu_m(self) -> int:
        return round(self.cpus * 1000)


HISTORY_RUNS = 64
"""Run times kept per owner: enough for a residual-life estimate, small enough for a ConfigMap."""
HISTORY_ARRIVALS = 256
"""Arrival times kept (the recent arrival rate)."""


@dataclasses.dataclass(frozen=True)
class RunHistory:
    """What the daemon has seen pods do, bounded: the policy's only knowledge of run times.

    Whoever builds the view keeps it from the pods it watches (the daemon from pods that finished,
    the simulator likewise), never from a trace's durations: a policy may not know a job's run time
    before it ends.
    """

    runtimes: Mapping[str, tuple[float, ...]] = dataclasses.field(default_factory=dict)
    """Per owner (``PodInfo.owner``), run times of its recently finished pods, oldest first, at most
    ``HISTORY_RUNS``."""
    arrivals: tuple[float, ...] = ()
    """Creation times of the most recent user pods, oldest first, at most ``HISTORY_ARRIVALS``."""


CHECK_CAPACITY = "check-capacity.autoscaling.x-k8s.io"
"""The ProvisioningRequest classes served (kubernetes/autoscaler ``cluster-autoscaler/apis/
provisioningrequest/autoscaling.x-k8s.io/v1/types.go``, tag cluster-autoscaler-1.36.1)."""
BEST_EFFORT_ATOMIC = "best-effort-atomic-scale-up.autoscaling.x-k8s.io"


@dataclasses.dataclass(frozen=True, slots=True)
class Condition:
    """One ``status.conditions[]`` entry of a ProvisioningRequest (a ``metav1.Condition``)."""

    type: str
    status: bool
    reason: str = ""
    message: str = ""
    since: float = 0.0
    """``lastTransitionTime``."""


@dataclasses.dataclass(frozen=True)
class ProvisioningRequestInfo:
    """A ProvisioningRequest (``autoscaling.x-k8s.io/v1``) as the policy needs it: demand that no
    pending pod shows (Kueue holds the Job back until the request is Provisioned).

    ``pods`` are the pods its ``podSets`` ask for (each PodTemplate × ``count``), named
    ``namespace/name#i-j`` as the Cluster Autoscaler names its in-memory pods (``name`` + ``i-j``)."""

    key: str
    """``namespace/name``."""
    namespace: str
    class_name: str
    created_at: float
    pods: tuple[PodInfo, ...] = ()
    conditions: Mapping[str, Condition] = dataclasses.field(default_factory=dict)
    """By type (Accepted, Provisioned, Failed, BookingExpired, CapacityRevoked)."""
    consumed: int = 0
    """Pods (any phase) that name it in ``autoscaling.x-k8s.io/consume-provisioning-request``: its
    booking holds room only for the rest."""
    no_retry: bool = False
    """``parameters.noRetry: "true"``: check-capacity answers Failed instead of Provisioned=False."""
    invalid: str = ""
    """Why its pods cannot be built (a PodTemplate it references is missing), "" if they can."""


@dataclasses.dataclass(frozen=True)
class ClusterView:
    """A snapshot of the cluster at one moment: every managed node and every relevant pod."""

    nodes: tuple[NodeInfo, ...]
    pods: tuple[PodInfo, ...]
    backoff_until: Mapping[str, float] = dataclasses.field(default_factory=dict)
    """Per group, the time before which no power-on is tried (after failed power-ons)."""
    history: RunHistory = dataclasses.field(default_factory=RunHistory)
    provisioning_requests: tuple[ProvisioningRequestInfo, ...] = ()


@dataclasses.dataclass(frozen=True)
class PolicySettings:
    """The knobs of ``decide()``. Each is declared once, with its default and why, in
    ``provisioner.elastic_settings`` (the ``[elastic]`` keys); the README explains each one and the
    simulation evidence behind it."""

    idle_time_s: float = knob_float("idle_time_s")
    """About one boot time: the ski-rental break-even (README, Elastic policy)."""
    adaptive_idle: bool = knob_bool("adaptive_idle")
    """Power an idle node off before ``idle_time_s`` when the recent arrival rate says it will not be
    needed within its group's boot time (``elastic.policy.idle``); False keeps every idle node
    ``idle_time_s``."""
    cooldown_s: float = knob_float("cooldown_s")
    max_wait_poweron_s: float = knob_float("max_wait_poweron_s")
    max_wait_poweroff_s: float = knob_float("max_wait_poweroff_s")
    max_total_unready_percentage: float = knob_float("max_total_unready_percentage")
    ok_total_unready_count: int = knob_int("ok_total_unready_count")
    """The brake (``elastic.policy.health``): the Cluster Autoscaler's flags of the same names."""
    extra_free: int = knob_int("extra_free")
    max_booting: int = knob_int("max_booting")
    """0 means unlimited."""
    max_nodes: int = knob_int("max_nodes")
    """0 means only the groups' max."""
    pending_grace_s: float = knob_float("pending_grace_s")
    wait_target_s: float = knob_float("wait_target_s")
    """A pending pod that its history says will get room on a running or booting node sooner than a
    new node boots waits for it rather than powering one on, unless it has waited this long; 0
    turns waiting off (README, Elastic policy)."""
    system_namespaces: frozenset[str] = namespaces(knob_str("system_namespaces"))


class PowerOnReason(enum.StrEnum):
    """Why a node is powered on: a small fixed set, the ``reason`` label of the scale-up metric."""

    PENDING_PODS = "pending_pods"
    MIN_SIZE = "min_size"
    EXTRA_FREE = "extra_free"
    PINNED = "pinned"
    """Pending pods name this very board (``kubernetes.io/hostname``)."""
    MANUAL = "manual"
    """The operator's ``nodes`` request."""


class NotTriggeredReason(enum.StrEnum):
    """Why a pending pod gets no new node: a small fixed set, the label of the not-triggered metric."""

    NO_GROUP_FITS = "no_group_fits"
    BACKOFF = "backoff"
    """Its group backs off after failed power-ons, or has a node failing to power on now."""
    MAX_SIZE = "max_size"
    NODE_NOT_OFF = "node_not_off"
    """The board it names is on, failed or disabled."""
    NO_NODE_LEFT = "no_node_left"
    """Every board of its fleet group is on already."""
    MAX_NODES = "max_nodes"
    MAX_BOOTING = "max_booting"
    NO_ROOM = "no_room"
    WAITING = "waiting"
    """Expected to get room on a running node sooner than a new node boots (``wait_target_s``)."""


@dataclasses.dataclass(frozen=True, slots=True)
class PowerOn:
    """Power on one node of ``group``: the named one (fleets) or a new one (``node`` None, cloud)."""

    group: str
    node: str | None
    reason: str
    """For people: events and logs."""
    pods: tuple[str, ...] = ()
    """Keys of the pending pods this node is meant for (for events and latency metrics)."""
    kind: PowerOnReason = PowerOnReason.PENDING_PODS
    """For machines: the metric's label."""


@dataclasses.dataclass(frozen=True, slots=True)
class PowerOff:
    """Cordon, drain (evict) and power off ``node``."""

    node: str
    group: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class MarkFailed:
    """A node that did not become Ready (or did not power off) in time: remove it, back the group off."""

    node: str
    group: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class NotTriggered:
    """A pending pod for which no scale-up happens, and why (no group fits, max reached, backoff)."""

    pod: str
    reason: str
    """For people: the NotTriggerScaleUp event."""
    kind: NotTriggeredReason = NotTriggeredReason.NO_ROOM
    """For machines: the metric's label."""


@dataclasses.dataclass(frozen=True, slots=True)
class Health:
    """How many of the nodes expected up are unready, and whether that engages the brake."""

    expected_up: int = 0
    unready: int = 0
    braked: bool = False
    """Too many unready nodes: no node is failed or replaced (they are likely fine and the network,
    the API server or a shared dependency is not)."""

    def describe(self) -> str:
        state = "Unhealthy (unready brake: no node is failed or replaced)" if self.braked else "Healthy"
        return f"{state}, {self.unready} of {self.expected_up} node(s) expected up unready"


@dataclasses.dataclass(frozen=True, slots=True)
class SetConditions:
    """Conditions to write on a ProvisioningRequest's status (only those that change)."""

    request: str
    """``namespace/name``."""
    conditions: tuple[Condition, ...]
    """``since`` is ``now``; whoever writes keeps the old ``lastTransitionTime`` where the status
    does not change (``apimeta.SetStatusCondition``)."""


@dataclasses.dataclass(frozen=True)
class Decision:
    power_on: tuple[PowerOn, ...] = ()
    power_off: tuple[PowerOff, ...] = ()
    failed: tuple[MarkFailed, ...] = ()
    not_triggered: tuple[NotTriggered, ...] = ()
    provisioning: tuple[SetConditions, ...] = ()
    health: Health = Health()

    @property
    def empty(self) -> bool:
        return not (self.power_on or self.power_off or self.failed)
