"""``bench/decide_scale``: one ``decide()`` pass over 5,000 nodes, 150,000 running pods and
10,000 pending pods must take ≤ 1 s (median) on one core.

The view is seeded and shaped like a busy production cluster: three cloud groups (one tainted GPU
group, one arm64 group) and an edge fleet of boards, nodes in every state (mostly used, some idle
past their idle time, some booting, some failed, disabled or off), running pods from a catalogue of
workload shapes (DaemonSet pods on every node), and pending pods mostly marked Unschedulable, some
only past the grace, with selectors and tolerations. Running pods belong to 40 services whose
run-time history is full (``HISTORY_RUNS`` each) and the arrival history is full too, so the
duration-aware scale-up and the adaptive idle time do all their work. 100 ProvisioningRequests
(Kueue's: half check-capacity, half best-effort-atomic, a third of them already booked, 1-16 pods
each from the same catalogue) are answered in the same pass. The first (cold) pass is
reported apart from the median. Timing and memory are taken on separate passes (tracemalloc slows
Python down). Run from the repository root: ``python bench/decide_scale.py``;
the last line printed is one JSON document.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import sys
import time
import tracemalloc

from elastic.model import (
    BEST_EFFORT_ATOMIC,
    CHECK_CAPACITY,
    HISTORY_ARRIVALS,
    HISTORY_RUNS,
    ClusterView,
    GroupNode,
    NodeGroup,
    NodeInfo,
    NodeState,
    PodInfo,
    PolicySettings,
    ProvisioningRequestInfo,
    RunHistory,
    Taint,
    Toleration,
)
from elastic.model import Condition as Cond
from elastic.policy import decide

NOW = 1_000_000.0
TARGET_S = 1.0
SERVICES = 40
GPU_TAINT = Taint("nvidia.com/gpu", "present", "NoSchedule")
GPU_TOLERATION = Toleration("nvidia.com/gpu", "Exists")


def groups() -> list[NodeGroup]:
    return [
        NodeGroup("edge", cpus=4, memory_mib=8192, max=400, priority=10, boot_s=90,
                  labels={"kubernetes.io/arch": "arm64", "site": "edge"},
                  nodes=tuple(GroupNode(f"edge-{i:04d}") for i in range(400))),
        NodeGroup("cpu", cpus=16, memory_mib=65536, max=6000, priority=5, cost_per_hour=0.68,
                  labels={"kubernetes.io/arch": "amd64"}),
        NodeGroup("arm", cpus=16, memory_mib=65536, max=1500, priority=5, cost_per_hour=0.54,
                  labels={"kubernetes.io/arch": "arm64"}),
        NodeGroup("gpu", cpus=8, memory_mib=61440, gpus=1, max=300, priority=0, cost_per_hour=1.2,
                  labels={"kubernetes.io/arch": "amd64", "accelerator": "nvidia"}, taints=(GPU_TAINT,)),
    ]


# (cpu_m, memory_mib, gpus, selector, tolerations): the workload catalogue pods are drawn from
SHAPES: list[tuple[int, int, int, dict[str, str], tuple[Toleration, ...]]] = [
    *[(c, m, 0, {}, ()) for c in (100, 250, 500, 1000, 2000) for m in (128, 512, 1024, 4096)],
    *[(c, m, 0, {"kubernetes.io/arch": "amd64"}, ()) for c in (500, 4000) for m in (2048, 16384)],
    *[(c, m, 0, {"kubernetes.io/arch": "arm64"}, ()) for c in (250, 1000) for m in (256, 2048)],
    (2000, 8192, 1, {}, (GPU_TOLERATION,)),
    (4000, 30000, 1, {"accelerator": "nvidia"}, (GPU_TOLERATION,)),
    (1000, 1024, 0, {"site": "edge"}, ()),
]


def build_requests(rng: random.Random, n: int) -> tuple[ProvisioningRequestInfo, ...]:
    out = []
    for k in range(n):
        cpu, mem, gpu, sel, tol = SHAPES[rng.randrange(len(SHAPES))]
        created = NOW - rng.uniform(0, 300)
        pods = tuple(PodInfo(f"kueue/wl-{k:03d}#0-{j}", "kueue", cpu, mem, gpu, node_selector=sel,
                             tolerations=tol, created_at=created) for j in range(rng.randint(1, 16)))
        conditions = {}
        if k % 3 == 0:  # booked: its room is held
            conditions = {"Accepted": Cond("Accepted", True, "Accepted", "", created),
                          "Provisioned": Cond("Provisioned", True, "CapacityIsFound", "", NOW - 60)}
        out.append(ProvisioningRequestInfo(f"kueue/wl-{k:03d}", "kueue",
                                           CHECK_CAPACITY if k % 2 else BEST_EFFORT_ATOMIC, created, pods,
                                           conditions))
    return tuple(out)


def build_view(seed: int, n_nodes: int, n_running: int, n_pending: int, n_requests: int = 0) -> ClusterView:
    rng = random.Random(seed)
    gs = {g.name: g for g in groups()}
    nodes: list[NodeInfo] = []
    # node mix: 8% edge boards, 70% cpu, 17% arm, 5% gpu
    plan = [("edge", 0.08), ("cpu", 0.70), ("arm", 0.17), ("gpu", 0.05)]
    for gname, share in plan:
        g = gs[gname]
        for i in range(int(n_nodes * share)):
            name = f"edge-{i:04d}" if gname == "edge" else f"{gname}-{i:05d}"
            roll = rng.random()
            state, ready, registered, idle_since, on_at = NodeState.USED, True, True, None, NOW - 86400
            if roll < 0.05:
                state, idle_since = NodeState.IDLE, NOW - rng.uniform(0, 1200)
            elif roll < 0.07:
                state, ready, registered, on_at = NodeState.POWERING_ON, False, rng.random() < 0.5, NOW - 60
            elif roll < 0.075:
                state, ready = NodeState.FAILED, False
            elif roll < 0.08:
                state = NodeState.DISABLED
            elif roll < 0.09 and gname == "edge":
                state, ready, registered = NodeState.OFF, False, False
            nodes.append(NodeInfo(name, gname, state, NOW - rng.uniform(0, 3600), g.cpu_m, g.memory_mib,
                                  gpus=g.gpus, labels={**g.labels, "oscar-deploy/group": gname,
                                                       # per-node labels, as k3s sets them
                                                       "kubernetes.io/hostname": name,
                                                       "k3s.io/internal-ip": f"10.0.{i // 256}.{i % 256}"},
                                  taints=g.taints, registered=registered, ready=ready,
                                  powered_on_at=on_at, idle_since=idle_since))
    used = [n for n in nodes if n.state in (NodeState.USED, NodeState.DISABLED)]
    pods: list[PodInfo] = []
    for n in nodes:  # one DaemonSet pod per registered node
        if n.registered and n.state is not NodeState.OFF:
            pods.append(PodInfo(f"kube-system/ds-{n.name}", "kube-system", 100, 128, node_name=n.name,
                                phase="Running", daemonset=True))
    room = {n.name: [n.cpu_m - 100, n.memory_mib - 128, n.gpus] for n in used}
    i = 0
    while len(pods) < n_running:
        n = used[i % len(used)]
        i += 1
        cpu, mem, gpu, sel, tol = SHAPES[rng.randrange(len(SHAPES))]
        r = room[n.name]
        ok = all(n.labels.get(k) == v for k, v in sel.items()) and (not n.taints or tol)
        if not ok or cpu > r[0] or mem > r[1] or gpu > r[2]:  # keep the running set plausible
            cpu, mem, gpu, sel, tol = 50, 64, 0, {}, (GPU_TOLERATION,)
        r[0] -= cpu
        r[1] -= mem
        r[2] -= gpu
        pods.append(PodInfo(f"ns{len(pods) % 50}/run-{len(pods)}", f"ns{len(pods) % 50}", cpu, mem, gpu,
                            node_selector=sel, tolerations=tol, node_name=n.name, phase="Running",
                            owner=f"svc-{len(pods) % SERVICES}", started_at=NOW - rng.uniform(0, 1200)))
    for j in range(n_pending):
        cpu, mem, gpu, sel, tol = SHAPES[rng.randrange(len(SHAPES))]
        judged = rng.random() < 0.8
        pods.append(PodInfo(f"jobs/pend-{j:05d}", "jobs", cpu, mem, gpu, node_selector=sel, tolerations=tol,
                            created_at=NOW - rng.uniform(31, 600),
                            unschedulable_since=NOW - rng.uniform(0, 30) if judged else None))
    rng.shuffle(pods)
    history = RunHistory(
        runtimes={f"svc-{k}": tuple(rng.uniform(30, 1800) for _ in range(HISTORY_RUNS))
                  for k in range(SERVICES)},
        arrivals=tuple(sorted(NOW - rng.uniform(0, 600) for _ in range(HISTORY_ARRIVALS))),
    )
    return ClusterView(tuple(nodes), tuple(pods), {"arm": NOW + 120}, history,
                       build_requests(rng, n_requests))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--passes", type=int, default=7)
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--running", type=int, default=150_000)
    ap.add_argument("--pending", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=100, help="ProvisioningRequests")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    view = build_view(args.seed, args.nodes, args.running, args.pending, args.requests)
    gs = groups()
    settings = PolicySettings(max_booting=0)
    build_s = time.perf_counter() - t0

    times: list[float] = []  # CPU time of this single-threaded process: one core, whatever the neighbours do
    walls: list[float] = []
    decision = None
    for _ in range(args.passes):
        start, wall = time.process_time(), time.perf_counter()
        decision = decide(view, gs, NOW, settings)
        times.append(time.process_time() - start)
        walls.append(time.perf_counter() - wall)
        print(f"pass: {times[-1]:.3f}s cpu, {walls[-1]:.3f}s wall", file=sys.stderr)
    assert decision is not None
    again = decide(view, gs, NOW, settings)

    tracemalloc.start()
    decide(view, gs, NOW, settings)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    median = statistics.median(times)
    result = {
        "benchmark": "decide_scale",
        "nodes": len(view.nodes),
        "running_pods": sum(1 for p in view.pods if p.node_name),
        "pending_pods": sum(1 for p in view.pods if not p.node_name),
        "passes": len(times),
        "median_s": round(median, 4),
        "cold_first_s": round(times[0], 4),
        "min_s": round(min(times), 4),
        "max_s": round(max(times), 4),
        "wall_median_s": round(statistics.median(walls), 4),
        "peak_mib": round(peak / 2**20, 1),
        "peak_mib_means": "extra memory one decide() allocates (tracemalloc); rss_mib is the whole process",
        "rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "target_s": TARGET_S,
        "meets_target": median <= TARGET_S,
        "deterministic": again == decision,
        "power_on": len(decision.power_on),
        "power_off": len(decision.power_off),
        "failed": len(decision.failed),
        "not_triggered": len(decision.not_triggered),
        "provisioning_requests": len(view.provisioning_requests),
        "provisioning_request_pods": sum(len(r.pods) for r in view.provisioning_requests),
        "provisioning_updates": len(decision.provisioning),
        "build_s": round(build_s, 2),
    }
    print(json.dumps(result))
    return 0 if result["meets_target"] and result["deterministic"] else 1


if __name__ == "__main__":
    sys.exit(main())
