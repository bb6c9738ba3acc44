"""`tls`: a certificate is valid for more than `min_days` more days.

Runbook T-24h "Valid certificates with >30 days until expiry" (from the PEM file
nginx serves) and success criterion "HTTPS working without warnings" (from the
live endpoint, with hostname and chain verification).
"""

from __future__ import annotations

import os
import socket
import ssl
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID
from pydantic import Field, model_validator

from phases.checks.base import Status, StepContext, StepKind, StepParams, StepResult, register

EVIDENCE_LIMIT = 200
DAY = 86400.0


class TlsParams(StepParams):
    file: str | None = None
    host: str | None = None
    port: int = Field(default=443, ge=1, le=65535)
    server_name: str | None = None  # SNI and the name verified; defaults to host
    min_days: int = Field(default=30, ge=0)
    verify: bool = True
    ca_file: str | None = None
    # Names the certificate must be valid for (its subjectAltName, as browsers check):
    # the file nginx serves must be for this domain, not merely unexpired.
    names: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def file_or_host(self) -> TlsParams:
        if (self.file is None) == (self.host is None):
            raise ValueError(
                "give exactly one of file (a PEM certificate) or host (a live endpoint)"
            )
        return self


def _clip(text: str) -> str:
    return text if len(text) <= EVIDENCE_LIMIT else text[: EVIDENCE_LIMIT - 1] + "…"


def _resolve(path: str, ctx: StepContext) -> str:
    if ctx.workdir and not os.path.isabs(path):
        return os.path.join(ctx.workdir, path)
    return path


def cert_label(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if names:
        return f"CN={names[0].value!s}"
    sans = _sans(cert)
    if sans:
        return f"SAN={sans[0]}"
    return cert.subject.rfc4514_string() or "(no subject)"


def _sans(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except x509.ExtensionNotFound:
        return []
    san = ext.value
    assert isinstance(san, x509.SubjectAlternativeName)
    return [str(v) for v in san.get_values_for_type(x509.DNSName)] + [
        str(v) for v in san.get_values_for_type(x509.IPAddress)
    ]


def covers(cert: x509.Certificate, name: str) -> bool:
    """RFC 6125 matching against the SANs: exact, or one left-most wildcard label."""
    want = name.lower().rstrip(".")
    for san in _sans(cert):
        pattern = san.lower().rstrip(".")
        if pattern == want:
            return True
        if pattern.startswith("*.") and "." in want:
            head, rest = want.split(".", 1)
            if head and rest == pattern[2:] and rest.count(".") >= 1:
                return True
    return False


def judge(
    cert: x509.Certificate, params: TlsParams, ctx: StepContext, prefix: str = ""
) -> StepResult:
    now = ctx.clock.now()
    not_after = cert.not_valid_after_utc
    not_before = cert.not_valid_before_utc
    remaining = not_after.timestamp() - now
    days = int(remaining // DAY)
    label = cert_label(cert)
    details: dict[str, Any] = {
        "subject": label,
        "issuer": cert.issuer.rfc4514_string(),
        "not_before": not_before.isoformat(),
        "not_after": not_after.isoformat(),
        "days_left": days,
        "sans": ", ".join(_sans(cert)),
    }
    expires = not_after.strftime("%Y-%m-%d")
    if remaining <= 0:
        evidence = (
            f"{prefix}cert {label} expired {expires} "
            f"({int(-remaining // DAY)} days ago, need >{params.min_days})"
        )
        return StepResult(Status.FAIL, _clip(evidence), details=details)
    if not_before.timestamp() > now:
        evidence = f"{prefix}cert {label} not valid before {not_before.strftime('%Y-%m-%d')}"
        return StepResult(Status.FAIL, _clip(evidence), details=details)
    uncovered = [n for n in params.names if not covers(cert, n)]
    if uncovered:
        sans = ", ".join(_sans(cert)) or "none"
        evidence = (
            f"{prefix}cert {label} is not valid for {', '.join(uncovered)} (its names: {sans})"
        )
        return StepResult(Status.FAIL, _clip(evidence), details=details)
    evidence = f"{prefix}cert {label} expires {expires} ({days} days left, need >{params.min_days})"
    if params.names:
        evidence += f", valid for {', '.join(params.names)}"
    status = Status.PASS if remaining > params.min_days * DAY else Status.FAIL
    return StepResult(status, _clip(evidence), details=details)


def _from_file(params: TlsParams, ctx: StepContext) -> StepResult:
    assert params.file is not None
    path = _resolve(params.file, ctx)
    if not os.path.isfile(path):
        return StepResult(Status.FAIL, f"cert file {params.file} not found")
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        return StepResult(Status.FAIL, f"cert file {params.file} holds no PEM certificate")
    return judge(certs[0], params, ctx)  # the leaf comes first in cert.pem / fullchain.pem


def _fetch(params: TlsParams, context: ssl.SSLContext, timeout: float) -> bytes:
    assert params.host is not None
    name = params.server_name or params.host
    with socket.create_connection((params.host, params.port), timeout=timeout) as raw:
        raw.settimeout(timeout)
        with context.wrap_socket(raw, server_hostname=name) as tls:
            der = tls.getpeercert(binary_form=True)
    if not der:
        raise ssl.SSLError("server sent no certificate")
    return der


def _unverified_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _from_host(params: TlsParams, ctx: StepContext) -> StepResult:
    where = f"{params.host}:{params.port}"
    deadline = ctx.clock.monotonic() + ctx.timeout
    if params.verify:
        if params.ca_file and not os.path.isfile(_resolve(params.ca_file, ctx)):
            return StepResult(Status.ERROR, f"ca_file {params.ca_file} not found")
        cafile = _resolve(params.ca_file, ctx) if params.ca_file else None
        context = ssl.create_default_context(cafile=cafile)
    else:
        context = _unverified_context()
    try:
        der = _fetch(params, context, ctx.timeout)
    except ssl.SSLCertVerificationError as exc:
        reason = exc.verify_message or str(exc)
        evidence = f"{where}: verification failed: {reason}"
        # What the server does present, for the person reading the failure.
        remaining = deadline - ctx.clock.monotonic()
        if remaining > 0.05:
            try:
                seen = x509.load_der_x509_certificate(
                    _fetch(params, _unverified_context(), remaining)
                )
                evidence += (
                    f" (cert {cert_label(seen)}, expires {seen.not_valid_after_utc:%Y-%m-%d})"
                )
            except (OSError, ValueError):
                pass
        return StepResult(Status.FAIL, _clip(evidence), details={"verify_error": reason})
    except TimeoutError:
        return StepResult(Status.ERROR, f"{where}: timed out after {ctx.timeout:g}s")
    except ssl.SSLError as exc:
        return StepResult(Status.FAIL, _clip(f"{where}: TLS handshake failed: {exc.reason or exc}"))
    except OSError as exc:
        return StepResult(Status.ERROR, _clip(f"{where}: cannot connect: {exc.strerror or exc}"))
    cert = x509.load_der_x509_certificate(der)
    prefix = f"{params.server_name or params.host}: "
    result = judge(cert, params, ctx, prefix=prefix)
    result.details["verified"] = params.verify
    return result


def run_tls(params: TlsParams, ctx: StepContext) -> StepResult:
    return _from_file(params, ctx) if params.file is not None else _from_host(params, ctx)


KIND = register(StepKind(name="tls", params=TlsParams, run=run_tls, mutates=False))
