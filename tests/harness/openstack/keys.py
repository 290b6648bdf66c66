"""SSH key pairs as Nova handles them: validation, fingerprint, generation."""

from __future__ import annotations

import base64
import binascii
import hashlib

from tests.harness.openstack.wire import nova_error

KEY_TYPES = ("ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")


def key_fingerprint(public_key: str) -> str:
    """Nova's fingerprint: MD5 of the key blob, colon-separated hex."""
    digest = hashlib.md5(base64.b64decode(public_key.split()[1]), usedforsecurity=False).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def check_public_key(public_key: str) -> None:
    """Refuse what Nova refuses: anything but one OpenSSH public key line of a known type."""
    parts = public_key.strip().split()
    bad = nova_error(400, "Keypair data is invalid: failed to generate fingerprint")
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        raise bad
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except binascii.Error as exc:
        raise bad from exc
    length = int.from_bytes(blob[:4], "big")
    if blob[4 : 4 + length].decode(errors="replace") != parts[0]:
        raise bad


def generate_key_pair() -> tuple[str, str]:
    """A new RSA key pair (private PEM, OpenSSH public), as Nova generates before microversion 2.92."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    return private, public + " Generated-by-Nova"
