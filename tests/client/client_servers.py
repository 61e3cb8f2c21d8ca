"""Test doubles and certificates the client tests share (imported by conftest.py and the tests)."""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health

# The only name in the server certificate: reaching it by IP needs ClientTLS(server_name=...).
SERVER_NAME = "dedup.iforge.test"


class ScriptedHealth(health.aio.HealthServicer):
    """The standard health service, but its first `failures` checks fail with `code` and each
    check can be slowed by `delay` seconds; it records every attempt that reaches it."""

    def __init__(
        self, failures: int = 0, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE, delay: float = 0
    ):
        super().__init__()
        self.failures, self.code, self.delay = failures, code, delay
        self.calls = 0
        self.time_remaining: list[float | None] = []

    async def Check(self, request, context):
        self.calls += 1
        self.time_remaining.append(context.time_remaining())
        if self.calls <= self.failures:
            await context.abort(self.code, f"scripted failure {self.calls} of {self.failures}")
        if self.delay:
            await asyncio.sleep(self.delay)
        return await super().Check(request, context)


@dataclass(frozen=True)
class Pki:
    """PEM files of a CA, a server certificate it signed, a client certificate it signed, and a
    client certificate from an unrelated CA."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_client_cert: Path
    rogue_client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    sans: tuple[x509.GeneralName, ...] = (),
    usage=None,
):
    """An EC P-256 key and a certificate for it; self-signed CA when `issuer` is None."""
    key = ec.generate_private_key(ec.SECP256R1())
    issuer_name, issuer_key = issuer if issuer else (_name(subject), key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return key, builder.sign(issuer_key, hashes.SHA256())


def _write(folder: Path, stem: str, key, certificate) -> tuple[Path, Path]:
    cert_path, key_path = folder / f"{stem}.crt", folder / f"{stem}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def make_pki(folder: Path) -> Pki:
    ca_key, ca = _certificate("iforge test CA", None)
    rogue_key, rogue = _certificate("rogue CA", None)
    sans = (x509.DNSName(SERVER_NAME),)
    server = _certificate("dedup", (ca.subject, ca_key), sans=sans, usage=ExtendedKeyUsageOID.SERVER_AUTH)
    client = _certificate("pipeline", (ca.subject, ca_key), usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    rogue_client = _certificate("intruder", (rogue.subject, rogue_key), usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    ca_path, _ = _write(folder, "ca", ca_key, ca)
    return Pki(
        ca_path,
        *_write(folder, "server", *server),
        *_write(folder, "client", *client),
        *_write(folder, "rogue-client", *rogue_client),
    )
