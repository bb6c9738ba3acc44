"""`http`: phase 6 smoke tests against the NostrMaxi stand-in, phase 9 response times."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from phases.checks import REGISTRY
from phases.checks.base import Status, StepContext, StepResult
from phases.secrets import MASK, Masker
from tests import servers
from tests.servers import (
    CA,
    NostrMaxiStandin,
    Request,
    Response,
    json_response,
    make_leaf,
    nostrmaxi_standin,
    run_check,
)

nostrmaxi = servers.nostrmaxi  # fixture: a started NostrMaxi stand-in
ca = servers.ca  # fixture: a test CA
manual_clock = servers.manual_clock  # fixture: a clock the test moves

TIERS = ["FREE", "PRO", "BUSINESS", "LIFETIME"]


def get(
    app: NostrMaxiStandin, path: str, ctx: StepContext | None = None, **params: Any
) -> StepResult:
    timeout = params.pop("timeout", 2.0)
    result = run_check("http", {"url": app.url + path, **params}, ctx, timeout=timeout)
    assert len(result.evidence) <= 200
    return result


def test_kind_is_registered_read_only() -> None:
    assert REGISTRY["http"].mutates is False


def test_health_returns_200_with_status_ok(nostrmaxi: NostrMaxiStandin) -> None:
    result = get(nostrmaxi, "/health", expect_json={"status": "ok"}, expect_json_type="object")
    assert result.status is Status.PASS, result.evidence
    assert result.evidence.startswith(f"GET {nostrmaxi.url}/health → 200 in ")
    assert result.details["status_code"] == 200
    assert isinstance(result.details["elapsed_ms"], int)


def test_health_reporting_another_status_fails(nostrmaxi: NostrMaxiStandin) -> None:
    nostrmaxi.route("GET", "/health", json_response({"status": "degraded", "db": "down"}))
    result = get(nostrmaxi, "/health", expect_json={"status": "ok"})
    assert result.status is Status.FAIL
    assert result.evidence.endswith('→ 200: status is "degraded" (expected "ok")')


def test_health_returning_500_fails(nostrmaxi: NostrMaxiStandin) -> None:
    nostrmaxi.fail_status = 500
    result = get(nostrmaxi, "/health")
    assert result.status is Status.FAIL
    assert "/health → 500 (expected 200): " in result.evidence
    assert result.details["status_code"] == 500


def test_server_that_hangs_longer_than_the_timeout_is_an_error(
    nostrmaxi: NostrMaxiStandin,
) -> None:
    nostrmaxi.delay_ms = 5000
    start = time.monotonic()
    result = get(nostrmaxi, "/health", timeout=0.3)
    assert time.monotonic() - start < 1.5
    assert result.status is Status.ERROR
    assert result.evidence == f"GET {nostrmaxi.url}/health: timed out after 0.3s"


def test_server_that_is_down_is_an_error(nostrmaxi: NostrMaxiStandin) -> None:
    nostrmaxi.down = True
    result = get(nostrmaxi, "/health")
    assert result.status is Status.ERROR
    assert "ConnectError" in result.evidence
    nostrmaxi.down = False  # back on the same port
    assert get(nostrmaxi, "/health").status is Status.PASS


def test_response_slower_than_max_ms_fails(nostrmaxi: NostrMaxiStandin) -> None:
    nostrmaxi.delay_ms = 250
    result = get(nostrmaxi, "/health", max_ms=100)
    assert result.status is Status.FAIL
    elapsed = result.details["elapsed_ms"]
    assert elapsed >= 250
    assert result.evidence.endswith(f"→ 200: took {elapsed} ms > 100 ms")


def test_response_times_under_500ms_average_passes(nostrmaxi: NostrMaxiStandin) -> None:
    result = get(nostrmaxi, "/health", max_ms=500, samples=5)
    assert result.status is Status.PASS, result.evidence
    assert "avg" in result.evidence and "over 5" in result.evidence
    assert "(limit 500 ms)" in result.evidence
    assert len(result.details["samples_ms"]) == 5
    assert nostrmaxi.requests.count(("GET", "/health")) == 5


def test_average_response_time_over_the_limit_fails(nostrmaxi: NostrMaxiStandin) -> None:
    nostrmaxi.delay_ms = 60
    result = get(nostrmaxi, "/health", max_ms=30, samples=3)
    assert result.status is Status.FAIL
    assert "average" in result.evidence and "over 3 requests > 30 ms" in result.evidence


def test_nip05_endpoint_returns_valid_json(nostrmaxi: NostrMaxiStandin) -> None:
    result = get(nostrmaxi, "/.well-known/nostr.json?name=test", expect_keys=["names"])
    assert result.status is Status.PASS, result.evidence


def test_nip05_lookup_returns_the_claimed_pubkey(nostrmaxi: NostrMaxiStandin) -> None:
    pubkey = "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d"
    nostrmaxi.names["cutover-test"] = pubkey
    result = get(
        nostrmaxi,
        "/.well-known/nostr.json?name=cutover-test",
        expect_json={"names": {"cutover-test": pubkey}},
    )
    assert result.status is Status.PASS, result.evidence
    missing = get(
        nostrmaxi,
        "/.well-known/nostr.json?name=nobody",
        expect_json={"names": {"nobody": pubkey}},
    )
    assert missing.status is Status.FAIL
    assert "names.nobody missing" in missing.evidence


def test_api_docs_loads_swagger_ui(nostrmaxi: NostrMaxiStandin) -> None:
    result = get(nostrmaxi, "/api/docs", expect_contains=["Swagger UI"])
    assert result.status is Status.PASS, result.evidence


def test_subscription_tiers_include_free_pro_business_lifetime(nostrmaxi: NostrMaxiStandin) -> None:
    result = get(
        nostrmaxi, "/api/v1/subscriptions/tiers", expect_json_type="array", expect_contains=TIERS
    )
    assert result.status is Status.PASS, result.evidence


def test_subscription_tiers_missing_lifetime_fails(nostrmaxi: NostrMaxiStandin) -> None:
    nostrmaxi.tiers = [t for t in nostrmaxi.tiers if t["tier"] != "LIFETIME"]
    result = get(
        nostrmaxi, "/api/v1/subscriptions/tiers", expect_json_type="array", expect_contains=TIERS
    )
    assert result.status is Status.FAIL
    assert result.evidence.endswith("→ 200: body lacks: LIFETIME")


def test_tiers_as_an_object_fail_the_array_shape(nostrmaxi: NostrMaxiStandin) -> None:
    nostrmaxi.route("GET", "/api/v1/subscriptions/tiers", json_response({"tiers": TIERS}))
    result = get(nostrmaxi, "/api/v1/subscriptions/tiers", expect_json_type="array")
    assert result.status is Status.FAIL
    assert "body is a JSON dict, expected an array" in result.evidence


def test_auth_challenge_post_returns_a_challenge(nostrmaxi: NostrMaxiStandin) -> None:
    result = get(
        nostrmaxi,
        "/api/v1/auth/challenge",
        method="POST",
        json_body={},
        headers={"Content-Type": "application/json"},
        expect_keys=["challenge"],
    )
    assert result.status is Status.PASS, result.evidence
    assert result.evidence.startswith("POST ")
    assert len(nostrmaxi.challenges) == 1
    assert nostrmaxi.challenges[0] not in result.evidence


def test_auth_challenge_answering_201_like_nestjs_post_accepted_when_listed(
    nostrmaxi: NostrMaxiStandin,
) -> None:
    nostrmaxi.challenge_status = 201
    params = {"method": "POST", "json_body": {}, "expect_keys": ["challenge"]}
    strict = get(nostrmaxi, "/api/v1/auth/challenge", **params)
    assert strict.status is Status.FAIL
    assert "→ 201 (expected 200)" in strict.evidence
    either = get(nostrmaxi, "/api/v1/auth/challenge", expect_status=[200, 201], **params)
    assert either.status is Status.PASS, either.evidence
    nostrmaxi.fail_status = 500
    down = get(nostrmaxi, "/api/v1/auth/challenge", expect_status=[200, 201], **params)
    assert "→ 500 (expected 200 or 201)" in down.evidence


def test_auth_challenge_without_challenge_key_fails(nostrmaxi: NostrMaxiStandin) -> None:
    nostrmaxi.route("POST", "/api/v1/auth/challenge", json_response({"error": "no"}))
    result = get(
        nostrmaxi, "/api/v1/auth/challenge", method="POST", json_body={}, expect_keys=["challenge"]
    )
    assert result.status is Status.FAIL
    assert result.evidence.endswith("missing keys: challenge")


def test_auth_challenge_get_is_not_allowed(nostrmaxi: NostrMaxiStandin) -> None:
    result = get(nostrmaxi, "/api/v1/auth/challenge", expect_keys=["challenge"])
    assert result.status is Status.FAIL
    assert "→ 405 (expected 200)" in result.evidence


def test_body_that_is_not_json_fails_json_expectations(nostrmaxi: NostrMaxiStandin) -> None:
    result = get(nostrmaxi, "/api/docs", expect_json={"status": "ok"})
    assert result.status is Status.FAIL
    assert result.evidence.endswith("body is not JSON")


def test_redirects_are_not_followed(nostrmaxi: NostrMaxiStandin) -> None:
    nostrmaxi.route("GET", "/", Response(301, "", {"Location": "/health"}))
    assert get(nostrmaxi, "/").status is Status.FAIL
    assert get(nostrmaxi, "/", expect_status=301).status is Status.PASS


def test_head_request_checks_status_only(nostrmaxi: NostrMaxiStandin) -> None:
    result = get(nostrmaxi, "/health", method="HEAD")
    assert result.status is Status.PASS, result.evidence


def test_error_body_in_evidence_is_short_and_masked(nostrmaxi: NostrMaxiStandin) -> None:
    secret = "sk_live_" + "Zq3" * 10

    def leaky(req: Request) -> Response:
        return Response(500, f"Internal error: BTCPAY_API_KEY={secret} " + "x" * 300)

    nostrmaxi.route("GET", "/health", leaky)
    ctx = StepContext(masker=Masker([secret]), timeout=2.0)
    result = get(nostrmaxi, "/health", ctx)
    assert result.status is Status.FAIL
    assert secret not in result.evidence and MASK in result.evidence
    assert secret not in result.details["body_snippet"]
    assert len(result.details["body_snippet"]) <= 80


def test_https_endpoint_verified_against_the_test_ca(tmp_path: Path, ca: CA) -> None:
    leaf = make_leaf(tmp_path, ca, "localhost", 90, sans=["localhost", "127.0.0.1"])
    with nostrmaxi_standin(tls=leaf) as app:
        url = app.url + "/health"
        trusted = run_check("http", {"url": url, "ca_file": str(ca.cert)}, timeout=2.0)
        untrusted = run_check("http", {"url": url}, timeout=2.0)
        unverified = run_check("http", {"url": url, "verify_tls": False}, timeout=2.0)
    assert url.startswith("https://")
    assert trusted.status is Status.PASS, trusted.evidence
    assert untrusted.status is Status.ERROR
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.evidence
    assert unverified.status is Status.PASS


@pytest.mark.parametrize(
    "params",
    [
        {"url": "ftp://example.test/"},
        {"url": "http://example.test/", "method": "DELETE"},
        {"url": "http://example.test/", "samples": 0},
        {"url": "http://example.test/", "expect_json_type": "string"},
        {"url": "http://example.test/", "follow_redirects": True},
        {"url": "http://example.test/", "expect_status": []},
        {"url": "http://example.test/", "expect_status": [200, 999]},
    ],
)
def test_bad_params_are_rejected(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        REGISTRY["http"].params.model_validate(params)


def test_a_service_just_started_is_asked_again_until_it_answers(
    nostrmaxi: NostrMaxiStandin, manual_clock: servers.ManualClock
) -> None:
    """After a rollback's `up -d` the old service needs a moment: wait_seconds asks again."""
    answers = iter([Response(503, "starting"), Response(503, "starting")])
    nostrmaxi.route("GET", "/health", lambda _req: next(answers, json_response({"status": "ok"})))
    ctx = StepContext(timeout=5.0, clock=manual_clock)
    result = get(nostrmaxi, "/health", ctx, expect_json={"status": "ok"}, wait_seconds=60)
    assert result.status is Status.PASS, result.evidence
    assert result.details["waited_s"] == 4.0  # two polls of 2 s on the test's clock


def test_a_service_that_never_answers_fails_once_the_wait_is_over(
    nostrmaxi: NostrMaxiStandin, manual_clock: servers.ManualClock
) -> None:
    nostrmaxi.fail_status = 503
    ctx = StepContext(timeout=5.0, clock=manual_clock)
    result = get(nostrmaxi, "/health", ctx, wait_seconds=10)
    assert result.status is Status.FAIL
    assert "/health → 503 (expected 200)" in result.evidence
    assert result.details["waited_s"] == 10.0
