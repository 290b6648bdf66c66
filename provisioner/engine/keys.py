"""The deployment's SSH key: generated once per deployment, never a shared default.

Ed25519 (every cloud we target imports it: EC2 since 2021, Nova any OpenSSH key type). The private
key is stored as a deployment secret (so a resumed ``create`` imports the same public key) and as a
0600 file in the deployment's directory for ``ssh`` and Ansible.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

SSH_KEY_SECRET = "ssh_private_key"
"""The deployment secret that holds the private key."""


def new_private_key(_name: str = "ssh_private_key") -> str:
    """A fresh OpenSSH-format Ed25519 private key (the argument lets ``ensure_secret`` call it)."""
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()


def public_key_of(private_key: str, comment: str = "") -> str:
    """The ``ssh-ed25519 AAAA… comment`` line of an OpenSSH private key."""
    key = serialization.load_ssh_private_key(private_key.encode(), password=None)
    line = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode()
    return f"{line} {comment}".strip()
