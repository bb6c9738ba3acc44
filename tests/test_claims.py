"""What a check's result lets a report claim: running is running, healthy is health."""

from __future__ import annotations

from phases import claims
from phases.checks.base import Status, StepResult
from phases.runbook import StepSpec

VALUES = {"old_compose_project": "nostrmaxi-old", "old_base_url": "http://10.0.0.5:3000"}


def containers(expect: str) -> StepSpec:
    return StepSpec(
        id=f"old-{expect}",
        name="Old services",
        kind="docker_containers",
        params={"project": "{old_compose_project}", "expect": expect},
    )


HEALTH = StepSpec(
    id="old-health",
    name="Old /health",
    kind="http",
    params={"url": "{old_base_url}/health", "expect_json": {"status": "ok"}, "max_ms": 500},
)
BACKEND = {"containers": [{"service": "backend", "state": "running", "health": None}]}


def test_a_running_container_is_claimed_running_and_not_health() -> None:
    result = StepResult(Status.PASS, "1/1 containers running: backend", details=BACKEND)
    c = claims.claim(containers("running"), result, VALUES)
    assert c.text == "backend of nostrmaxi-old running (their health not checked)"
    assert c.passed and not c.verifies_health


def test_a_healthy_container_is_claimed_healthy_from_dockers_health_status() -> None:
    result = StepResult(Status.PASS, "1/1 containers healthy: backend", details=BACKEND)
    c = claims.claim(containers("healthy"), result, VALUES)
    assert c.text == "backend of nostrmaxi-old healthy (Docker health status)"
    assert c.verifies_health


def test_an_http_check_says_what_it_answered_and_how_fast() -> None:
    result = StepResult(
        Status.PASS, "GET … → 200 in 12 ms", details={"status_code": 200, "elapsed_ms": 12}
    )
    c = claims.claim(HEALTH, result, VALUES)
    assert c.text == (
        "10.0.0.5:3000 answered GET /health 200 in 12 ms (its body matched {status: ok}; "
        "within 500 ms)"
    )
    assert c.verifies_health


def test_only_checks_that_all_verified_health_make_verified_healthy() -> None:
    running = claims.claim(
        containers("running"), StepResult(Status.PASS, "ok", details=BACKEND), VALUES
    )
    healthy = claims.claim(
        containers("healthy"), StepResult(Status.PASS, "ok", details=BACKEND), VALUES
    )
    v = claims.verdict("old service", [healthy, running], none_because="none")
    assert v.word == "up_health_not_verified" and not v.verified
    assert "verified healthy" not in v.sentence
    assert claims.verdict("old service", [healthy], none_because="none").verified


def test_a_check_that_could_not_run_leaves_health_unknown_not_failed() -> None:
    error = claims.claim(HEALTH, StepResult(Status.ERROR, "GET …: ConnectError"), VALUES)
    failed = claims.claim(HEALTH, StepResult(Status.FAIL, "GET … → 503"), VALUES)
    assert claims.verdict("old service", [error], none_because="-").word == "unknown"
    assert claims.verdict("old service", [error, failed], none_because="-").word == "not_healthy"
    assert claims.verdict("old service", [], none_because="no checks").sentence == (
        "The old service's health was NOT verified (no checks)."
    )


def test_a_claim_read_back_from_an_audit_row_says_only_the_recorded_evidence() -> None:
    row = {"status": "pass", "evidence": "GET http://10.0.0.5:3000/health → 200 in 9 ms"}
    c = claims.claim_from_row(HEALTH, row, VALUES)
    assert c.text == "10.0.0.5:3000 GET /health: GET http://10.0.0.5:3000/health → 200 in 9 ms"
    assert c.passed and c.verifies_health
    running = claims.claim_from_row(containers("running"), {"status": "pass"}, VALUES)
    assert running.text == "its containers of nostrmaxi-old running (their health not checked)"
