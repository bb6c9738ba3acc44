"""Phase 5 "All modules loaded successfully": NestJS says so in one line, and the shipped
startup-log step waits for it beside "NostrMaxi running on" (real containers, real logs)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from phases.checks.base import Status, StepContext
from tests.nostrmaxi_lines import run_shipped, shipped_step
from tests.servers import ManualClock

if TYPE_CHECKING:
    from tests.docker_fixtures import Compose

pytestmark = pytest.mark.docker

RUNNING = "🚀 NostrMaxi running on http://localhost:3000"
NEST = (
    "[Nest] 1  - 02/17/2026, 4:00:00 PM     LOG [NestApplication] "
    "Nest application successfully started +3ms"
)


def backend(*lines: str) -> dict[str, object]:
    echoes = "; ".join(f"echo '{line}'" for line in lines)
    return {"command": ["sh", "-c", f"{echoes}; sleep 3600"]}


def test_startup_step_waits_for_the_modules_loaded_line() -> None:
    kind, params = shipped_step("start", "startup-log", compose_project="p")
    assert kind == "logs"
    assert "Nest application successfully started" in params.must_appear


def test_backend_that_runs_without_loading_every_module_fails_phase_5(compose: Compose) -> None:
    compose.write({"backend": backend(RUNNING)})
    started = time.time()
    compose("up", "-d")
    # The step's 60 s wait passes on the test's clock; the logs are read for real each poll.
    ctx = StepContext(timeout=90.0, phase_started_at=started, clock=ManualClock())
    result = run_shipped("start", "startup-log", ctx, compose_project=compose.project)
    assert result.status is Status.FAIL
    assert "'Nest application successfully started' not seen" in result.evidence


def test_backend_that_loaded_its_modules_passes_phase_5(compose: Compose) -> None:
    compose.write({"backend": backend(NEST, RUNNING)})
    started = time.time()
    compose("up", "-d")
    ctx = StepContext(timeout=20.0, phase_started_at=started)
    result = run_shipped("start", "startup-log", ctx, compose_project=compose.project)
    assert result.status is Status.PASS, result.evidence
    assert "'Nest application successfully started' seen in backend" in result.evidence
