"""Checks as exact as the runbook means them: a near miss fails.

Tiers are exactly FREE, PRO, BUSINESS, LIFETIME ("PROFESSIONAL" is not "PRO"); the
certificate nginx serves is for the domain; the images are this run's build; the old
project that Phase 1 stops existed at all.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bot.standin import NostrMaxiStandin
from phases.checks.base import Status, StepContext, SystemClock
from phases.checks.docker_containers import ContainersParams, run_containers
from phases.checks.docker_images import ImagesParams, run_images
from tests import servers
from tests.servers import make_cert, run_check

if TYPE_CHECKING:
    from tests.docker_fixtures import Compose

nostrmaxi = servers.nostrmaxi  # fixture: a started NostrMaxi stand-in

TIERS = {"field": "tier", "values": ["FREE", "PRO", "BUSINESS", "LIFETIME"]}
DAY = 86400.0


def tiers(app: NostrMaxiStandin) -> Any:
    url = app.url + "/api/v1/subscriptions/tiers"
    return run_check("http", {"url": url, "expect_set": TIERS}, timeout=3.0)


def test_tiers_exactly_free_pro_business_lifetime_pass(nostrmaxi: NostrMaxiStandin) -> None:
    assert tiers(nostrmaxi).status is Status.PASS


def test_tiers_with_professional_instead_of_pro_fail(nostrmaxi: NostrMaxiStandin) -> None:
    for t in nostrmaxi.tiers:
        if t["tier"] == "PRO":
            t["tier"] = "PROFESSIONAL"
    result = tiers(nostrmaxi)
    assert result.status is Status.FAIL
    assert "missing PRO; unexpected PROFESSIONAL" in result.evidence


def test_tiers_with_an_extra_tier_fail(nostrmaxi: NostrMaxiStandin) -> None:
    nostrmaxi.tiers.append({"tier": "ENTERPRISE", "name": "Enterprise"})
    result = tiers(nostrmaxi)
    assert result.status is Status.FAIL and "unexpected ENTERPRISE" in result.evidence


def test_certificate_for_the_domain_passes(tmp_path: Path) -> None:
    cert = make_cert(tmp_path, "nostrmaxi.com", days=90, sans=["nostrmaxi.com"]).cert
    result = run_check("tls", {"file": str(cert), "names": ["nostrmaxi.com"]})
    assert result.status is Status.PASS and "valid for nostrmaxi.com" in result.evidence


def test_wildcard_certificate_covers_one_label(tmp_path: Path) -> None:
    cert = make_cert(tmp_path, "wild", days=90, sans=["*.nostrmaxi.com"]).cert
    ok = run_check("tls", {"file": str(cert), "names": ["www.nostrmaxi.com"]})
    deep = run_check("tls", {"file": str(cert), "names": ["a.b.nostrmaxi.com"]})
    assert (ok.status, deep.status) == (Status.PASS, Status.FAIL)


def test_certificate_for_another_name_fails(tmp_path: Path) -> None:
    cert = make_cert(tmp_path, "staging.example.org", days=90, sans=["staging.example.org"]).cert
    result = run_check("tls", {"file": str(cert), "names": ["nostrmaxi.com"]})
    assert result.status is Status.FAIL
    assert "is not valid for nostrmaxi.com (its names: staging.example.org)" in result.evidence


@pytest.mark.docker
def test_image_built_during_the_run_passes(compose: Compose) -> None:
    started = time.time() - 5
    compose.write({"backend": {"build": "."}})
    compose("build", "--no-cache")
    params = ImagesParams(names=[f"{compose.project}-backend"], built_after_run_start=True)
    result = run_images(params, StepContext(run_started_at=started))
    assert result.status is Status.PASS, result.evidence


@pytest.mark.docker
def test_day_old_image_fails(compose: Compose) -> None:
    compose.write({"backend": {"build": "."}})
    compose("build", "--no-cache")

    class NextDay(SystemClock):
        def now(self) -> float:
            return time.time() + DAY

    # The run starts a day after the build: the image is yesterday's, not this run's.
    ctx = StepContext(clock=NextDay(), run_started_at=time.time() + DAY - 60)
    params = ImagesParams(names=[f"{compose.project}-backend"], built_after_run_start=True)
    result = run_images(params, ctx)
    assert result.status is Status.FAIL
    assert "built before this run started" in result.evidence


@pytest.mark.docker
def test_old_project_that_never_existed_fails(compose: Compose) -> None:
    params = ContainersParams(project=compose.project, expect="absent", require_existed=True)
    result = run_containers(params, StepContext(phase_started_at=time.time() - 5))
    assert result.status is Status.FAIL
    assert "never existed on this engine" in result.evidence


@pytest.mark.docker
def test_old_project_stopped_in_this_phase_passes(compose: Compose) -> None:
    compose.write({"backend": {"command": ["sleep", "3600"]}})
    compose("up", "-d")
    phase_start = time.time() - 1
    compose("down", "--timeout", "1")
    params = ContainersParams(
        project=compose.project, expect="absent", require_existed=True, wait_seconds=0
    )
    result = run_containers(params, StepContext(phase_started_at=phase_start))
    assert result.status is Status.PASS, result.evidence
    assert "1 stopped in this phase: backend" in result.evidence
