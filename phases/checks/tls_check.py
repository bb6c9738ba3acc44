"""`tls`: a certificate is valid for more than `min_days` more days.

Runbook T-24h "Valid certificates with >30 days until expiry" (from the PEM file
nginx serves) and success criterion "HTTPS working without warnings" (from the
live endpoint, with hostname and chain verification).

Names and chains are judged by libraries, not by hand: a name in `names` is matched
by cryptography's RFC 6125 verifier after IDNA 2008 (the idna package, as browsers
encode: bücher.example is xn--bcher-kva.example) or, for an IP address, after
parsing (::1 is 0:0:0:0:0:0:0:1). The file's chain is built and checked by
cryptography's Web PKI verifier; the live endpoint's by OpenSSL in the handshake.
Each failure says which it was: expiry, name mismatch or untrusted chain.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import socket
import ssl
import warnings
from dataclasses import dataclass
from typing import Any

import idna
from cryptography import x509
from cryptography.x509 import verification as xv
from cryptography.x509.oid import ExtensionOID, NameOID
from pydantic import Field, field_validator, model_validator

from phases.checks.base import Status, StepContext, StepKind, StepParams, StepResult, register

EVIDENCE_LIMIT = 200
DAY = 86400.0


class TlsParams(StepParams):
    file: str | None = None
    host: str | None = None
    port: int = Field(default=443, ge=1, le=65535)
    server_name: str | None = None  # SNI and the name verified; defaults to host
    min_days: int = Field(default=30, ge=0)
    # host: verify chain and name in the handshake (default true). file: check the chain
    # in the file against ca_file, or against the system's trust store with verify: true;
    # unset, the file's chain is checked only when ca_file is given.
    verify: bool | None = None
    ca_file: str | None = None
    # Names the certificate must be valid for (its subjectAltName, as browsers check):
    # the file nginx serves must be for this domain, not merely unexpired. A Unicode
    # domain may be written either way (bücher.example or xn--bcher-kva.example).
    names: list[str] = Field(default_factory=list)

    @field_validator("names")
    @classmethod
    def names_are_hosts(cls, names: list[str]) -> list[str]:
        for name in names:
            subject_for(name)
        return names

    @model_validator(mode="after")
    def file_or_host(self) -> TlsParams:
        if (self.file is None) == (self.host is None):
            raise ValueError(
                "give exactly one of file (a PEM certificate) or host (a live endpoint)"
            )
        verified = self.server_name or self.host  # the name the handshake checks
        if verified is not None:
            subject_for(verified)
        return self

    @property
    def checks_chain(self) -> bool:
        if self.host is not None:
            return self.verify is not False
        return self.verify is True or (self.verify is None and self.ca_file is not None)


Subject = xv.DNSName | xv.IPAddress


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    bare = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        return None


def a_label(name: str) -> str:
    """A DNS name as certificates and DNS carry it: IDNA 2008 with UTS 46 mapping."""
    try:
        return idna.encode(name.rstrip("."), uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(
            f"{name!r} is neither an IP address nor a valid host name ({exc})"
        ) from None


def subject_for(name: str) -> Subject:
    """What a certificate must be valid for: an IP address (any spelling) or an A-label."""
    ip = _ip(name)
    return xv.IPAddress(ip) if ip is not None else xv.DNSName(a_label(name))


def _wire_name(name: str) -> str:
    """The name to connect to and to verify in the handshake (SNI takes A-labels).

    A host only connected to (server_name given) may be what DNS alone accepts (my_db).
    """
    ip = _ip(name)
    if ip is not None:
        return str(ip)
    try:
        return a_label(name)
    except ValueError:
        return name


def _shown(name: str) -> str:
    """The name as the runbook gives it, with the form compared when that differs."""
    subject = subject_for(name)
    compared = str(subject.value)
    return name if compared == name.lower().rstrip(".") else f"{name} ({compared})"


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


def _own_subject(cert: x509.Certificate) -> Subject | None:
    """A name the certificate itself claims, to tell a name mismatch from a refused cert."""
    for san in _sans(cert):
        if san.startswith("*."):
            san = "wildcard-probe" + san[1:]
        try:
            return subject_for(san)
        except ValueError:
            continue
    return None


def _verify_name(cert: x509.Certificate, subject: Subject, when: dt.datetime) -> str | None:
    """Why cryptography's verifier refuses `cert` for `subject`, or None (valid for it).

    The certificate is its own trust anchor here: only its names and profile are judged.
    """
    verifier = xv.PolicyBuilder().store(xv.Store([cert])).time(when).build_server_verifier(subject)
    try:
        verifier.verify(cert, [])
    except xv.VerificationError as exc:
        return str(exc)
    return None


@dataclass
class Chain:
    """A chain to check: the leaf's intermediates and the trust anchors, named for evidence."""

    intermediates: list[x509.Certificate]
    roots: list[x509.Certificate]
    where: str  # the file the intermediates came from
    trust: str  # "ca_file X" or "the system trust store Y"

    def missing_issuer(self, leaf: x509.Certificate) -> x509.Certificate | None:
        """The certificate whose issuer is neither given nor trusted (by name), if any."""
        cert, hops = leaf, 0
        while hops <= len(self.intermediates):
            if any(root.subject == cert.issuer for root in self.roots):
                return None
            parent = next(
                (c for c in self.intermediates if c.subject == cert.issuer and c != cert), None
            )
            if parent is None:
                return cert
            cert, hops = parent, hops + 1
        return None

    def check(self, leaf: x509.Certificate, subject: Subject, when: dt.datetime) -> str:
        """The trusted root's label; raises ChainError with what is wrong."""
        verifier = (
            xv.PolicyBuilder().store(xv.Store(self.roots)).time(when).build_server_verifier(subject)
        )
        try:
            built = verifier.verify(leaf, self.intermediates)
        except xv.VerificationError as exc:
            orphan = self.missing_issuer(leaf)
            if orphan is not None and orphan.issuer == orphan.subject:
                raise ChainError(
                    f"{cert_label(orphan)} is self-signed and not in {self.trust}"
                ) from None
            if orphan is not None:
                cns = orphan.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
                issuer = f"CN={cns[0].value!s}" if cns else orphan.issuer.rfc4514_string()
                raise ChainError(
                    f"issuer {issuer} of {cert_label(orphan)} is in neither {self.where} "
                    f"nor {self.trust}"
                ) from None
            raise ChainError(str(exc).removeprefix("validation failed: ")) from None
        return cert_label(built[-1])


class ChainError(Exception):
    pass


def judge(
    cert: x509.Certificate,
    params: TlsParams,
    ctx: StepContext,
    prefix: str = "",
    chain: Chain | None = None,
) -> StepResult:
    now = ctx.clock.now()
    when = dt.datetime.fromtimestamp(now, dt.UTC)
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
        details["failed"] = "expiry"
        return StepResult(Status.FAIL, _clip(evidence), details=details)
    if not_before.timestamp() > now:
        evidence = f"{prefix}cert {label} not valid before {not_before.strftime('%Y-%m-%d')}"
        details["failed"] = "expiry"
        return StepResult(Status.FAIL, _clip(evidence), details=details)
    refusals = {n: _verify_name(cert, subject_for(n), when) for n in params.names}
    uncovered = [n for n, why in refusals.items() if why is not None]
    if uncovered:
        own = _own_subject(cert)
        if own is None or _verify_name(cert, own, when) is not None:
            # Refused even for a name it carries: not a name mismatch, say what it is.
            why = refusals[uncovered[0]] or ""
            evidence = f"{prefix}cert {label} refused: {why.removeprefix('validation failed: ')}"
            details["failed"] = "certificate"
            return StepResult(Status.FAIL, _clip(evidence), details=details)
        sans = ", ".join(_sans(cert)) or "none"
        shown = ", ".join(_shown(n) for n in uncovered)
        evidence = f"{prefix}cert {label} is not valid for {shown} (its names: {sans})"
        details["failed"] = "name"
        return StepResult(Status.FAIL, _clip(evidence), details=details)
    chained = ""
    if chain is not None:
        subject = subject_for(params.names[0]) if params.names else _own_subject(cert)
        try:
            if subject is None:
                raise ChainError("the certificate has no subjectAltName to verify it for")
            root = chain.check(cert, subject, when)
        except ChainError as exc:
            evidence = f"{prefix}cert {label}: untrusted chain: {exc}"
            details["failed"] = "chain"
            return StepResult(Status.FAIL, _clip(evidence), details=details)
        details["trusted_root"] = root
        chained = f", chain verified to {root}"
    evidence = f"{prefix}cert {label} expires {expires} ({days} days left, need >{params.min_days})"
    if params.names:
        evidence += f", valid for {', '.join(_shown(n) for n in params.names)}"
    evidence += chained
    status = Status.PASS if remaining > params.min_days * DAY else Status.FAIL
    if status is Status.FAIL:
        details["failed"] = "expiry"
    return StepResult(status, _clip(evidence), details=details)


def _load_pem(path: str) -> list[x509.Certificate]:
    with open(path, "rb") as fh:
        return x509.load_pem_x509_certificates(fh.read())


_PEM_END = b"-----END CERTIFICATE-----"


def _load_roots(path: str) -> list[x509.Certificate]:
    """Every certificate in a trust bundle that parses; one odd root does not void the rest."""
    with open(path, "rb") as fh:
        blocks = [block + _PEM_END for block in fh.read().split(_PEM_END) if b"-----BEGIN" in block]
    roots = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. old roots with a non-positive serial number
        for block in blocks:
            try:
                roots.append(x509.load_pem_x509_certificate(block))
            except ValueError:
                continue
    return roots


def _system_roots() -> tuple[list[x509.Certificate], str] | None:
    """The trust store OpenSSL would use (SSL_CERT_FILE / SSL_CERT_DIR honoured)."""
    paths = ssl.get_default_verify_paths()
    if paths.cafile and os.path.isfile(paths.cafile):
        roots = _load_roots(paths.cafile)
        if roots:
            return roots, f"the system trust store {paths.cafile}"
    if paths.capath and os.path.isdir(paths.capath):
        roots = []
        for entry in sorted(os.listdir(paths.capath)):
            full = os.path.join(paths.capath, entry)
            if os.path.isfile(full):
                roots += _load_roots(full)
        if roots:
            return roots, f"the system trust store {paths.capath}"
    return None


def _from_file(params: TlsParams, ctx: StepContext) -> StepResult:
    assert params.file is not None
    path = _resolve(params.file, ctx)
    if not os.path.isfile(path):
        return StepResult(Status.FAIL, f"cert file {params.file} not found")
    try:
        certs = _load_pem(path)
    except ValueError:
        return StepResult(Status.FAIL, f"cert file {params.file} holds no PEM certificate")
    chain = None
    if params.checks_chain:
        if params.ca_file:
            ca_path = _resolve(params.ca_file, ctx)
            if not os.path.isfile(ca_path):
                return StepResult(Status.ERROR, f"ca_file {params.ca_file} not found")
            try:
                roots, trust = _load_pem(ca_path), f"ca_file {params.ca_file}"
            except ValueError:
                return StepResult(
                    Status.ERROR, f"ca_file {params.ca_file} holds no PEM certificate"
                )
        else:
            system = _system_roots()
            if system is None:
                return StepResult(
                    Status.ERROR, "no system trust store found: give ca_file to verify the chain"
                )
            roots, trust = system
        chain = Chain(certs[1:], roots, params.file, trust)
    # The leaf comes first in cert.pem / fullchain.pem; the rest are its intermediates.
    result = judge(certs[0], params, ctx, chain=chain)
    result.details["verified"] = "trusted_root" in result.details
    return result


def _fetch(params: TlsParams, context: ssl.SSLContext, timeout: float) -> bytes:
    assert params.host is not None
    name = _wire_name(params.server_name or params.host)
    address = (_wire_name(params.host), params.port)
    with socket.create_connection(address, timeout=timeout) as raw:
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


# OpenSSL's X509_V_ERR_* codes, sorted into what the person has to fix.
_NAME_CODES = {62, 63, 64}  # hostname, email, IP address mismatch
_EXPIRY_CODES = {9, 10}  # not yet valid, expired


def _from_host(params: TlsParams, ctx: StepContext) -> StepResult:
    where = f"{params.host}:{params.port}"
    deadline = ctx.clock.monotonic() + ctx.timeout
    if params.checks_chain:
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
        # What the server does present, for the person reading the failure.
        seen: x509.Certificate | None = None
        remaining = deadline - ctx.clock.monotonic()
        if remaining > 0.05:
            with contextlib.suppress(OSError, ValueError):
                seen = x509.load_der_x509_certificate(
                    _fetch(params, _unverified_context(), remaining)
                )
        failed, what = _classify(exc.verify_code, seen, ctx.clock.now())
        evidence = f"{where}: {what}: verification failed: {reason}"
        if seen is not None:
            evidence += f" (cert {cert_label(seen)}, expires {seen.not_valid_after_utc:%Y-%m-%d})"
        details = {"verify_error": reason, "failed": failed}
        return StepResult(Status.FAIL, _clip(evidence), details=details)
    except TimeoutError:
        return StepResult(Status.ERROR, f"{where}: timed out after {ctx.timeout:g}s")
    except ssl.SSLError as exc:
        return StepResult(Status.FAIL, _clip(f"{where}: TLS handshake failed: {exc.reason or exc}"))
    except OSError as exc:
        return StepResult(Status.ERROR, _clip(f"{where}: cannot connect: {exc.strerror or exc}"))
    cert = x509.load_der_x509_certificate(der)
    prefix = f"{params.server_name or params.host}: "
    result = judge(cert, params, ctx, prefix=prefix)
    result.details["verified"] = params.checks_chain
    return result


def _classify(code: int, leaf: x509.Certificate | None, now: float) -> tuple[str, str]:
    """(details' failed, the words for it) for an OpenSSL verification error code."""
    if code in _NAME_CODES:
        return "name", "name mismatch"
    if code in _EXPIRY_CODES:
        if leaf is None:
            return "expiry", "a certificate in the chain is out of its validity"
        leaf_out = not (
            leaf.not_valid_before_utc.timestamp() <= now <= leaf.not_valid_after_utc.timestamp()
        )
        return (
            ("expiry", "certificate expired" if code == 10 else "certificate not yet valid")
            if leaf_out
            else ("chain", "untrusted chain (a chain certificate is out of its validity)")
        )
    return "chain", "untrusted chain"


def run_tls(params: TlsParams, ctx: StepContext) -> StepResult:
    return _from_file(params, ctx) if params.file is not None else _from_host(params, ctx)


KIND = register(StepKind(name="tls", params=TlsParams, run=run_tls, mutates=False))
