"""A throwaway CA and certificates for loopback TLS tests (made with the `cryptography` package)."""
from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.now(datetime.timezone.utc)


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Authority:
    """A CA that signs certificates for 127.0.0.1, written under `directory`."""

    name: str
    directory: Path
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @staticmethod
    def create(directory: Path, name: str = "apreg test CA") -> "Authority":
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                       .public_key(key.public_key()).serial_number(x509.random_serial_number())
                       .not_valid_before(NOW - datetime.timedelta(days=1))
                       .not_valid_after(NOW + datetime.timedelta(days=30))
                       .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                       .sign(key, hashes.SHA256()))
        authority = Authority(name, directory, key, certificate)
        authority.bundle.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return authority

    @property
    def bundle(self) -> Path:
        return self.directory / f"{self.name.replace(' ', '-')}.pem"

    def issue(self, label: str, expired: bool = False) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        start, end = ((NOW - datetime.timedelta(days=10), NOW - datetime.timedelta(days=1)) if expired
                      else (NOW - datetime.timedelta(days=1), NOW + datetime.timedelta(days=10)))
        certificate = (x509.CertificateBuilder()
                       .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, label)]))
                       .issuer_name(self.certificate.subject).public_key(key.public_key())
                       .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
                       .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                                   x509.DNSName("localhost")]), critical=False)
                       .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                             ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                       .sign(self.key, hashes.SHA256()))
        issued = Issued(self.directory / f"{label}.crt", self.directory / f"{label}.key")
        issued.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        issued.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
        return issued

    def client_context(self, identity: Issued | None = None) -> ssl.SSLContext:
        """What a client that trusts this CA (and optionally presents `identity`) connects with."""
        context = ssl.create_default_context(cafile=str(self.bundle))
        if identity is not None:
            context.load_cert_chain(identity.cert, identity.key)
        return context
