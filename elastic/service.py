"""Running the daemon as a process: client configuration, groups, power managers, signals.

What ``oscar-deploy daemon`` and ``oscar-deploy nodes`` call. Everything that can be wrong in the
operator's input (no kubeconfig, a bad groups file, a group the daemon cannot power) is a
``BadInput`` raised before the daemon starts; SIGTERM and SIGINT stop it cleanly (the Lease is
released so a standby takes over at once).
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from elastic.daemon import Daemon, DaemonSettings
from elastic.groups import load_groups
from elastic.metrics import Metrics
from elastic.model import NodeGroup
from elastic.power import PowerManager, SshShutdown, manager_for
from provisioner.errors import BadInput

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
"""Where Kubernetes mounts a pod's service-account token and CA (``[elastic] service_account_dir``)."""

CloudFactory = Callable[[Sequence[NodeGroup]], Mapping[str, PowerManager]]
"""Builds the power managers of the ``cloud`` groups (they need the state file and credentials)."""


class JsonFormatter(logging.Formatter):
    """One JSON object per line (time, level, logger, message, and any ``extra`` fields), for log
    collectors; ``oscar-deploy daemon --log-format json``."""

    _STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        doc = {"time": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
               "message": record.getMessage()}
        doc.update({k: v for k, v in record.__dict__.items() if k not in self._STANDARD})
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def use_json_logs() -> None:
    for handler in logging.getLogger().handlers:
        handler.setFormatter(JsonFormatter())


def api_client(kubeconfig: str | None, service_account_dir: str = SERVICE_ACCOUNT_DIR,
               environ: Mapping[str, str] | None = None) -> Any:
    """A ``kubernetes`` ApiClient from, first found: the given kubeconfig, ``$KUBECONFIG``, the pod's
    service account (in-cluster: ``KUBERNETES_SERVICE_HOST``/``_PORT`` and the token and CA in
    ``service_account_dir``), ``~/.kube/config``."""
    import os

    import yaml
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.incluster_config import InClusterConfigLoader

    environ = os.environ if environ is None else environ
    named = kubeconfig or environ.get("KUBECONFIG")
    if named:
        where = kubeconfig or f"KUBECONFIG={named}"
        if not all(Path(p).is_file() for p in named.split(os.pathsep) if p):
            raise BadInput(f"{where}: kubeconfig file not found")
        try:
            return config.new_client_from_config(config_file=named)
        except (ConfigException, ValueError, KeyError, TypeError, yaml.YAMLError) as error:
            reason = " ".join(str(error).split())  # a YAML error spans lines
            raise BadInput(f"{where}: not a usable kubeconfig: {reason}") from None
    if environ.get("KUBERNETES_SERVICE_HOST"):
        account = Path(service_account_dir)
        configuration = client.Configuration()
        try:
            InClusterConfigLoader(token_filename=str(account / "token"),
                                  cert_filename=str(account / "ca.crt"),
                                  environ=environ).load_and_set(configuration)
        except ConfigException as error:  # in a pod whose service account token is not mounted
            raise BadInput(f"in-cluster configuration ([elastic] service_account_dir = {account}): "
                           f"{' '.join(str(error).split())}") from None
        return client.ApiClient(configuration)
    try:
        return config.new_client_from_config()
    except (ConfigException, OSError, yaml.YAMLError) as error:
        raise BadInput(f"no Kubernetes configuration: not in a cluster and no kubeconfig ({error}); "
                       f"pass --kubeconfig FILE") from None


def managers_for(groups: Sequence[NodeGroup], cloud: CloudFactory | None = None,
                 where: str | None = None) -> dict[str, PowerManager]:
    """A power manager per group; every group must say how it is powered (``where``, the groups
    file, prefixes the message when one does not)."""
    problems = missing_files(groups)
    if problems:  # the first one: a crash-looping pod's one-line reason
        raise BadInput(f"{where}: {problems[0]}" if where else problems[0])
    cloud_groups = [g for g in groups if g.power.get("type") == "cloud"]
    cloud_managers = dict(cloud(cloud_groups)) if cloud and cloud_groups else {}
    try:
        return {g.name: manager_for(g, cloud_managers) for g in groups}
    except BadInput as error:
        raise BadInput(f"{where}: {error}" if where else str(error)) from None


def missing_files(groups: Sequence[NodeGroup]) -> list[str]:
    """The files a group's SSH shutdown names (its key, its known_hosts, a board's own key) that
    cannot be read or are empty: in a pod, a Secret or ConfigMap key that is missing, found at start
    rather than when the first board is due to halt."""
    problems = []
    for group in groups:
        shutdown = SshShutdown.from_power(group.power)
        if shutdown is None:
            continue
        named = [("power.shutdown.key", shutdown.key), ("power.shutdown.known_hosts", shutdown.known_hosts)]
        named += [(f"node {n.name!r}: ssh_key", n.ssh_key) for n in group.nodes]
        for key, value in named:
            if not value:
                continue
            path = Path(value).expanduser()
            try:
                empty = path.stat().st_size == 0
                path.open("rb").close()
            except OSError as error:
                problems.append(f"group {group.name!r}: {key} {path}: {error.strerror or error}")
                continue
            if empty:
                problems.append(f"group {group.name!r}: {key} {path} is empty")
    return problems


def read_groups(groups_file: str | None) -> tuple[NodeGroup, ...]:
    if groups_file is None:
        raise BadInput("daemon: give --groups FILE or --deployment ID (which node groups to scale)")
    return load_groups(Path(groups_file))


def run_daemon(
    api: Any,
    groups: Sequence[NodeGroup],
    managers: Mapping[str, PowerManager],
    settings: DaemonSettings,
    *,
    metrics_port: int | None,
    metrics_address: str = "127.0.0.1",
    identity: str | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or ``stop`` is set)."""
    stop = stop or threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    metrics = Metrics()
    server = None
    if metrics_port:
        try:
            server = metrics.serve(metrics_port, metrics_address)
        except OSError as error:
            reason = error.strerror or error
            raise BadInput(f"--metrics-port {metrics_port}: cannot listen: {reason}") from None
        log.info("metrics on http://%s:%d/metrics", metrics_address, metrics_port)
    daemon = Daemon(api, groups, managers, settings, metrics=metrics, identity=identity).start()
    log.info("elastic daemon %s started: groups %s", daemon.elector.identity,
             ", ".join(g.name for g in groups))
    try:
        stop.wait()
    finally:
        daemon.stop()
        if server is not None:
            server.shutdown()
        log.info("elastic daemon stopped")
