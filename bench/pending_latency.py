"""``bench/pending_latency``: from a pod becoming unschedulable to the daemon's power-on
request, p95 ≤ 1 s.

The daemon runs at its default settings (batching window 0.2 s idle / 2 s max, 10 s tick) against the
Kubernetes API test server, through the real ``kubernetes`` client, with a busy cluster around it
(``--busy-nodes`` Ready nodes full of running pods that its watch and every pass must carry). One pod
at a time is submitted, each too big for any node that is on, at a random moment (so the samples fall
anywhere in the daemon's batching and tick cycles). An independent watch in this process records when
the scheduler's ``PodScheduled=False/Unschedulable`` verdict arrives; the board group's power manager
records when the daemon asks for the power-on; the board then registers, so the pod runs there and
the next sample starts from a quiet cluster.

Run from the repository root: ``python bench/pending_latency.py``; the last line printed is one JSON
document (``p50_s``, ``p95_s``, ``max_s``, ``samples``).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from elastic.daemon import Daemon, DaemonSettings  # noqa: E402
from elastic.kubeapi import KubeApi  # noqa: E402
from elastic.model import GroupNode, NodeGroup  # noqa: E402
from elastic.view import unschedulable_condition  # noqa: E402
from elastic.watch import Informer  # noqa: E402
from tests.harness.kube_api import KubeApiServer, Timing  # noqa: E402

TARGET_P95_S = 1.0


class RecordingPower:
    """A board's power manager that notes when each power-on is asked for, then boots the board in
    the harness (what a PoE switch and the board's kubelet would do)."""

    ephemeral = False

    def __init__(self, server: KubeApiServer) -> None:
        self.server = server
        self.requested: dict[str, float] = {}
        self.event = threading.Event()

    def new_name(self, group: NodeGroup) -> str:
        raise RuntimeError("boards are named")

    def power_on(self, group: NodeGroup, node: str) -> None:
        self.requested[node] = time.time()
        self.event.set()
        self.server.register_node(node, cpus=group.cpus, memory_mib=group.memory_mib)

    def power_off(self, group: NodeGroup, node: str) -> None:
        self.server.set_node_ready(node, False)

    def machines(self, group: NodeGroup) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--busy-nodes", type=int, default=50)
    parser.add_argument("--pods-per-node", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    rng = random.Random(args.seed)

    with KubeApiServer(timing=Timing(time_scale=1.0, period_s=0.05, scheduler_events=False)) as server:
        for i in range(args.busy_nodes):
            server.register_node(f"busy-{i}", cpus=4, memory_mib=8192)
        server.create_pods(args.busy_nodes * args.pods_per_node, "steady", cpus=0.3, memory_mib=256)
        server.wait_until(lambda: len(server.pods(phase="Running")) == args.busy_nodes * args.pods_per_node,
                          timeout=120, what="steady pods running")
        boards = NodeGroup(name="edge", cpus=4, memory_mib=8192, max=args.samples, priority=10,
                           nodes=tuple(GroupNode(f"board-{i}") for i in range(args.samples)),
                           power={"type": "command", "power_on": "-", "power_off": "-"})
        power = RecordingPower(server)
        daemon = Daemon(server.api_client(), [boards], {"edge": power}, DaemonSettings()).start()

        verdicts: dict[str, float] = {}

        def on_pod(kind: str, new: dict[str, Any] | None, old: dict[str, Any] | None) -> None:
            if new is not None and unschedulable_condition(new) is not None:
                verdicts.setdefault(new["metadata"]["name"], time.time())

        watcher = Informer(KubeApi(server.api_client()), "pods", on_pod).start()
        latencies: list[float] = []
        try:
            server.wait_until(daemon.elector.is_leader, timeout=30, what="the daemon leading")
            for i in range(args.samples):
                time.sleep(rng.uniform(0.0, 2.5))  # land anywhere in the batching window and tick
                power.event.clear()
                before = set(power.requested)
                server.create_pod(f"burst-{i}", cpus=3.5, memory_mib=1024, runtime_s=100000)
                if not power.event.wait(30):
                    raise SystemExit(f"sample {i}: no power-on within 30 s")
                (node,) = set(power.requested) - before
                seen = server.wait_until(lambda i=i: verdicts.get(f"burst-{i}"), timeout=10, what="verdict")
                latencies.append(power.requested[node] - seen)
                print(json.dumps({"sample": i, "latency_s": round(latencies[-1], 4)}), file=sys.stderr)
        finally:
            watcher.stop()
            daemon.stop()

    latencies.sort()
    p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)]
    result = {
        "benchmark": "pending_latency",
        "samples": len(latencies),
        "p50_s": round(statistics.median(latencies), 4),
        "p95_s": round(p95, 4),
        "max_s": round(latencies[-1], 4),
        "target_p95_s": TARGET_P95_S,
        "met": p95 <= TARGET_P95_S,
        "busy_nodes": args.busy_nodes,
        "running_pods": args.busy_nodes * args.pods_per_node,
        "settings": "daemon defaults (batch_idle_s 0.2, batch_max_s 2, tick_s 10)",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
