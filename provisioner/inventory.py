"""Ansible inventories of a deployment: the hosts reached over SSH, their groups and connection vars.

Only the front-end and the edge boards are reached over SSH: cloud workers join by
cloud-init and never appear here. The inventory is built once as plain data (``Inventory``: hosts,
groups, host variables) by pure functions, then rendered three ways that Ansible reads identically:

* INI (``inventory ID``, the default), YAML (``--format yaml``);
* the dynamic-inventory protocol (``--list`` → every group plus ``_meta.hostvars``, ``--host H``);
* ``--script PATH``: an executable that answers that protocol with the deployment id and the state
  (and config) file baked in, since Ansible calls it with nothing but ``--list`` / ``--host H``.

Groups: ``front_end``, ``edge`` and ``workers`` by role; ``k3s_server`` (the front-end) and
``k3s_agent`` (the edge boards) for the roles the playbooks apply; ``arch_amd64``/``arch_arm64``;
``group_<name>`` per node group of the template. Host variables carry what the roles need:
``oscar_node_group``, ``oscar_node_role``, ``oscar_node_arch``, ``oscar_node_address``,
``oscar_node_labels``, ``oscar_node_taints``.

Connection: the board's SSH user, key and port (or the deployment's key and the image's user for
cloud machines); ``become`` when the user is not root; host keys trusted on first use
(``StrictHostKeyChecking=accept-new``) into the deployment's own ``known_hosts`` and checked ever
after; no SSH multiplexing (a stale ControlPersist master can answer for a machine that was
replaced), pipelining instead. A board with ``proxy_jump`` is reached through the front-end with an
``ssh -W`` ProxyCommand that carries the same key and host-key file.

Where the facts come from: the state file only. Addresses from the recorded nodes; each group's
role, arch, labels, taints and boards (address, SSH login, key, ``proxy_jump``, arch) from the
deployment record (``provisioner.record``). The templates are never read again, so moved templates
and URL imports do not matter. Only a record written before the plan held all of this (no component
properties) falls back to reading its templates again, offline (no import is fetched), with a warning.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import shlex
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from provisioner.errors import BadInput, NotFound
from provisioner.record import KNOWN_HOSTS_FILE, Board, DeploymentRecord, GroupRecord
from provisioner.spec import ClusterSpec
from provisioner.state import Deployment, Node, StateStore

log = logging.getLogger(__name__)

Format = Literal["ini", "yaml"]
KEY_FILE = "id_ed25519"
"""The deployment's private key in its directory (written by the engine for cloud machines)."""
NO_MUX = "-o ControlMaster=no -o ControlPath=none"


@dataclasses.dataclass(frozen=True)
class Jump:
    """The host a board is reached through (the front-end)."""

    address: str
    port: int
    user: str
    key: str | None


@dataclasses.dataclass(frozen=True)
class InventoryHost:
    """One machine Ansible logs into."""

    name: str
    group: str
    role: str
    arch: str
    address: str
    port: int = 22
    user: str = "ubuntu"
    key: str | None = None
    """Private key file; None means the SSH agent or the user's default keys."""
    jump: Jump | None = None
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    taints: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Inventory:
    hosts: tuple[InventoryHost, ...]
    known_hosts: str
    """The deployment's known_hosts file (host keys trusted on first use)."""

    def host(self, name: str) -> InventoryHost:
        for host in self.hosts:
            if host.name == name:
                return host
        raise NotFound(f"no host {name!r} in the inventory (have: {', '.join(h.name for h in self.hosts)})")


# --- building the hosts (pure) ---------------------------------------------------------------------


def group_var_name(group: str) -> str:
    """A node group's Ansible group name: ``group_<name>`` with anything but [A-Za-z0-9_] as ``_``."""
    return "group_" + re.sub(r"[^A-Za-z0-9_]", "_", group)


def _first_address(node: Node | None) -> str | None:
    if node is None:
        return None
    for kind in ("public", "private"):
        values = node.addresses.get(kind) or []
        if values:
            return str(values[0])
    return None


def build_hosts(
    record: DeploymentRecord,
    nodes: Sequence[Node],
    spec: ClusterSpec | None = None,
    *,
    cloud_user: str,
    cloud_key: str | None,
) -> tuple[InventoryHost, ...]:
    """The front-end(s) and edge boards of a deployment, from its record and recorded nodes.

    ``spec`` is only for records that lack the boards' logins, labels or taints (written before the
    plan held them): what the record has always wins. Cloud workers are left out: they join by
    cloud-init.
    """
    by_name = {n.name: n for n in nodes}
    hosts: list[tuple[InventoryHost, bool]] = []  # (host, reached through the front-end)
    for group in record.groups:
        group_spec = _group_spec(spec, group.name)
        labels = dict(group.labels or getattr(group_spec, "labels", {}))
        taints = tuple(group.taints or getattr(group_spec, "taints", ()))
        boards = list(group.boards) or _spec_boards(group, group_spec)
        for board in boards:
            host = InventoryHost(
                name=board.name, group=group.name, role=group.role, arch=board.arch or group.arch,
                address=_first_address(by_name.get(board.name)) or board.address, port=board.ssh_port,
                user=board.ssh_user, key=board.ssh_key or None, labels=labels, taints=taints)
            hosts.append((host, board.proxy_jump))
        if not boards and group.role == "front-end":
            for node in (n for n in nodes if n.group == group.name):
                address = _first_address(node)
                if address is not None:  # None: not running yet, nothing to log into
                    hosts.append((InventoryHost(name=node.name, group=group.name, role=group.role,
                                                arch=group.arch, address=address, user=cloud_user,
                                                key=cloud_key, labels=labels, taints=taints), False))
    front = next((Jump(h.address, h.port, h.user, h.key) for h, jumps in hosts
                  if h.role == "front-end" and not jumps), None)
    out = []
    for host, jumps in hosts:
        if jumps:
            if front is None:
                raise BadInput(f"board {host.name} is to be reached through the front-end (proxy_jump), "
                               "but the deployment has no front-end reachable over SSH")
            host = dataclasses.replace(host, jump=front)
        out.append(host)
    return tuple(out)


def _group_spec(spec: ClusterSpec | None, name: str) -> Any:
    if spec is None:
        return None
    try:
        return spec.group(name)
    except KeyError:
        return None


def _spec_boards(group: GroupRecord, group_spec: Any) -> list[Board]:
    """A group's boards from the ClusterSpec read again, for records older than the boards' logins."""
    if group_spec is not None and group_spec.boards:
        return [Board(name=b.name, address=b.address, ssh_user=b.ssh_user, ssh_port=b.ssh_port,
                      ssh_key=b.ssh_key, proxy_jump=b.proxy_jump, arch=b.arch, cpus=b.cpus,
                      memory_mib=b.memory_mib) for b in group_spec.boards]
    if not group.cloud:
        log.warning("group %s: its boards' addresses are not recorded; they are left out", group.name)
    return []


# --- variables and groups (pure) -------------------------------------------------------------------


def ssh_common_args(host: InventoryHost, known_hosts: str) -> str:
    """The ssh options every connection to ``host`` uses (also the ``ssh`` command's)."""
    opts = [
        "-o", "IdentitiesOnly=yes" if host.key else "IdentitiesOnly=no",
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "StrictHostKeyChecking=accept-new",
        "-o", "BatchMode=yes",
        "-o", "ConnectTimeout=10",
    ]
    if host.jump is not None:
        jump = host.jump
        proxy = ["ssh", "-F", "/dev/null", "-p", str(jump.port), *(["-i", jump.key] if jump.key else []),
                 "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=accept-new",
                 "-o", "BatchMode=yes", "-o", "ControlMaster=no", "-o", "ControlPath=none",
                 "-W", "%h:%p", "-l", jump.user, "--", jump.address]
        opts += ["-o", f"ProxyCommand={shlex.join(proxy)}"]
    return shlex.join(opts)


def host_vars(host: InventoryHost, known_hosts: str) -> dict[str, Any]:
    """Every variable the inventory gives ``host``: connection first, then what the roles read."""
    out: dict[str, Any] = {
        "ansible_host": host.address,
        "ansible_port": host.port,
        "ansible_user": host.user,
    }
    if host.key:
        out["ansible_ssh_private_key_file"] = host.key
    out["ansible_ssh_common_args"] = ssh_common_args(host, known_hosts)
    out["ansible_ssh_args"] = NO_MUX
    out["ansible_pipelining"] = True
    if host.user != "root":
        out["ansible_become"] = True
    out.update({
        "oscar_node_group": host.group,
        "oscar_node_role": host.role,
        "oscar_node_arch": host.arch,
        "oscar_node_address": host.address,
        "oscar_node_labels": dict(host.labels),
        "oscar_node_taints": list(host.taints),
    })
    return out


def ansible_groups(hosts: Iterable[InventoryHost]) -> dict[str, list[str]]:
    """Group → host names, every group always present (so plays aimed at an empty one are fine)."""
    groups: dict[str, list[str]] = {"front_end": [], "edge": [], "workers": [], "k3s_server": [],
                                    "k3s_agent": [], "arch_amd64": [], "arch_arm64": []}
    role_groups = {"front-end": ("front_end", "k3s_server"), "edge": ("edge", "k3s_agent"),
                   "worker": ("workers", "k3s_agent")}
    for host in hosts:
        for group in (*role_groups.get(host.role, ()), f"arch_{host.arch}", group_var_name(host.group)):
            groups.setdefault(group, []).append(host.name)
    return groups


# --- rendering -------------------------------------------------------------------------------------


def dynamic_list(inventory: Inventory) -> dict[str, Any]:
    """The ``--list`` document of Ansible's dynamic-inventory protocol (hostvars inlined in ``_meta``)."""
    groups = ansible_groups(inventory.hosts)
    doc: dict[str, Any] = {
        "_meta": {"hostvars": {h.name: host_vars(h, inventory.known_hosts) for h in inventory.hosts}},
        "all": {"children": ["ungrouped", *groups]},
    }
    for group, members in groups.items():
        doc[group] = {"hosts": members}
    return doc


def dynamic_host(inventory: Inventory, name: str) -> dict[str, Any]:
    """The ``--host H`` answer: that host's variables."""
    return host_vars(inventory.host(name), inventory.known_hosts)


def _ini_value(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"  # the INI parser literal_evals host vars
    if isinstance(value, (dict, list)):
        return "'" + json.dumps(value, separators=(",", ":")) + "'"
    text = str(value)
    if re.fullmatch(r"[A-Za-z0-9_./:@%+=,-]+", text):
        return text
    if "'" not in text:
        return f"'{text}'"
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_ini(inventory: Inventory) -> str:
    """The INI inventory: hosts with their variables on one line each, then the groups."""
    lines = ["# oscar-deploy inventory: front-end and edge boards (cloud workers join by cloud-init)"]
    groups = ansible_groups(inventory.hosts)
    first_group = {h.name: g for g, members in groups.items() for h in inventory.hosts if h.name in members}
    defined: set[str] = set()
    for group, members in groups.items():
        lines.append(f"\n[{group}]")
        for name in members:
            if name in defined or first_group.get(name) != group:
                lines.append(name)
                continue
            defined.add(name)
            hv = host_vars(inventory.host(name), inventory.known_hosts)
            lines.append(name + "".join(f" {k}={_ini_value(v)}" for k, v in hv.items()))
    return "\n".join(lines) + "\n"


def render_yaml(inventory: Inventory) -> str:
    """The YAML inventory (Ansible's ``yaml`` inventory plugin format)."""
    import yaml

    groups = ansible_groups(inventory.hosts)
    doc = {"all": {
        "hosts": {h.name: host_vars(h, inventory.known_hosts) for h in inventory.hosts},
        "children": {g: ({"hosts": {m: None for m in members}} if members else {})
                     for g, members in groups.items()},
    }}
    header = "# oscar-deploy inventory: front-end and edge boards (cloud workers join by cloud-init)\n"
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=1000)


def render(inventory: Inventory, fmt: Format = "ini") -> str:
    if fmt == "yaml":
        return render_yaml(inventory)
    return render_ini(inventory)


def script_text(deployment_id: str, state_path: Path, config_path: str | None = None,
                python: str | None = None) -> str:
    """The dynamic-inventory executable: this Python, this deployment, this state (and config) file."""
    argv = ["--state", str(state_path)]
    if config_path:
        argv = ["--config", str(Path(config_path).resolve()), *argv]
    argv += ["-q", "inventory", deployment_id]
    return (
        f"#!{python or sys.executable}\n"
        f"# Ansible dynamic inventory of oscar-deploy deployment {deployment_id}\n"
        "# (written by `oscar-deploy inventory ID --script PATH`; Ansible runs it with --list or --host H).\n"
        "import sys\n\n"
        "from provisioner.cli import main\n\n"
        f"main([*{argv!r}, *sys.argv[1:]], prog_name='oscar-deploy')\n"
    )


def write_script(path: Path, deployment_id: str, state_path: Path, config_path: str | None = None) -> Path:
    """Write the dynamic-inventory executable (mode 0755: it holds no secret, only paths)."""
    path = Path(path)
    text = script_text(deployment_id, state_path.resolve(), config_path)
    if path.is_dir():
        raise _unwritable(path, "it is a directory")
    if not path.parent.is_dir():
        raise _unwritable(path, f"{path.parent} is not a directory")
    try:
        # A new file is made under a temporary name, then renamed: a failed write leaves nothing behind.
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o755)
    except OSError as error:
        raise _unwritable(path, error.strerror or str(error)) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, 0o755)
        os.replace(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise _unwritable(path, error.strerror or str(error)) from None
    return path


def _unwritable(path: Path, why: str) -> BadInput:
    return BadInput(f"{path}: cannot write the inventory script there: {why}")


# --- from the state file (I/O edge) ----------------------------------------------------------------


def plan_is_complete(record: DeploymentRecord) -> bool:
    """Whether a record holds everything later commands need: older ones lack the component
    properties (their templates are then read again, offline)."""
    return record.component_properties is not None


def legacy_spec(deployment: Deployment, secrets: Mapping[str, str]) -> ClusterSpec | None:
    """For a record written before the plan held everything: its ClusterSpec read again from the
    recorded templates, OFFLINE (no cache directory: a URL import is never fetched; only files on
    disk are read). None, with a warning, when they no longer load."""
    from provisioner.errors import OscarDeployError

    log.warning("deployment %s was recorded by an older oscar-deploy: its templates are read again, "
                "offline (no import is fetched); `create` again to record a complete plan", deployment.name)
    paths = [Path(t) for t in deployment.templates]
    if not paths or not all(p.is_file() for p in paths):
        log.warning("deployment %s: its templates are gone; using the recorded plan only", deployment.name)
        return None
    inputs: dict[str, Any] = {}
    for key, value in deployment.inputs.items():
        match = re.fullmatch(r"\{secret\.([A-Za-z0-9_]+)\}", str(value))
        inputs[key] = secrets.get(match.group(1), "") if match else value
    try:
        from provisioner.template import load_cluster_spec

        return load_cluster_spec(paths, inputs, cache_dir=None)
    except OscarDeployError as error:
        log.warning("deployment %s: its templates no longer load offline (%s); using the recorded plan "
                    "only", deployment.name, error)
        return None


def deployment_inventory(
    store: StateStore, deployment: Deployment, *, spec: ClusterSpec | None = None,
    cloud_user: str = "ubuntu", cache_dir: Path | None = None,
) -> Inventory:
    """The inventory of a recorded deployment, from the state file alone (see the module docstring).

    ``spec`` and (unused, kept for callers) ``cache_dir``: only a record older than the complete plan
    uses a ClusterSpec, the caller's or ``legacy_spec``'s."""
    del cache_dir  # nothing is fetched: the record has all
    directory = store.deployment_dir(deployment.id)
    record = store.record(deployment.id)
    if spec is None and not plan_is_complete(record):
        spec = legacy_spec(deployment, store.secrets(deployment.id))
    key = directory / KEY_FILE
    hosts = build_hosts(record, store.nodes(deployment.id), spec, cloud_user=cloud_user,
                        cloud_key=str(key) if key.exists() else None)
    known_hosts = directory / KNOWN_HOSTS_FILE
    if not known_hosts.exists():
        fd = os.open(known_hosts, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
    return Inventory(hosts=hosts, known_hosts=str(known_hosts))


def ssh_argv(inventory: Inventory, node: str, command: Sequence[str] = ()) -> list[str]:
    """``ssh`` argv that logs into ``node`` (a host name, or a group name: its first host) exactly as
    Ansible does: same user, port, key, known_hosts and jump; ``command`` runs there if given."""
    hosts = inventory.hosts
    candidates = [h for h in hosts if h.name == node] or [h for h in hosts if h.group == node]
    if not candidates:
        raise NotFound(f"no node {node!r} reachable over SSH (have: {', '.join(h.name for h in hosts)}"
                       "; cloud workers join by cloud-init and are reached through the front-end)")
    host = candidates[0]
    argv = ["ssh", "-F", "/dev/null", "-p", str(host.port), *shlex.split(NO_MUX)]
    if host.key:
        argv += ["-i", host.key]
    argv += shlex.split(ssh_common_args(host, inventory.known_hosts))
    if not command:  # an interactive login may ask questions (a passphrase)
        at = argv.index("BatchMode=yes")
        del argv[at - 1:at + 1]
    # The user as an option's value and ``--`` before the host, so neither can be read as an option;
    # the command follows the host (ssh parses no option after ``--``).
    argv += ["-l", host.user, "--", host.address, *command]
    return argv
