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
from elastic.power import PowerManager, manager_for
from provisioner.errors import BadInput

log = logging.getLogger(__name__)

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


def api_client(kubeconfig: str | None) -> Any:
    """A ``kubernetes`` ApiClient: the given kubeconfig, else in-cluster, else ``~/.kube/config``."""
    import yaml
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    if kubeconfig:
        if not Path(kubeconfig).is_file():
            raise BadInput(f"{kubeconfig}: kubeconfig file not found")
        try:
            return config.new_client_from_config(config_file=kubeconfig)
        except (ConfigException, ValueError, KeyError, TypeError, yaml.YAMLError) as error:
            reason = " ".join(str(error).split())  # a YAML error spans lines
            raise BadInput(f"{kubeconfig}: not a usable kubeconfig: {reason}") from None
    try:
        config.load_incluster_config()
        return client.ApiClient()
    except ConfigException:
        pass
    try:
        return config.new_client_from_config()
    except (ConfigException, OSError, yaml.YAMLError) as error:
        raise BadInput(f"no Kubernetes configuration: not in a cluster and no kubeconfig ({error}); "
                       f"pass --kubeconfig FILE") from None


def managers_for(groups: Sequence[NodeGroup], cloud: CloudFactory | None = None,
                 where: str | None = None) -> dict[str, PowerManager]:
    """A power manager per group; every group must say how it is powered (``where``, the groups
    file, prefixes the message when one does not)."""
    cloud_groups = [g for g in groups if g.power.get("type") == "cloud"]
    cloud_managers = dict(cloud(cloud_groups)) if cloud and cloud_groups else {}
    try:
        return {g.name: manager_for(g, cloud_managers) for g in groups}
    except BadInput as error:
        raise BadInput(f"{where}: {error}" if where else str(error)) from None


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
    metrics_address: str = "0.0.0.0",
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
