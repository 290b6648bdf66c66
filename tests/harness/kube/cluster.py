"""The control loops that make the test server behave like a cluster rather than a database.

One thread runs, every ``period_s``, one pass of each component over the same snapshot: the node
lifecycle and taint manager (``nodes.py``), pod garbage collection, k3s's node bookkeeping, the
DaemonSet controller (``daemonsets.py``), the scheduler (``scheduler.py``), the kubelets
(``kubelet.py``) and the disruption controller (``disruption.py``). ``tick()`` runs one pass on
demand, for deterministic tests.

Harness durations (node ready delay, pod runtimes, toleration seconds) are multiplied by
``time_scale`` so a test can describe a 30 s job and wait 0.3 s. Object timestamps stay in
wall-clock time, as the product reads them.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.harness.kube.daemonsets import DaemonSet, DaemonSetController
from tests.harness.kube.disruption import DisruptionController
from tests.harness.kube.kubelet import Kubelets
from tests.harness.kube.nodes import ControlPlane, K3sNodes, NodeLifecycle, PodGarbageCollector, TaintManager
from tests.harness.kube.objects import Writer
from tests.harness.kube.scheduler import Scheduler
from tests.harness.kube.store import ApiError, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timing:
    """How fast the simulated cluster moves."""

    time_scale: float = 1.0  # real seconds per harness second (0.01: a 30 s job runs 0.3 s)
    period_s: float = 0.05  # real seconds between passes of the control loops
    node_ready_delay_s: float = 0.0  # harness seconds from registration to Ready (per-node override)
    scheduler_events: bool = True  # record Scheduled / FailedScheduling Events, as kube-scheduler does
    termination_s: float = 1.0  # harness seconds a kubelet takes to stop a deleted pod (≤ its grace)
    control_plane: ControlPlane = field(default_factory=ControlPlane)  # grace period, eviction rates


class ClusterSim:
    """Scheduler, kubelets and controllers over one ``Store``; ``tick()`` runs one pass of all of them."""

    def __init__(self, store: Store, timing: Timing) -> None:
        self.store = store
        self.timing = timing
        writer = Writer(store)
        self.nodes = NodeLifecycle(writer, timing.time_scale, timing.node_ready_delay_s, timing.control_plane)
        self.k3s = K3sNodes(writer)
        self.taints = TaintManager(writer, timing.time_scale)
        self.pod_gc = PodGarbageCollector(writer)
        self.daemonsets = DaemonSetController(writer, store)
        self.scheduler = Scheduler(writer, store, timing.scheduler_events)
        self.kubelets = Kubelets(writer, timing.time_scale, timing.termination_s)
        self.disruption = DisruptionController(writer)
        self._lock = threading.Lock()  # one pass at a time; knobs change between passes
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- knobs for the harness handle ---------------------------------------------------------
    def node_registered(self, name: str, ready_after_s: float | None) -> None:
        with self._lock:
            self.nodes.registered(name, ready_after_s)

    def set_kubelet(self, name: str, up: bool) -> None:
        with self._lock:
            self.nodes.set_kubelet(name, up)

    def kubelet_running(self, name: str) -> bool:
        with self._lock:
            return name not in self.nodes.down

    def add_daemonset(self, daemonset: DaemonSet) -> None:
        with self._lock:
            self.daemonsets.add(daemonset)

    # ---- the loop ------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="kube-harness-controllers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.timing.period_s):
            try:
                self.tick()
            except ApiError as exc:  # a concurrent client write won a race; the next pass retries
                log.debug("controller pass interrupted: %s", exc.message)

    def tick(self) -> None:
        """One pass of every component; each re-reads what the previous ones wrote."""
        now = time.monotonic()
        with self._lock:

            def current(resource: str) -> list[dict[str, Any]]:
                return self.store.list(resource, ordered=False)[0]

            self.nodes.sync(current("nodes"), current("pods"), now)
            self.taints.sync(current("nodes"), current("pods"), now)
            self.pod_gc.sync(current("nodes"), current("pods"))
            self.k3s.sync(current("nodes"))
            self.daemonsets.sync(current("nodes"))
            self.scheduler.sync(current("nodes"), current("pods"))
            self.kubelets.sync(current("nodes"), current("pods"), self.nodes.down, now)
            self.disruption.sync(current("poddisruptionbudgets"), current("pods"))
