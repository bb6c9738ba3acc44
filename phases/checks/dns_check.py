"""`dns`: a name resolves to the production IP, at every resolver asked.

Runbook T-24h "DNS must resolve to production server IP" and phase 8 "Verify DNS
propagation complete" (8.8.8.8, 1.1.1.1, 9.9.9.9): each resolver is queried on
its own, all at once, and the step passes only if every one answers exactly the
expected address.
"""

from __future__ import annotations

import ipaddress
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from phases.checks.base import Status, StepContext, StepKind, StepParams, StepResult, register

EVIDENCE_LIMIT = 200
SYSTEM = "system resolver"


class DnsParams(StepParams):
    name: str = Field(min_length=1, max_length=253)
    expected_ip: str
    record: Literal["A", "AAAA"] = "A"
    # None or [] asks the host's own resolver; several entries are asked one by one
    resolvers: list[str] | None = None
    port: int = Field(default=53, ge=1, le=65535)

    @field_validator("expected_ip")
    @classmethod
    def ip_address(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            raise ValueError(f"expected_ip {value!r} is not an IP address") from None

    @field_validator("resolvers")
    @classmethod
    def resolver_addresses(cls, values: list[str] | None) -> list[str] | None:
        for v in values or []:
            split_resolver(v, 53)
        return values or None

    @model_validator(mode="after")
    def family_matches_record(self) -> DnsParams:
        version = ipaddress.ip_address(self.expected_ip).version
        if (self.record == "A") != (version == 4):
            raise ValueError(f"expected_ip {self.expected_ip} does not fit a {self.record} record")
        return self


def split_resolver(entry: str, default_port: int) -> tuple[str, int]:
    """'1.1.1.1' | '127.0.0.1:5353' | '::1' | '[::1]:5353' -> (address, port)."""
    text = entry.strip()
    host, port = text, default_port
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ValueError(f"resolver {entry!r}: missing ']'")
        host, rest = text[1:close], text[close + 1 :]
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise ValueError(f"resolver {entry!r}: expected [address]:port")
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        if not port_text.isdigit():
            raise ValueError(f"resolver {entry!r}: port must be a number")
        port = int(port_text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"resolver {entry!r} must be an IP address, optionally with :port"
        ) from None
    if not 1 <= port <= 65535:
        raise ValueError(f"resolver {entry!r}: port out of range")
    return host, port


def _make_resolver(entry: str | None, params: DnsParams, ctx: StepContext) -> Any:
    import dns.nameserver  # when a step runs, not at import (phases/checks/__init__.py)
    import dns.resolver

    if ctx.resolver_factory is not None:
        return ctx.resolver_factory(None if entry is None else [entry])
    if entry is None:
        resolver = dns.resolver.Resolver(configure=True)
    else:
        host, port = split_resolver(entry, params.port)
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port)]
    resolver.timeout = ctx.timeout
    resolver.lifetime = ctx.timeout
    return resolver


def _normalise(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


def _query(entry: str | None, params: DnsParams, ctx: StepContext) -> tuple[str, list[str], str]:
    """(outcome, addresses, note); outcome is ok | mismatch | fail | timeout | error."""
    import dns.exception  # when a step runs, not at import (phases/checks/__init__.py)
    import dns.resolver

    try:
        resolver = _make_resolver(entry, params, ctx)
        answer = resolver.resolve(params.name, params.record, search=False, lifetime=ctx.timeout)
    except dns.resolver.NXDOMAIN:
        return "fail", [], "NXDOMAIN"
    except dns.resolver.NoAnswer:
        return "fail", [], f"no {params.record} record"
    except dns.resolver.NoNameservers as exc:
        return "fail", [], "SERVFAIL" if "SERVFAIL" in str(exc) else "no nameserver answered"
    except dns.resolver.LifetimeTimeout:
        return "timeout", [], "timeout"
    except dns.exception.Timeout:
        return "timeout", [], "timeout"
    except dns.exception.DNSException as exc:
        return "error", [], type(exc).__name__
    except (OSError, ValueError) as exc:
        return "error", [], f"{type(exc).__name__}: {exc}"
    addresses = sorted({_normalise(rr.to_text()) for rr in answer})
    if addresses == [params.expected_ip]:
        return "ok", addresses, ""
    if params.expected_ip in addresses:
        return "mismatch", addresses, f"{', '.join(addresses)} (expected {params.expected_ip} only)"
    return (
        "mismatch",
        addresses,
        f"{', '.join(addresses) or 'nothing'} (expected {params.expected_ip})",
    )


def _clip(text: str) -> str:
    return text if len(text) <= EVIDENCE_LIMIT else text[: EVIDENCE_LIMIT - 1] + "…"


def run_dns(params: DnsParams, ctx: StepContext) -> StepResult:
    entries: list[str | None] = list(params.resolvers) if params.resolvers else [None]
    with ThreadPoolExecutor(max_workers=len(entries)) as pool:
        outcomes = list(pool.map(lambda e: _query(e, params, ctx), entries))
    labels = [e if e is not None else SYSTEM for e in entries]
    details: dict[str, Any] = {
        "answers": {label: addrs for label, (_, addrs, _) in zip(labels, outcomes, strict=True)},
        "problems": {
            label: note
            for label, (kind, _, note) in zip(labels, outcomes, strict=True)
            if kind != "ok"
        },
    }
    good = sum(1 for kind, _, _ in outcomes if kind == "ok")
    head = (
        f"{params.name} {params.record} → {params.expected_ip} at {good}/{len(entries)} resolvers"
    )
    if good == len(entries):
        where = f" ({SYSTEM})" if params.resolvers is None else ""
        return StepResult(Status.PASS, head + where, details=details)
    problems = [
        f"{label}: {note}"
        for label, (kind, _, note) in zip(labels, outcomes, strict=True)
        if kind != "ok"
    ]
    kinds = {kind for kind, _, _ in outcomes if kind != "ok"}
    # Only when no resolver gave a wrong answer is it "could not check" rather than "wrong".
    status = Status.ERROR if kinds <= {"timeout", "error"} else Status.FAIL
    return StepResult(status, _clip(head + "; " + "; ".join(problems)), details=details)


KIND = register(StepKind(name="dns", params=DnsParams, run=run_dns, mutates=False))
