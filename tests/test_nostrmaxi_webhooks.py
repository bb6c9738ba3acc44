"""Phase 9 "Webhook deliveries successful": the shipped monitoring step counts the backend's
webhook deliveries and failures in the round's window and shows both (real container logs)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from phases.checks.base import Status, StepContext
from phases.checks.logs_check import LogsParams, run_logs
from phases.secrets import MASK, Masker
from tests.nostrmaxi_lines import run_shipped

if TYPE_CHECKING:
    from tests.docker_fixtures import Compose

pytestmark = pytest.mark.docker

DELIVERED = "LOG [PaymentsController] Webhook received: invoice inv_1 settled, processed"
DELIVERED_2 = "LOG [PaymentsService] BTCPay webhook processed for invoice inv_2"
SECRET = "whsec_0123456789abcdef"
FAILED = f"ERROR [PaymentsController] Webhook signature invalid, rejected (key={SECRET})"


def backend(*lines: str) -> dict[str, object]:
    echoes = "; ".join(f"echo '{line}'" for line in lines)
    return {"command": ["sh", "-c", f"{echoes}; sleep 3600"]}


def read_round(compose: Compose, *lines: str) -> tuple[Status, str, dict[str, int]]:
    compose.write({"backend": backend(*lines), "nginx": backend("webhook failed upstream")})
    compose("up", "-d")
    time.sleep(1.5)
    result = run_shipped(
        "monitoring",
        "webhooks",
        StepContext(timeout=20.0, masker=Masker([SECRET])),
        compose_project=compose.project,
    )
    return result.status, result.evidence, result.details.get("tallies", {})


def test_a_round_shows_its_webhook_deliveries_and_no_failures(compose: Compose) -> None:
    status, evidence, tallies = read_round(compose, DELIVERED, "LOG GET /health 200", DELIVERED_2)
    assert status is Status.PASS, evidence
    assert evidence.startswith("webhook deliveries: 2, webhook failures: 0 in 1 container(s)")
    assert "in the last 5 min" in evidence
    assert tallies == {"webhook deliveries": 2, "webhook failures": 0}  # nginx is not read


def test_one_failed_delivery_fails_the_round_with_the_line_masked(compose: Compose) -> None:
    status, evidence, tallies = read_round(compose, DELIVERED, FAILED)
    assert status is Status.FAIL
    assert evidence.startswith("webhook deliveries: 1, webhook failures: 1; webhook failures 1 > 0")
    assert "backend: ERROR [PaymentsController] Webhook signature invalid" in evidence
    assert SECRET not in evidence and f"key={MASK}" in evidence
    assert tallies == {"webhook deliveries": 1, "webhook failures": 1}


def test_a_count_below_its_minimum_fails(compose: Compose) -> None:
    compose.write({"backend": backend("LOG GET /health 200")})
    compose("up", "-d")
    time.sleep(1.5)
    params = LogsParams(
        project=compose.project,
        since_minutes=5,
        count=[{"name": "logins", "pattern": "login ok", "min": 1}],
    )
    result = run_logs(params, StepContext(timeout=20.0))
    assert result.status is Status.FAIL
    assert result.evidence.startswith("logins: 0; logins 0 < 1 (1 lines in the last 5 min)")


def test_a_bad_count_pattern_is_refused_with_what_to_fix() -> None:
    with pytest.raises(ValueError, match=r"'\(unclosed' is not a regular expression"):
        LogsParams(project="p", count=[{"name": "x", "pattern": "(unclosed"}])


LOGIN = "LOG [AuthService] login successful for npub1qqqqcutovertest"
CLAIM = "LOG [Nip05Service] NIP-05 cutover-test@nostrmaxi.com claimed by npub1qqqqcutovertest"


def test_each_round_shows_the_user_actions_since_monitoring_began(compose: Compose) -> None:
    compose.write({"backend": backend(LOGIN, "LOG login attempt failed: bad signature", CLAIM)})
    started = time.time()
    compose("up", "-d")
    time.sleep(1.5)
    ctx = StepContext(timeout=20.0, phase_started_at=started)
    result = run_shipped("monitoring", "user-actions", ctx, compose_project=compose.project)
    assert result.status is Status.PASS, result.evidence
    assert result.evidence.startswith("logins: 1, NIP-05 claims: 1 in 1 container(s)")
    assert result.evidence.endswith("since the phase started")
