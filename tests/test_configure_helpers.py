"""Shared by the configuration tests: a deployment of board hosts recorded in a real state file.

The deployment is made the way ``create`` makes one for adopted boards: a TOSCA template (written here,
pointing at the board hosts of DESIGN §4) → ClusterSpec → Plan, recorded with its templates and
inputs, each board recorded as an adopted node. No test in this module: it holds helpers only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from provisioner.config import Settings
from provisioner.plan import make_plan, plan_to_json
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
                                  "        taints: ['oscar-deploy/edge=true:PreferNoSchedule']\n")
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
    dep = store.create_deployment(name, plan=plan_to_json(plan), templates=[str(template)],
                                  inputs=dict(spec.inputs), status="created")
    for secret in plan.secrets:
        store.ensure_secret(dep.id, secret.name)
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
