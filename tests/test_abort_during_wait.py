"""`/cutover abort` while a check waits in the bot's own process (a URL that should answer
within its `wait_seconds`, a container that should turn healthy within 60 s): the check
leaves its wait at once, with no verdict, and the rollback begins then, not once the wait
would have run out (up to an hour, as a runbook may write it).

Commands were stopped by SIGTERM already (tests/test_abort_during_action.py); a check that
polls in-process looked at nothing until its wait ended."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bot import audit
from bot.engine import Engine
from bot.standin.http_server import LoopbackHTTPServer, Response
from bot.store.db import Database
from bot.store.models import Run
from bot.surface import Actor
from phases.checks.base import (
    STOP_LOOK_SECONDS,
    Status,
    StepContext,
    StepStopped,
    StopRequest,
    pause,
)
from phases.runbook import StepSpec
from phases.runner import run_step
from tests.schedule_helpers import RecordingSurface
from tests.slack_harness import wait_for
from tests.small_runbook import small_runbook

ALICE, BOB = Actor("T1:U1", "alice"), Actor("T1:U2", "bob")


def unready_service() -> LoopbackHTTPServer:
    """A service that never becomes ready: /health answers 503."""
    server = LoopbackHTTPServer()
    server.route("GET", "/health", Response(503, "starting"))
    return server.start()


def waiting_check(url: str, wait_seconds: int = 600) -> dict[str, Any]:
    return {
        "id": "ready",
        "name": "ready within its wait",
        "kind": "http",
        "timeout": wait_seconds + 60,
        "params": {"url": f"{url}/health", "wait_seconds": wait_seconds},
    }


def test_a_check_waiting_for_a_url_leaves_its_wait_at_the_stop_request() -> None:
    server = unready_service()
    try:
        stop = StopRequest()
        step = StepSpec.model_validate(waiting_check(server.url))
        threading.Timer(0.5, lambda: stop.set("abort")).start()
        began = time.monotonic()
        result = run_step(step, {}, StepContext(stop=stop))
        took = time.monotonic() - began
    finally:
        server.stop()
    assert result.status is Status.ERROR
    assert result.evidence.startswith("stopped by abort after "), result.evidence
    assert result.evidence.endswith(", while it waited: no verdict"), result.evidence
    assert result.details["stopped"] == "request"
    assert took < 3, took  # not the 600 s of its wait
    assert len(server.requests) >= 1  # it did wait: the URL was asked


def trail(db: Database, run_id: int) -> list[tuple[str, dict[str, Any]]]:
    return [(e.kind, json.loads(e.data)) for e in audit.events(db, run_id)]


def test_an_abort_while_a_check_waits_rolls_back_without_waiting_it_out(
    db: Database, tmp_path: Path
) -> None:
    server = unready_service()
    phases = [
        {
            "id": "start",
            "name": "Start services",
            "estimate_minutes": 1,
            "checkpoint": "services ready",
            "actions": [
                {
                    "id": "up",
                    "name": "start the services",
                    "kind": "run",
                    "params": {"argv": ["sh", "-c", f"touch {tmp_path / 'started'}"]},
                }
            ],
            "checks": [waiting_check(server.url)],
        }
    ]
    rollback = [
        {
            "id": "undo",
            "name": "stop the services",
            "kind": "run",
            "params": {"argv": ["sh", "-c", f"touch {tmp_path / 'undone'}"]},
        }
    ]
    runbook = small_runbook(tmp_path, phases=phases, rollback=rollback)
    engine = Engine(db, runbook, surface=RecordingSurface(), background=True, lease_seconds=2.0)
    try:
        run = engine.start_run("staging", ALICE)
        assert run.id is not None
        wait_for(lambda: len(server.requests) >= 2, "the check to be waiting")
        aborted = time.monotonic()
        decision = engine.abort("staging", BOB, "the service never came up")
        assert decision.outcome == "rolled_back", decision

        def ended() -> Run | None:
            with db.session() as s:
                found = s.get(Run, run.id)
            return found if found is not None and found.ended_at is not None else None

        done = wait_for(ended, "the rollback to finish", timeout=20)
        took = time.monotonic() - aborted
    finally:
        engine.shutdown()
        server.stop()
    assert took < 10, took  # the check's wait was 600 s
    assert done.status == "rolled_back"
    assert (tmp_path / "undone").exists()
    rows = trail(db, run.id)
    kinds = [k for k, _ in rows]
    check = next(d for k, d in rows if k == "step.result" and d.get("section") == "checks")
    assert check["status"] == "error", check
    assert check["evidence"].startswith("stopped by abort after "), check
    assert "no verdict" in check["evidence"]
    assert "gate.opened" not in kinds  # no checkpoint for approvers: the run rolled back
    assert kinds.index("run.aborted") < kinds.index("rollback.started")
    assert audit.verify(db) == []


class _StillClock:
    """A clock whose time never moves, as a test's stub may be: a pause must not spin on it."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def now(self) -> float:
        return 0.0

    def monotonic(self) -> float:
        return 0.0

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def test_a_pause_is_the_wait_it_was_asked_for_in_short_looks() -> None:
    clock = _StillClock()
    pause(StepContext(clock=clock, stop=StopRequest()), 1.0)
    assert sum(clock.slept) == pytest.approx(1.0)
    assert max(clock.slept) <= STOP_LOOK_SECONDS
    stop = StopRequest()
    stop.set("the lease was lost")
    with pytest.raises(StepStopped, match="the lease was lost"):
        pause(StepContext(clock=clock, stop=stop), 1.0)


def test_an_action_that_waits_is_handed_over_as_stopped_while_it_waited(
    db: Database, tmp_path: Path
) -> None:
    """The same wait as an action (a runbook may make a URL's readiness a step of its own):
    the hand-over the channel reads is the one the trail keeps (`phase.stopped`, how
    `request`, no seconds: the wait was left at a look, not timed)."""
    server = unready_service()
    wait = {**waiting_check(server.url), "name": "wait for the service"}
    phases = [
        {
            "id": "start",
            "name": "Start services",
            "estimate_minutes": 1,
            "checkpoint": "services ready",
            "actions": [wait],
            "checks": [{"id": "ok", "name": "ok", "kind": "command", "params": {"argv": ["true"]}}],
        }
    ]
    rollback = [
        {"id": "undo", "name": "undo", "kind": "run", "params": {"argv": ["true"]}},
    ]
    surface = RecordingSurface()
    runbook = small_runbook(tmp_path, phases=phases, rollback=rollback)
    engine = Engine(db, runbook, surface=surface, background=True, lease_seconds=2.0)
    try:
        run = engine.start_run("staging", ALICE)
        assert run.id is not None
        wait_for(lambda: len(server.requests) >= 2, "the action to be waiting")
        assert engine.abort("staging", BOB, "never came up").outcome == "rolled_back"

        def ended() -> Run | None:
            with db.session() as s:
                found = s.get(Run, run.id)
            return found if found is not None and found.ended_at is not None else None

        wait_for(ended, "the rollback to finish", timeout=20)
    finally:
        engine.shutdown()
        server.stop()
    rows = trail(db, run.id)
    stopped = next(d for k, d in rows if k == "phase.stopped")
    assert stopped["how"] == "request" and stopped["step"] == "wait for the service", stopped
    assert stopped["seconds"] is None
    assert stopped["said"] == "*wait for the service* stopped while it waited (no verdict)."
    said = [c.args[1] for c in surface.calls if c.method == "notice" and c.args[2] is None]
    assert f"{stopped['said']} Rolling back now." in said
    action = next(d for k, d in rows if k == "step.result" and d.get("step") == "ready")
    assert action["status"] == "error" and "no verdict" in action["evidence"], action
