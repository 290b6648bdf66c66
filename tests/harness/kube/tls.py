"""TLS and a bearer token for the Kubernetes API test server, as a pod sees a real API server.

In a pod the ``kubernetes`` client reaches the API over HTTPS, checks the server's certificate against
the service account's ``ca.crt`` and sends the service account's ``token``; ``ServingCert`` makes such
a CA, a server certificate for 127.0.0.1 signed by it, and a token, and writes them where a test can
mount them (``ca.crt`` and ``token``, the names Kubernetes gives the files).
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import secrets
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclasses.dataclass(frozen=True)
class ServingCert:
    """A CA, the server's certificate and key (PEM files in ``directory``) and the expected token."""

    directory: Path
    token: str

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def token_file(self) -> Path:
        return self.directory / "token"

    @property
    def cert_file(self) -> Path:
        return self.directory / "tls.crt"

    @property
    def key_file(self) -> Path:
        return self.directory / "tls.key"

    @classmethod
    def create(cls, directory: Path, host: str = "127.0.0.1") -> ServingCert:
        """A new CA and a server certificate valid for ``host`` (an IP SAN, which urllib3 checks)."""
        directory.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes-test-ca")])
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
              .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5))
              .not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                           content_commitment=False, key_encipherment=False,
                                           data_encipherment=False, key_agreement=False,
                                           encipher_only=False, decipher_only=False), critical=True)
              .sign(ca_key, hashes.SHA256()))
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
                .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
                               critical=False)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        pem = serialization.Encoding.PEM
        serving = cls(directory, secrets.token_urlsafe(32))
        serving.ca_file.write_bytes(ca.public_bytes(pem))
        serving.cert_file.write_bytes(cert.public_bytes(pem))
        serving.key_file.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
        serving.key_file.chmod(0o600)
        serving.token_file.write_text(serving.token)
        return serving

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context
