"""Waiting until hosts answer over SSH (the front-end and edge boards; never cloud workers).

"Answers" means the SSH server sends its protocol banner (``SSH-2.0-…``, RFC 4253 §4.2): the
machine has booted far enough for Ansible to log in. Logging in is the configuration step's job.
Hosts are probed together, each until it answers or the deadline passes; the ones that never answer
are named in one ``RemoteError``.
"""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from provisioner.errors import RemoteError


@dataclasses.dataclass(frozen=True)
class SshHost:
    name: str
    address: str
    port: int = 22


def ssh_banner(address: str, port: int, timeout_s: float = 5.0) -> str | None:
    """The SSH banner the host sends, or None if it does not answer like an SSH server."""
    try:
        with socket.create_connection((address, port), timeout=timeout_s) as sock:
            sock.settimeout(timeout_s)
            data = b""
            while b"\n" not in data and len(data) < 1024:
                chunk = sock.recv(256)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    for line in data.decode("latin-1").splitlines():
        if line.startswith("SSH-"):
            return line.strip()
    return None


def wait_for_ssh(hosts: Sequence[SshHost], timeout_s: float, *, interval_s: float = 2.0,
                 on_ready: Callable[[SshHost], None] = lambda _h: None,
                 on_waiting: Callable[[SshHost, float], None] = lambda _h, _s: None,
                 report_every_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
    """Return when every host answers over SSH; ``RemoteError`` naming the silent ones otherwise.
    ``on_waiting(host, seconds)`` is told every ``report_every_s`` a host stays silent, so a user
    watching a boot sees what it waits for and for how long."""
    if not hosts:
        return
    started = clock()
    deadline = started + timeout_s

    def wait_one(host: SshHost) -> bool:
        reported = started
        while True:
            if ssh_banner(host.address, host.port, timeout_s=min(5.0, max(0.5, timeout_s))):
                on_ready(host)
                return True
            if clock() + interval_s > deadline:
                return False
            if clock() - reported >= report_every_s:
                reported = clock()
                on_waiting(host, reported - started)
            sleep(interval_s)

    with ThreadPoolExecutor(max_workers=min(32, len(hosts))) as pool:
        answered = list(pool.map(wait_one, hosts))
    silent = [h for h, ok in zip(hosts, answered, strict=True) if not ok]
    if silent:
        names = ", ".join(f"{h.name} ({h.address}:{h.port})" for h in silent)
        raise RemoteError(f"no SSH answer within {timeout_s:g} s from: {names}")
