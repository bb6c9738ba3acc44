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

# NostrMaxi's own lines (github.com/imp0stor/nostrmaxi), as NestJS's Logger and its request
# log print them: PaymentsService.processPayment and handleWebhook
# (src/payments/payments.service.ts), RequestLoggingMiddleware
# (src/common/middleware/security.middleware.ts).
NEST = "[Nest] 1  - 02/17/2026, 4:05:12 PM"
DELIVERED = (
    f"{NEST}     LOG [PaymentsService] Payment clx7q2m0a0001 processed: PRO tier until "
    "Thu Mar 19 2026 16:05:12 GMT+0000 (Coordinated Universal Time)"
)
DELIVERED_2 = (
    f"{NEST}     LOG [PaymentsService] Payment clx7q2m0a0002 processed: LIFETIME tier until "
    "Sun Feb 17 2126 16:05:12 GMT+0000 (Coordinated Universal Time)"
)
SECRET = "whsec_0123456789abcdef"
FAILED = f"{NEST}    WARN [PaymentsService] Invalid webhook signature"
# The request log of the 400 that answered it; the query string carries the secret here.
FAILED_REQUEST = (
    f"[2026-02-17T16:05:12.345Z] POST /api/v1/payments/webhook?provider=lnbits&k={SECRET} 400 4ms"
)
CRASHED_REQUEST = (
    f"[2026-02-17T16:05:13.001Z] POST /api/v1/payments/webhook?provider=btcpay&k={SECRET} 500 12ms"
)
UNMATCHED = f"{NEST}    WARN [PaymentsService] No pending payment found for provider invoice: inv_9"


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


def test_a_round_shows_its_payments_processed_and_no_webhook_failures(compose: Compose) -> None:
    status, evidence, tallies = read_round(
        compose, DELIVERED, "[2026-02-17T16:05:13.000Z] GET /api/v1/nope 404 1ms", DELIVERED_2
    )
    assert status is Status.PASS, evidence
    assert evidence.startswith("payments processed: 2, webhook failures: 0 in 1 container(s)")
    assert "in the last 5 min" in evidence
    assert tallies == {"payments processed": 2, "webhook failures": 0}  # nginx is not read


def test_a_webhook_turned_down_fails_the_round_with_its_lines_masked(compose: Compose) -> None:
    """A bad signature prints a WARN and the request log's 400: one delivery, counted once."""
    status, evidence, tallies = read_round(compose, DELIVERED, FAILED, FAILED_REQUEST)
    assert status is Status.FAIL
    assert evidence.startswith("payments processed: 1, webhook failures: 1; webhook failures 1 > 0")
    assert "WARN [PaymentsService] Invalid webhook signature" in evidence
    assert SECRET not in evidence
    assert tallies == {"payments processed": 1, "webhook failures": 1}


def test_a_webhook_answered_with_a_server_error_is_a_webhook_failure(compose: Compose) -> None:
    status, evidence, tallies = read_round(compose, CRASHED_REQUEST)
    assert status is Status.FAIL
    assert f"POST /api/v1/payments/webhook?provider=btcpay&k={MASK} 500 12ms" in evidence
    assert tallies == {"payments processed": 0, "webhook failures": 1}


def test_a_delivery_for_no_pending_payment_is_a_webhook_failure(compose: Compose) -> None:
    status, evidence, tallies = read_round(compose, UNMATCHED)
    assert status is Status.FAIL
    assert "No pending payment found for provider invoice: inv_9" in evidence
    assert tallies == {"payments processed": 0, "webhook failures": 1}


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
