"""What a step's result lets the bot claim, in words, and no more.

A report (the rollback report, the record) says what was checked, never what a check's name
promises: a container that is running is "running", not "healthy"; an HTTP check that got its
expected answer "answered GET /health 200 in 12 ms"; only Docker's own health status
`healthy` makes a container "healthy". Each claim comes from the step's kind, its parameters
(as rendered for the environment) and the facts its result recorded, and says whether it
verified *health* (the service answers as it should) or only that something is up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from phases.checks.base import Status, StepResult
from phases.runbook import RunbookError, StepSpec, Value, resolve_step


@dataclass(frozen=True)
class Claim:
    step: str  # the step's id
    text: str  # what the result shows, one clause
    passed: bool  # PASS: the check showed what it expects (a WARN or SKIPPED did not)
    verifies_health: bool  # passed, and what it showed is health, not only liveness
    ran: bool = True  # False: the check could not run (ERROR), so it showed nothing


def claim(step: StepSpec, result: StepResult, values: Mapping[str, Value]) -> Claim:
    """The claim one check's result supports."""
    try:
        _kind, params = resolve_step(step, values)
        p: dict[str, Any] = params.model_dump()
    except RunbookError:
        p = dict(step.params)
    passed = result.status is Status.PASS
    if not passed:
        word = {Status.FAIL: "FAILED", Status.ERROR: "could not run", Status.WARN: "warned"}
        return Claim(
            step.id,
            f"{step.name}: {word.get(result.status, str(result.status))}: {result.evidence}",
            False,
            False,
            ran=result.status is not Status.ERROR,
        )
    if step.kind == "docker_containers":
        return _containers(step, p, result)
    if step.kind == "http":
        return _http(step, p, result)
    if step.kind == "command":
        argv = " ".join(str(a) for a in p.get("argv", []))
        return Claim(step.id, f"`{argv}` exited 0", True, False)
    return Claim(step.id, f"{step.name}: passed ({result.evidence})", True, False)


def claim_from_row(step: StepSpec, row: Mapping[str, Any], values: Mapping[str, Value]) -> Claim:
    """The claim of a `step.result` audit row (status and evidence; no details): for a
    report read back from the trail, as the record is."""
    result = StepResult(Status(str(row.get("status"))), str(row.get("evidence", "")))
    return claim(step, result, values)


def _containers(step: StepSpec, p: dict[str, Any], result: StepResult) -> Claim:
    expect = p.get("expect", "healthy")
    project = p.get("project", "?")
    infos = result.details.get("containers") or []
    names = [str(i.get("service")) for i in infos if isinstance(i, dict)]
    if expect == "absent":
        return Claim(step.id, f"no container of {project} running", True, False)
    listed = ", ".join(names) if names else "its containers"
    if expect == "healthy":
        # It passed only if Docker's health status, from each container's own
        # healthcheck, is `healthy` for every one of them.
        return Claim(step.id, f"{listed} of {project} healthy (Docker health status)", True, True)
    return Claim(
        step.id,
        f"{listed} of {project} running (their health not checked)",
        True,
        False,
    )


def _http(step: StepSpec, p: dict[str, Any], result: StepResult) -> Claim:
    method = p.get("method", "GET")
    url = urlsplit(str(p.get("url", "")))
    where = url.path or "/"
    code = result.details.get("status_code")
    ms = result.details.get("elapsed_ms")
    samples = result.details.get("samples_ms") or []
    timing = (
        f" in {ms} ms"
        if ms is not None and len(samples) <= 1
        else f" in avg {ms} ms over {len(samples)} requests"
        if ms is not None
        else ""
    )
    shown = []
    if p.get("expect_json"):
        shown.append("its body matched " + _brief(p["expect_json"]))
    if p.get("max_ms"):
        shown.append(f"within {p['max_ms']} ms")
    tail = f" ({'; '.join(shown)})" if shown else ""
    if code is None:  # read back from the audit trail: the step's evidence says it
        return Claim(step.id, f"{url.netloc} {method} {where}: {result.evidence}", True, ok_2xx(p))
    text = f"{url.netloc} answered {method} {where} {code}{timing}{tail}"
    return Claim(step.id, text, True, ok_2xx(p))


def ok_2xx(p: dict[str, Any]) -> bool:
    """An answer with the 2xx status the runbook expects is the service working as it should."""
    want = p.get("expect_status", 200)
    statuses = want if isinstance(want, list) else [want]
    return all(isinstance(s, int) and 200 <= s < 300 for s in statuses)


def _brief(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_brief(v)}" for k, v in value.items()) + "}"
    return str(value)


@dataclass(frozen=True)
class HealthVerdict:
    """What a set of checks of a service shows, as one sentence and one word for the trail."""

    word: str  # verified_healthy | up_health_not_verified | not_healthy | unknown | not_checked
    sentence: str
    claims: tuple[Claim, ...]

    @property
    def verified(self) -> bool:
        return self.word == "verified_healthy"


def verdict(service: str, claims: Sequence[Claim], *, none_because: str) -> HealthVerdict:
    """The one sentence a report may say of `service` ("old service") after `claims`."""
    claims = tuple(claims)
    lead = service[:1].upper() + service[1:]
    if not claims:
        return HealthVerdict(
            "not_checked", f"The {service}'s health was NOT verified ({none_because}).", claims
        )
    failed = [c for c in claims if not c.passed]
    if failed:
        broken = [c for c in failed if c.ran]
        word = "not_healthy" if broken else "unknown"
        said = (
            f"{lead} NOT healthy after the rollback"
            if broken
            else f"The {service}'s health is unknown: a check could not run"
        )
        return HealthVerdict(word, f"{said}: " + "; ".join(c.text for c in failed) + ".", claims)
    shown = "; ".join(c.text for c in claims)
    if all(c.verifies_health for c in claims):
        return HealthVerdict("verified_healthy", f"{lead} verified healthy: {shown}.", claims)
    unproven = ", ".join(c.step for c in claims if not c.verifies_health)
    return HealthVerdict(
        "up_health_not_verified",
        f"{lead} is up, but its health was NOT verified ({unproven} checks only that it "
        f"runs): {shown}.",
        claims,
    )
