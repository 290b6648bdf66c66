"""The cluster's certificate authorities, made by ``create`` before k3s first starts, and the agent
join token in k3s's secure form.

Cloud workers get their join token in user data rendered before the server exists, and k3s accepts
a token it cannot check against a CA only in the short form, which makes joining nodes trust any
server. With the CA made here, the token can be the secure ``K10<CA hash>::node:<secret>``: a joining
node downloads ``/cacerts`` from the server, hashes it and refuses a server whose CA differs. It is
the *agent* token (``agent-token``), so a worker's user data never holds the server token.

The files and their layout follow k3s's ``contrib/util/generate-custom-ca-certs.sh`` (k3s-io/k3s): a
root CA, an intermediate CA, and leaf CAs for ``client``, ``server``, ``request-header``,
``etcd/peer`` and ``etcd/server``, each ``<type>-ca.crt`` being ``leaf + intermediate + root``, plus
the service-account issuer key ``service.key``; all under ``/var/lib/rancher/k3s/server/tls``,
present before the first start. The hash is k3s's ``hashCA`` (``pkg/clientaccess/token.go``): for a
bundle of more than one certificate, the SHA-256 of the DER of the root of the first certificate's
chain. The root and intermediate keys are not placed on the server (the script says to keep them
elsewhere); they stay in the deployment's secrets, for rotation.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import secrets
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

TLS_DIR = "/var/lib/rancher/k3s/server/tls"
LEAF_TYPES = ("client", "server", "request-header", "etcd/peer", "etcd/server")
ON_SERVER = (*(f"{t}-ca.{ext}" for t in LEAF_TYPES for ext in ("crt", "key")), "service.key")
"""The files k3s reads from ``TLS_DIR`` (paths relative to it)."""
AGENT_USER = "node"
"""The user name of an agent token's credentials (``K10<hash>::node:<secret>``)."""


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


def _pem_cert(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _ca(name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None,
        issuer_key: ec.EllipticCurvePrivateKey | None, days: int) -> x509.Certificate:
    """A CA certificate as the script's ``v3_ca`` section makes it (SKI, AKI, CA:true, keyCertSign)."""
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer_cert, signer_key = (issuer, issuer_key) if issuer is not None and issuer_key else (None, key)
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(signer_cert.subject if signer_cert else subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, key_cert_sign=True,
                                            content_commitment=False, data_encipherment=False,
                                            key_agreement=False, crl_sign=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   signer_key.public_key()), critical=False))
    return builder.sign(signer_key, hashes.SHA256())


def generate_cluster_ca(product: str = "k3s") -> dict[str, str]:
    """Every file of the cluster's CAs, by path relative to ``TLS_DIR`` (plus ``root-ca.*`` and
    ``intermediate-ca.*``, which are kept off the server)."""
    stamp = int(datetime.datetime.now(datetime.UTC).timestamp())
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = _ca(f"{product}-root-ca@{stamp}", root_key, None, None, 7300)
    mid_key = ec.generate_private_key(ec.SECP384R1())
    mid = _ca(f"{product}-intermediate-ca@{stamp}", mid_key, root, root_key, 3700)
    files = {"root-ca.pem": _pem_cert(root), "root-ca.key": _pem_key(root_key),
             "intermediate-ca.pem": _pem_cert(mid), "intermediate-ca.key": _pem_key(mid_key)}
    for kind in LEAF_TYPES:
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = _ca(f"{product}-{kind.replace('/', '-')}-ca@{stamp}", key, mid, mid_key, 3700)
        files[f"{kind}-ca.crt"] = _pem_cert(leaf) + _pem_cert(mid) + _pem_cert(root)
        files[f"{kind}-ca.key"] = _pem_key(key)
    files["service.key"] = _pem_key(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return files


def ca_hash(bundle: str) -> str:
    """k3s's hash of a CA bundle (what ``/cacerts`` serves: ``server-ca.crt``): one certificate is
    hashed as the file's bytes; a chain, as the DER of its root."""
    certs = x509.load_pem_x509_certificates(bundle.encode())
    if len(certs) > 1:
        return hashlib.sha256(certs[-1].public_bytes(serialization.Encoding.DER)).hexdigest()
    return hashlib.sha256(bundle.encode()).hexdigest()


def agent_token(files: dict[str, str], secret: str | None = None) -> str:
    """``K10<hash of server-ca.crt>::node:<secret>``: the token agents, cloud workers and the daemon use."""
    return f"K10{ca_hash(files['server-ca.crt'])}::{AGENT_USER}:{secret or secrets.token_hex(32)}"


def new_ca_secret(_name: str = "k3s_ca") -> str:
    """The ``k3s_ca`` deployment secret: every CA file, as JSON (``ensure_secret`` calls it)."""
    return json.dumps(generate_cluster_ca(), sort_keys=True)


def ca_files_on_server(secret: str | None) -> dict[str, str]:
    """The files the server needs under ``TLS_DIR``, from the ``k3s_ca`` secret ({} without one)."""
    files = json.loads(secret) if secret else {}
    return {name: files[name] for name in ON_SERVER if name in files}


def ensure_cluster_ca(store: Any, deployment_id: str) -> dict[str, str]:
    """The deployment's ``k3s_ca`` and ``k3s_agent_token`` secrets, made once (``StateStore``): a
    resumed ``create`` keeps the CA the server may already use."""
    ca = store.ensure_secret(deployment_id, "k3s_ca", new_ca_secret)
    token = store.ensure_secret(deployment_id, "k3s_agent_token", lambda _name: agent_token(json.loads(ca)))
    return {"k3s_ca": ca, "k3s_agent_token": token}
