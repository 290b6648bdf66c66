"""Shared by the configuration tests: a deployment of board hosts recorded in a real state file.

The deployment is made the way ``create`` makes one for adopted boards: a TOSCA template (written here,
pointing at the board hosts of) → ClusterSpec → Plan, recorded with its templates and
inputs, each board recorded as an adopted node. No test in this module: it holds helpers only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from provisioner.config import Settings
from provisioner.engine.create import recorded_plan
from provisioner.engine.targets import group_targets
from provisioner.k3sca import ensure_cluster_ca
from provisioner.plan import make_plan
from provisioner.state import Deployment, StateStore
from provisioner.template import load_cluster_spec
from tests.harness.boards import Board

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent

_BOARD = """
    {name}:
      type: oscar_deploy.nodes.{type}
      properties:
        address: {address}
        ssh_port: {port}
        ssh_user: {user}
        ssh_key: {key}
        proxy_jump: {jump}
{extra}      capabilities:
        host:
          properties:
            num_cpus: 2
            mem_size: 2 GiB
        os:
          properties:
            type: linux
            distribution: debian
            version: "12"
            architecture: {arch}
"""


def board_template(fleet: list[Board], path: Path, *, jump_last: bool = True, users: tuple[str, ...] = ()
                   ) -> Path:
    """A template whose front-end is ``fleet[0]`` and whose edge fleet ``pis`` is the other boards; the
    last board is reached through the front-end when ``jump_last``. ``users[i]`` is board i's login."""
    parts = ["tosca_definitions_version: tosca_simple_yaml_1_0\n",
             "imports:\n  - oscar_deploy_types: " + str(REPO / "tosca/types/oscar-deploy-types.yaml") + "\n",
             "description: board hosts of the test harness\n",
             "topology_template:\n  node_templates:\n"]
    for i, board in enumerate(fleet):
        front = i == 0
        extra = "" if front else ("        fleet: pis\n        labels:\n          oscar-deploy/site: edge\n"
                                  "        taints: ['oscar-deploy/edge=true:PreferNoSchedule']\n"
                                  "        power_on: 'plug on {node}'\n"
                                  "        power_off: 'plug off {node}'\n")
        parts.append(_BOARD.format(
            name="front" if front else f"pi{i}", type="EdgeFrontEnd" if front else "EdgeBoard",
            address=board.address, port=board.port, user=users[i] if i < len(users) else board.user,
            key=board.key_path, jump="true" if (jump_last and i == len(fleet) - 1 and i > 0) else "false",
            extra=extra, arch="amd64" if front else "arm64"))
    parts.append("""
    minio:
      type: oscar_deploy.nodes.MinIO
      requirements:
        - host: front
    knative:
      type: oscar_deploy.nodes.Knative
      requirements:
        - host: front
    oscar:
      type: oscar_deploy.nodes.OSCAR
      requirements:
        - host: front
        - storage: minio
    elastic:
      type: oscar_deploy.nodes.Elastic
      requirements:
        - host: front
""")
    path.write_text("".join(parts))
    return path


def record_board_deployment(store: StateStore, template: Path, name: str = "edge-test") -> Deployment:
    """Record the template's deployment as ``create --no-configure`` does for adopted boards."""
    spec = load_cluster_spec([template], {})
    plan = make_plan(spec, Settings())
    dep = store.create_deployment(name, plan=recorded_plan(plan, group_targets(plan)),
                                  templates=[str(template)], inputs=dict(spec.inputs), status="created")
    for secret in plan.secrets:
        store.ensure_secret(dep.id, secret.name)
    ensure_cluster_ca(store, dep.id)
    for group in spec.groups:
        for board in group.boards:
            store.record_node(dep.id, group=group.name, name=board.name, provider="fleet",
                              addresses={"public": [board.address]}, state="adopted")
    return dep


def allow_sudo(fleet: list[Board], user: str = "pi") -> None:
    """Passwordless sudo for ``user`` on each board (as on Raspberry Pi OS), in the board's /etc only."""
    for board in fleet:
        board.run(f"echo '{user} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/010-{user} && "
                  f"chmod 0440 /etc/sudoers.d/010-{user}", user="root")


def tool_env() -> dict[str, str]:
    """The venv's ansible tools first on PATH, no colour, no retry files."""
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
           "ANSIBLE_RETRY_FILES_ENABLED": "0", "ANSIBLE_HOST_KEY_CHECKING": "True"}
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    return env


def run_tool(tool: str, *args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run one of the venv's real tools (``ansible``, ``ansible-inventory``, ``oscar-deploy``, ...)."""
    return subprocess.run([str(BIN / tool), *args], cwd=cwd, env=tool_env(), capture_output=True, text=True,
                          timeout=timeout)


def cli(state: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_tool("oscar-deploy", "--state", str(state), *args, cwd=cwd)


def as_dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


# --- air-gap directory of stand-in artifacts (clearly named test doubles) ----------------------------

CALLS = "/var/lib/oscar-test-doubles/k3s-install.calls"
"""Where the stand-in install script records each call on a board (one JSON line per call)."""

FAKE_K3S = """#!/bin/sh
# TEST DOUBLE of the k3s binary (tests/test_configure_helpers.py): reports a version, does nothing else.
echo "k3s version {version} (test double)"
"""

FAKE_INSTALL = r"""#!/bin/sh
# TEST DOUBLE of k3s's install.sh (tests/test_configure_helpers.py). It records how it was called,
# then leaves what the real script leaves behind on a systemd host: the service's unit file and, for a
# server, the kubeconfig k3s writes (a stand-in pointing at 127.0.0.1:6443).
set -eu
mkdir -p /var/lib/oscar-test-doubles
python3 - "$@" >> {calls} <<'PY'
import json, os, sys, time
keys = ("INSTALL_K3S_EXEC", "INSTALL_K3S_VERSION", "INSTALL_K3S_SKIP_DOWNLOAD")
print(json.dumps({{"at": time.time(), "args": sys.argv[1:], "token_in_env": "K3S_TOKEN" in os.environ,
                  **{{k: os.environ.get(k) for k in keys}}}}))
PY
mkdir -p /etc/systemd/system /etc/rancher/k3s
if [ "$INSTALL_K3S_EXEC" = server ]; then
  echo "# TEST DOUBLE unit" > /etc/systemd/system/k3s.service
  umask 077
  cat > /etc/rancher/k3s/k3s.yaml <<'KC'
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: VEVTVCBET1VCTEU=
    server: https://127.0.0.1:6443
  name: default
contexts:
- context: {{cluster: default, user: default}}
  name: default
current-context: default
users:
- name: default
  user: {{token: test-double-not-a-credential}}
KC
else
  echo "# TEST DOUBLE unit" > /etc/systemd/system/k3s-agent.service
fi
"""


UPSTREAM = REPO / "tests" / "upstream"
"""Upstream's own files (tests/upstream/PROVENANCE.md): the real chart archives, Knative's ConfigMaps."""


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sums(path: Path, files: dict[str, Path]) -> None:
    """A checksum file in upstream's format (``sha256sum``: ``HASH  NAME``) for stand-ins, as k3s's
    ``sha256sum-ARCH.txt``, helm's ``.sha256sum`` and Knative's ``checksums.txt`` list their files."""
    path.write_text("".join(f"{_sha256(file)}  {name}\n" for name, file in files.items()))


def fake_airgap_dir(path: Path, version: str = "v1.36.1+k3s1") -> Path:
    """An air-gap dir as the README lays it out. The charts are upstream's real archives (they hash as
    versions.yml says); every other artifact is a stand-in named so in its first lines, listed with its
    sha256 in a checksum file of upstream's name and format, as a release publishes them. Knative's
    manifests are upstream's committed ConfigMaps and Kourier Service, which the roles change."""
    path.mkdir(parents=True, exist_ok=True)
    versions = yaml.safe_load((REPO / "playbooks/group_vars/all/versions.yml").read_text())
    for arch, binary in (("amd64", "k3s"), ("arm64", "k3s-arm64"), ("arm", "k3s-armhf")):
        (path / binary).write_text(FAKE_K3S.format(version=version))
        images = path / f"k3s-airgap-images-{arch}.tar.zst"
        images.write_text(f"TEST DOUBLE of k3s's {arch} images\n")
        _sums(path / f"sha256sum-{arch}.txt", {binary: path / binary, images.name: images})
    (path / "install.sh").write_text(FAKE_INSTALL.format(calls=CALLS))
    _sums(path / "install.sh.sha256sum", {"install.sh": path / "install.sh"})
    for item in path.iterdir():
        item.chmod(0o755)
    for arch in ("amd64", "arm64", "arm"):
        helm = path / f"helm-{versions['helm_version']}-linux-{arch}.tar.gz"
        _fake_tarball(helm, f"linux-{arch}/helm",
                      "#!/bin/sh\n# TEST DOUBLE of helm\necho 'helm (test double)'\n")
        _sums(path / f"{helm.name}.sha256sum", {helm.name: helm})
    for chart in (UPSTREAM / "charts").glob("*.tgz"):
        (path / chart.name).write_bytes(chart.read_bytes())
    (path / f"cert-manager-{versions['cert_manager_version']}.yaml").write_text(
        "# TEST DOUBLE of cert-manager.yaml: an empty manifest\n")
    serving, kourier = versions["knative_serving_version"], versions["knative_kourier_version"]
    stand_in = "# TEST DOUBLE of {what}: upstream's committed sources of what the roles change\n"
    crds = path / f"serving-crds-{serving}.yaml"
    crds.write_text("# TEST DOUBLE of serving-crds.yaml: an empty manifest\n")
    core = path / f"serving-core-{serving}.yaml"
    core.write_text(stand_in.format(what="serving-core.yaml") + "\n---\n".join(
        (UPSTREAM / "knative" / f"{name}.yaml").read_text() for name in ("features", "network", "domain")))
    _sums(path / f"serving-checksums-{serving}.txt", {"serving-crds.yaml": crds, "serving-core.yaml": core})
    gateway = path / f"kourier-{kourier}.yaml"
    gateway.write_text(stand_in.format(what="kourier.yaml")
                       + (UPSTREAM / "knative" / "kourier-300-gateway.yaml").read_text())
    _sums(path / f"kourier-checksums-{kourier}.txt", {"kourier.yaml": gateway})
    return path


def _fake_tarball(path: Path, member: str, text: str) -> None:
    import io
    import tarfile

    data = text.encode()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))


def board_vars(airgap: Path) -> dict[str, Any]:
    """What differs on a board host from a real board: no internet (installed packages only, no apt
    update), the host's kernel (files written, not applied), /boot under /opt (overlaid), no reboot,
    no real k3s to wait for, the NFS server's package not installable."""
    return {
        "airgap_dir": str(airgap),
        "common_packages": ["ca-certificates", "curl"],
        "common_apt_update": False,
        "common_apply_kernel_settings": False,
        "common_boot_cmdline_files": ["/opt/boot/firmware/cmdline.txt"],
        "common_reboot_for_cgroups": False,
        "k3s_wait": False,
        "nfs_packages": [],
    }
