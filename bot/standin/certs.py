"""Certificates from a throwaway CA (roots, intermediates, leaves) for loopback HTTPS servers."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import ssl
import uuid
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


class CertFiles(NamedTuple):
    cert: Path
    key: Path


class CA(NamedTuple):
    cert: Path
    key: Path
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "cert"


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cutover-bot tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def make_ca(
    tmp_path: Path, cn: str = "Cutover Test CA", days: int = 3650, issuer: CA | None = None
) -> CA:
    """A CA; pass it as `issuer` to make_cert / make_leaf, its .cert as ca_file.

    Self-signed (a root) when issuer is None, else an intermediate signed by `issuer`.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    signer_key = issuer.private_key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.certificate.subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(
            x509.BasicConstraints(ca=True, path_length=None if issuer is None else 0),
            critical=True,
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()),
            critical=False,
        )
    cert = builder.sign(signer_key, hashes.SHA256())
    stem = f"{_slug(cn)}-{uuid.uuid4().hex[:6]}"
    cert_path, key_path = tmp_path / f"{stem}.crt", tmp_path / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key_path, key)
    return CA(cert_path, key_path, cert, key)


def make_cert(
    tmp_path: Path,
    cn: str,
    days: int,
    issuer: CA | None = None,
    *,
    sans: list[str] | None = None,
) -> CertFiles:
    """A server certificate for `cn` valid for `days` more days (negative: expired that long ago).

    Self-signed when issuer is None. SANs default to [cn]; IP literals become IP SANs.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    not_after = now + dt.timedelta(days=days)
    not_before = min(now, not_after) - dt.timedelta(days=30)
    alt_names: list[x509.GeneralName] = []
    for san in sans if sans is not None else [cn]:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(san)))
        except ValueError:
            alt_names.append(x509.DNSName(san))
    signer_key: ec.EllipticCurvePrivateKey = issuer.private_key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.certificate.subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()),
            critical=False,
        )
    )
    cert = builder.sign(signer_key, hashes.SHA256())
    stem = f"{_slug(cn)}-{days}d-{uuid.uuid4().hex[:6]}"
    cert_path, key_path = tmp_path / f"{stem}.pem", tmp_path / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key_path, key)
    return CertFiles(cert_path, key_path)


def make_leaf(
    tmp_path: Path, ca: CA, cn: str, days: int, *, sans: list[str] | None = None
) -> CertFiles:
    return make_cert(tmp_path, cn, days, issuer=ca, sans=sans)


def server_context(cert: str | Path, key: str | Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    return context
