"""`http`: an endpoint answers with the expected status, shape and speed.

Runbook phase 6 smoke tests (/health → {"status": "ok"}, /.well-known/nostr.json,
/api/docs Swagger UI, POST /api/v1/auth/challenge → {"challenge": ...}, tiers
FREE/PRO/BUSINESS/LIFETIME) and phase 9 "Response times <500ms" (average over
`samples` requests).
"""

from __future__ import annotations

import dataclasses
import json
import os
import ssl
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from phases.checks.base import (
    Status,
    StepContext,
    StepKind,
    StepParams,
    StepResult,
    pause,
    register,
)

if TYPE_CHECKING:
    import httpx

EVIDENCE_LIMIT = 200
BODY_SNIPPET = 80
BODY_CAP = 1024 * 1024  # bytes of a body read; past it the read stops and says "truncated"


class Fetched:
    """A response whose body was read up to BODY_CAP and within the step's deadline."""

    def __init__(self, response: httpx.Response, body: bytes, truncated: bool) -> None:
        self.status_code = response.status_code
        self.headers = response.headers
        self.content = body
        self.truncated = truncated
        self.encoding = response.encoding or "utf-8"

    @property
    def text(self) -> str:
        return self.content.decode(self.encoding, errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class BodyTimeout(Exception):
    """The body kept coming past the step's deadline."""


def read_capped(response: httpx.Response, deadline: float, now: Callable[[], float]) -> Fetched:
    """Reads the body in chunks: stops at BODY_CAP (truncated) and at the deadline (raises)."""
    body = bytearray()
    truncated = False
    for chunk in response.iter_bytes(64 * 1024):
        if now() >= deadline:
            raise BodyTimeout
        room = BODY_CAP - len(body)
        if len(chunk) > room:
            body += chunk[:room]
            truncated = True
            break
        body += chunk
    return Fetched(response, bytes(body), truncated)


def _statuses(params: HttpParams) -> list[int]:
    s = params.expect_status
    return s if isinstance(s, list) else [s]


class ExpectSet(StepParams):
    field: str = Field(min_length=1)
    values: list[str] = Field(min_length=1)


JsonType = Literal["string", "number", "integer", "boolean", "object", "array", "datetime"]


class HttpParams(StepParams):
    url: str = Field(pattern=r"^https?://")
    method: Literal["GET", "POST", "HEAD"] = "GET"
    json_body: Any | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    expect_status: int | list[int] = 200  # one status, or any of several (NestJS POST: 201)
    expect_json: dict[str, Any] | None = None  # subset match
    expect_keys: list[str] = Field(default_factory=list)  # top-level keys, present, not null
    # Top-level keys and the JSON type of their values (Phase 6's /health: "timestamp" a
    # date-time, "uptime" a number); "datetime": an ISO 8601 string with its time zone.
    expect_types: dict[str, JsonType] = Field(default_factory=dict)
    expect_contains: list[str] = Field(default_factory=list)  # substrings of the body text
    expect_json_type: Literal["object", "array"] | None = None
    # Exactly these values of `field` across the body's array of objects, no more, no fewer
    # (tiers FREE, PRO, BUSINESS, LIFETIME: "PROFESSIONAL" is not "PRO").
    expect_set: ExpectSet | None = None
    max_ms: int | None = Field(default=None, ge=1)
    verify_tls: bool = True
    ca_file: str | None = None
    samples: int = Field(default=1, ge=1, le=100)
    # Ask again until it answers as expected, for up to this long (a service just started,
    # as after a rollback's `up -d`); 0: once.
    wait_seconds: int = Field(default=0, ge=0, le=3600)
    # Phase 8 "Test from external network (not localhost)": `external: true` marks a check
    # that stands for an outside view. `proxy`: the vantage point the operator names, a
    # forward proxy on another network (http://host:port), which the request leaves from.
    # With none, the evidence says it was checked from the bot's host only.
    external: bool = False
    proxy: str | None = None

    @field_validator("proxy")
    @classmethod
    def proxy_url(cls, value: str | None) -> str | None:
        if not value:
            return None  # an empty runbook var: no vantage point configured
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"proxy {value!r} must be an http:// or https:// URL (host:port)")
        return value

    @field_validator("expect_status")
    @classmethod
    def http_statuses(cls, value: int | list[int]) -> int | list[int]:
        for s in value if isinstance(value, list) else [value]:
            if not 100 <= s <= 599:
                raise ValueError(f"{s} is not an HTTP status (100-599)")
        if isinstance(value, list) and not value:
            raise ValueError("give at least one expected status")
        return value


def _clip(text: str, limit: int = EVIDENCE_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def subset_mismatch(expected: Any, actual: Any, path: str = "") -> str | None:
    """None when every key/value of expected is in actual (recursively for objects)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{path or 'body'} is not an object"
        for key, value in expected.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in actual:
                return f"{where} missing"
            problem = subset_mismatch(value, actual[key], where)
            if problem:
                return problem
        return None
    if expected != actual:
        return (
            f"{path or 'body'} is {json.dumps(actual)[:40]} (expected {json.dumps(expected)[:40]})"
        )
    return None


def _verify(params: HttpParams, ctx: StepContext) -> ssl.SSLContext:
    """The TLS context for the check, shared between checks.

    Building one loads a CA bundle: ~30 ms of CPU each, which eight checks of a phase
    running at once would spend in turn. A context is only read while in use, and the
    cache key holds what it was built from (the CA file's identity, SSL_CERT_FILE/_DIR).
    """
    import httpx  # when a step runs, not at import (phases/checks/__init__.py)

    if params.ca_file:
        cafile = params.ca_file
        if ctx.workdir and not os.path.isabs(cafile):
            cafile = os.path.join(ctx.workdir, cafile)
        try:
            st = os.stat(cafile)
        except OSError:
            return ssl.create_default_context(cafile=cafile)  # raises: the check says why
        key: tuple[Any, ...] = ("ca", os.path.abspath(cafile), st.st_mtime_ns, st.st_size)
        return _context(key, lambda: ssl.create_default_context(cafile=cafile))
    if not params.verify_tls:
        return _context(("insecure",), lambda: httpx.create_ssl_context(verify=False))
    env = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    return _context(("default", *env), lambda: httpx.create_ssl_context(verify=True))


_CONTEXTS: dict[tuple[Any, ...], ssl.SSLContext] = {}
_CONTEXTS_LOCK = threading.Lock()


def _context(key: tuple[Any, ...], make: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    with _CONTEXTS_LOCK:
        found = _CONTEXTS.get(key)
    if found is not None:
        return found
    made = make()
    with _CONTEXTS_LOCK:
        if len(_CONTEXTS) > 64:
            _CONTEXTS.clear()
        return _CONTEXTS.setdefault(key, made)


def _is(kind: str, value: Any) -> bool:
    if kind == "datetime":
        if not isinstance(value, str) or "T" not in value:
            return False
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return False
        return parsed.tzinfo is not None
    if kind in ("number", "integer"):
        ok = int if kind == "integer" else (int, float)
        return isinstance(value, ok) and not isinstance(value, bool)
    python = {"string": str, "boolean": bool, "object": dict, "array": list}[kind]
    return isinstance(value, python)


def type_mismatches(expect: dict[str, JsonType], data: Any) -> list[str]:
    """Each top-level key of `expect` whose value is missing or of another JSON type."""
    if not isinstance(data, dict):
        return ["body is not a JSON object"]
    out = []
    for key, kind in expect.items():
        if key not in data:
            out.append(f"{key} missing")
        elif not _is(kind, data[key]):
            out.append(f"{key} is {json.dumps(data[key])[:40]} (expected a {kind})")
    return out


def set_mismatch(expect: ExpectSet, data: Any) -> str | None:
    """None when the array's `field` values are exactly the expected set."""
    if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
        return f"body is not an array of objects with {expect.field}"
    seen = [x.get(expect.field) for x in data]
    got, want = {str(v) for v in seen if v is not None}, set(expect.values)
    if got == want and None not in seen:
        return None
    parts = []
    if want - got:
        parts.append(f"missing {', '.join(sorted(want - got))}")
    if got - want:
        parts.append(f"unexpected {', '.join(sorted(got - want))}")
    if None in seen:
        parts.append(f"{seen.count(None)} without {expect.field}")
    return f"{expect.field} values {'; '.join(parts)} (expected exactly {', '.join(expect.values)})"


def _body_checks(params: HttpParams, response: Fetched) -> list[str]:
    problems: list[str] = []
    text = response.text
    wants_json = (
        params.expect_json is not None
        or params.expect_keys
        or params.expect_json_type is not None
        or params.expect_set is not None
        or bool(params.expect_types)
    )
    data: Any = None
    if wants_json:
        try:
            data = response.json()
        except ValueError:
            return ["body is not JSON"]
        if params.expect_json_type == "object" and not isinstance(data, dict):
            problems.append(f"body is a JSON {type(data).__name__}, expected an object")
        if params.expect_json_type == "array" and not isinstance(data, list):
            problems.append(f"body is a JSON {type(data).__name__}, expected an array")
        if params.expect_json is not None:
            mismatch = subset_mismatch(params.expect_json, data)
            if mismatch:
                problems.append(mismatch)
        if params.expect_keys:
            if not isinstance(data, dict):
                problems.append("body is not a JSON object")
            else:
                missing = [k for k in params.expect_keys if data.get(k) is None]
                if missing:
                    problems.append(f"missing keys: {', '.join(missing)}")
        if params.expect_types:
            problems += type_mismatches(params.expect_types, data)
        if params.expect_set is not None:
            problem = set_mismatch(params.expect_set, data)
            if problem:
                problems.append(problem)
    lacking = [s for s in params.expect_contains if s not in text]
    if lacking:
        problems.append(f"body lacks: {', '.join(lacking)}")
    return problems


WAIT_POLL_S = 2.0  # between attempts while waiting
WAIT_ATTEMPT_S = 10.0  # the most one attempt may take while waiting


def run_http(params: HttpParams, ctx: StepContext) -> StepResult:
    """One request (or `samples`); with `wait_seconds`, again until it passes or time is up."""
    if not params.wait_seconds:
        return _attempt(params, ctx)
    start = ctx.clock.monotonic()
    while True:
        once = dataclasses.replace(ctx, timeout=max(1.0, min(ctx.timeout, WAIT_ATTEMPT_S)))
        result = _attempt(params, once)
        waited = ctx.clock.monotonic() - start
        left = params.wait_seconds - waited
        if result.status is Status.PASS or left <= 0:
            details = {**result.details, "waited_s": round(waited, 1)}
            return dataclasses.replace(result, details=details)
        pause(ctx, min(WAIT_POLL_S, left))


def vantage(params: HttpParams) -> str:
    """Where the request leaves from, as the evidence says it ("" for an ordinary check)."""
    import httpx  # when a step runs, not at import (phases/checks/__init__.py)

    if params.proxy:
        return f" via {httpx.URL(params.proxy).netloc.decode(errors='replace')}"
    if params.external:
        return " (checked from the bot's host only: no external vantage point configured)"
    return ""


def _attempt(params: HttpParams, ctx: StepContext) -> StepResult:
    import httpx  # when a step runs, not at import (phases/checks/__init__.py)

    request = f"{params.method} {params.url}{vantage(params)}"
    deadline = ctx.clock.monotonic() + ctx.timeout
    client_args: dict[str, Any] = {"timeout": ctx.timeout, "follow_redirects": False}
    if params.proxy:
        client_args["proxy"] = params.proxy
    if ctx.http_transport is not None:
        client_args["transport"] = ctx.http_transport
    else:
        client_args["verify"] = _verify(params, ctx)
    timings: list[int] = []
    response: Fetched | None = None
    with httpx.Client(**client_args) as client:
        for _ in range(params.samples):
            remaining = deadline - ctx.clock.monotonic()
            if remaining <= 0:
                return StepResult(
                    Status.ERROR, _clip(f"{request}: timed out after {ctx.timeout:g}s")
                )
            start = ctx.clock.monotonic()
            try:
                request_obj = client.build_request(
                    params.method,
                    params.url,
                    headers=params.headers,
                    json=params.json_body if params.method == "POST" else None,
                    timeout=remaining,
                )
                streamed = client.send(request_obj, stream=True)
                try:
                    response = read_capped(streamed, deadline, ctx.clock.monotonic)
                finally:
                    streamed.close()
            except (httpx.TimeoutException, BodyTimeout):
                return StepResult(
                    Status.ERROR,
                    _clip(f"{request}: timed out after {ctx.timeout:g}s"),
                    details={"timeout_s": ctx.timeout},
                )
            except httpx.TransportError as exc:
                return StepResult(Status.ERROR, _clip(f"{request}: {type(exc).__name__}: {exc}"))
            timings.append(int((ctx.clock.monotonic() - start) * 1000))
            if response.status_code not in _statuses(params):
                break
    assert response is not None
    elapsed_ms = round(sum(timings) / len(timings))
    details: dict[str, Any] = {
        "status_code": response.status_code,
        "elapsed_ms": elapsed_ms,
        "samples_ms": timings,
    }
    if response.truncated:
        details["body_truncated_at"] = BODY_CAP
    if response.status_code not in _statuses(params):
        snippet = (
            # mask, then clip: a secret cut in two by the clip would not be recognised
            _clip(ctx.masker.mask(response.text[:65536]), BODY_SNIPPET)
            if params.method != "HEAD"
            else ""
        )
        wanted = " or ".join(str(s) for s in _statuses(params))
        evidence = f"{request} → {response.status_code} (expected {wanted})"
        if response.truncated:
            evidence += f" [body truncated at {BODY_CAP // 1024} KB]"
        if snippet:
            evidence += f": {snippet}"
        details["body_snippet"] = snippet
        return StepResult(Status.FAIL, _clip(ctx.masker.mask(evidence)), details=details)
    problems = _body_checks(params, response) if params.method != "HEAD" else []
    if response.truncated and problems:
        problems.append(f"body truncated at {BODY_CAP // 1024} KB")
    timing = f"{elapsed_ms} ms" if len(timings) == 1 else f"avg {elapsed_ms} ms over {len(timings)}"
    if params.max_ms is not None and elapsed_ms > params.max_ms:
        if len(timings) == 1:
            problems.append(f"took {elapsed_ms} ms > {params.max_ms} ms")
        else:
            problems.append(
                f"average {elapsed_ms} ms over {len(timings)} requests > {params.max_ms} ms"
            )
    if problems:
        evidence = f"{request} → {response.status_code}: {'; '.join(problems)}"
        return StepResult(Status.FAIL, _clip(ctx.masker.mask(evidence)), details=details)
    limit = f" (limit {params.max_ms} ms)" if params.max_ms is not None else ""
    truncated = f" [body truncated at {BODY_CAP // 1024} KB]" if response.truncated else ""
    evidence = f"{request} → {response.status_code} in {timing}{limit}{truncated}"
    return StepResult(Status.PASS, _clip(ctx.masker.mask(evidence)), details=details)


KIND = register(StepKind(name="http", params=HttpParams, run=run_http, mutates=False))
