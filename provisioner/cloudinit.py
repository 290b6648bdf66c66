"""Cloud-init user data that makes a new cloud machine a k3s agent of its deployment, with no SSH.

Cloud workers join by cloud-init, never over SSH. The user data is rendered from the very variables the
playbooks use, so a worker ends up like a board the ``common`` and ``k3s_agent`` roles configured:

* ``common``'s settings from ``playbooks/roles/common/defaults/main.yml`` (packages, kernel modules,
  sysctls, the rule that keeps pods from the instance metadata service and its unit, rendered from the
  role's own templates), as cloud-config ``packages``, ``write_files`` and ``runcmd``, all in place
  before k3s starts: under ``protect-kernel-defaults`` a kubelet whose kernel differs will not start;
* the k3s agent: ``/etc/rancher/k3s/config.yaml`` (0600: it holds the join token) with the server URL,
  token, node labels (``oscar-deploy/group``, ``oscar-deploy/role``, ``oscar-deploy/arch`` and the
  template's), taints and the hardening guide's kubelet settings (``group_vars/all/main.yml``), the
  same keys ``k3s_agent`` writes; then k3s's own install script at the
  pinned tag of ``playbooks/group_vars/all/versions.yml``, which checks the binary's checksum.
* in a hybrid cluster, k3s's ``node-external-ip``: the machine's public address, read from the instance
  metadata service at boot (the only place it is known), so boards reach the worker over WireGuard
  (k3s's "distributed hybrid or multicloud cluster", ``provisioner.mesh``);
* the node's name (the daemon expects a node to register under its ``name``): a cloud worker's hostname is the
  cloud's (``ip-10-…`` on EC2), so its user data sets k3s ``node-name`` to its cloud name, and the
  hostname too, as the ``common`` role does for boards (which then register under their hostname, so
  ``k3s_agent`` needs no ``node-name``). User data is therefore rendered per machine, not per group.

``render_user_data`` is pure (tests validate its output against cloud-init's JSON schema);
``worker_join`` reads a recorded deployment once per group, ``node_user_data`` renders it for each
machine the engine or the elasticity daemon creates.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from provisioner.errors import BadInput, NotFound, TemplateError
from provisioner.record import JoinInputs, server_url
from provisioner.record import node_labels as record_labels
from provisioner.resources import playbooks_dir
from provisioner.spec import NODE_NAME

K3S_CONFIG = "/etc/rancher/k3s/config.yaml"
K3S_PORT = 6443
INSTALL_URL = "https://raw.githubusercontent.com/k3s-io/k3s/{version}/install.sh"
"""k3s's install script at the pinned release tag (not get.k3s.io's moving copy)."""
METADATA_URL = "http://169.254.169.254/latest"
"""The instance metadata service: EC2's (IMDSv2: a session token first), which OpenStack's Nova
serves at the same address and paths (no token there: the PUT fails and the GET goes without)."""
EXTERNAL_IP = (
    "t=$(curl -sf --retry 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' {url}/api/token"
    " || true)"
    " && ip=$(curl -sf --retry 5 ${{t:+-H}} ${{t:+\"X-aws-ec2-metadata-token: $t\"}}"
    " {url}/meta-data/public-ipv4)"
    " && printf '%s' \"$ip\" | grep -Eqx '[0-9]{{1,3}}(\\.[0-9]{{1,3}}){{3}}'"
    " && printf 'node-external-ip: \"%s\"\\n' \"$ip\" >> {config}"
)
"""Adds the machine's public IPv4 to k3s's config as ``node-external-ip`` before k3s starts (a hybrid
cluster: boards reach the worker there). No public address: the command fails and k3s is not installed,
rather than joining a node the boards cannot reach."""
"""What is both a hostname label and a Kubernetes node name (``resource_name`` makes such names)."""


@dataclasses.dataclass(frozen=True)
class WorkerJoin:
    """What a cloud worker needs to join: where the server is, the token, who it is."""

    server_url: str
    token: str
    group: str
    arch: str = "amd64"
    role: str = "worker"
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    taints: Sequence[str] = ()
    k3s_version: str | None = None
    """None: the version in versions.yml."""
    node_name: str | None = None
    """The Node name to register under (and the hostname); None: the machine's own hostname."""
    external_ip: bool = False
    """Hybrid cluster: k3s's ``node-external-ip`` is the machine's public address, read at boot."""


@functools.cache
def _yaml_file(path: Path) -> Mapping[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise TemplateError(f"cannot read it: {error}", where=str(path)) from None
    if not isinstance(data, dict):
        raise TemplateError("expected a mapping", where=str(path))
    return data


def common_settings() -> Mapping[str, Any]:
    """The ``common`` role's defaults (packages, modules, sysctls): one source for both paths."""
    return _yaml_file(playbooks_dir() / "roles" / "common" / "defaults" / "main.yml")


def k3s_version() -> str:
    return str(_yaml_file(playbooks_dir() / "group_vars" / "all" / "versions.yml")["k3s_version"])


def kubelet_hardening() -> dict[str, Any]:
    """The agent config keys ``k3s_agent``'s template writes from ``group_vars/all/main.yml``:
    ``protect-kernel-defaults`` and the hardening guide's ``kubelet-arg``."""
    settings = _yaml_file(playbooks_dir() / "group_vars" / "all" / "main.yml")
    config: dict[str, Any] = {"protect-kernel-defaults": bool(settings.get("k3s_protect_kernel_defaults"))}
    args = [str(a) for a in settings.get("k3s_kubelet_args") or []]
    if args:
        config["kubelet-arg"] = args
    return config


def common_file(template: str, common: Mapping[str, Any]) -> str:
    """One of the ``common`` role's templates rendered with its settings, as Ansible's template module
    renders it (``trim_blocks``), so a cloud worker's file is a board's, byte for byte."""
    import jinja2

    directory = playbooks_dir() / "roles" / "common" / "templates"
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(str(directory)),
                                     undefined=jinja2.StrictUndefined, trim_blocks=True,
                                     keep_trailing_newline=True, autoescape=False)
    return environment.get_template(template).render(**common)


def node_labels(group: str, role: str, arch: str, labels: Mapping[str, str]) -> list[str]:
    """``key=value`` node labels, as k3s ``node-label`` takes them (the roles build the same list)."""
    return [f"{k}={v}" for k, v in record_labels(group, role, arch, labels).items()]


def agent_config(join: WorkerJoin) -> dict[str, Any]:
    """The k3s agent's ``config.yaml`` (the keys ``k3s_agent``'s template writes, plus ``node-name``
    when the join names the node: boards need none, their hostname is their name)."""
    config: dict[str, Any] = {
        "server": join.server_url,
        "token": join.token,
        "node-label": node_labels(join.group, join.role, join.arch, join.labels),
    }
    if join.node_name is not None:
        config["node-name"] = checked_node_name(join.node_name)
    if join.taints:
        config["node-taint"] = list(join.taints)
    config.update(kubelet_hardening())
    return config


def checked_node_name(name: str) -> str:
    """``name`` if k3s and the hostname accept it (one lowercase DNS label), else ``BadInput``."""
    if not NODE_NAME.fullmatch(name):
        raise BadInput(f"node name {name!r}: expected at most 63 lowercase letters, digits and '-', "
                       "starting and ending with a letter or digit")
    return name


def render_user_data(join: WorkerJoin, common: Mapping[str, Any] | None = None) -> str:
    """The ``#cloud-config`` document for a worker of ``join.group`` (named ``join.node_name``)."""
    common = common_settings() if common is None else common
    version = join.k3s_version or k3s_version()
    modules = [str(m) for m in common.get("common_kernel_modules") or []]
    sysctls = {str(k): str(v) for k, v in (common.get("common_sysctls") or {}).items()}
    url = INSTALL_URL.format(version=version)
    imds_files: list[dict[str, str]] = []
    imds_commands: list[list[str]] = []
    if common.get("common_metadata_addresses"):  # the role's defaults always have it
        rules, unit = str(common["common_imds_rules"]), str(common["common_imds_unit"])
        imds_files = [
            {"path": rules, "permissions": "0644", "owner": "root:root",
             "content": common_file("imds.nft.j2", common)},
            {"path": f"/etc/systemd/system/{unit}", "permissions": "0644", "owner": "root:root",
             "content": common_file("imds.service.j2", common)}]
        imds_commands = [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", unit]]
    install = (  # the script checked against the install.sh.sha256sum k3s commits beside it, at the tag
        f"curl -sfL --retry 5 {url} -o /usr/local/bin/k3s-install.sh"
        f" && curl -sfL --retry 5 {url}.sha256sum -o /usr/local/bin/k3s-install.sh.sha256sum"
        " && cd /usr/local/bin"
        " && sed 's/  install.sh$/  k3s-install.sh/' k3s-install.sh.sha256sum | sha256sum -c -"
        " && chmod 0755 /usr/local/bin/k3s-install.sh"
        f" && INSTALL_K3S_VERSION='{version}' INSTALL_K3S_EXEC=agent /usr/local/bin/k3s-install.sh"
    )
    if join.external_ip:
        install = EXTERNAL_IP.format(url=METADATA_URL, config=K3S_CONFIG) + " && " + install
    doc: dict[str, Any] = {
        "package_update": bool(common.get("common_apt_update", True)),
        "packages": [str(p) for p in common.get("common_packages") or []],
        "write_files": [
            {"path": "/etc/modules-load.d/k3s.conf", "permissions": "0644", "owner": "root:root",
             "content": "".join(f"{m}\n" for m in modules)},
            {"path": "/etc/sysctl.d/90-k3s.conf", "permissions": "0644", "owner": "root:root",
             "content": "".join(f"{k} = {v}\n" for k, v in sysctls.items())},
            *imds_files,
            {"path": K3S_CONFIG, "permissions": "0600", "owner": "root:root",
             "content": yaml.safe_dump(agent_config(join), sort_keys=False)},
        ],
        "runcmd": [  # in order: kernel settings and the metadata rule live before k3s is installed
            *(["modprobe", m] for m in modules),
            ["sysctl", "--system"],
            *imds_commands,
            ["sh", "-c", install],
        ],
    }
    if join.node_name is not None:
        # the hostname is the node's name, as ``common`` sets a board's; cloud-init keeps the short
        # name even where the distro prefers the cloud's FQDN, and maps it to 127.0.1.1 so it resolves
        doc = {"hostname": checked_node_name(join.node_name), "prefer_fqdn_over_hostname": False,
               "manage_etc_hosts": "localhost", **doc}
    return "#cloud-config\n" + yaml.safe_dump(doc, sort_keys=False, width=1000)


def node_user_data(join: WorkerJoin, node_name: str) -> str:
    """The user data of the one machine that registers as Node ``node_name``."""
    return render_user_data(dataclasses.replace(join, node_name=node_name))


def worker_user_data(store: Any, deployment: Any, group: str, *, spec: Any = None,
                     node_name: str | None = None) -> str:
    """The user data for a new worker of ``group`` named ``node_name`` (``worker_join``, rendered).
    Without ``node_name`` the worker registers under the hostname the cloud gives it, which the
    daemon does not expect: pass the machine's name."""
    join = worker_join(store, deployment, group, spec=spec)
    return render_user_data(dataclasses.replace(join, node_name=node_name))


def join_token(store: Any, deployment_id: str) -> str:
    """The agent token in k3s's secure form (``K10<CA hash>::node:<secret>``): a worker checks the
    server's CA with it, and never holds the server token. A record made before the deployment had
    its own CA has only the server token."""
    names = store.secret_names(deployment_id)
    return store.secret(deployment_id, "k3s_agent_token" if "k3s_agent_token" in names else "k3s_token")


def worker_join(store: Any, deployment: Any, group: str, *, spec: Any = None) -> WorkerJoin:
    """How a new worker of ``group`` in a recorded deployment (``StateStore``, ``Deployment``) joins:
    the front-end's private address and the stored ``k3s_token``; no node name (``node_user_data``).

    ``NotFound`` if the front-end has no recorded address yet (create it first) or the group is not in
    the plan. Labels and taints come from ``spec`` (a ClusterSpec) when given, else from the recorded
    targets' optional fields.
    """
    record = store.record(deployment.id)
    try:
        info = record.group(group)
    except KeyError:
        have = ", ".join(g.name for g in record.groups)
        raise NotFound(f"deployment {deployment.name}: no group {group!r} (have: {have})") from None
    front = record.front_end
    address = None
    if front is not None:
        for node in store.nodes(deployment.id, front.name):
            found = (node.addresses.get("private") or []) + (node.addresses.get("public") or [])
            if found:
                address = str(found[0])
                break
    if address is None:
        raise NotFound(f"deployment {deployment.name}: the front-end has no address yet, so workers "
                       "cannot be told where to join")
    labels: Mapping[str, str] = info.labels
    taints: Sequence[str] = info.taints
    if spec is not None:
        group_spec = spec.group(group)
        labels, taints = group_spec.labels, group_spec.taints
    return WorkerJoin(
        server_url=server_url(address), token=join_token(store, deployment.id),
        group=group, arch=info.arch, role=info.role, labels=labels, taints=tuple(taints),
        external_ip=record.hybrid)


def launch_join(inputs: JoinInputs, token: str) -> WorkerJoin:
    """How a worker joins, from a launch spec's cloud-init inputs (``provisioner.record``) and the
    token they name: what the elastic daemon renders for each worker it creates."""
    if inputs.server_url is None:
        raise NotFound(f"group {inputs.group}: the recorded launch spec has no k3s server URL yet (the "
                       "front-end had no address when it was recorded)")
    return WorkerJoin(server_url=inputs.server_url, token=token, group=inputs.group, arch=inputs.arch,
                      role=inputs.role, labels=dict(inputs.labels), taints=tuple(inputs.taints),
                      external_ip=inputs.external_ip)
