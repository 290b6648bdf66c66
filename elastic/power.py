"""Power managers: how a group's machines are switched on and off (DESIGN §3 ``power:``).

* ``command``: shell commands with ``{node}``, ``{group}``, ``{address}`` filled in (shell-quoted), the
  way edge operators drive PoE switch ports and smart plugs; also the simplest way to test the daemon.
* ``wol``: a Wake-on-LAN magic packet to the board's MAC, sent to a configurable broadcast address
  (default 255.255.255.255:9); power-off by an optional command.
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
import shlex
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from elastic.model import GroupNode, NodeGroup
from provisioner.errors import BadInput, CapacityError, CloudError, OscarDeployError

if TYPE_CHECKING:
    from provisioner.clouds.base import CloudDriver

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


def fill(template: str, group: NodeGroup, node: str) -> str:
    """A command with its placeholders replaced by shell-quoted values (other braces are left alone,
    so ``${VAR}`` in a command keeps working)."""
    member = _member(group, node)
    values = {"node": node, "group": group.name, "address": member.address or ""}
    out = template
    for key, value in values.items():
        out = out.replace("{" + key + "}", shlex.quote(value) if value else "''")
    return out


def run_command(template: str, group: NodeGroup, node: str, timeout_s: float, what: str) -> None:
    """Run a power command through the shell; a non-zero exit or a timeout is a ``PowerError``."""
    command = fill(template, group, node)
    member = _member(group, node)
    env = {**os.environ, "OSCAR_NODE": node, "OSCAR_GROUP": group.name, "OSCAR_ADDRESS": member.address or ""}
    log.debug("%s %s: running %s", what, node, command)
    try:
        result = subprocess.run(command, shell=True, env=env, capture_output=True, text=True,
                                timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise PowerError(f"{what} {node}: command still running after {timeout_s:g}s") from None
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise PowerError(f"{what} {node}: command exited with status {result.returncode}: "
                         f"{' / '.join(tail) or 'no output'}")


class CommandPower:
    """``power: {type: command, power_on: CMD, power_off: CMD, timeout_s: 60}``."""

    ephemeral = False

    def __init__(self, power_on: str, power_off: str, timeout_s: float = 60.0) -> None:
        self.on_command = power_on
        self.off_command = power_off
        self.timeout_s = timeout_s

    def new_name(self, group: NodeGroup) -> str:
        raise PowerError(f"group {group.name}: command power only switches the nodes it lists")

    def power_on(self, group: NodeGroup, node: str) -> None:
        run_command(self.on_command, group, node, self.timeout_s, "power on")

    def power_off(self, group: NodeGroup, node: str) -> None:
        run_command(self.off_command, group, node, self.timeout_s, "power off")

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
    """``power: {type: wol, broadcast: 255.255.255.255, port: 9, power_off: CMD}``."""

    def __init__(self, broadcast: str = "255.255.255.255", port: int = 9, power_off: str | None = None,
                 timeout_s: float = 60.0) -> None:
        self.broadcast = broadcast
        self.port = port
        self.off_command = power_off
        self.timeout_s = timeout_s

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
        if self.off_command:
            run_command(self.off_command, group, node, self.timeout_s, "power off")

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
    """cloud-init that joins the worker to k3s (``provisioner.cloudinit``)."""
    network: str | None = None
    zone: str | None = None
    disk_gib: int | None = None
    public_ip: bool = False


class CloudPower:
    """``power: {type: cloud, deployment: ID}``: a power-on creates a tagged worker (DESIGN §2: tags
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

    def new_name(self, group: NodeGroup) -> str:
        from provisioner.clouds.base import resource_name

        return resource_name(self.deployment, group.name, secrets.token_hex(3))

    def power_on(self, group: NodeGroup, node: str) -> None:
        from provisioner.clouds.base import NodeRequest

        spec = self.launch.get(group.name)
        if spec is None:
            raise PowerError(f"power on {node}: no launch settings for group {group.name}")
        failures: list[str] = []
        for size in spec.sizes:
            request = NodeRequest(
                deployment=self.deployment, group=group.name, name=node, size=size, image=spec.image,
                key_name=spec.key_name, security_group=spec.security_group, user_data=spec.user_data,
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
        return {m.name: m.created_at or now for m in listed
                if m.group == group.name and m.state in ("pending", "running", "unknown")}


def manager_for(group: NodeGroup, cloud_factory: Mapping[str, object] | None = None) -> PowerManager:
    """The power manager a group's ``power:`` mapping asks for (checked by ``elastic.groups``)."""
    power = dict(group.power)
    kind = power.get("type")
    if kind == "command":
        return CommandPower(power["power_on"], power["power_off"], float(power.get("timeout_s", 60)))
    if kind == "wol":
        return WolPower(str(power.get("broadcast", "255.255.255.255")), int(power.get("port", 9)),
                        power.get("power_off"))
    if kind == "cloud":
        if cloud_factory is None or group.name not in cloud_factory:
            raise BadInput(f"group {group.name}: cloud power needs the deployment's driver "
                           f"(run the daemon with --deployment, or a state file that has it)")
        return cloud_factory[group.name]  # type: ignore[return-value]
    raise BadInput(f"group {group.name}: no 'power' given, so the daemon cannot power its nodes")
