"""A discrete-event cluster in virtual time: the world the elastic daemon lives in, minus Kubernetes.

Why a heap of events and not a time-stepped loop: traces of tens of thousands of jobs over days of
virtual time must simulate in seconds, so the clock jumps from one event to the next (a job arrives
or finishes, a node finishes booting or powering off, the policy looks).

What is modelled, and how:

- **Scheduler** (kube-scheduler's filters and its default ``LeastAllocated`` score): pending pods, in
  creation order, go to Ready, uncordoned nodes whose free requests, ``max_pods``, labels (selector)
  and taints allow; a pod that does not fit does not block later ones. A pod that fails gets
  ``unschedulable_since`` (the PodScheduled=False/Unschedulable condition) the first time.
- **Nodes** boot in their group's ``boot_s`` (power-on request → Ready), then are ``idle``/``used``;
  a power-off cordons the node, evicts its pods (they go back to pending and start again from
  scratch, as a drained Job pod does) and takes ``poweroff_s``. OSCAR's Jobs have ``backoffLimit: 0``,
  so an evicted pod is a failed job: a policy that does not declare ``interrupts_jobs`` (only the
  Cluster Autoscaler's drain of under-used nodes does) and powers off a node running a job stops the
  run with ``JobInterrupted``. A node costs ``cost_per_hour`` from
  the power-on request to the end of its power-off. The clock starts at the first submission, with
  ``initial_on`` nodes of each group Ready (billed from then).
- **When the policy looks**: every ``policy.period_s`` (the daemon's tick, CLUES's
  scheduling period, the autoscaler's scan interval) and, for event-driven policies (the daemon),
  after a pod becomes unschedulable, batched like the daemon's watch: 0.2 s after the last such event
  but no later than 2 s after the first. The policy sees a ``ClusterView`` built from this state,
  with ``now`` the virtual clock: the same injected clock the daemon's ``decide()`` gets.

- **What real clouds do to a plan**: a fraction ``poweron_failure_rate`` of power-ons never become
  Ready (the policy's own timeout must notice and give the node up), and boot times spread by
  ``boot_spread`` around ``boot_s``. Both are drawn from a stream seeded by ``(fault_seed, group,
  n-th power-on of that group)``, so every policy meets the same failures at the same power-ons
  whatever it decides in between. A node given up while booting backs its group off as the daemon's
  actuator does (``backoff_min_s``, doubling to ``backoff_max_s``, reset by a node that comes up).
- **History**: the view carries what a daemon could have learnt by watching: run times of finished
  pods per owner (the job's ``service``, or its requests when the trace names none: OSCAR's services
  give all their jobs the same requests) and recent arrival times, bounded as ``RunHistory`` says.
  Never the trace's durations of jobs still running.

The run ends when every job has finished (the horizon, up to which node-hours are counted), or
``max_tail_s`` after the last submission, when the jobs still pending are reported unserved.
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import math
import random
from collections.abc import Sequence
from typing import Protocol

from elastic.model import (
    HISTORY_ARRIVALS,
    HISTORY_RUNS,
    ClusterView,
    Decision,
    NodeGroup,
    NodeInfo,
    NodeState,
    PodInfo,
    RunHistory,
)
from elastic.policy.fit import HOSTNAME_LABEL, group_labels
from elastic.sim.fit import placeable
from elastic.sim.trace import Job
from provisioner.elastic_settings import knob_float

NAMESPACE = "default"

# Event kinds, in the order they are handled when they share a timestamp.
_FINISH, _OFF_DONE, _READY, _ARRIVE, _TICK, _BATCH = range(6)


class JobInterrupted(RuntimeError):
    """A policy that promises never to interrupt a running job powered off a node that runs one."""


class Policy(Protocol):
    """What the engine drives: a decision function plus when it is called."""

    name: str
    period_s: float
    """Periodic look (daemon tick, CLUES PERIOD_SCHEDULE, autoscaler scan-interval)."""
    event_driven: bool
    """Also look after pods become unschedulable, with the daemon's batching window."""

    interrupts_jobs: bool
    """Scale-in may drain nodes with running jobs (which then restart); False: never (checked)."""

    def initial_on(self, group: NodeGroup) -> int:
        """Nodes of ``group`` on and Ready at t=0."""
        ...

    def decide(self, view: ClusterView, now: float) -> Decision: ...


@dataclasses.dataclass(frozen=True)
class EngineSettings:
    poweroff_s: float = 10.0
    batch_idle_s: float = knob_float("batch_idle_s")
    batch_max_s: float = knob_float("batch_max_s")
    max_tail_s: float = 6 * 3600.0
    scoring: str = "most_allocated"
    """What our k3s runs: kube-scheduler with a ``MostAllocated`` scoring profile (the k3s_server role),
    so nodes empty and can be powered off; ``least_allocated`` is kube-scheduler's stock spreading."""
    poweron_failure_rate: float = 0.0
    """Fraction of power-ons whose node never becomes Ready."""
    boot_spread: float = 0.0
    """Boot times are uniform in ``boot_s × [1 - spread, 1 + spread]``."""
    fault_seed: int = 0
    backoff_min_s: float = 300.0
    """As the daemon's ``[elastic] backoff_min_s``/``backoff_max_s``."""
    backoff_max_s: float = 1800.0


def power_on_fate(settings: EngineSettings, group: NodeGroup, nth: int) -> tuple[bool, float]:
    """(fails, boot time) of the ``nth`` power-on in ``group``: the same for every policy."""
    if not settings.poweron_failure_rate and not settings.boot_spread:
        return False, group.boot_s
    rng = random.Random(f"{settings.fault_seed}/{group.name}/{nth}")
    fails = rng.random() < settings.poweron_failure_rate
    boot = group.boot_s * (1 + settings.boot_spread * (2 * rng.random() - 1))
    return fails, max(boot, 0.0)


@dataclasses.dataclass
class SimNode:
    name: str
    group: NodeGroup
    state: NodeState
    state_since: float
    labels: dict[str, str]
    free_cpu: int = 0
    free_mem: int = 0
    pods: set[int] = dataclasses.field(default_factory=set)
    powered_on_at: float | None = None
    idle_since: float | None = None
    cordoned: bool = False
    epoch: int = 0
    on_since: float | None = None
    """Start of the current paid interval (power-on request), None while off."""
    ready_at: float | None = None
    cap_cpu: int = 0
    cap_mem: int = 0
    max_pods: int = 110

    @property
    def ready(self) -> bool:
        return self.state in (NodeState.IDLE, NodeState.USED)


def has_room(node: SimNode, cpu_m: int, memory_mib: int) -> bool:
    """The scheduler's resource filter: free requests and the pod count."""
    return node.free_cpu >= cpu_m and node.free_mem >= memory_mib and len(node.pods) < node.max_pods


def schedulable(node: SimNode, pod: PodInfo) -> bool:
    """Would the simulated scheduler put ``pod`` on ``node`` now: the filters ``Engine._schedule``
    applies (trace pods ask for no GPUs)."""
    return has_room(node, pod.cpu_m, pod.memory_mib) and placeable(pod, node.labels, node.group.taints)


@dataclasses.dataclass
class JobRun:
    job: Job
    pod: PodInfo
    node: str | None = None
    start: float | None = None
    first_start: float | None = None
    end: float | None = None
    run_id: int = 0
    evictions: int = 0


@dataclasses.dataclass
class Placement:
    """One run of a job on a node, for checks and reports."""

    job: int
    node: str
    start: float
    end: float | None
    cpu_m: int
    memory_mib: int


@dataclasses.dataclass
class SimResult:
    """Raw outcome of one run; ``elastic.simulate`` turns it into the reported figures."""

    policy: str
    horizon_s: float
    runs: list[JobRun]
    node_seconds: dict[str, float]
    node_intervals: list[tuple[str, str, float, float, float | None]]
    """(node, group, power-on request, off done (or the horizon), Ready time or None)."""
    placements: list[Placement]
    scale_ups: int
    scale_downs: int
    marked_failed: int
    power_on_failures: int
    """Power-ons the fault stream failed (whether or not the policy noticed)."""
    rejected: list[str]
    looks: int
    timeline: list[tuple[float, dict[str, int], int, int]]
    """(t, nodes on per group, CPU requested by pending+running pods (m), running (m))."""


class Simulation:
    """One policy on one trace. ``run()`` once; the object is not reusable."""

    def __init__(self, jobs: Sequence[Job], groups: Sequence[NodeGroup], policy: Policy,
                 settings: EngineSettings | None = None) -> None:
        self.jobs = jobs
        self.groups = {group.name: group for group in groups}
        self.policy = policy
        self.settings = settings or EngineSettings()
        self.now = 0.0
        self.heap: list[tuple[float, int, int, int, int]] = []
        self.seq = 0
        self.nodes: dict[str, SimNode] = {}
        self.runs = [JobRun(job=job, pod=self._pod(job)) for job in jobs]
        self.pending: dict[int, None] = {}
        self.new_pending: list[int] = []
        self.capacity_changed = False
        self.finished = 0
        self.batch_first: float | None = None
        self.batch_deadline: float | None = None
        self.node_seconds = {name: 0.0 for name in self.groups}
        self.node_intervals: list[tuple[str, str, float, float, float | None]] = []
        self.placements: list[Placement] = []
        self.open_placements: dict[int, Placement] = {}
        self.scale_ups = self.scale_downs = self.marked_failed = self.looks = 0
        self.rejected: list[str] = []
        self.timeline: list[tuple[float, dict[str, int], int, int]] = []
        self.demand_cpu = self.running_cpu = 0
        self.counter = {name: 0 for name in self.groups}
        self.on_per_group = dict.fromkeys(self.groups, 0)
        self.node_index: dict[str, int] = {}
        self.placeable_cache: dict[tuple[tuple[tuple[str, str], ...], str], bool] = {}
        self.power_ons = dict.fromkeys(self.groups, 0)
        self.power_on_failures = 0
        self.backoff_until: dict[str, float] = {}
        self.backoff_s: dict[str, float] = {}
        self.runtimes: dict[str, collections.deque[float]] = {}
        self.arrivals: collections.deque[float] = collections.deque(maxlen=HISTORY_ARRIVALS)

    # ---- building blocks -------------------------------------------------------------------------

    def _push(self, time: float, kind: int, a: int = 0, b: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (time, kind, self.seq, a, b))

    @staticmethod
    def _pod(job: Job) -> PodInfo:
        owner = job.service or f"{job.cpu_m}m/{job.memory_mib}Mi/" + ",".join(
            f"{k}={v}" for k, v in sorted(job.selector.items()))
        return PodInfo(key=f"{NAMESPACE}/job-{job.index}", namespace=NAMESPACE, cpu_m=job.cpu_m,
                       memory_mib=job.memory_mib, node_selector=dict(job.selector), created_at=job.submit_s,
                       owner=owner)

    def _new_node(self, group: NodeGroup, name: str | None) -> SimNode:
        if name is None:
            self.counter[group.name] += 1
            name = f"{group.name}-{self.counter[group.name]}"
            while name in self.nodes:
                self.counter[group.name] += 1
                name = f"{group.name}-{self.counter[group.name]}"
        labels = {**group_labels(group), HOSTNAME_LABEL: name}  # as the policy expects a worker's
        node = SimNode(name=name, group=group, state=NodeState.OFF, state_since=0.0, labels=labels,
                       cap_cpu=group.cpu_m, cap_mem=group.memory_mib, max_pods=group.max_pods)
        self.nodes[name] = node
        return node

    def _set_state(self, node: SimNode, state: NodeState) -> None:
        if node.state != state:
            node.state = state
            node.state_since = self.now

    def _on_count(self, group: str) -> int:
        return self.on_per_group[group]

    def _record(self) -> None:
        per_group = dict(self.on_per_group)
        sample = (self.now, per_group, self.demand_cpu, self.running_cpu)
        if self.timeline and self.timeline[-1][0] == self.now:
            self.timeline[-1] = sample
        elif not self.timeline or self.timeline[-1][1:] != sample[1:]:
            self.timeline.append(sample)

    # ---- node lifecycle --------------------------------------------------------------------------

    def _power_on(self, node: SimNode, *, instantly: bool = False) -> None:
        node.epoch += 1
        node.on_since = self.now
        self.on_per_group[node.group.name] += 1
        node.powered_on_at = self.now
        node.cordoned = False
        if instantly:
            self._become_ready(node)
            return
        self._set_state(node, NodeState.POWERING_ON)
        self.power_ons[node.group.name] += 1
        fails, boot = power_on_fate(self.settings, node.group, self.power_ons[node.group.name])
        if fails:
            self.power_on_failures += 1  # it never turns Ready: the policy's timeout must give it up
        else:
            self._push(self.now + boot, _READY, self._node_id(node), node.epoch)

    def _node_id(self, node: SimNode) -> int:
        return self.node_index.setdefault(node.name, len(self.node_index))

    def _become_ready(self, node: SimNode) -> None:
        node.free_cpu = node.group.cpu_m
        node.free_mem = node.group.memory_mib
        node.pods = set()
        node.idle_since = self.now
        node.ready_at = self.now
        self._set_state(node, NodeState.IDLE)
        self.capacity_changed = True
        self.backoff_s.pop(node.group.name, None)  # a node came up: the group is healthy again

    def _power_off(self, node: SimNode) -> None:
        """Cordon, evict, then the power-off takes ``poweroff_s``."""
        if node.pods and not getattr(self.policy, "interrupts_jobs", False):
            jobs = ", ".join(f"job-{i}" for i in sorted(node.pods))
            raise JobInterrupted(f"{self.now:.1f}: policy {self.policy.name!r} powered off {node.name}, "
                                 f"interrupting {jobs}")
        node.cordoned = True
        for index in sorted(node.pods):
            self._evict(index)
        node.pods = set()
        node.epoch += 1
        self._set_state(node, NodeState.POWERING_OFF)
        self._push(self.now + self.settings.poweroff_s, _OFF_DONE, self._node_id(node), node.epoch)

    def _off_done(self, node: SimNode) -> None:
        assert node.on_since is not None
        self.node_seconds[node.group.name] += self.now - node.on_since
        self.node_intervals.append((node.name, node.group.name, node.on_since, self.now, node.ready_at))
        node.on_since = None
        self.on_per_group[node.group.name] -= 1
        node.ready_at = None
        node.powered_on_at = None
        node.idle_since = None
        self._set_state(node, NodeState.OFF)
        if not node.group.nodes:  # a cloud instance is gone; a board stays, off
            del self.nodes[node.name]

    # ---- jobs ------------------------------------------------------------------------------------

    def _start(self, index: int, node: SimNode) -> None:
        run = self.runs[index]
        job = run.job
        node.free_cpu -= job.cpu_m
        node.free_mem -= job.memory_mib
        node.pods.add(index)
        node.idle_since = None
        self._set_state(node, NodeState.USED)
        run.node = node.name
        run.start = self.now
        if run.first_start is None:
            run.first_start = self.now
        run.run_id += 1
        run.pod = dataclasses.replace(run.pod, node_name=node.name, phase="Running", unschedulable_since=None,
                                      started_at=self.now)
        self.running_cpu += job.cpu_m
        placement = Placement(index, node.name, self.now, None, job.cpu_m, job.memory_mib)
        self.placements.append(placement)
        self.open_placements[index] = placement
        self._push(self.now + job.duration_s, _FINISH, index, run.run_id)

    def _release(self, index: int) -> SimNode:
        run = self.runs[index]
        node = self.nodes[run.node or ""]
        node.free_cpu += run.job.cpu_m
        node.free_mem += run.job.memory_mib
        node.pods.discard(index)
        self.running_cpu -= run.job.cpu_m
        self.open_placements.pop(index).end = self.now
        if not node.pods and node.state == NodeState.USED:
            node.idle_since = self.now
            self._set_state(node, NodeState.IDLE)
        return node

    def _finish(self, index: int) -> None:
        run = self.runs[index]
        self._release(index)
        run.end = self.now
        run.pod = dataclasses.replace(run.pod, phase="Succeeded")
        owner = run.pod.owner
        if owner not in self.runtimes:
            self.runtimes[owner] = collections.deque(maxlen=HISTORY_RUNS)
        self.runtimes[owner].append(self.now - (run.start or self.now))
        self.finished += 1
        self.demand_cpu -= run.job.cpu_m
        self.capacity_changed = True

    def _evict(self, index: int) -> None:
        run = self.runs[index]
        self._release(index)
        run.evictions += 1
        run.run_id += 1  # its pending finish event is now stale
        run.node = None
        run.start = None
        run.pod = dataclasses.replace(run.pod, node_name=None, phase="Pending", unschedulable_since=None,
                                      started_at=None)
        self.pending[index] = None
        self.new_pending.append(index)

    # ---- the scheduler ---------------------------------------------------------------------------

    def _schedule(self) -> None:
        """One kube-scheduler pass over pending pods (only the new ones if no capacity was freed)."""
        candidates = list(self.pending) if self.capacity_changed else self.new_pending
        self.capacity_changed = False
        self.new_pending = []
        if not candidates:
            return
        on = (NodeState.IDLE, NodeState.USED)
        ready = [n for n in self.nodes.values() if n.state in on and not n.cordoned]
        allowed = self.placeable_cache
        failed: set[tuple[int, int, tuple[tuple[str, str], ...]]] = set()
        most = self.settings.scoring == "most_allocated"
        newly_unschedulable = False
        for index in candidates:
            if index not in self.pending:
                continue
            run = self.runs[index]
            job = run.job
            signature = (job.cpu_m, job.memory_mib, tuple(sorted(job.selector.items())))
            best: SimNode | None = None
            if signature not in failed:
                best_score = -math.inf
                for node in ready:
                    if not has_room(node, job.cpu_m, job.memory_mib):
                        continue
                    # Trace pods differ only by selector; a node's labels and taints never change.
                    key = (signature[2], node.name)
                    ok = allowed.get(key)
                    if ok is None:
                        ok = allowed[key] = placeable(run.pod, node.labels, node.group.taints)
                    if not ok:
                        continue
                    cpu_left = (node.free_cpu - job.cpu_m) / node.cap_cpu
                    mem_left = (node.free_mem - job.memory_mib) / node.cap_mem
                    score = (cpu_left + mem_left) / 2
                    if most:
                        score = -score
                    if score > best_score:
                        best, best_score = node, score
            if best is None:
                failed.add(signature)
                if run.pod.unschedulable_since is None:
                    run.pod = dataclasses.replace(run.pod, unschedulable_since=self.now)
                    newly_unschedulable = True
                continue
            del self.pending[index]
            self._start(index, best)
        if newly_unschedulable and self.policy.event_driven:
            self._arm_batch()

    def _arm_batch(self) -> None:
        if self.batch_first is None:
            self.batch_first = self.now
        deadline = min(self.now + self.settings.batch_idle_s, self.batch_first + self.settings.batch_max_s)
        if deadline != self.batch_deadline:
            self.batch_deadline = deadline
            self._push(deadline, _BATCH)

    # ---- the policy ------------------------------------------------------------------------------

    def view(self) -> ClusterView:
        """What the daemon would see now: every node it manages (on or off) and every live pod."""
        nodes = tuple(
            NodeInfo(
                name=node.name, group=node.group.name, state=node.state, state_since=node.state_since,
                cpu_m=node.group.cpu_m, memory_mib=node.group.memory_mib, gpus=node.group.gpus,
                max_pods=node.group.max_pods, labels=node.labels, taints=node.group.taints,
                registered=node.ready or node.state in (NodeState.POWERING_OFF,) or bool(node.group.nodes),
                ready=node.ready, cordoned=node.cordoned, powered_on_at=node.powered_on_at,
                idle_since=node.idle_since,
            )
            for node in self.nodes.values()
        )
        pods = tuple(self.runs[i].pod for i in self.pending) + tuple(
            self.runs[i].pod for node in self.nodes.values() for i in sorted(node.pods)
        )
        history = RunHistory({owner: tuple(times) for owner, times in self.runtimes.items()},
                             tuple(self.arrivals))
        backoff = {g: t for g, t in self.backoff_until.items() if t > self.now}
        return ClusterView(nodes=nodes, pods=pods, backoff_until=backoff, history=history)

    def _look(self) -> None:
        self.looks += 1
        decision = self.policy.decide(self.view(), self.now)
        for action in decision.power_off:
            self._do_off(action.node, action.group, "power-off")
        for failed in decision.failed:
            node = self.nodes.get(failed.node)
            if node is not None and node.state == NodeState.POWERING_ON:
                self._back_off(failed.group)
            if self._do_off(failed.node, failed.group, "mark-failed"):
                self.marked_failed += 1
                self.scale_downs -= 1
        for action in decision.power_on:
            self._do_on(action.group, action.node)

    def _back_off(self, group: str) -> None:
        """As the daemon's actuator: a group whose node failed to come up waits, doubling each time."""
        delay = self.backoff_s.get(group)
        delay = self.settings.backoff_min_s if delay is None else min(delay * 2, self.settings.backoff_max_s)
        self.backoff_s[group] = delay
        self.backoff_until[group] = self.now + delay

    def _do_on(self, group_name: str, name: str | None) -> None:
        group = self.groups.get(group_name)
        if group is None:
            self.rejected.append(f"{self.now:.1f}: power on in unknown group {group_name!r}")
            return
        if self._on_count(group_name) >= group.max:
            self.rejected.append(f"{self.now:.1f}: power on in {group_name!r} beyond max {group.max}")
            return
        if group.nodes:
            off = [n for n in self.nodes.values() if n.group is group and n.state == NodeState.OFF]
            node = next((n for n in off if n.name == name), None) if name else (off[0] if off else None)
            if node is None:
                self.rejected.append(f"{self.now:.1f}: power on {name!r}: not an off node of {group_name!r}")
                return
        else:
            if name is not None and name in self.nodes:
                self.rejected.append(f"{self.now:.1f}: power on {name!r}: already exists")
                return
            node = self._new_node(group, name)
        self.scale_ups += 1
        self._power_on(node)

    def _do_off(self, name: str, group_name: str, what: str) -> bool:
        node = self.nodes.get(name)
        if node is None or node.state in (NodeState.OFF, NodeState.POWERING_OFF):
            self.rejected.append(f"{self.now:.1f}: {what} {name!r}: not on")
            return False
        self.scale_downs += 1
        self._power_off(node)
        return True

    # ---- the loop --------------------------------------------------------------------------------

    def run(self) -> SimResult:
        # The clock starts at the first submission, so traces with absolute timestamps (epoch
        # seconds) neither tick through decades nor bill nodes kept on since 1970.
        self.now = min((job.submit_s for job in self.jobs), default=0.0)
        for group in self.groups.values():
            for member in group.nodes:
                self._new_node(group, member.name)
            for _ in range(min(self.policy.initial_on(group), group.max)):
                off = [n for n in self.nodes.values() if n.group is group and n.state == NodeState.OFF]
                self._power_on(off[0] if off else self._new_node(group, None), instantly=True)
        for run in self.runs:
            self._push(run.job.submit_s, _ARRIVE, run.job.index)
        self._push(math.floor(self.now / self.policy.period_s) * self.policy.period_s, _TICK)
        last_submit = max((job.submit_s for job in self.jobs), default=0.0)
        stop_at = last_submit + self.settings.max_tail_s
        names = {i: name for name, i in self.node_index.items()}
        batch_fired = False
        while self.heap and self.finished < len(self.runs):
            now = self.heap[0][0]
            if now > stop_at:
                break
            self.now = now
            look = False
            while self.heap and self.heap[0][0] == now:
                _, kind, _, a, b = heapq.heappop(self.heap)
                if kind == _ARRIVE:
                    self.arrivals.append(now)
                    self.pending[a] = None
                    self.new_pending.append(a)
                    self.demand_cpu += self.runs[a].job.cpu_m
                elif kind == _FINISH:
                    if self.runs[a].run_id == b and self.runs[a].end is None:
                        self._finish(a)
                elif kind in (_READY, _OFF_DONE):
                    if a not in names:
                        names = {i: name for name, i in self.node_index.items()}
                    node = self.nodes.get(names[a])
                    if node is not None and node.epoch == b:
                        if kind == _READY:
                            self._become_ready(node)
                        else:
                            self._off_done(node)
                elif kind == _TICK:
                    look = True
                    self._push(now + self.policy.period_s, _TICK)
                elif kind == _BATCH and now == self.batch_deadline:
                    look = batch_fired = True
            self._schedule()
            if look:
                self._look()
                if batch_fired:  # pods that turned unschedulable at this instant were in this look
                    self.batch_first = self.batch_deadline = None
                    batch_fired = False
                self._schedule()
            self._record()
        horizon = self.now
        for node in self.nodes.values():
            if node.on_since is not None:
                self.node_seconds[node.group.name] += horizon - node.on_since
                self.node_intervals.append(
                    (node.name, node.group.name, node.on_since, horizon, node.ready_at))
        for placement in self.open_placements.values():
            placement.end = None
        return SimResult(
            policy=self.policy.name, horizon_s=horizon, runs=self.runs, node_seconds=self.node_seconds,
            node_intervals=self.node_intervals, placements=self.placements, scale_ups=self.scale_ups,
            scale_downs=self.scale_downs, marked_failed=self.marked_failed,
            power_on_failures=self.power_on_failures, rejected=self.rejected,
            looks=self.looks, timeline=self.timeline,
        )
