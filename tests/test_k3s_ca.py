"""The cluster CAs ``create`` makes and the agent token's CA hash, recomputed here the way k3s does.

Oracles (k3s-io/k3s): ``contrib/util/generate-custom-ca-certs.sh`` at commit
9980504196ce0cb53c8e04756598d6f8982a5756 for the file names and chain layout, and ``hashCA`` in
``pkg/clientaccess/token.go`` at commit 0566d4571ef8e44fdc87aee1ddf42667256f5e84 (Apache-2.0) for
the hash: for a bundle of more than one certificate, the roots are the certificates after the
first without an authority key id or whose authority key id is their subject key id, the first
certificate is verified against them (the others as intermediates), and the DER of the chain's
root is hashed. ``k3s_hash`` below follows that code step by step, independently of
``provisioner.k3sca``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from provisioner.k3sca import ON_SERVER, agent_token, ca_files_on_server, generate_cluster_ca, new_ca_secret

SCRIPT_FILES = {f"{t}-ca.{ext}" for t in ("client", "server", "request-header", "etcd/peer", "etcd/server")
                for ext in ("crt", "key")} | {"service.key"}
"""What generate-custom-ca-certs.sh leaves under server/tls for k3s (root-ca.* and intermediate-ca.*
aside: the script says to keep those off the cluster)."""


def _ski(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


def _aki(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        return None


def k3s_hash(bundle: bytes) -> str:
    """k3s's hashCA, step by step."""
    certs = x509.load_pem_x509_certificates(bundle)
    if len(certs) > 1:
        roots = [c for c in certs[1:] if not _aki(c) or _aki(c) == _ski(c)]
        intermediates = [c for c in certs[1:] if c not in roots]
        chain, current = [certs[0]], certs[0]
        while current not in roots:  # certs[0].Verify(...): walk issuer by issuer, checking signatures
            issuer = next(c for c in [*intermediates, *roots] if c.subject == current.issuer)
            current.verify_directly_issued_by(issuer)
            chain.append(issuer)
            current = issuer
        current.verify_directly_issued_by(current)  # a root signs itself
        bundle = chain[-1].public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(bundle).hexdigest()


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    return generate_cluster_ca()


def test_the_files_are_those_k3s_reads_before_its_first_start(files: dict[str, str]) -> None:
    assert set(ON_SERVER) == SCRIPT_FILES
    assert set(ca_files_on_server(json.dumps(files))) == SCRIPT_FILES  # root and intermediate keys stay off
    assert ca_files_on_server(None) == {}
    for kind in ("client", "server", "request-header", "etcd/peer", "etcd/server"):
        leaf, mid, root = x509.load_pem_x509_certificates(files[f"{kind}-ca.crt"].encode())
        assert root.subject == root.issuer and mid.issuer == root.subject and leaf.issuer == mid.subject
        for cert in (leaf, mid, root):
            assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        key = serialization.load_pem_private_key(files[f"{kind}-ca.key"].encode(), password=None)
        assert key.public_key().public_numbers() == leaf.public_key().public_numbers()  # type: ignore[union-attr]
    service = serialization.load_pem_private_key(files["service.key"].encode(), password=None)
    assert service.key_size == 2048  # type: ignore[union-attr]
    assert "BEGIN RSA PRIVATE KEY" in files["service.key"]  # the traditional format the script writes


def test_the_agent_token_carries_the_hash_k3s_computes_from_cacerts(files: dict[str, str]) -> None:
    token = agent_token(files, "s3cret")
    cacerts = files["server-ca.crt"].encode()  # what the server serves at /cacerts
    assert token == f"K10{k3s_hash(cacerts)}::node:s3cret"
    root = x509.load_pem_x509_certificates(cacerts)[-1]
    assert token[3:67] == hashlib.sha256(root.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert len(token[3:].split("::")[0]) == 64  # caHashLength: sha256.Size * 2
    other = generate_cluster_ca()
    assert agent_token(other, "s3cret") != token  # another cluster's CA: the joining node refuses it


def test_a_generated_token_and_ca_are_new_each_time() -> None:
    first: Any = json.loads(new_ca_secret())
    second: Any = json.loads(new_ca_secret())
    assert first["root-ca.key"] != second["root-ca.key"]
    one, two = agent_token(first), agent_token(first)
    assert one.rpartition(":")[2] != two.rpartition(":")[2] and len(one.rpartition(":")[2]) == 64
