"""Power managers: how a group's machines are switched on and off (the groups format's ``power:``).

* ``command``: shell commands with ``{node}``, ``{group}``, ``{address}`` passed as separate arguments
  (never as shell text) and a minimal environment, the way edge operators drive PoE switch ports and
  smart plugs; also the simplest way to test the daemon.
* ``wol``: a Wake-on-LAN magic packet to the board's MAC, sent to a configurable broadcast address
  (default 255.255.255.255:9); power-off by an optional command.
* ``shutdown`` (in a ``command`` or ``wol`` group): before the power cut, the board is shut down
  cleanly over SSH (``SshShutdown``) and the cut waits until its SSH port stops answering, so an SD
  card is never cut mid-write; the cut command is then optional.
* ``cloud``: a tagged worker created through ``provisioner.clouds`` that joins by cloud-init, destroyed
  on power-off (``elastic.cloudpower``, loaded only for cloud groups).

Every manager answers the same small contract (``PowerManager``) and raises ``PowerError`` with the
cause (a command's exit status and the tail of its stderr), never a secret.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from elastic.model import GroupNode, NodeGroup
from provisioner.errors import BadInput, CapacityError, CloudError, OscarDeployError

if TYPE_CHECKING:
    from provisioner.clouds.base import CloudDriver, CloudNode

log = logging.getLogger(__name__)


class PowerError(OscarDeployError):
    """A power-on or power-off did not happen; the message says why."""


class PowerManager(Protocol):
    """The actuator's view of a group's machines."""

    ephemeral: bool
    """True when power-off removes the machine (cloud): its Node object is then deleted too."""

    def new_name(self, group: NodeGroup) -> str:
        """A fresh node name for a new machine of ``group`` (cloud); fleets refuse (``PowerError``)."""
        ...

    def power_on(self, group: NodeGroup, node: str) -> None:
        """Start the machine that will register as Node ``node`` (a fleet's board, or a new cloud
        worker named by ``new_name``). Returns once the request is issued, not once it boots."""
        ...

    def power_off(self, group: NodeGroup, node: str) -> None:
        """Stop the machine (or remove it, for cloud workers). Idempotent."""
        ...

    def machines(self, group: NodeGroup) -> dict[str, float] | None:
        """Machines that exist now, ``{node name: created at}``, for managers that can list them
        (cloud); None for those that cannot know (boards behind a plug)."""
        ...


def _member(group: NodeGroup, node: str) -> GroupNode:
    for member in group.nodes:
        if member.name == node:
            return member
    return GroupNode(name=node)


PLACEHOLDERS = ("node", "group", "address")
"""Filled in as the shell's positional parameters ``$1``, ``$2``, ``$3``, in this order."""
COMMAND_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME")
"""What a power command inherits from the daemon's environment; never the rest (the daemon's
environment holds the cluster token and cloud keys)."""
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def fill(template: str) -> str:
    """The command as a shell script whose ``{node}``, ``{group}``, ``{address}`` read the positional
    parameters ``$1``, ``$2``, ``$3``.

    The values never become shell text: the shell expands a parameter into data and never parses it
    again, so a name holding quotes, ``$(...)`` or a newline cannot run anything, whichever quoting
    the placeholder sits in (inside single quotes the quote is closed around the expansion:
    ``'x{node}'`` becomes ``'x'"$1"''``). Other braces are left alone, so ``${VAR}`` keeps working."""
    out: list[str] = []
    quote = ""  # "", "'" or '"'
    i = 0
    while i < len(template):
        char = template[i]
        name = next((p for p in PLACEHOLDERS if template.startswith("{" + p + "}", i)), None)
        if name is not None and not (i and template[i - 1] == "$"):
            ref = PLACEHOLDERS.index(name) + 1
            out.append({"": f'"${ref}"', '"': f"${{{ref}}}", "'": f"'\"${ref}\"'"}[quote])
            i += len(name) + 2
            continue
        if char == "\\" and quote != "'":
            out.append(template[i:i + 2])
            i += 2
            continue
        if char in "'\"" and quote in ("", char):
            quote = "" if quote == char else char
        out.append(char)
        i += 1
    return "".join(out)


def command_env(group: NodeGroup, node: str) -> dict[str, str]:
    """A power command's whole environment: a few harmless variables and the node's own."""
    env = {key: os.environ[key] for key in COMMAND_ENV if key in os.environ}
    env.setdefault("PATH", DEFAULT_PATH)
    member = _member(group, node)
    return {**env, "OSCAR_NODE": node, "OSCAR_GROUP": group.name, "OSCAR_ADDRESS": member.address or ""}


def run_command(template: str, group: NodeGroup, node: str, timeout_s: float, what: str) -> None:
    """Run a power command through ``sh -c`` with the node, group and address as separate arguments
    (``fill``) and a minimal environment; a non-zero exit or a timeout is a ``PowerError``."""
    member = _member(group, node)
    argv = ["/bin/sh", "-c", fill(template), "oscar-power", node, group.name, member.address or ""]
    log.debug("%s %s: running %s", what, node, template)
    try:
        result = subprocess.run(argv, env=command_env(group, node), capture_output=True, text=True,
                                stdin=subprocess.DEVNULL, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise PowerError(f"{what} {node}: command still running after {timeout_s:g}s") from None
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise PowerError(f"{what} {node}: command exited with status {result.returncode}: "
                         f"{' / '.join(tail) or 'no output'}")


DEFAULT_SHUTDOWN = "sudo -n shutdown -h now || shutdown -h now || poweroff"
"""What runs on a board to halt it: passwordless sudo first, then as the login itself (root)."""
SSH_EXIT_DISCONNECTED = 255
"""ssh's own failure status: it could not connect, or the board closed the session while halting."""
SSH_REFUSED = ("Permission denied", "Host key verification failed", "REMOTE HOST IDENTIFICATION HAS CHANGED")
"""ssh messages that mean the shutdown never ran: no point waiting for the board to halt."""


@dataclasses.dataclass(frozen=True)
class SshShutdown:
    """``power: {shutdown: {user, port, key, known_hosts, wait_s, settle_s, command}}``: how a board
    is halted over SSH before its power is cut. A node's ``ssh_user``/``ssh_port``/``ssh_key`` win
    over the group's. The board's host key must already be in ``known_hosts`` (default: ssh's own):
    ``StrictHostKeyChecking=yes``, since a halt sent to an impostor would leave the real board running
    into its power cut, and in the cluster the keys come from the daemon's ConfigMap, where ``configure``
    put the keys it saw. The user's ssh config applies (a ``ProxyJump`` works)."""

    user: str = "pi"
    port: int = 22
    key: str | None = None
    known_hosts: str | None = None
    wait_s: float = 60.0
    """How long the board may take to stop answering on its SSH port after the shutdown command."""
    settle_s: float = 5.0
    """Extra wait after the port went quiet, for the kernel to finish halting, before the cut."""
    command: str = DEFAULT_SHUTDOWN
    connect_timeout_s: float = 10.0

    @classmethod
    def from_power(cls, power: Mapping[str, object]) -> SshShutdown | None:
        """The ``shutdown`` mapping of a group's ``power`` (checked by ``elastic.groups``), or None."""
        raw = power.get("shutdown")
        if raw is None:
            return None
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in dict(raw).items() if k in known})  # type: ignore[call-overload]

    def login(self, member: GroupNode) -> tuple[str, int, str | None]:
        """(user, port, key) for this board: its own settings, else the group's."""
        return (member.ssh_user or self.user, member.ssh_port or self.port, member.ssh_key or self.key)

    def argv(self, member: GroupNode) -> list[str]:
        """The ssh command line that runs ``command`` on the board (no password prompt: BatchMode)."""
        user, port, key = self.login(member)
        argv = ["ssh", "-p", str(port), "-o", "BatchMode=yes",
                "-o", f"ConnectTimeout={self.connect_timeout_s:g}", "-o", "StrictHostKeyChecking=yes",
                "-o", "ControlMaster=no", "-o", "ControlPath=none", "-o", "LogLevel=ERROR"]
        if key:
            argv += ["-i", str(Path(key).expanduser()), "-o", "IdentitiesOnly=yes"]
        if self.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={Path(self.known_hosts).expanduser()}"]
        # The user as an option's value and ``--`` before the host: neither can be read as an option.
        return [*argv, "-l", user, "--", str(member.address), self.command]


def ssh_answers(address: str, port: int, timeout_s: float = 1.0) -> bool:
    """True while something accepts TCP connections on the board's SSH port."""
    try:
        with socket.create_connection((address, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def shut_down(shutdown: SshShutdown, group: NodeGroup, node: str) -> str | None:
    """Halt a board over SSH and wait until its SSH port stops answering. None once it is down (or
    was already); otherwise why it is still up (the caller cuts the power anyway, or fails)."""
    member = _member(group, node)
    if not member.address:
        raise PowerError(f"power off {node}: group {group.name} gives it no 'address' for the SSH shutdown")
    user, port, _ = shutdown.login(member)
    where = f"{user}@{member.address}:{port}"
    if not ssh_answers(member.address, port):
        log.info("power off %s: %s does not answer SSH; taken as already halted", node, where)
        return None
    log.debug("power off %s: shutting down over SSH (%s)", node, where)
    try:
        result = subprocess.run(shutdown.argv(member), stdin=subprocess.DEVNULL, capture_output=True,
                                text=True, timeout=shutdown.connect_timeout_s + 30, check=False)
        status, tail = result.returncode, (result.stderr or result.stdout).strip().splitlines()[-2:]
    except subprocess.TimeoutExpired:  # the session hangs while the board halts: wait for the port
        status, tail = SSH_EXIT_DISCONNECTED, ["ssh session still open after the shutdown command"]
    said = " / ".join(tail) or "no output"
    if status not in (0, SSH_EXIT_DISCONNECTED) or any(m in said for m in SSH_REFUSED):
        return f"shutdown over SSH ({where}) exited with status {status}: {said}"
    deadline = time.monotonic() + shutdown.wait_s
    while ssh_answers(member.address, port):
        if time.monotonic() > deadline:
            detail = f" (ssh: {said})" if status else ""
            return f"{where} still answers SSH {shutdown.wait_s:g}s after the shutdown command{detail}"
        time.sleep(0.2)
    if shutdown.settle_s > 0:
        time.sleep(shutdown.settle_s)
    log.info("power off %s: halted over SSH (%s)", node, where)
    return None


def power_off_board(shutdown: SshShutdown | None, cut: str | None, group: NodeGroup, node: str,
                    timeout_s: float) -> None:
    """An edge board's power-off: SSH shutdown (when configured), wait, then the power cut (when
    configured). A board that will not halt still gets its power cut; with no cut it is a
    ``PowerError`` (the actuator retries it)."""
    if shutdown is not None:
        still_up = shut_down(shutdown, group, node)
        if still_up is not None:
            if not cut:
                raise PowerError(f"power off {node}: {still_up}")
            log.warning("power off %s: %s; cutting its power anyway", node, still_up)
    if cut:
        run_command(cut, group, node, timeout_s, "power off")


class CommandPower:
    """``power: {type: command, power_on: CMD, power_off: CMD, timeout_s: 60, shutdown: {...}}``."""

    ephemeral = False

    def __init__(self, power_on: str, power_off: str | None, timeout_s: float = 60.0,
                 shutdown: SshShutdown | None = None) -> None:
        self.on_command = power_on
        self.off_command = power_off
        self.timeout_s = timeout_s
        self.shutdown = shutdown

    def new_name(self, group: NodeGroup) -> str:
        raise PowerError(f"group {group.name}: command power only switches the nodes it lists")

    def power_on(self, group: NodeGroup, node: str) -> None:
        run_command(self.on_command, group, node, self.timeout_s, "power on")

    def power_off(self, group: NodeGroup, node: str) -> None:
        power_off_board(self.shutdown, self.off_command, group, node, self.timeout_s)

    def machines(self, group: NodeGroup) -> dict[str, float] | None:
        return None


def magic_packet(mac: str) -> bytes:
    """Wake-on-LAN: six 0xFF bytes, then the MAC sixteen times."""
    digits = mac.replace(":", "").replace("-", "").replace(".", "")
    if len(digits) != 12:
        raise BadInput(f"MAC address {mac!r}: expected 6 bytes such as 'aa:bb:cc:dd:ee:ff'")
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        raise BadInput(f"MAC address {mac!r}: not hexadecimal") from None
    return b"\xff" * 6 + raw * 16


class WolPower:
    """``power: {type: wol, broadcast: 255.255.255.255, port: 9, power_off: CMD, shutdown: {...}}``."""

    def __init__(self, broadcast: str = "255.255.255.255", port: int = 9, power_off: str | None = None,
                 timeout_s: float = 60.0, shutdown: SshShutdown | None = None) -> None:
        self.broadcast = broadcast
        self.port = port
        self.off_command = power_off
        self.timeout_s = timeout_s
        self.shutdown = shutdown

    ephemeral = False

    def new_name(self, group: NodeGroup) -> str:
        raise PowerError(f"group {group.name}: Wake-on-LAN only wakes the nodes it lists")

    def power_on(self, group: NodeGroup, node: str) -> None:
        member = _member(group, node)
        if not member.mac:
            raise PowerError(f"power on {node}: group {group.name} gives it no 'mac' for Wake-on-LAN")
        packet = magic_packet(member.mac)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            try:
                sock.sendto(packet, (self.broadcast, self.port))
            except OSError as error:
                raise PowerError(f"power on {node}: magic packet to {self.broadcast}:{self.port}: "
                                 f"{error.strerror or error}") from None

    def power_off(self, group: NodeGroup, node: str) -> None:
        power_off_board(self.shutdown, self.off_command, group, node, self.timeout_s)

    def machines(self, group: NodeGroup) -> dict[str, float] | None:
        return None


@dataclasses.dataclass(frozen=True)
class LaunchSpec:
    """What a new cloud worker of a group is made of (resolved by the engine when it created the
    deployment: sizes cheapest first, the image id, the deployment's key pair and security group)."""

    sizes: tuple[str, ...]
    image: str
    key_name: str
    security_group: str
    user_data: str | None = None
    """cloud-init given to every worker as is; ``user_data_for`` wins when set."""
    user_data_for: Callable[[str], str] | None = None
    """The cloud-init of the worker named so (``provisioner.cloudinit.node_user_data``): it joins k3s
    under that very name, which is how ``machines`` and the Node are matched."""
    network: str | None = None
    zone: str | None = None
    disk_gib: int | None = None
    public_ip: bool = False
    wireguard: bool = False
    """A hybrid cluster: each worker's public address gets the WireGuard port in the security group
    (``provisioner.mesh``), as ``create`` does for the workers it starts."""

    def user_data_of(self, node: str) -> str | None:
        """The user data for the worker that will register as Node ``node``."""
        return self.user_data_for(node) if self.user_data_for is not None else self.user_data


class CloudPower:
    """``power: {type: cloud, deployment: ID}``: a power-on creates a tagged worker (tags
    ``oscar-deploy:deployment``/``:group``, name ``oscar-deploy-<id>-<group>-<random>``) that joins by
    cloud-init under its name; a power-off terminates it. The cloud's list by tag is the truth of what
    exists, so a worker created by a replica that died is found again (``machines``)."""

    ephemeral = True

    def __init__(self, driver: CloudDriver, deployment: str, launch: Mapping[str, LaunchSpec],
                 clock: Callable[[], float] = time.time) -> None:
        self.driver = driver
        self.deployment = deployment
        self.launch = dict(launch)
        self.clock = clock
        self._wireguard_opened: set[str] = set()

    def new_name(self, group: NodeGroup) -> str:
        from provisioner.clouds.base import resource_name

        return resource_name(self.deployment, group.name, secrets.token_hex(3))

    def power_on(self, group: NodeGroup, node: str) -> None:
        from provisioner.clouds.base import NodeRequest

        spec = self.launch.get(group.name)
        if spec is None:
            raise PowerError(f"power on {node}: no launch settings for group {group.name}")
        failures: list[str] = []
        try:
            user_data = spec.user_data_of(node)
        except OscarDeployError as error:
            raise PowerError(f"power on {node}: {error}") from None
        for size in spec.sizes:
            request = NodeRequest(
                deployment=self.deployment, group=group.name, name=node, size=size, image=spec.image,
                key_name=spec.key_name, security_group=spec.security_group, user_data=user_data,
                public_ip=spec.public_ip, zone=spec.zone, disk_gib=spec.disk_gib, network=spec.network)
            try:
                self.driver.create_node(request)
                return
            except CapacityError as error:
                failures.append(f"{size}: {error}")
            except CloudError as error:
                raise PowerError(f"power on {node}: {error}") from None
        raise PowerError(f"power on {node}: no capacity ({'; '.join(failures) or 'no size to try'})")

    def power_off(self, group: NodeGroup, node: str) -> None:
        try:
            for machine in self.driver.list_nodes(self.deployment):
                if machine.name == node:
                    self.driver.destroy_node(machine)
        except CloudError as error:
            raise PowerError(f"power off {node}: {error}") from None

    def machines(self, group: NodeGroup) -> dict[str, float] | None:
        try:
            listed = self.driver.list_nodes(self.deployment)
        except CloudError as error:
            raise PowerError(f"listing the workers of group {group.name}: {error}") from None
        now = self.clock()
        spec = self.launch.get(group.name)
        if spec is not None and spec.wireguard:
            self._open_wireguard([m for m in listed if m.group == group.name and m.state == "running"])
        return {m.name: m.created_at or now for m in listed
                if m.group == group.name and m.state in ("pending", "running", "unknown")}

    def _open_wireguard(self, running: Sequence[CloudNode]) -> None:
        """The WireGuard port open to each running worker's public address, once per address."""
        from provisioner.clouds.base import FirewallRule
        from provisioner.mesh import node_wireguard_source

        opened = self._wireguard_opened
        rules = []
        for machine in running:
            for address in machine.public_ips:
                pair = node_wireguard_source(address)
                if pair is not None and pair[1] not in opened:
                    rules.append(FirewallRule("udp", pair[0], pair[0], pair[1],
                                              f"WireGuard (k3s flannel) from {machine.name}"))
        if not rules:
            return
        try:
            self.driver.ensure_security_group(self.deployment, rules)
        except CloudError as error:
            raise PowerError(f"opening WireGuard to new workers: {error}") from None
        opened.update(r.source for r in rules)


def manager_for(group: NodeGroup, cloud_factory: Mapping[str, object] | None = None) -> PowerManager:
    """The power manager a group's ``power:`` mapping asks for (checked by ``elastic.groups``)."""
    power = dict(group.power)
    kind = power.get("type")
    shutdown = SshShutdown.from_power(power)
    if kind == "command":
        return CommandPower(power["power_on"], power.get("power_off"), float(power.get("timeout_s", 60)),
                            shutdown)
    if kind == "wol":
        return WolPower(str(power.get("broadcast", "255.255.255.255")), int(power.get("port", 9)),
                        power.get("power_off"), shutdown=shutdown)
    if kind == "cloud":
        if cloud_factory is None or group.name not in cloud_factory:
            raise BadInput(f"group {group.name}: cloud power needs the deployment's driver "
                           f"(run the daemon with --deployment, or a state file that has it)")
        return cloud_factory[group.name]  # type: ignore[return-value]
    raise BadInput(f"group {group.name}: no 'power' given, so the daemon cannot power its nodes")
