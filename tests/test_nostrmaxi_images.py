"""Phase 3 "docker images | grep nostrmaxi": every image of the compose file, not only the
backend's: a built service by either name Compose gives it (v1 PROJECT_SERVICE, v2
PROJECT-SERVICE) and built during this run, a pulled one present (the shipped step against
images on the real Docker engine, built by the compose stand-in)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from phases.checks.base import Status, StepContext
from tests.docker_fixtures import BASE_IMAGE
from tests.nostrmaxi_lines import run_shipped

if TYPE_CHECKING:
    from tests.docker_fixtures import Compose

pytestmark = pytest.mark.docker

MISSING = "cutover-test/redis-not-pulled:7"


def check(compose: Compose, started: float) -> Any:
    ctx = StepContext(timeout=30.0, run_started_at=started)
    return run_shipped(
        "build",
        "images",
        ctx,
        compose_project=compose.project,
        app_dir=str(compose.file.parent),
        compose_file=compose.file.name,
    )


def test_every_image_of_the_compose_file_is_checked_a_missing_pulled_one_fails(
    compose: Compose,
) -> None:
    compose.write(
        {"backend": {"build": "."}, "db": {"image": BASE_IMAGE}, "redis": {"image": MISSING}}
    )
    started = time.time() - 1
    compose("build")
    result = check(compose, started)
    assert result.status is Status.FAIL
    assert result.evidence == f"missing images: {MISSING} (2/3 present)"
    compose.write({"backend": {"build": "."}, "db": {"image": BASE_IMAGE}})
    ok = check(compose, started)
    assert ok.status is Status.PASS, ok.evidence
    assert ok.evidence == (f"2/2 images present: {compose.project}-backend:latest, {BASE_IMAGE}")


def test_a_compose_v1_build_name_counts_and_a_build_before_the_run_does_not(
    compose: Compose, docker_client: Any
) -> None:
    compose.write({"backend": {"build": "."}, "db": {"image": BASE_IMAGE}})
    compose("build")
    v2 = f"{compose.project}-backend:latest"
    v1 = f"{compose.project}_backend"
    docker_client.images.get(v2).tag(v1, "latest")
    docker_client.images.remove(v2, noprune=True)
    try:
        result = check(compose, time.time() - 60)
        assert result.status is Status.PASS, result.evidence
        assert f"{v1}:latest" in result.evidence
        stale = check(compose, time.time() + 60)  # the run started after this build
        assert stale.status is Status.FAIL
        assert stale.evidence == (
            f"built before this run started: {compose.project}_backend or "
            f"{compose.project}-backend (2/2 present)"
        )
    finally:
        docker_client.images.remove(f"{v1}:latest", noprune=True)
