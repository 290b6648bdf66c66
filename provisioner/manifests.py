"""``oscar-deploy manifests ID``: every Kubernetes object the configuration installs, for review or
to apply elsewhere (kubectl, GitOps).

The objects are the files the roles write into k3s's auto-deploy directory on the front-end
(``k3s_manifests_dir``): upstream's release manifests (cert-manager, Knative Serving, Kourier) with
OSCAR's settings merged in, the HelmChart objects with their values, MinIO's and the daemon's
Secrets, RBAC, ConfigMap and Deployment. They are rendered by Ansible itself, not by a second
renderer that could drift: each role keeps the tasks that write them in ``tasks/manifests.yml``
(its ``main.yml`` imports it), and ``playbooks/manifests.yml`` runs only those, with the roles'
order and conditions from ``site.yml``, against the front-end's host of the deployment's inventory
with the very variables ``configure`` gives it (``configure.run_inputs``: the record, the secrets,
the site's ``ansible_vars`` file, ``--vars``). Only where they go differs: a local connection, a
private directory as ``k3s_manifests_dir``, the operator as owner. Upstream's release manifests are
fetched as the front-end fetches them (``airgap_dir`` or a download, checked against the pinned sums).
The k3s packaged manifests (CoreDNS, Traefik...) come with k3s and are not among them.

Secrets are masked by default: every value the run was given as a secret (generated secrets, the
credentials among the variables), raw and as the JSON string the templates write, becomes
``<masked>`` (still valid YAML where the value was a plain scalar); the masked text is then parsed
and refused if any secret is still in it (a value a YAML dump folded, say), so a secret never
reaches output that claims to be masked.
"""

from __future__ import annotations

import contextlib
import grp
import io
import json
import os
import pwd
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from provisioner.config import Settings
from provisioner.configure import run_inputs, run_playbook
from provisioner.errors import NotFound, OscarDeployError, RemoteError
from provisioner.state import Deployment, StateStore

PLAYBOOK = "manifests.yml"
MASK = "<masked>"
"""Not ``********``: a plain YAML scalar may not start with ``*`` (an alias), and masked values
are often plain scalars in a HelmChart's ``valuesContent``."""

SECRET_VARIABLES = ("k3s_token", "k3s_agent_token", "minio_secret_key", "oscar_password",
                    "elastic_ssh_private_key")
"""Playbook variables whose values are secrets (besides the stored ones and ``elastic_cloud_env``'s)."""


class UnmaskableSecret(OscarDeployError):
    """A secret is in the manifests in a form masking does not catch: nothing is printed."""


def secret_values(variables: Mapping[str, Any], stored: Mapping[str, str]) -> list[str]:
    """Every secret value a run gets: the stored ones and the secret variables' (non-empty)."""
    values = [str(v) for v in stored.values()]
    values += [str(variables.get(name) or "") for name in SECRET_VARIABLES]
    cloud_env = variables.get("elastic_cloud_env") or {}
    if isinstance(cloud_env, Mapping):
        values += [str(v) for v in cloud_env.values()]
    return sorted({v for v in values if v}, key=len, reverse=True)


def _forms(secret: str) -> list[str]:
    """How a secret can appear in a manifest: as it is, and inside a JSON string (``| to_json``)."""
    escaped = json.dumps(secret)[1:-1]
    return [secret] if escaped == secret else [secret, escaped]


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each secret (longest first) replaced by ``MASK``."""
    for secret in sorted(secrets, key=len, reverse=True):
        for form in _forms(secret):
            text = text.replace(form, MASK)
    return text


def _strings(value: Any) -> Iterator[str]:
    """Every string in a parsed document, and in the YAML documents strings hold (``valuesContent``)."""
    if isinstance(value, str):
        yield value
        if "\n" in value:
            with contextlib.suppress(yaml.YAMLError):
                for inner in yaml.safe_load_all(value):
                    if not isinstance(inner, str):
                        yield from _strings(inner)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def leaked(text: str, secrets: Iterable[str]) -> bool:
    """Whether any secret is still in ``text``, read as text and as the YAML it is."""
    wanted = [s for s in secrets if s]
    if any(form in text for s in wanted for form in _forms(s)):
        return True
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError:
        return False  # not YAML: the text check above is all there is
    return any(s in string for doc in documents for string in _strings(doc) for s in wanted)


def masked(files: Mapping[str, str], secrets: Iterable[str]) -> dict[str, str]:
    """Each file with its secrets masked; ``UnmaskableSecret`` naming the file if one stays."""
    wanted = list(secrets)
    out = {}
    for name, text in files.items():
        out[name] = mask(text, wanted)
        if leaked(out[name], wanted):
            raise UnmaskableSecret(f"{name}: a secret is in a form masking does not catch; nothing was "
                                   "written: use --show-secrets with --dir to see the file")
    return out


def as_stream(files: Mapping[str, str]) -> str:
    """One multi-document YAML stream, each file after a ``---`` and a comment naming it."""
    parts = []
    for name, text in files.items():
        parts.append(f"---\n# {name}\n{text}" + ("" if text.endswith("\n") else "\n"))
    return "".join(parts)


def write_dir(directory: Path, files: Mapping[str, str]) -> list[Path]:
    """Write each file into ``directory`` (made 0700 if absent), each 0600 whatever was there."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        path = directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(text)
        written.append(path)
    return written


def _owner() -> tuple[str, str]:
    """The running user's and group's names: the rendered files' owner (no chown to root needed)."""
    user = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    return user, group


def local_overrides(out_dir: Path, artifacts_dir: Path) -> dict[str, Any]:
    """What makes the front-end's run a local one writing into ``out_dir`` (extra vars win)."""
    user, group = _owner()
    return {
        "ansible_connection": "local",
        "ansible_become": False,
        "ansible_python_interpreter": sys.executable,
        "k3s_manifests_dir": str(out_dir),
        "knative_artifacts_dir": str(artifacts_dir),
        "k3s_manifests_owner": user,
        "k3s_manifests_group": group,
    }


def render_manifests(store: StateStore, deployment: Deployment, settings: Settings | None = None, *,
                     extra_vars: Mapping[str, Any] | None = None) -> tuple[dict[str, str], list[str]]:
    """Run ``playbooks/manifests.yml`` for ``deployment`` (see the module docstring).

    Returns the files (name → text, real secrets, by name) and the secret values to mask."""
    settings = settings or Settings()
    inventory, variables = run_inputs(store, deployment, settings, extra_vars=extra_vars)
    fronts = [h for h in inventory.hosts if h.role == "front-end"]
    if not fronts:
        raise NotFound(f"deployment {deployment.name} has no front-end with an address yet: its manifests "
                       "name it (storage, certificates, endpoints)")
    secrets = secret_values(variables, store.secrets(deployment.id))
    parent = store.deployment_dir(deployment.id)
    with tempfile.TemporaryDirectory(prefix="manifests-", dir=parent) as work:
        out, artifacts = Path(work) / "out", Path(work) / "artifacts"
        out.mkdir(mode=0o700)
        run_vars = {**variables, **local_overrides(out, artifacts)}
        events = run_playbook(inventory, run_vars, workdir=Path(work), logfile=io.StringIO(),
                              show=lambda _line: None, playbook=PLAYBOOK, limit=fronts[0].name)
        failed = [f for f in events.failures if not f.unreachable] or events.failures
        if failed:
            raise RemoteError("rendering the manifests failed: " + "; ".join(
                f"task '{f.task}': {mask(f.message, secrets)}" for f in failed))
        files = {p.name: p.read_text(encoding="utf-8") for p in sorted(out.iterdir()) if p.is_file()}
    return files, secrets
