"""`statuspage`: marks one component of a status page, through the Statuspage REST API.

Runbook Phase 8 "Update status page / monitoring (if applicable - mark service as
OPERATIONAL)". The API (Atlassian Statuspage, and services that copy it):
`PATCH {api_url}/v1/pages/{page_id}/components/{component_id}` with
`{"component": {"status": "operational"}}` and `Authorization: OAuth <token>`; it answers
the component as it now is. The step passes only when that answer shows the status asked
for. The token comes from the bot's environment (`${VAR}` in the runbook, so it is masked
everywhere) and is never part of the evidence. No page configured (`page_id` empty): the
step is skipped and says so; the phase's tracked step then asks a person.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from phases.checks.base import Status, StepContext, StepKind, StepParams, StepResult, clip, register

if TYPE_CHECKING:
    import httpx

EVIDENCE_LIMIT = 300


class StatuspageParams(StepParams):
    api_url: str = "https://api.statuspage.io"
    page_id: str = ""  # empty: no status page configured, the step is skipped
    component_id: str = ""
    status: Literal[
        "operational", "under_maintenance", "degraded_performance", "partial_outage", "major_outage"
    ] = "operational"
    token: str = Field(default="", repr=False)


def _error_text(response: httpx.Response) -> str:
    """The API's own words ({"error": "..."} or a list of them), else the status line."""
    try:
        body: Any = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.reason_phrase or "no reason given"
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, list):
        return "; ".join(str(e) for e in err)
    return str(err or body.get("message") if isinstance(body, dict) else body)[:200]


def run_statuspage(params: StatuspageParams, ctx: StepContext) -> StepResult:
    import httpx  # when a step runs, not at import (phases/checks/__init__.py)

    if not params.page_id:
        return StepResult(
            Status.SKIPPED, "no status page configured (page_id is empty); a person updates it"
        )
    if not params.component_id:
        return StepResult(Status.ERROR, "page_id is set but component_id is empty: set both")
    if not params.token:
        return StepResult(
            Status.ERROR,
            "the status page token is empty: set the runbook's token to a ${VAR} of the bot's "
            "environment that holds the API key",
        )
    ctx.masker.add(params.token)
    url = f"{params.api_url.rstrip('/')}/v1/pages/{params.page_id}/components/{params.component_id}"
    what = f"component {params.component_id} of page {params.page_id}"
    client_args: dict[str, Any] = {"timeout": ctx.timeout, "follow_redirects": False}
    if ctx.http_transport is not None:
        client_args["transport"] = ctx.http_transport
    try:
        with httpx.Client(**client_args) as client:
            response = client.patch(
                url,
                json={"component": {"status": params.status}},
                headers={"Authorization": f"OAuth {params.token}"},
            )
    except httpx.TimeoutException:
        return StepResult(Status.ERROR, f"PATCH {url}: timed out after {ctx.timeout:g}s")
    except httpx.TransportError as exc:
        return StepResult(
            Status.ERROR, clip(f"PATCH {url}: {type(exc).__name__}: {exc}", EVIDENCE_LIMIT)
        )
    details: dict[str, Any] = {"status_code": response.status_code}
    if response.status_code != 200:
        why = ctx.masker.mask(_error_text(response))
        return StepResult(
            Status.FAIL,
            clip(f"{what} not updated: HTTP {response.status_code}: {why}", EVIDENCE_LIMIT),
            details=details,
        )
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    now = body.get("status") if isinstance(body, dict) else None
    name = body.get("name") if isinstance(body, dict) else None
    label = f"{what} ({ctx.masker.mask(str(name))})" if name else what
    details["component_status"] = now
    if now != params.status:
        return StepResult(
            Status.FAIL,
            clip(
                f"{label}: asked for {params.status}, the API answered status {now!r}",
                EVIDENCE_LIMIT,
            ),
            details=details,
        )
    updated = body.get("updated_at") if isinstance(body, dict) else None
    return StepResult(
        Status.PASS,
        clip(f"{label} is {now}" + (f" (updated_at {updated})" if updated else ""), EVIDENCE_LIMIT),
        details=details,
    )


def describe(params: StatuspageParams) -> str:
    if not params.page_id:
        return "no status page configured: would do nothing"
    return (
        f"would set component {params.component_id} of page {params.page_id} "
        f"to {params.status} at {params.api_url}"
    )


STATUSPAGE = register(
    StepKind("statuspage", StatuspageParams, run_statuspage, mutates=True, describe=describe)
)
