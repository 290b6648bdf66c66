"""Edge boards as a ``CloudDriver``: adopted, never created or destroyed.

A fleet is boards that already exist (Raspberry Pis, edge servers) listed by the template. The
contract's calls mean here:

- ``list_nodes``: every board, state ``running`` (the board is there; whether it answers is what
  ``check_reachable`` says); ``create_node`` adopts the board of that name (NotFound for any
  other name: nothing is ever created); ``destroy_node`` and ``sweep`` leave boards as they are.
- key pairs, security groups, images and sizes do not exist for boards: the ``ensure_*`` calls
  change nothing and return ``""``; volumes are refused (a board has its own disks).
- ``check_reachable`` is what ``create`` runs before configuring: a TCP connect to the SSH port, then
  ``ssh -o BatchMode=yes ... true``, both with a timeout, on every board at once; it reports the
  boards that fail by name with the reason, and ``require_reachable`` makes that one error.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import subprocess
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from provisioner.clouds.base import CloudNode, CloudResource, FirewallRule, NodeRequest
from provisioner.errors import CloudError, NotFound, RemoteError
from provisioner.spec import BoardSpec

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Unreachable:
    """A board that did not answer, and why (the last line ssh printed, or the socket error)."""

    name: str
    address: str
    reason: str


def ssh_check_argv(board: BoardSpec, timeout_s: float, known_hosts: Path | None) -> list[str]:
    """``ssh ... true`` for a board: batch mode (no prompt can hang), no multiplexing (a stale master
    would answer for a board that is gone), new host keys accepted and then pinned in ``known_hosts``."""
    argv = ["ssh", "-F", "/dev/null", "-p", str(board.ssh_port), "-o", "BatchMode=yes",
            "-o", f"ConnectTimeout={max(1, int(timeout_s))}", "-o", "ControlMaster=no",
            "-o", "ControlPath=none", "-o", "LogLevel=ERROR", "-o", "StrictHostKeyChecking=accept-new"]
    if known_hosts is not None:
        argv += ["-o", f"UserKnownHostsFile={known_hosts}"]
    if board.ssh_key:
        argv += ["-i", str(Path(board.ssh_key).expanduser()), "-o", "IdentitiesOnly=yes"]
    # The user as an option's value and ``--`` before the host: neither can be read as an option.
    return [*argv, "-l", board.ssh_user, "--", board.address, "true"]


def probe(board: BoardSpec, timeout_s: float, known_hosts: Path | None = None) -> Unreachable | None:
    """None when the board answers over SSH; else why not."""
    try:
        with socket.create_connection((board.address, board.ssh_port), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return Unreachable(board.name, board.address, f"TCP {board.address}:{board.ssh_port}: {reason}")
    try:
        done = subprocess.run(ssh_check_argv(board, timeout_s, known_hosts), capture_output=True, text=True,
                              timeout=timeout_s + 5, stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        return Unreachable(board.name, board.address, f"ssh gave no answer within {timeout_s:.0f} s")
    if done.returncode == 0:
        return None
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    why = lines[-1] if lines else f"ssh exited with {done.returncode}"
    return Unreachable(board.name, board.address, f"ssh {board.ssh_user}@{board.address}: {why}")


class FleetDriver:
    """``CloudDriver`` over adopted edge boards, by group (``{"edge": (BoardSpec, ...)}``)."""

    provider = "fleet"

    def __init__(self, boards: Mapping[str, Sequence[BoardSpec]], *, region: str = "edge",
                 known_hosts: Path | None = None, timeout_s: float = 10.0, parallel: int = 16) -> None:
        self.region = region
        self.boards = {group: tuple(items) for group, items in boards.items()}
        self.known_hosts = known_hosts
        self.timeout_s = timeout_s
        self.parallel = parallel

    def _all(self) -> list[tuple[str, BoardSpec]]:
        return [(group, board) for group, items in self.boards.items() for board in items]

    def _node(self, deployment: str, group: str, board: BoardSpec) -> CloudNode:
        return CloudNode(id=board.name, name=board.name, deployment=deployment, group=group, state="running",
                         private_ips=(board.address,))

    # -- reachability -------------------------------------------------------------------------------
    def check_reachable(self, timeout_s: float | None = None,
                        known_hosts: Path | None = None) -> list[Unreachable]:
        """The boards that do not answer over SSH (in the fleet's order); empty when all do.
        ``known_hosts``: the deployment's own file (default: the one the driver was made with)."""
        boards = [board for _group, board in self._all()]
        if not boards:
            return []
        wait = self.timeout_s if timeout_s is None else timeout_s
        with ThreadPoolExecutor(min(self.parallel, len(boards))) as pool:
            pinned = known_hosts or self.known_hosts
            results = list(pool.map(lambda b: probe(b, wait, pinned), boards))
        return [r for r in results if r is not None]

    def require_reachable(self, timeout_s: float | None = None) -> None:
        """``RemoteError`` naming every board that does not answer, with its reason."""
        failed = self.check_reachable(timeout_s)
        if failed:
            detail = "; ".join(f"{u.name} ({u.reason})" for u in failed)
            raise RemoteError(f"{len(failed)} edge board(s) unreachable over SSH: {detail}")

    # -- the contract -------------------------------------------------------------------------------
    def ensure_key_pair(self, deployment: str, public_key: str) -> str:
        return ""  # boards keep the keys they have; the template names each board's key

    def ensure_security_group(self, deployment: str, rules: Sequence[FirewallRule], *,
                              revoke_others: bool = False) -> str:
        return ""  # no cloud firewall in front of a board

    def resolve_image(self, distribution: str, version: str, arch: str, explicit: str | None) -> str:
        return ""  # boards run the OS they have

    def sizes_that_fit(self, cpus: int, memory_mib: int, arch: str = "amd64", disk_gib: int | None = None,
                       explicit: str | None = None) -> list[str]:
        return []

    def list_zones(self) -> list[str]:
        """Boards are where they are: no zone to fall back to."""
        return []

    def create_node(self, request: NodeRequest) -> CloudNode:
        for group, board in self._all():
            if board.name == request.name:
                return self._node(request.deployment, group, board)
        names = ", ".join(b.name for _g, b in self._all()) or "none"
        raise NotFound(f"edge boards are adopted, never created: no board named {request.name!r} "
                       f"(the fleet has {names})")

    def list_nodes(self, deployment: str) -> list[CloudNode]:
        return [self._node(deployment, group, board) for group, board in self._all()]

    def destroy_node(self, node: CloudNode) -> None:
        log.info("edge board %s is adopted: left running as it is", node.name)

    def ensure_volume(self, deployment: str, group: str, size_gib: int, zone: str | None) -> str:
        raise CloudError(f"group {group}: edge boards have no cloud volumes; use the board's own disk")

    def attach_volume(self, volume_id: str, node: CloudNode) -> None:
        raise CloudError(f"{node.name}: edge boards have no cloud volumes")

    def ensure_public_address(self, deployment: str, node: CloudNode) -> str:
        for _group, board in self._all():
            if board.name == node.name:
                return board.address
        raise NotFound(f"no edge board named {node.name!r}")

    def sweep(self, deployment: str, *, keep_data: bool = False) -> list[CloudResource]:
        return []  # never touches a board
