"""`logs` against real containers: Phase 5's startup line, Phase 9's ERROR/CRITICAL watch."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from phases.checks.base import OUTPUT, KeptOutput, Status, StepContext
from phases.checks.logs_check import LogsParams, run_logs
from phases.secrets import MASK, Masker

if TYPE_CHECKING:
    from tests.docker_fixtures import Compose

pytestmark = pytest.mark.docker

STARTUP = "NostrMaxi running on"
NO_ERRORS = [r"\bERROR\b", r"\bCRITICAL\b"]


def service(script: str) -> dict[str, object]:
    return {"command": ["sh", "-c", script + "; sleep 3600"]}


def ctx(phase_started_at: float, masker: Masker | None = None) -> StepContext:
    return StepContext(timeout=20.0, phase_started_at=phase_started_at, masker=masker or Masker())


def test_startup_line_that_appears_late_is_waited_for(compose: Compose) -> None:
    compose.write(
        {"backend": service("sleep 2; echo '🚀 NostrMaxi running on http://localhost:3000'")}
    )
    phase_start = time.time()
    compose("up", "-d")
    params = LogsParams(
        project=compose.project, must_appear=[STARTUP], must_not_appear=NO_ERRORS, wait_seconds=15
    )
    result = run_logs(params, ctx(phase_start))
    assert result.status is Status.PASS, result.evidence
    assert "'NostrMaxi running on' seen in backend" in result.evidence
    assert "no \\bERROR\\b, \\bCRITICAL\\b" in result.evidence


def test_missing_startup_line_fails_at_the_deadline(compose: Compose) -> None:
    compose.write({"backend": service("echo 'Nest application starting'")})
    phase_start = time.time()
    compose("up", "-d")
    params = LogsParams(project=compose.project, must_appear=[STARTUP], wait_seconds=2)
    started = time.monotonic()
    result = run_logs(params, ctx(phase_start))
    assert 2 <= time.monotonic() - started < 10
    assert result.status is Status.FAIL
    assert "'NostrMaxi running on' not seen in project" in result.evidence


def test_error_lines_fail_with_counts_and_masked_excerpts(compose: Compose) -> None:
    secret = "sk_live_0123456789abcdef"
    compose.write(
        {
            "backend": service(
                f"echo 'ERROR payment webhook rejected key={secret}'; echo 'ERROR again'; "
                "echo 'WARN slow'"
            ),
            "redis": service("echo 'CRITICAL out of memory'"),
            "nginx": service("echo 'all good, no errors here'"),
        }
    )
    phase_start = time.time()
    compose("up", "-d")
    time.sleep(1.5)
    params = LogsParams(project=compose.project, must_not_appear=NO_ERRORS)
    result = run_logs(params, ctx(phase_start, Masker([secret])))
    assert result.status is Status.FAIL
    assert "\\bERROR\\b ×2 in backend" in result.evidence
    assert "\\bCRITICAL\\b ×1 in redis" in result.evidence
    assert result.details["counts"] == {r"\bERROR\b": 2, r"\bCRITICAL\b": 1}
    assert secret not in result.evidence and MASK in " ".join(result.details["excerpts"])


def test_a_project_without_containers_fails(compose: Compose) -> None:
    params = LogsParams(project=compose.project, must_not_appear=NO_ERRORS)
    result = run_logs(params, ctx(time.time()))
    assert result.status is Status.FAIL and "no containers" in result.evidence


def test_the_logs_read_are_kept_as_the_check_s_output_masked(compose: Compose) -> None:
    secret = "sk_live_fedcba9876543210"
    compose.write(
        {
            "backend": service(f"echo 'boot'; echo 'ERROR webhook key={secret}'"),
            "redis": service("echo 'Ready to accept connections'"),
        }
    )
    phase_start = time.time()
    compose("up", "-d")
    time.sleep(1.5)
    params = LogsParams(project=compose.project, must_not_appear=NO_ERRORS)
    result = run_logs(params, ctx(phase_start, Masker([secret])))
    kept = result.details[OUTPUT]
    assert result.status is Status.FAIL and isinstance(kept, KeptOutput)
    assert kept.text == (
        f"backend | boot\nbackend | ERROR webhook key={MASK}\nredis | Ready to accept connections\n"
    )
    assert not kept.truncated and kept.total_bytes == len(kept.text) - len(MASK) + len(secret)
