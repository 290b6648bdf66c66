"""The configuration step: run ``playbooks/site.yml`` on a deployment's front-end and edge boards.

The engine calls, after provisioning (and ``reconfigure ID`` calls again)::

    configure_deployment(store, deployment, plan=None, settings=None, *, progress=True,
                         extra_vars=None, check=False) -> ConfigureResult

(and gives every new cloud worker ``provisioner.cloudinit.worker_user_data(store, deployment, group)``
as user data: workers join by cloud-init, never over SSH). ``kubeconfig_path`` and ``log_path`` name
the files a run leaves in the deployment's directory (for ``kubeconfig`` and ``show``).

Everything comes from the deployment's record (``provisioner.record``): its groups, boards and
component properties, its nodes and secrets. The
templates are never read again. ``plan`` (a ``provisioner.plan.Plan``) is only used for a record
written before the plan held the component properties; such a record without it falls back to its
templates read again offline (``provisioner.inventory.legacy_spec``, a warning).

``progress`` is ``True`` (one line per task on stderr), ``False`` (silent), or the engine's
``Progress`` object (a phase for the run).
``extra_vars`` wins over the generated variables (e.g. ``{"airgap_dir": "/srv/oscar-airgap"}``), and
over the YAML file a ``[provisioner] ansible_vars`` setting names, if the settings have that key.
``check=True`` is a dry run (``ansible-playbook --check --diff``): what would change, nothing changed.

How a run goes:

* The host keys of the boards the elastic daemon halts over SSH that the deployment's ``known_hosts``
  does not hold yet are learned first (``learn_board_host_keys``: the fleet's probe, as ``create``
  does), so the daemon's ConfigMap is the same on the first run and the next.
* ansible-runner in a private data dir made inside the deployment's directory (0700): the generated
  inventory (``provisioner.inventory``) and the variables (``configuration_vars``: components, their
  properties, the generated secrets) in ``env/extravars``, written 0600 and removed with the whole
  dir after the run, whatever happens. The project is the shipped ``playbooks/`` dir.
* Every Ansible event goes to the deployment's log (``<deployment dir>/configure.log``, 0600,
  appended; the ``configure`` event in the state file names it) and to the progress display on
  stderr. Secret values never reach either: tasks that template them are ``no_log`` or ``diff: false``.
* A task that fails ends the run with ``RemoteError`` (exit 1) naming the host, the task and
  Ansible's message. Hosts that are unreachable (and nothing else failed) are retried
  ``[provisioner] ansible_unreachable_retries`` times with a growing pause, then ``RemoteError``
  names them with their address. A retry runs the (idempotent) playbook on those hosts only
  (``--limit``): the others finished, and no host's variables depend on another's facts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import yaml

from provisioner.clouds.fleet import FleetDriver
from provisioner.config import Settings
from provisioner.errors import BadInput, NotFound, RemoteError
from provisioner.inventory import (
    Inventory,
    deployment_inventory,
    legacy_spec,
    plan_is_complete,
    render_yaml,
)
from provisioner.k3sca import ca_files_on_server
from provisioner.knownhosts import board_known_hosts, missing_keys
from provisioner.record import (
    KNOWN_HOSTS_FILE,
    DeploymentRecord,
    daemon_groups,
    halted_boards,
    read_record,
    server_url,
)
from provisioner.resources import playbooks_dir
from provisioner.spec import BoardSpec, ClusterSpec
from provisioner.state import Deployment, StateStore

log = logging.getLogger(__name__)

PLAYBOOK = "site.yml"
LOG_FILE = "configure.log"
KUBECONFIG_FILE = "kubeconfig"
K3S_PORT = 6443


@dataclasses.dataclass(frozen=True)
class HostFailure:
    host: str
    task: str
    message: str
    unreachable: bool = False


@dataclasses.dataclass(frozen=True)
class ConfigureResult:
    """What the last attempt did, per host (Ansible's recap)."""

    ok: Mapping[str, int]
    changed: Mapping[str, int]
    attempts: int
    log_path: Path

    @property
    def total_changed(self) -> int:
        return sum(self.changed.values())


# --- variables (pure) ------------------------------------------------------------------------------


def filled(value: Any, secrets: Mapping[str, str]) -> Any:
    """A component property with ``{secret.NAME}`` placeholders replaced by the stored values."""
    if isinstance(value, str):
        for name, secret in secrets.items():
            value = value.replace(f"{{secret.{name}}}", secret)
        return value
    if isinstance(value, Mapping):
        return {str(k): filled(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [filled(v, secrets) for v in value]
    return value


def recorded_component_properties(record: DeploymentRecord, spec: ClusterSpec | None = None
                                  ) -> list[dict[str, Any]] | None:
    """The template's components and their properties (secrets as ``{secret.NAME}``), as the record
    keeps them; for an older record, from ``spec`` if given; else None."""
    if record.component_properties is not None:
        return [dict(c) for c in record.component_properties]
    if spec is not None:
        return [{"name": c.name, "properties": dict(c.properties)} for c in spec.components]
    return None


def service_logins(props: Mapping[str, Any], secrets: Mapping[str, str]) -> dict[str, str]:
    """OSCAR's and MinIO's logins from the components' filled properties (``props`` by lower-case
    name), else the defaults and the generated passwords: what the roles install and ``check`` uses."""
    minio, oscar = props.get("minio", {}), props.get("oscar", {})
    return {
        "minio_access_key": str(minio.get("access_key") or "minio"),
        "minio_secret_key": str(minio.get("secret_key") or secrets.get("minio_password", "")),
        "oscar_username": str(oscar.get("username") or "oscar"),
        "oscar_password": str(oscar.get("password") or secrets.get("oscar_password", "")),
    }


def configuration_vars(deployment: Deployment, secrets: Mapping[str, str], inventory: Inventory,
                       deployment_dir: Path, components: list[dict[str, Any]] | None = None
                       ) -> dict[str, Any]:
    """The extra variables of a run: who the deployment is, what to install, the secrets it needs.

    Read from the deployment's record; ``components`` (``recorded_component_properties``) defaults to
    the record's own."""
    record, _migrated = read_record(deployment.plan)
    if components is None:
        components = recorded_component_properties(record)
    names = [c.name for c in record.components]
    props: dict[str, Any] = {}
    if components is not None:
        names = sorted({str(c["name"]).lower() for c in components} | {"k3s"})
        for component in components:
            key = str(component["name"]).lower().replace("-", "_")
            props[key] = filled(dict(component.get("properties") or {}), secrets)
    fronts = [h for h in inventory.hosts if h.role == "front-end"]
    front_address = fronts[0].address if fronts else None
    minio = props.get("minio", {})
    oscar = props.get("oscar", {})  # its OIDC settings below; logins from service_logins
    out: dict[str, Any] = {
        "oscar_deployment_id": deployment.id,
        "oscar_deployment_name": deployment.name,
        "oscar_components": names,
        "oscar_dns_name": record.dns_name or "",
        "oscar_front_address": front_address or "",
        "oscar_admin_cidr": record.admin_cidr,
        "oscar_hosts": {h.name: h.address for h in inventory.hosts},
        "oscar_kubeconfig_dest": str(deployment_dir / KUBECONFIG_FILE),
        "k3s_server_url": server_url(front_address) if front_address else "",
        "k3s_token": secrets.get("k3s_token", ""),
        # agents and the daemon join with the agent token; the server places its CAs before it starts
        "k3s_agent_token": secrets.get("k3s_agent_token") or secrets.get("k3s_token", ""),
        "k3s_ca_files": ca_files_on_server(secrets.get("k3s_ca")),
        # The hybrid template: boards behind NAT and cloud nodes talk over WireGuard.
        "k3s_wireguard": record.hybrid,
        **service_logins(props, secrets),
        "minio_api_port": int(minio.get("api_port") or 30300),
        "minio_console_port": int(minio.get("console_port") or 30303),
        # in the pod, cloud groups carry their launch specs: it never sees the state file
        "elastic_groups": daemon_groups(record, deployment.id, launch=True, node_keys=False,
                                        warn=lambda message: log.warning("deployment %s: %s", deployment.name,
                                                                         message)),
        # the template's elasticity settings (merged with [elastic] at plan time): the pod's env
        "elastic_settings": {k: v for k, v in (record.elastic or {}).items() if v is not None},
        # an instance profile on the front-end: the daemon's AWS credentials, through the node's network
        "elastic_host_network": bool(record.front_end is not None and record.front_end.launch is not None
                                     and record.front_end.launch.instance_profile),
        "oscar_deploy_version": _own_version(),
        # every CPU architecture a node of the deployment has (boards, cloud workers included): the
        # oscar role gives OSCAR's shared volume a supervisor build for each when there is more than one
        "oscar_node_arches": node_arches(record),
    }
    out.update(daemon_ssh_files(record, _read_known_hosts(deployment_dir / KNOWN_HOSTS_FILE)))
    front_group = record.front_end
    if front_group is not None and front_group.volume_gib:  # the front-end's data volume, at /pv
        out["oscar_data_dir"] = "/pv"
        out["nfs_data_volume"] = True
    for key in ("oidc_issuer", "oidc_subject", "oidc_groups"):
        if oscar.get(key):
            out[f"oscar_{key}"] = oscar[key]
    return out


def daemon_ssh_files(record: DeploymentRecord, known_hosts: str = "") -> dict[str, str]:
    """What the daemon in its pod halts boards over SSH with: the boards' login key, one for all (its
    Secret: the pod mounts one), and the host keys of the boards it halts (its ConfigMap's
    ``known_hosts``, checked strictly), picked from ``known_hosts`` (the deployment's file) by
    ``knownhosts.board_known_hosts``: the deployment's file changes with every connection (order,
    hashing, other nodes), that text does not, so the manifests of two runs are the same. Boards
    reached through the front-end are not halted over SSH. A site's ``elastic_known_hosts`` wins."""
    out: dict[str, str] = {}
    pinned = board_known_hosts(known_hosts, halted_boards(record))
    if pinned:
        out["elastic_known_hosts"] = pinned
    halted = [b for group in record.groups for b in group.boards if not b.proxy_jump]
    keys = sorted({b.ssh_key for b in halted if b.ssh_key})
    if len(keys) > 1:
        log.warning("boards log in with %d different keys; the daemon in its pod mounts one, %s",
                    len(keys), keys[0])
    if not keys:
        return out
    try:
        return {**out, "elastic_ssh_private_key": Path(keys[0]).expanduser().read_text()}
    except OSError as error:
        log.warning("the daemon cannot halt boards over SSH: %s: %s", keys[0], error.strerror)
        return out


def _read_known_hosts(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def learn_board_host_keys(store: StateStore, deployment: Deployment, settings: Settings,
                          extra_vars: Mapping[str, Any] | None = None) -> bool:
    """Before the variables are rendered: the host keys of the boards the daemon halts that the
    deployment's known_hosts does not have yet, learned as ``create`` learns them (the fleet's probe,
    ``StrictHostKeyChecking=accept-new``), so the first run renders the daemon's ConfigMap the next
    ones do. Nothing when the site or the caller gives ``elastic_known_hosts``. True when it probed."""
    if "elastic_known_hosts" in playbook_variables({}, settings.provisioner.ansible_vars, extra_vars):
        return False
    path = store.deployment_dir(deployment.id) / KNOWN_HOSTS_FILE
    missing = missing_keys(_read_known_hosts(path), halted_boards(store.record(deployment.id)))
    if not missing:
        return False
    boards = [BoardSpec(name=b.name, address=b.address, ssh_user=b.ssh_user, ssh_key=b.ssh_key,
                        ssh_port=b.ssh_port) for b in missing]
    fleet = FleetDriver({"halted": boards}, known_hosts=path,
                        timeout_s=min(30.0, settings.provisioner.ssh_timeout_s))
    for failed in fleet.check_reachable():
        log.warning("%s: host key not learned (%s); the daemon in its pod will cut its power without halting "
                    "it until a configure run learns it", failed.name, failed.reason)
    return True


def node_arches(record: DeploymentRecord) -> list[str]:
    """The architectures of every node the deployment may run (``amd64``, ``arm64``, ``arm``), sorted."""
    arches = {group.arch for group in record.groups}
    arches |= {board.arch for group in record.groups for board in group.boards}
    return sorted(arches)


def _own_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("oscar-deploy")
    except metadata.PackageNotFoundError:
        return "latest"


def playbook_variables(generated: Mapping[str, Any], site_vars_file: str,
                       extra_vars: Mapping[str, Any] | None) -> dict[str, Any]:
    """The variables a run gets: the deployment's own, then the site's file (``[provisioner]
    ansible_vars``, e.g. ``airgap_dir``), then the caller's (``reconfigure --vars``): later wins."""
    site = read_vars_file(Path(site_vars_file).expanduser()) if site_vars_file else {}
    return {**generated, **site, **dict(extra_vars or {})}


def read_vars_file(path: Path) -> dict[str, Any]:
    """A YAML mapping of playbook variables (``reconfigure --vars``); ``BadInput`` naming the file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise BadInput(f"{path}: cannot read the variables: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise BadInput(f"{path}: expected a mapping of variable names to values")
    return data


# --- events (progress and log) ---------------------------------------------------------------------


_OUTCOMES = {"runner_on_ok": "ok", "runner_on_failed": "failed", "runner_on_skipped": "skipped",
             "runner_on_unreachable": "unreachable"}
"""ansible-runner's per-host result events, and the word a task line uses for each."""


class _Events:
    """Collects what a run says: failures by host, the recap, and one log/progress line per event."""

    def __init__(self, logfile: IO[str], show: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logfile = logfile
        self.show = show
        self.failures: list[HostFailure] = []
        self.stats: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._task: tuple[str, float] | None = None  # the running task and when it started
        self._outcomes: dict[str, int] = {}

    def _finish_task(self) -> None:
        """One line for the task that just finished: its name, what it did on how many hosts, how long."""
        if self._task is None:
            return
        name, started = self._task
        said = ", ".join(f"{kind} {count}" for kind, count in self._outcomes.items()) or "no host"
        self.show(f"  {name}: {said} ({self._clock() - started:.0f} s)")
        self._task, self._outcomes = None, {}

    def __call__(self, event: Mapping[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        stdout = str(event.get("stdout") or "").strip()
        with self._lock:
            if stdout:
                self.logfile.write(stdout + "\n")
                self.logfile.flush()
            outcome = _OUTCOMES.get(kind)
            if outcome == "ok" and (data.get("res") or {}).get("changed"):
                outcome = "changed"
            if outcome:
                self._outcomes[outcome] = self._outcomes.get(outcome, 0) + 1
            if kind in ("playbook_on_task_start", "playbook_on_play_start", "playbook_on_stats"):
                self._finish_task()
            if kind == "playbook_on_task_start":
                self._task = (str(data.get("task", "")), self._clock())
            if kind == "playbook_on_play_start":
                self.show(f"play: {data.get('play', data.get('name', ''))}")
            if kind == "runner_on_failed" and not data.get("ignore_errors"):
                self.failures.append(HostFailure(str(data.get("host")), str(data.get("task")),
                                                 _message(data.get("res") or {})))
            elif kind == "runner_on_unreachable":
                self.failures.append(HostFailure(str(data.get("host")), str(data.get("task")),
                                                 _message(data.get("res") or {}), unreachable=True))
            elif kind == "playbook_on_stats":
                self.stats = {key: dict(data.get(key) or {}) for key in ("ok", "changed", "failures", "dark")}
        return True


def _message(res: Mapping[str, Any]) -> str:
    """Ansible's reason, shortest useful form (no_log results say so themselves)."""
    for key in ("msg", "stderr", "stdout", "reason"):
        value = res.get(key)
        if value:
            text = " ".join(str(value).split())
            return text[:500] + ("…" if len(text) > 500 else "")
    return json.dumps(res)[:300] if res else "no message"


# --- the run ---------------------------------------------------------------------------------------


def kubeconfig_path(store: StateStore, deployment: Deployment) -> Path:
    """The kubeconfig the configuration fetched (0600); ``NotFound`` if there is none yet."""
    path = store.deployment_dir(deployment.id) / KUBECONFIG_FILE
    if not path.exists():
        raise NotFound(f"deployment {deployment.name} has no kubeconfig yet: it is fetched when the "
                       f"configuration runs (`oscar-deploy reconfigure {deployment.name}`)")
    return path


def log_path(store: StateStore, deployment: Deployment) -> Path:
    return store.deployment_dir(deployment.id) / LOG_FILE


@contextlib.contextmanager
def _private_data_dir(parent: Path, inventory: Inventory, variables: Mapping[str, Any]) -> Iterator[Path]:
    """ansible-runner's input dir: inventory and extra vars (0600), removed with everything in it."""
    directory = Path(tempfile.mkdtemp(prefix="ansible-", dir=parent))
    try:
        (directory / "inventory").mkdir(mode=0o700)
        (directory / "inventory" / "hosts.yml").write_text(render_yaml(inventory))
        (directory / "env").mkdir(mode=0o700)
        fd = os.open(directory / "env" / "extravars", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            yaml.safe_dump(dict(variables), handle, sort_keys=True)
        yield directory
    finally:
        with contextlib.suppress(FileNotFoundError):
            (directory / "env" / "extravars").unlink()
        shutil.rmtree(directory, ignore_errors=True)


def _envvars() -> dict[str, str]:
    """ansible-playbook from this environment (ansible-runner needs it on PATH), plain output."""
    bin_dir = str(Path(sys.executable).parent)
    return {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
        "ANSIBLE_ROLES_PATH": str(playbooks_dir() / "roles"),
        "ANSIBLE_GALAXY_DISABLE_GPG_VERIFY": "1",
    }


def run_playbook(inventory: Inventory, variables: Mapping[str, Any], *, workdir: Path, logfile: IO[str],
                 show: Callable[[str], None], playbook: str = PLAYBOOK, limit: str | None = None,
                 check: bool = False) -> _Events:
    """One ansible-runner run of ``playbook``; returns what it reported."""
    import ansible_runner

    events = _Events(logfile, show)
    with _private_data_dir(workdir, inventory, variables) as data_dir:
        cmdline = "--check --diff" if check else None
        ansible_runner.run(
            private_data_dir=str(data_dir), project_dir=str(playbooks_dir()), playbook=playbook,
            inventory=str(data_dir / "inventory" / "hosts.yml"), envvars=_envvars(), limit=limit,
            cmdline=cmdline, event_handler=events, quiet=True, json_mode=False, rotate_artifacts=1,
        )
    return events


def run_inputs(store: StateStore, deployment: Deployment, settings: Settings, *, plan: Any = None,
               extra_vars: Mapping[str, Any] | None = None) -> tuple[Inventory, dict[str, Any]]:
    """What a run (or a ``--check`` dry run) gets: the inventory and every variable, from the record.

    The templates are read again only for a record older than the complete plan, offline, when the
    caller has no ``plan`` (whose ``spec`` is then used)."""
    spec = None
    record = store.record(deployment.id)
    deployment = store.get(deployment.id)  # as migrated
    if not plan_is_complete(record):
        spec = getattr(plan, "spec", None) or legacy_spec(deployment, store.secrets(deployment.id))
    inventory = deployment_inventory(store, deployment, spec=spec, cloud_user=settings.provisioner.ssh_user)
    generated = configuration_vars(deployment, store.secrets(deployment.id), inventory,
                                   store.deployment_dir(deployment.id),
                                   recorded_component_properties(record, spec))
    return inventory, playbook_variables(generated, settings.provisioner.ansible_vars, extra_vars)


def configure_deployment(
    store: StateStore,
    deployment: Deployment,
    plan: Any = None,
    settings: Settings | None = None,
    *,
    progress: Any = True,
    extra_vars: Mapping[str, Any] | None = None,
    playbook: str = PLAYBOOK,
    check: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> ConfigureResult:
    """Configure ``deployment`` (see the module docstring); ``RemoteError`` when a host fails."""
    settings = settings or Settings()
    directory = store.deployment_dir(deployment.id)
    inventory, variables = run_inputs(store, deployment, settings, plan=plan, extra_vars=extra_vars)
    if learn_board_host_keys(store, deployment, settings, extra_vars):  # the inventory made its known_hosts
        inventory, variables = run_inputs(store, deployment, settings, plan=plan, extra_vars=extra_vars)
    if not inventory.hosts:
        raise RemoteError(f"deployment {deployment.name}: no front-end or edge board to configure "
                          "(none has an address yet)")
    path = log_path(store, deployment)
    retries = max(0, settings.provisioner.ansible_unreachable_retries)
    what = "dry run (check mode)" if check else "started"
    store.add_event(deployment.id, "configure", f"{what} on {len(inventory.hosts)} host(s); log: {path}")
    with _display(progress) as show, open(path, "a", encoding="utf-8") as logfile:
        os.chmod(path, 0o600)
        attempt = 0
        limit: str | None = None
        while True:
            attempt += 1
            logfile.write(f"\n=== {datetime.now(UTC).isoformat(timespec='seconds')} {playbook} "
                          f"attempt {attempt}{f' on {limit}' if limit else ''} ===\n")
            events = run_playbook(inventory, variables, workdir=directory, logfile=logfile, show=show,
                                  playbook=playbook, limit=limit, check=check)
            failed = [f for f in events.failures if not f.unreachable]
            unreachable = _unreachable(events)
            if failed:
                store.add_event(deployment.id, "configure-failed", _describe(failed))
                raise RemoteError(f"configuration failed: {_describe(failed)} (log: {path})")
            if not unreachable:
                break
            if attempt > retries:
                message = "; ".join(f"{f.host} ({inventory.host(f.host).address}) is unreachable: {f.message}"
                                    for f in unreachable)
                store.add_event(deployment.id, "configure-failed", message)
                raise RemoteError(f"{message} (after {attempt} attempts; log: {path})")
            pause = min(settings.provisioner.retry_max_s, settings.provisioner.retry_base_s * 2 ** attempt)
            show(f"  unreachable: {', '.join(f.host for f in unreachable)}; retrying in {pause:.0f} s")
            sleep(pause)
            # The others finished: only the unreachable hosts run again (their variables need no other
            # host's facts: the server URL and token are extra vars).
            limit = ",".join(f.host for f in unreachable)
    changed = sum(events.stats.get("changed", {}).values())
    # "done" marks a configured cluster (``views.configuration``); a dry run configured nothing
    store.add_event(deployment.id, "configure", f"{'dry run finished' if check else 'done'} ({changed} "
                                                "change(s))")
    return ConfigureResult(ok=events.stats.get("ok", {}), changed=events.stats.get("changed", {}),
                           attempts=attempt, log_path=path)


def _unreachable(events: _Events) -> list[HostFailure]:
    seen: dict[str, HostFailure] = {}
    for failure in events.failures:
        if failure.unreachable:
            seen.setdefault(failure.host, failure)
    return list(seen.values())


def _describe(failures: list[HostFailure]) -> str:
    return "; ".join(f"{f.host}: task '{f.task}': {f.message}" for f in failures)


@contextlib.contextmanager
def _display(progress: Any) -> Iterator[Callable[[str], None]]:
    """Where task lines go: stderr (True), nowhere (False), or the engine's Progress (a phase)."""
    if progress is True:
        def show(line: str) -> None:
            print(line, file=sys.stderr, flush=True)

        print("configuring (Ansible):", file=sys.stderr, flush=True)
        yield show
    elif progress is False or progress is None:
        yield lambda _line: None
    else:
        with progress.phase("configuring (Ansible)", 1) as phase:
            yield lambda line: log.info("%s", line.strip())
            phase.advance()
