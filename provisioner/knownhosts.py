"""The boards' host keys for the elastic daemon in its pod, picked from the deployment's known_hosts.

The deployment's ``known_hosts`` is written by ssh itself (``create``'s probe with
``StrictHostKeyChecking=accept-new``, Ansible while configuring): every node, in the order the
connections happened, hashed (``|1|salt|hmac``) when the ssh config says ``HashKnownHosts yes``, with a
random salt each time. The daemon's ConfigMap must not change with any of that, or two ``configure``
runs would render different manifests. ``board_known_hosts`` keeps, for each board the daemon halts,
the keys recorded for exactly the name ssh looks that board up by, and writes them again un-hashed,
deduplicated and sorted: the same keys always give the same text.

The format is OpenSSH's (sshd(8), "SSH_KNOWN_HOSTS FILE FORMAT"): an optional marker
(``@cert-authority`` lines are left out; a key a ``@revoked`` line names for a board is never passed
on), comma-separated host names or a hashed name, the key type, the base64 key, an optional comment.
ssh looks a host up as its lower-cased name for port 22 and as ``[name]:port`` otherwise
(``put_host_port`` in OpenSSH), and hashes that string with HMAC-SHA1 keyed by the entry's salt
(``host_hash`` in OpenSSH's hostfile.c).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable
from typing import Protocol, TypeVar

HASH_MAGIC = "|1|"
"""OpenSSH's prefix of a hashed host name: ``|1|base64(salt)|base64(HMAC-SHA1(salt, name))``."""
SSH_PORT = 22
_ADDRESS = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:_-]*\Z")
"""A host name, an IPv4 or an IPv6 address: nothing that could end a field or a line."""
_KEY_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9@._+-]*\Z")


class HaltedBoard(Protocol):
    """What a board needs here (``provisioner.record.Board`` has it)."""

    @property
    def address(self) -> str: ...

    @property
    def ssh_port(self) -> int: ...

    @property
    def proxy_jump(self) -> bool: ...


B = TypeVar("B", bound=HaltedBoard)


def host_pattern(address: str, port: int) -> str:
    """The name ssh records and looks a host up by: ``address`` on port 22, else ``[address]:port``."""
    host = address.lower()
    return host if port == SSH_PORT else f"[{host}]:{port}"


def hashed_name_matches(field: str, name: str) -> bool:
    """True when the hashed host field ``|1|salt|hmac`` is ``name`` hashed with that salt."""
    parts = field[len(HASH_MAGIC):].split("|")
    if not field.startswith(HASH_MAGIC) or len(parts) != 2:
        return False
    try:
        salt, digest = (base64.b64decode(p, validate=True) for p in parts)
    except binascii.Error:
        return False
    return hmac.compare_digest(hmac.new(salt, name.encode(), hashlib.sha1).digest(), digest)


def names_match(field: str, name: str) -> bool:
    """True when a line's host field names ``name`` exactly (a hashed name, or one of the
    comma-separated names, not negated by a ``!name`` among them). Wildcard patterns are not
    expanded: ssh never writes one, and a key the daemon trusts should name its board."""
    if field.startswith(HASH_MAGIC):
        return hashed_name_matches(field, name)
    names = [n.lower() for n in field.split(",")]
    return name in names and f"!{name}" not in names


def _valid_key(key_type: str, blob: str) -> bool:
    """True when ``blob`` is base64 of an SSH public key whose own type name is ``key_type`` (RFC 4253
    section 6.6: the blob starts with the type as an SSH string)."""
    if not _KEY_TYPE.match(key_type):
        return False
    try:
        raw = base64.b64decode(blob, validate=True)
    except binascii.Error:
        return False
    size = int.from_bytes(raw[:4], "big")
    return len(raw) >= 4 + size and raw[4:4 + size] == key_type.encode()


def board_known_hosts(text: str, boards: Iterable[HaltedBoard]) -> str:
    """The lines of ``text`` (a known_hosts file) that give the host keys of ``boards``, as
    ``name keytype key`` (un-hashed, one name), deduplicated and sorted; boards reached through the
    front-end (``proxy_jump``: never halted over SSH) and addresses no ssh host name looks like are
    left out. ``""`` when no key is known."""
    names = {host_pattern(b.address, b.ssh_port) for b in boards
             if not b.proxy_jump and _ADDRESS.match(b.address)}
    found: set[str] = set()
    revoked: set[str] = set()
    for line in text.splitlines():
        fields = line.split()
        marker = fields.pop(0) if fields and fields[0].startswith("@") else None
        if len(fields) < 3 or fields[0].startswith("#") or marker not in (None, "@revoked"):
            continue
        field, key_type, blob = fields[:3]
        if not _valid_key(key_type, blob):
            continue
        keys = {f"{name} {key_type} {blob}" for name in names if field == "*" or names_match(field, name)}
        (revoked if marker else found).update(keys)
    return "".join(f"{line}\n" for line in sorted(found - revoked))


def missing_keys(text: str, boards: Iterable[B]) -> list[B]:
    """The boards of ``boards`` (halted over SSH) no key of ``text`` is known for yet."""
    return [b for b in boards if not b.proxy_jump and not board_known_hosts(text, [b])]
