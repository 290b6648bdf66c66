"""``bench/packing``: how many new nodes ``decide()`` asks for, against the volume lower
bound (no packing can do with fewer: total requests over the node size, per resource, the largest).
Target: ≤ 1.05 × the lower bound, and never more nodes than the pending pods need.

Seeded mixes of pending pods on an empty cluster: uniform small pods; mixed CPU-heavy and
memory-heavy pods; GPU pods; pods constrained by nodeSelector to one of several groups; and a
realistic catalogue mix. "Never more nodes than needed" is checked two ways and reported as
``overprovisioned_nodes``: a node with no pod, and a node whose pods all fit in the room the other
requested nodes of its group leave (a node a simple local search would remove). Run from the
repository root: ``python bench/packing.py``; the last line printed is one JSON document.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable

from elastic.model import ClusterView, Decision, NodeGroup, PodInfo, PolicySettings, Taint, Toleration
from elastic.policy import decide
from elastic.policy.fit import Capacity, Shape, group_capacity, shape_of
from elastic.policy.packing import volume_lower_bound

NOW = 1000.0
TARGET = 1.05
GPU_TAINT = Taint("nvidia.com/gpu", "present", "NoSchedule")


def pod(i: int, cpu_m: int, memory_mib: int, gpus: int = 0, **kw: object) -> PodInfo:
    return PodInfo(f"bench/p{i:05d}", "bench", cpu_m, memory_mib, gpus, unschedulable_since=NOW - 1,
                   **kw)  # type: ignore[arg-type]


Mix = Callable[[random.Random], tuple[list[NodeGroup], list[PodInfo]]]


def uniform_small(rng: random.Random) -> tuple[list[NodeGroup], list[PodInfo]]:
    groups = [NodeGroup("cloud", cpus=4, memory_mib=16384, max=10_000)]
    return groups, [pod(i, 250, 256) for i in range(rng.randrange(1500, 2500))]


def mixed_cpu_memory(rng: random.Random) -> tuple[list[NodeGroup], list[PodInfo]]:
    groups = [NodeGroup("cloud", cpus=8, memory_mib=32768, max=10_000)]
    pods = []
    for i in range(rng.randrange(800, 1200)):
        if rng.random() < 0.5:
            pods.append(pod(i, rng.choice((1000, 1500, 2000, 3000)), rng.choice((256, 512, 1024))))
        else:
            pods.append(pod(i, rng.choice((100, 250, 500)), rng.choice((4096, 6144, 8192, 12288))))
    return groups, pods


def gpu(rng: random.Random) -> tuple[list[NodeGroup], list[PodInfo]]:
    groups = [NodeGroup("gpu", cpus=32, memory_mib=131072, gpus=4, max=10_000, taints=(GPU_TAINT,))]
    tol = (Toleration("nvidia.com/gpu", "Exists"),)
    pods = [pod(i, rng.choice((2000, 4000, 8000)), rng.choice((8192, 16384, 30000)), rng.choice((1, 1, 2)),
                tolerations=tol) for i in range(rng.randrange(300, 500))]
    return groups, pods


def selector_constrained(rng: random.Random) -> tuple[list[NodeGroup], list[PodInfo]]:
    groups = [
        NodeGroup("amd", cpus=8, memory_mib=32768, max=10_000, labels={"kubernetes.io/arch": "amd64"}),
        NodeGroup("arm", cpus=16, memory_mib=32768, max=10_000,
                  labels={"kubernetes.io/arch": "arm64", "site": "cloud"}),
        NodeGroup("edge", cpus=4, memory_mib=8192, max=10_000, priority=10,
                  labels={"kubernetes.io/arch": "arm64", "site": "edge"}),
    ]
    selectors = [{"kubernetes.io/arch": "amd64"}, {"kubernetes.io/arch": "arm64", "site": "cloud"},
                 {"site": "edge"}]
    pods = [pod(i, rng.choice((250, 500, 1000, 2000)), rng.choice((512, 1024, 2048, 4096)),
                node_selector=rng.choice(selectors)) for i in range(rng.randrange(1000, 1500))]
    return groups, pods


def catalogue(rng: random.Random) -> tuple[list[NodeGroup], list[PodInfo]]:
    groups = [NodeGroup("cloud", cpus=16, memory_mib=65536, max=10_000)]
    shapes = [(c, m) for c in (100, 250, 500, 1000, 2000, 4000) for m in (128, 512, 1024, 4096, 16384)]
    return groups, [pod(i, *rng.choice(shapes)) for i in range(rng.randrange(2000, 4000))]


MIXES: dict[str, Mix] = {
    "uniform_small": uniform_small,
    "mixed_cpu_memory": mixed_cpu_memory,
    "gpu": gpu,
    "selector_constrained": selector_constrained,
    "catalogue": catalogue,
}


def lower_bound(groups: list[NodeGroup], pods: list[PodInfo]) -> int:
    """Sum over groups of the volume bound of the pods only that group can take (the mixes make every
    pod eligible for exactly one group, which the check below asserts)."""
    from elastic.policy.scaleup import GroupInfo

    infos = [GroupInfo.of(g) for g in groups]
    per_group: dict[str, dict[Shape, int]] = {g.name: {} for g in groups}
    for p in pods:
        s = shape_of(p)
        eligible = [i.group.name for i in infos if i.fits(s)]
        assert len(eligible) == 1, f"{p.key} fits {eligible}"
        per_group[eligible[0]][s] = per_group[eligible[0]].get(s, 0) + 1
    by_name = {g.name: g for g in groups}
    return sum(volume_lower_bound(d, group_capacity(by_name[name])) for name, d in per_group.items())


def overprovisioned(groups: list[NodeGroup], pods: list[PodInfo], decision: Decision) -> int:
    """Nodes with no pod, plus nodes whose pods fit in the room the group's other new nodes leave."""
    sizes = {p.key: p for p in pods}
    caps: dict[str, Capacity] = {g.name: group_capacity(g) for g in groups}
    empty = sum(1 for p in decision.power_on if not p.pods)
    removable = 0
    for name, cap in caps.items():
        nodes = [list(p.pods) for p in decision.power_on if p.group == name and p.pods]
        free = [[cap.cpu_m - sum(sizes[k].cpu_m for k in n),
                 cap.memory_mib - sum(sizes[k].memory_mib for k in n),
                 cap.gpus - sum(sizes[k].gpus for k in n), cap.pods - len(n)] for n in nodes]
        alive = set(range(len(nodes)))
        for victim in sorted(alive, key=lambda i: len(nodes[i])):
            trial = {i: list(free[i]) for i in alive if i != victim}
            ok = True
            for k in sorted(nodes[victim], key=lambda k: -sizes[k].cpu_m):
                p = sizes[k]
                spot = next((i for i, f in trial.items() if f[0] >= p.cpu_m and f[1] >= p.memory_mib
                             and f[2] >= p.gpus and f[3] >= 1), None)
                if spot is None:
                    ok = False
                    break
                f = trial[spot]
                f[0] -= p.cpu_m
                f[1] -= p.memory_mib
                f[2] -= p.gpus
                f[3] -= 1
            if ok:
                removable += 1
                alive.discard(victim)
                for i, f in trial.items():
                    free[i] = f
    return empty + removable


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args(argv)
    started = time.perf_counter()
    rows = []
    for name, mix in MIXES.items():
        for seed in range(args.seeds):
            groups, pods = mix(random.Random(f"{name}-{seed}"))
            decision = decide(ClusterView((), tuple(pods)), groups, NOW, PolicySettings())
            placed = sum(len(p.pods) for p in decision.power_on)
            assert placed == len(pods) and not decision.not_triggered, f"{name}: {placed}/{len(pods)} placed"
            nodes = len(decision.power_on)
            bound = lower_bound(groups, pods)
            extra = overprovisioned(groups, pods, decision)
            rows.append({"mix": name, "seed": seed, "pods": len(pods), "nodes": nodes, "lower_bound": bound,
                         "ratio": round(nodes / bound, 4), "overprovisioned": extra})
            print(json.dumps(rows[-1]), file=sys.stderr)
    worst = max(rows, key=lambda r: r["ratio"])
    result = {
        "benchmark": "packing",
        "ratio_to_lower_bound": worst["ratio"],
        "worst_mix": worst["mix"],
        "overprovisioned_nodes": sum(r["overprovisioned"] for r in rows),
        "target_ratio": TARGET,
        "meets_target": worst["ratio"] <= TARGET and all(r["overprovisioned"] == 0 for r in rows),
        "mixes": {m: max(r["ratio"] for r in rows if r["mix"] == m) for m in MIXES},
        "runs": len(rows),
        "elapsed_s": round(time.perf_counter() - started, 2),
    }
    print(json.dumps(result))
    return 0 if result["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
