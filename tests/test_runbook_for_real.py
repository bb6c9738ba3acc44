"""The shipped NostrMaxi runbook against the stand-in, where it used to be told wrongly:
the startup line in Phase 5's logs, a service that dies during monitoring, a rollback
that is verified and timed, and what happens to the migrated schema after Phase 4.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import Any

import pytest
import yaml

from bot import audit
from bot.scheduler import Scheduler
from bot.store.db import Database
from phases.checks.base import StepContext
from phases.runbook import EnvironmentSpec
from phases.secrets import Masker
from standins.fast_clock import FastClock
from tests.schedule_helpers import paced_context
from tests.standin_env import SERVICE_COMMAND, Standin
from tests.test_runs import ALICE, BOB, approve_until, make_engine

pytestmark = pytest.mark.docker


@pytest.fixture
def db(pg_db: Database) -> Database:
    """Each whole Docker scenario runs once, with the bot's database on PostgreSQL (issue 19):
    the engine on SQLite is covered by the rest of the suite, and these scenarios spend their
    minutes on Docker, not on the bot's database."""
    return pg_db


def rollback_report(notices: list[str]) -> str:
    """The rollback's report among the run's notices (the audit chain head comes after it)."""
    return next(n for n in reversed(notices) if n.startswith("Rollback finished"))


def events(db: Database, run_id: int, kind: str) -> list[dict[str, Any]]:
    return [json.loads(e.data) for e in audit.events(db, run_id) if e.kind == kind]


def fast_context(env: EnvironmentSpec, dry_run: bool, masker: Masker) -> StepContext:
    """The engine's step context on a FastClock that spends a quarter of each wait."""
    return dataclasses.replace(paced_context(env, dry_run, masker), clock=FastClock(real=0.25))


@pytest.mark.timeout(240)  # phases 1-5 on real containers, under a loaded CI machine
def test_phase_5_fails_when_the_startup_line_is_missing(pg_db: Database, standin: Standin) -> None:
    # The startup-log step waits the runbook's own 60 s for a line that never comes; the
    # bot's database plays no part in it, so this runs once, on PostgreSQL, not per database.
    db = pg_db
    compose_file = standin.app_dir / "docker-compose.prod.yml"
    data = yaml.safe_load(compose_file.read_text(encoding="utf-8"))
    data["services"]["backend"]["command"] = SERVICE_COMMAND  # starts, never says it runs
    compose_file.write_text(yaml.safe_dump(data), encoding="utf-8")
    engine = make_engine(db, standin)
    run = engine.start_run("standin", ALICE)
    assert run.id is not None
    approve_until(engine, run.id, stop_at="migrate")
    # Phase 5 on a fast clock: the startup-log step's 60 s for the missing line pass in a
    # quarter of that, while the containers still get real seconds to turn healthy.
    engine.context_factory = fast_context
    gate = approve_until(engine, run.id, stop_at="start")
    assert gate is not None and not gate.checks_passed
    steps = {s.step_id: s for s in gate.steps}
    assert steps["healthy"].status == "pass"  # healthy containers alone are not enough
    assert steps["startup-log"].status == "fail"
    assert "'NostrMaxi running on' not seen" in steps["startup-log"].evidence
    # What runs is recorded all the same: the checkout's commit, the four services' images.
    assert steps["deployed"].status == "pass", steps["deployed"].evidence
    assert steps["deployed"].evidence.startswith("commit ") and "4 container(s)" in (
        steps["deployed"].evidence
    )


def test_a_monitoring_round_fails_when_one_service_dies(
    db: Database, standin: Standin, docker_client: Any
) -> None:
    engine = make_engine(db, standin)
    run = engine.start_run("standin", ALICE)
    assert run.id is not None
    gate = approve_until(engine, run.id, stop_at="public-access")
    assert gate is not None
    for item in gate.manual:  # the maintenance page off again, the status page updated
        engine.tick(gate.id, item.id, BOB)
    assert engine.decide(gate.id, BOB, "continue").outcome == "approved"  # round 1 runs now
    first = events(db, run.id, "monitor.round")
    assert [r["status"] for r in first] == ["passed"], first
    redis = docker_client.containers.get(f"{standin.project}-redis-1")
    redis.stop(timeout=1)
    Scheduler(engine).tick(engine.now() + timedelta(minutes=5, seconds=5))
    rounds = events(db, run.id, "monitor.round")
    assert [r["status"] for r in rounds] == ["passed", "failed"]
    services = next(s for s in rounds[1]["steps"] if s["step"] == "services")
    assert services["status"] == "fail" and "redis exited" in services["evidence"]
    breach = events(db, run.id, "monitor.breach")[0]
    assert [f["step"] for f in breach["failures"]] == ["services"]


def test_rollback_is_verified_and_timed_against_the_target(db: Database, standin: Standin) -> None:
    engine = make_engine(db, standin)
    run = engine.start_run("standin", ALICE)
    assert run.id is not None
    approve_until(engine, run.id, stop_at="start")
    standin.app.status_overrides["/health"] = 503
    gate = approve_until(engine, run.id, stop_at="smoke")
    assert gate is not None and not gate.checks_passed
    notices: list[str] = []
    engine.surface.notice = lambda _run, text, *rest: notices.append(text)  # type: ignore[method-assign]
    assert engine.decide(gate.id, BOB, "rollback", reason="health 503").outcome == "rolled_back"
    done = events(db, run.id, "run.rolled_back")[0]
    # Verified for real: Docker's health status of the old containers and the old /health.
    assert done["verified"] is True and done["checks"] == ["old-healthy", "old-health"]
    assert done["old_service"] == "verified_healthy"
    assert done["target_minutes"] == 15 and done["within_target"] is True
    assert 0 < done["duration_s"] < 15 * 60
    report = rollback_report(notices)
    assert f"Old service verified healthy: backend of {standin.old_project} healthy" in report
    assert "answered GET /health 200 in " in report and done["health"] in report
    assert "(target 15 min: within target)" in report
    # Phase 4 migrated the schema before Phase 6 failed: the report says what that means.
    assert done["schema"] and "keeps the schema Phase 4 (Database migration) migrated" in report
    assert "this run's verified backup" in report


def test_rollback_reports_an_old_service_that_does_not_come_back(
    db: Database, standin: Standin
) -> None:
    engine = make_engine(db, standin)
    run = engine.start_run("standin", ALICE)
    assert run.id is not None
    gate = approve_until(engine, run.id, stop_at="deploy-config")
    assert gate is not None
    old_file = standin.app_dir.parent / "old" / "docker-compose.yml"
    old_file.write_text(
        yaml.safe_dump({"services": {"backend": {"command": ["sh", "-c", "exit 3"]}}}),
        encoding="utf-8",
    )
    notices: list[str] = []
    engine.surface.notice = lambda _run, text, *rest: notices.append(text)  # type: ignore[method-assign]
    engine.decide(gate.id, BOB, "rollback", reason="changed our minds")
    done = events(db, run.id, "run.rolled_back")[0]
    assert done["verified"] is False and "old-healthy" in done["failed_steps"]
    assert "Old service NOT healthy after the rollback" in rollback_report(notices)
