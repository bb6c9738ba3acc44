"""T-24h "Smoke test current dev/staging: all endpoints returning 200 OK": the readiness phase
checks on staging every endpoint the runbook's health-check section covers (Phase 6's list),
not /health alone; a staging whose /health answers but whose API is broken fails."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from phases.checks.base import Status, StepContext
from tests.nostrmaxi_lines import run_shipped, shipped, shipped_step
from tests.servers import NostrMaxiStandin, nostrmaxi  # noqa: F401

ENDPOINTS = {  # the runbook's Phase 6 "Required Tests", as the shipped Phase 6 checks them
    "/health": "health",
    "/.well-known/nostr.json": "nip05",
    "/api/docs": "docs",
    "/api/v1/auth/challenge": "challenge",
    "/api/v1/subscriptions/tiers": "tiers",
}


def staging_checks() -> list[str]:
    return [c.id for c in shipped().phase("readiness").checks if c.kind == "http"]


def test_staging_smoke_covers_every_endpoint_phase_6_checks_in_the_same_way() -> None:
    assert staging_checks() == [f"staging-{smoke}" for smoke in ENDPOINTS.values()]
    for path, smoke in ENDPOINTS.items():
        _, staged = shipped_step("readiness", f"staging-{smoke}", staging_url="http://s.test")
        _, prod = shipped_step("smoke", smoke, base_url="http://s.test")
        assert urlsplit(staged.url).path == path
        assert staged.url == prod.url or path == "/health"  # staging's /health: status only
        assert (staged.method, staged.expect_keys, staged.expect_set) == (
            prod.method,
            prod.expect_keys,
            prod.expect_set,
        )


@pytest.mark.parametrize("path", list(ENDPOINTS))
def test_a_staging_with_one_broken_endpoint_fails_its_smoke_test(
    nostrmaxi: NostrMaxiStandin,  # noqa: F811
    path: str,
) -> None:
    def results() -> dict[str, Status]:
        ctx = StepContext(timeout=10)
        return {
            check: run_shipped("readiness", check, ctx, staging_url=nostrmaxi.url).status
            for check in staging_checks()
        }

    assert set(results().values()) == {Status.PASS}
    nostrmaxi.status_overrides[path] = 500
    broken = f"staging-{ENDPOINTS[path]}"
    assert {c: s for c, s in results().items() if s is not Status.PASS} == {broken: Status.FAIL}
