"""``KubeApiServer``: start/stop the test server and drive the simulated cluster from a test.

The HTTP API is the truth: the product (and tests, wherever the product would) talk to ``url`` with
the real ``kubernetes`` client. This handle only does what a cluster's *environment* does — nodes
registering and dying, workloads appearing — and reads state for assertions.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import shlex
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests.harness.kube import manifests
from tests.harness.kube.api import ApiServer
from tests.harness.kube.cluster import ClusterSim, Timing
from tests.harness.kube.daemonsets import DaemonSet
from tests.harness.kube.nodes import NodePasswordRejected
from tests.harness.kube.objects import with_pod_defaults
from tests.harness.kube.store import NotFound, Store
from tests.harness.kube.tls import ServingCert

Obj = dict[str, Any]
T = TypeVar("T")
log = logging.getLogger(__name__)

_REPO = Path(__file__).resolve().parents[3]  # tests/harness/kube/server.py → the repository
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class KubeApiServer:
    """A Kubernetes API test server on 127.0.0.1 with a scheduler and simulated kubelets.

    Use as a context manager (or ``start()``/``stop()``). ``port=0`` picks a free port.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        timing: Timing | None = None,
        history: int = 5000,
        watch_timeout_s: float = 1800.0,
        namespaces: tuple[str, ...] = DEFAULT_NAMESPACES,
        serving: ServingCert | None = None,
    ) -> None:
        """``serving``: answer over HTTPS with its certificate and require its bearer token (except
        on the harness's own ``/harness`` paths), as a pod's API server does."""
        self.timing = timing or Timing()
        self.store = Store(history=history)
        self.sim = ClusterSim(self.store, self.timing)
        self.serving = serving
        self._http = ApiServer((host, port), self.store, watch_timeout_s)
        if serving is not None:
            self._http.socket = serving.server_context().wrap_socket(self._http.socket, server_side=True)
            self._http.token = serving.token
        self._http.control = self
        self._stopping = threading.Event()
        self._followers: list[threading.Thread] = []
        self._thread: threading.Thread | None = None
        for namespace in namespaces:
            self.create_namespace(namespace)

    # ---- lifecycle ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._http.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self.serving is not None else "http"
        return f"{scheme}://{self._http.server_address[0]}:{self.port}"

    def start(self) -> KubeApiServer:
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="kube-harness-http",
            daemon=True,
        )
        self._thread.start()
        self.sim.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        for follower in self._followers:
            follower.join(timeout=5)
        self.sim.stop()
        self.store.close()
        self._http.shutdown()
        self._http.close_connections()
        self._http.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> KubeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- clients -----------------------------------------------------------------------------
    def configuration(self) -> Any:
        """A ``kubernetes.client.Configuration`` for this server (imported lazily: it is slow)."""
        from kubernetes import client

        config = client.Configuration()
        config.host = self.url
        if self.serving is not None:
            config.ssl_ca_cert = str(self.serving.ca_file)
            config.api_key["authorization"] = f"Bearer {self.serving.token}"
        return config

    def api_client(self) -> Any:
        from kubernetes import client

        return client.ApiClient(self.configuration())

    def write_kubeconfig(self, path: str | Path) -> Path:
        """A kubeconfig pointing at this server, for ``oscar-deploy daemon --kubeconfig``."""
        path = Path(path)
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "harness",
                    "clusters": [{"name": "harness", "cluster": {
                        "server": self.url,
                        **({"certificate-authority": str(self.serving.ca_file)} if self.serving else {})}}],
                    "users": [{"name": "harness", "user": {
                        "token": self.serving.token if self.serving else "harness-token"}}],
                    "contexts": [{"name": "harness", "context": {"cluster": "harness", "user": "harness"}}],
                }
            )
        )
        path.chmod(0o600)
        return path

    # ---- the cluster's environment -----------------------------------------------------------
    def create_namespace(self, name: str) -> Obj:
        return self.store.create(
            "namespaces",
            {
                "metadata": {"name": name},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            },
        )

    def register_node(self, name: str, *, ready_after_s: float | None = None, password: str | None = None,
                      **kwargs: Any) -> Obj:
        """Register a node as its kubelet would (see ``manifests.node_manifest`` for the options:
        cpus, memory_mib, gpus, pods, labels, taints, unschedulable, arch, address); it turns Ready
        ``ready_after_s`` harness seconds later (default: the timing's ``node_ready_delay_s``).

        ``password`` is the machine's k3s node password: an agent whose name has a node-password
        Secret with another password's hash is refused (``NodePasswordRejected``), as k3s does."""
        node = manifests.node_manifest(name, **kwargs)
        if password is not None:
            self.sim.k3s.admit(name, password)
        self.sim.node_registered(name, ready_after_s)
        return self.store.create("nodes", node)

    def restart_node(self, name: str, *, ready_after_s: float | None = None,
                     password: str | None = None) -> None:
        """A registered machine boots again: its kubelet resumes and reports Ready after the delay.

        A machine that is already up is left alone (powering on a running board does nothing).
        A machine with another ``password`` (a new VM under an old name) must pass k3s's check."""
        if password is not None:
            self.sim.k3s.admit(name, password)
        if not self.sim.kubelet_running(name) or password is not None:
            self.sim.node_registered(name, ready_after_s)

    def follow_machines(
        self, machines: Callable[[], Mapping[str, Mapping[str, Any]]], period_s: float = 0.1
    ) -> None:
        """Keep nodes in step with machines, as booting VMs' kubelets do on a k3s cluster.

        ``machines()`` returns ``{node name: register_node options}`` for the machines that are up
        (e.g. the EC2 emulator's running instances with the project's tags); an option ``password``
        is the machine's k3s node password (give each VM its own, e.g. its instance id). A new
        machine registers (Ready after its ``ready_after_s``), or joins the Node of its name if
        k3s's password check lets it (a refused one keeps trying, as a k3s agent does). A machine
        that disappears only stops its kubelet: its Node stays, NotReady after the grace period,
        because k3s runs no cloud node-lifecycle controller to delete it. Polled every ``period_s``.
        """
        up: dict[str, str | None] = {}  # node name → password of the machine whose kubelet runs it

        def follow() -> None:
            while not self._stopping.wait(period_s):
                try:
                    current = dict(machines())
                except Exception:  # the machine source is another harness; it may be mid-reset
                    log.debug("machine listing failed", exc_info=True)
                    continue
                for name, options in current.items():
                    options = dict(options)
                    password = options.pop("password", None)
                    if name in up and up[name] == password:
                        continue
                    try:
                        if self.store.find("nodes", "", name) is None:
                            self.register_node(name, password=password, **options)
                        else:
                            self.restart_node(name, ready_after_s=options.get("ready_after_s"),
                                              password=password)
                    except NodePasswordRejected as exc:
                        log.debug("machine %s not joined: %s", name, exc.message)
                        continue
                    up[name] = password
                for name in set(up) - set(current):
                    with contextlib.suppress(NotFound):
                        self.sim.set_kubelet(name, False)
                    del up[name]

        thread = threading.Thread(target=follow, name="kube-harness-machines", daemon=True)
        self._followers.append(thread)
        thread.start()

    def power_commands(self, **node_options: Any) -> dict[str, str]:
        """``power_on``/``power_off`` shell commands (with ``{node}``) for a ``command`` group.

        Power on boots the node with these options (``cpus``, ``memory_mib``, ``labels``, ``ready_after_s``
        ...); power off stops its kubelet, as pulling a board's plug does.
        """
        base = [
            "env",
            f"PYTHONPATH={_REPO}",
            sys.executable,
            "-m",
            "tests.harness.kube.ctl",
            "--server",
            self.url,
        ]
        flags: list[str] = []
        for key, value in node_options.items():
            if key == "labels":
                flags += [f"--label={k}={v}" for k, v in value.items()]
            elif key == "taints":
                flags += [
                    f"--taint={t['key']}{'=' + t['value'] if t.get('value') else ''}:{t['effect']}"
                    for t in value
                ]
            elif key == "ready_after_s":
                flags.append(f"--ready-after={value}")
            else:
                flags.append(f"--{key.replace('_', '-')}={value}")
        quote = shlex.join
        return {
            "power_on": f"{quote(base)} up {{node}} {quote(flags)}".rstrip(),
            "power_off": f"{quote(base)} down {{node}}",
        }

    def delete_node(self, name: str) -> None:
        """The machine is gone: the node object is deleted and its pods are garbage-collected."""
        self.store.delete("nodes", "", name)

    def set_node_ready(self, name: str, ready: bool) -> None:
        """Stop (or restart) a node's kubelet: its Ready condition goes Unknown (or back to True)."""
        self.sim.set_kubelet(name, ready)

    def add_daemonset(
        self,
        name: str,
        *,
        namespace: str = "kube-system",
        cpus: float = 0.1,
        memory_mib: int = 64,
        node_selector: dict[str, str] | None = None,
    ) -> None:
        """A DaemonSet whose pod (ownerReferences kind DaemonSet) is put on every matching node."""
        self.sim.add_daemonset(
            DaemonSet(
                name,
                namespace,
                {"cpu": manifests.cpu_quantity(cpus), "memory": f"{memory_mib}Mi"},
                dict(node_selector or {}),
            )
        )

    def pod_manifest(self, name: str, **kwargs: Any) -> Obj:
        """A pod as a user would submit it (see ``manifests.pod_manifest`` for the options)."""
        return manifests.pod_manifest(name, **kwargs)

    def create_pod(self, name: str, **kwargs: Any) -> Obj:
        """Create one pod (see ``pod_manifest`` for the options) as the API server would admit it."""
        manifest = self.pod_manifest(name, **kwargs)
        return self.store.create("pods", with_pod_defaults(manifest), manifest["metadata"]["namespace"])

    def create_pods(self, count: int, prefix: str = "job", **kwargs: Any) -> list[Obj]:
        """Create ``prefix-0 .. prefix-(count-1)`` with the same options."""
        return [self.create_pod(f"{prefix}-{i}", **kwargs) for i in range(count)]

    # ---- reading state -----------------------------------------------------------------------
    def get(self, resource: str, name: str, namespace: str = "") -> Obj:
        return copy.deepcopy(self.store.get(resource, namespace, name))

    def pods(
        self, namespace: str | None = None, node: str | None = None, phase: str | None = None
    ) -> list[Obj]:
        items, _ = self.store.list("pods", namespace)
        return [
            copy.deepcopy(p)
            for p in items
            if (node is None or (p.get("spec") or {}).get("nodeName") == node)
            and (phase is None or (p.get("status") or {}).get("phase") == phase)
        ]

    def nodes(self) -> list[Obj]:
        return copy.deepcopy(self.store.list("nodes")[0])

    def compact(self) -> int:
        """Drop the watch history (an etcd compaction): watches from older versions then get 410."""
        return self.store.compact()

    def deny(self, verb: str, resource: str, denied: bool = True) -> None:
        """Take ``verb`` on ``resource`` (``pods/eviction``) away from the caller's RBAC Role: the API
        server answers it 403 Forbidden, as when a Role lacks the rule (only evictions so far)."""
        (self._http.denied.add if denied else self._http.denied.discard)((verb, resource))

    def answer_expired_watches_with_status(self, on: bool = True) -> None:
        """Answer a watch from a compacted resourceVersion with an HTTP 410 status (see
        ``ApiServer.expired_watch_as_status``) rather than an ERROR event."""
        self._http.expired_watch_as_status = on

    def wait_until(self, predicate: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
        """Re-check ``predicate`` on every change in the store until it returns something truthy.

        Fails the test with ``what`` after ``timeout`` seconds. The predicate runs without the store
        lock held, so it may use the HTTP client.
        """
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            with self.store.cond:
                self.store.cond.wait(min(remaining, 0.1))
