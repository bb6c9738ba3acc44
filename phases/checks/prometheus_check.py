"""`prometheus`: a PromQL instant query against the monitoring stack, held to a threshold.

The runbook's phase 9 watches the first 30 minutes (and says the first 24 hours are
critical), but the bot's own probes see only its host's view: one request's status and
time. The error rate and latency percentiles users actually get live in Prometheus; this
check asks it (`GET /api/v1/query`, an instant query) and compares the answer with `max`
and/or `min`, as a canary judge (Kayenta) does.

It fails closed: a query Prometheus rejects, an empty result, NaN (0/0 when there is no
traffic), a non-number, or Prometheus unreachable is an ERROR, never a pass. With several
series every one must meet the threshold; the evidence names the worst.
"""

from __future__ import annotations

import math
import os
import ssl
from typing import Any

from pydantic import Field, model_validator

from phases.checks.base import Status, StepContext, StepKind, StepParams, StepResult, clip, register
from phases.checks.http_check import BodyTimeout, read_capped

EVIDENCE_LIMIT = 200
QUERY_IN_EVIDENCE = 90  # the evidence quotes the query up to this; details keep it whole


class PrometheusParams(StepParams):
    # Prometheus's base URL (http://prometheus:9090, or a path prefix behind a proxy)
    url: str = Field(pattern=r"^https?://")
    query: str = Field(min_length=1, max_length=4000)
    max: float | None = None  # the value must be <= max
    min: float | None = None  # the value must be >= min
    # Sent as "Authorization: Bearer …". Give it as a {placeholder} of a runbook var set
    # from the bot's environment (${CUTOVER_RUNBOOK_…}); the loader refuses a literal token.
    bearer_token: str | None = None
    verify_tls: bool = True
    ca_file: str | None = None

    @model_validator(mode="after")
    def has_threshold(self) -> PrometheusParams:
        if self.max is None and self.min is None:
            raise ValueError("give max, min or both: the value the query must stay within")
        for name, value in (("max", self.max), ("min", self.min)):
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        return self


def _bounds(params: PrometheusParams) -> str:
    parts = []
    if params.min is not None:
        parts.append(f"min {params.min:g}")
    if params.max is not None:
        parts.append(f"max {params.max:g}")
    return ", ".join(parts)


def _violation(params: PrometheusParams, value: float) -> str | None:
    """Why `value` misses the threshold, or None when it meets it (NaN never meets it)."""
    if math.isnan(value):
        return "NaN"
    if params.max is not None and value > params.max:
        return f"{value:g} > max {params.max:g}"
    if params.min is not None and value < params.min:
        return f"{value:g} < min {params.min:g}"
    return None


def _labels(metric: dict[str, Any]) -> str:
    if not metric:
        return ""  # an aggregate: one series with no labels
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items())) + "}"


def _series(data: Any) -> list[tuple[str, str]]:
    """(labels, value text) of each sample of an instant query's `data`; ValueError if the
    answer is not one Prometheus gives for an instant query."""
    if not isinstance(data, dict):
        raise ValueError("no data object")
    kind, result = data.get("resultType"), data.get("result")
    if kind in ("scalar", "string"):
        if not isinstance(result, list) or len(result) != 2:
            raise ValueError(f"malformed {kind} result")
        return [("", str(result[1]))]
    if kind == "vector" and isinstance(result, list):
        out = []
        for item in result:
            if not isinstance(item, dict) or not isinstance(item.get("value"), list):
                raise ValueError("malformed vector sample")
            out.append((_labels(item.get("metric") or {}), str(item["value"][1])))
        return out
    if kind == "matrix":
        raise ValueError("a range vector: end the query with an aggregation, not [5m]")
    raise ValueError(f"result type {kind!r}")


def _ssl(params: PrometheusParams, ctx: StepContext) -> ssl.SSLContext:
    import httpx  # when a step runs, not at import (phases/checks/__init__.py)

    if params.ca_file:
        cafile = params.ca_file
        if ctx.workdir and not os.path.isabs(cafile):
            cafile = os.path.join(ctx.workdir, cafile)
        return ssl.create_default_context(cafile=cafile)
    return httpx.create_ssl_context(verify=params.verify_tls)


def _ask(params: PrometheusParams, ctx: StepContext) -> tuple[int, Any]:
    """(HTTP status, parsed JSON body) of the instant query; raises on transport errors."""
    import httpx  # when a step runs, not at import (phases/checks/__init__.py)

    client_args: dict[str, Any] = {"timeout": ctx.timeout, "follow_redirects": False}
    if ctx.http_transport is not None:
        client_args["transport"] = ctx.http_transport
    else:
        client_args["verify"] = _ssl(params, ctx)
    headers = {"Accept": "application/json"}
    if params.bearer_token:
        ctx.masker.add(params.bearer_token)
        headers["Authorization"] = f"Bearer {params.bearer_token}"
    deadline = ctx.clock.monotonic() + ctx.timeout
    with httpx.Client(**client_args) as client:
        request = client.build_request(
            "GET",
            params.url.rstrip("/") + "/api/v1/query",
            params={"query": params.query, "timeout": f"{max(ctx.timeout, 1.0):g}s"},
            headers=headers,
        )
        streamed = client.send(request, stream=True)
        try:
            fetched = read_capped(streamed, deadline, ctx.clock.monotonic)
        finally:
            streamed.close()
    try:
        return fetched.status_code, fetched.json()
    except ValueError:
        return fetched.status_code, None


def run_prometheus(params: PrometheusParams, ctx: StepContext) -> StepResult:
    import httpx  # when a step runs, not at import (phases/checks/__init__.py)

    shown = clip(params.query, QUERY_IN_EVIDENCE)
    details: dict[str, Any] = {"query": params.query, "prometheus": params.url}
    if params.max is not None:
        details["max"] = params.max
    if params.min is not None:
        details["min"] = params.min

    def result(status: Status, text: str) -> StepResult:
        return StepResult(status, clip(ctx.masker.mask(text), EVIDENCE_LIMIT), details=details)

    try:
        code, body = _ask(params, ctx)
    except (httpx.TimeoutException, BodyTimeout):
        return result(Status.ERROR, f"{shown}: Prometheus timed out after {ctx.timeout:g}s")
    except (httpx.TransportError, OSError) as exc:
        return result(
            Status.ERROR, f"{shown}: Prometheus at {params.url} unreachable ({type(exc).__name__})"
        )
    details["status_code"] = code
    if not isinstance(body, dict):
        return result(Status.ERROR, f"{shown}: Prometheus answered HTTP {code}, not JSON")
    if body.get("warnings"):
        details["warnings"] = [str(w) for w in body["warnings"]][:5]
    if body.get("status") != "success":
        why = f"{body.get('errorType', 'error')}: {body.get('error', 'no reason given')}"
        return result(Status.ERROR, f"{shown}: query error ({why})")
    try:
        samples = _series(body.get("data"))
    except ValueError as exc:
        return result(Status.ERROR, f"{shown}: unusable answer ({exc})")
    if not samples:
        return result(Status.ERROR, f"{shown}: no data (the query returned no series)")
    judged: list[tuple[str, float, str | None]] = []
    for labels, text in samples:
        try:
            value = float(text)
        except ValueError:
            return result(Status.ERROR, f"{shown}: value {text!r} is not a number")
        judged.append((labels, value, _violation(params, value)))
    details["values"] = {labels or "value": text for labels, text in samples[:20]}
    details["series"] = len(samples)
    nan = [j for j in judged if math.isnan(j[1])]
    if nan:
        where = f" {nan[0][0]}" if nan[0][0] else ""
        return result(Status.ERROR, f"{shown} = NaN{where} (no traffic to judge?)")
    missed = [j for j in judged if j[2] is not None]
    many = f" ({len(judged)} series)" if len(judged) > 1 else ""
    if missed:
        at, _, miss = missed[0]
        where = f" at {at}" if at else ""
        more = f"; {len(missed)} of {len(judged)} series miss it" if len(judged) > 1 else ""
        return result(Status.FAIL, f"{shown} = {miss}{where}{more}")
    # The series closest to its bound stands for all of them.
    worst = (
        max(judged, key=lambda j: j[1])
        if params.max is not None
        else min(judged, key=lambda j: j[1])
    )
    return result(Status.PASS, f"{shown} = {worst[1]:g} ({_bounds(params)}){many}")


KIND = register(
    StepKind(name="prometheus", params=PrometheusParams, run=run_prometheus, mutates=False)
)
