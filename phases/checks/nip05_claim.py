"""`nip05_pubkey`: a claimed NIP-05 name answers with the pubkey the claim's tick gave.

Runbook Phase 7 Test 2 "curl https://$DOMAIN/.well-known/nostr.json?name=cutover-test …
Verify pubkey returned": run once the claim is ticked (a check of the manual step), with
`expect_pubkey: "{tick/nip05-claim/pubkey}"`. The name missing from `names`, another key,
or no JSON object at all is a FAIL that shows what was expected and what came back.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field, field_validator

from phases.checks.base import Status, StepContext, StepKind, StepParams, StepResult, clip, register
from phases.checks.http_check import BodyTimeout, HttpParams, _verify, read_capped
from phases.tick_values import HEX_PUBKEY, NPUB, npub_to_hex

EVIDENCE_LIMIT = 300


class Nip05Params(StepParams):
    url: str = Field(pattern=r"^https?://")  # .../.well-known/nostr.json?name=NAME
    name: str = Field(min_length=1, max_length=64)
    expect_pubkey: str  # 64 hex, or an npub1… (decoded)
    verify_tls: bool = True
    ca_file: str | None = None

    @field_validator("expect_pubkey")
    @classmethod
    def hex_key(cls, value: str) -> str:
        value = value.strip()
        if HEX_PUBKEY.match(value):
            return value
        decoded = npub_to_hex(value) if NPUB.match(value) else None
        if decoded is None:
            raise ValueError(f"{value[:70]!r} is not a 64-hex pubkey or a valid npub1…")
        return decoded


def _fetch(params: Nip05Params, ctx: StepContext) -> tuple[int, bytes]:
    import httpx  # when a step runs, not at import (phases/checks/__init__.py)

    args: dict[str, Any] = {"timeout": ctx.timeout, "follow_redirects": False}
    if ctx.http_transport is not None:
        args["transport"] = ctx.http_transport
    else:
        args["verify"] = _verify(
            HttpParams(url=params.url, verify_tls=params.verify_tls, ca_file=params.ca_file), ctx
        )
    deadline = ctx.clock.monotonic() + ctx.timeout
    with httpx.Client(**args) as client, client.stream("GET", params.url) as response:
        got = read_capped(response, deadline, ctx.clock.monotonic)
        return got.status_code, got.content


def run_nip05(params: Nip05Params, ctx: StepContext) -> StepResult:
    import httpx  # when a step runs, not at import (phases/checks/__init__.py)

    want = params.expect_pubkey
    asked = f"GET {params.url}"
    details: dict[str, Any] = {"name": params.name, "expected": want}
    try:
        status, body = _fetch(params, ctx)
    except (httpx.TimeoutException, BodyTimeout):
        return StepResult(
            Status.ERROR, clip(f"{asked}: timed out after {ctx.timeout:g}s", EVIDENCE_LIMIT)
        )
    except httpx.TransportError as exc:
        return StepResult(
            Status.ERROR, clip(f"{asked}: {type(exc).__name__}: {exc}", EVIDENCE_LIMIT)
        )
    details["status_code"] = status

    def fail(said: str) -> StepResult:
        text = f"{asked} → {status}: {said}; expected {params.name} → {want}"
        return StepResult(Status.FAIL, clip(ctx.masker.mask(text), EVIDENCE_LIMIT), details=details)

    if status != 200:
        return fail(f"HTTP {status}")
    try:
        data = json.loads(body)
    except ValueError:
        return fail("body is not JSON")
    names = data.get("names") if isinstance(data, dict) else None
    if not isinstance(names, dict):
        return fail("no names object in the answer")
    got = names.get(params.name)
    details["returned"] = got
    if got is None:
        listed = ", ".join(sorted(str(n) for n in names)[:5]) or "none"
        return fail(f"{params.name} is not in names (names: {listed})")
    if not isinstance(got, str) or got.lower() != want:
        return fail(f"{params.name} → {str(got)[:64]}, not the ticked pubkey")
    text = f"{asked} → 200: {params.name} → {want}, the pubkey given with the tick"
    return StepResult(Status.PASS, clip(text, EVIDENCE_LIMIT), details=details)


def describe(params: Nip05Params) -> str:
    return f"look up {params.name} at {params.url}"


NIP05 = register(StepKind("nip05_pubkey", Nip05Params, run_nip05, describe=describe))
