"""The Kubernetes API test server: what the elastic daemon talks to in tests.

A real HTTP server on 127.0.0.1 that the unmodified ``kubernetes`` client uses: core/v1 pods, nodes,
namespaces, configmaps, secrets and events, policy/v1 PodDisruptionBudgets and pod eviction,
coordination.k8s.io/v1 Leases, and (stored only, for ``oscar-deploy check``) apps/v1 Deployments,
batch/v1 Jobs and helm.cattle.io/v1 HelmCharts; list, get, create, replace, patch (JSON, merge,
strategic merge), delete and watch with resourceVersion, 410 Gone and timeoutSeconds. Behind it a
scheduler binds pending pods to Ready, schedulable nodes and simulated kubelets run them (see
``kube/cluster.py``), and the node lifecycle is kube-controller-manager's and k3s's (see
``kube/nodes.py``): a silent Node stays Ready for the node-monitor grace period
(``Timing.control_plane``), kubelets renew ``kube-node-lease`` Leases, NoExecute taints follow the
zone's disruption mode, podgc honours ``out-of-service``, k3s node-password Secrets refuse a new
machine under an old name.

In tests use the ``kube_api`` fixture (``tests/conftest.py``; ``kube_api_factory(history=..., timing=...)``
for other settings, ``kube_client`` for an ``ApiClient``). The handle (``kube/server.py``):
``url``, ``api_client()``, ``write_kubeconfig(path)``; the environment: ``register_node(name, cpus=,
memory_mib=, gpus=, pods=, labels=, taints=, unschedulable=, arch=, ready_after_s=)``,
``set_node_ready(name, False)`` (kubelet stops), ``restart_node``, ``delete_node``, ``add_daemonset``,
``register_node(..., password=)`` (a k3s agent's node password),
``create_pod(name, cpus=, memory_mib=, gpus=, runtime_s=, node_selector=, tolerations=, ...)``,
``create_pods(count, prefix, ...)``, ``follow_machines(fn)`` (kubelets start and stop with the
machines ``fn()`` lists, e.g. emulator instances; Nodes stay), ``power_commands(**node_options)``
(shell commands for a ``command`` group, see ``kube/ctl.py``); reading: ``pods(namespace, node,
phase)``, ``nodes()``,
``get(resource, name, namespace)``, ``compact()`` (force 410), ``answer_expired_watches_with_status()``,
``wait_until(predicate)``,
``sim.tick()`` (one deterministic pass of the control loops).

Harness seconds (pod ``harness/runtime-s`` annotation, node ready delay, ``tolerationSeconds``, the
``termination_s`` a deleted running pod stays Terminating) are multiplied by ``Timing.time_scale``;
the fixture uses 0.01. By hand::

    python -m tests.harness.kube_api --port 8001 --node w1:4:8192 --time-scale 0.1 --kubeconfig /tmp/kc
    python -m tests.harness.kube.ctl --server http://127.0.0.1:8001 up w2 --cpus 2
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from tests.harness.kube.cluster import Timing
from tests.harness.kube.daemonsets import DaemonSet
from tests.harness.kube.objects import EXIT_CODE_ANNOTATION, RUNTIME_ANNOTATION
from tests.harness.kube.server import DEFAULT_NAMESPACES, KubeApiServer

__all__ = [
    "DEFAULT_NAMESPACES",
    "EXIT_CODE_ANNOTATION",
    "RUNTIME_ANNOTATION",
    "DaemonSet",
    "KubeApiServer",
    "Timing",
    "main",
]


def _node(text: str) -> tuple[str, float, int, int]:
    """``NAME[:CPUS[:MEMORY_MIB[:GPUS]]]``."""
    name, *rest = text.split(":")
    try:
        cpus = float(rest[0]) if rest else 4.0
        memory = int(rest[1]) if len(rest) > 1 else 8192
        gpus = int(rest[2]) if len(rest) > 2 else 0
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"--node {text!r}: expected NAME[:CPUS[:MEMORY_MIB[:GPUS]]]"
        ) from exc
    return name, cpus, memory, gpus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.harness.kube_api", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument(
        "--node",
        type=_node,
        action="append",
        default=[],
        metavar="NAME[:CPUS[:MIB[:GPUS]]]",
        help="register a node at start (repeatable)",
    )
    parser.add_argument("--time-scale", type=float, default=1.0, help="real seconds per harness second")
    parser.add_argument("--period", type=float, default=0.05, help="scheduler/kubelet period in seconds")
    parser.add_argument(
        "--node-ready-delay", type=float, default=0.0, help="harness seconds until a node is Ready"
    )
    parser.add_argument("--history", type=int, default=5000, help="watch events kept before 410 Gone")
    parser.add_argument("--kubeconfig", help="write a kubeconfig for this server to this path")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    timing = Timing(
        time_scale=args.time_scale, period_s=args.period, node_ready_delay_s=args.node_ready_delay
    )
    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with KubeApiServer(port=args.port, timing=timing, history=args.history) as server:
        for name, cpus, memory, gpus in args.node:
            server.register_node(name, cpus=cpus, memory_mib=memory, gpus=gpus)
        if args.kubeconfig:
            server.write_kubeconfig(args.kubeconfig)
        print(f"Kubernetes API test server on {server.url}", flush=True)
        stopped.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
