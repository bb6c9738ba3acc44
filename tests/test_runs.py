"""Whole runs of the shipped NostrMaxi runbook against a local stand-in environment.

Real git, real HTTP/TLS/DNS servers on loopback, a real target PostgreSQL database,
real containers on the Docker engine; the bot's own database is SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from bot import audit
from bot.engine import Engine
from bot.scheduler import Scheduler
from bot.store.db import Database
from bot.store.reads import gate_view, open_gate_id, run_view
from bot.surface import Actor
from tests.schedule_helpers import paced_context
from tests.standin_env import STANDIN_PUBKEY, Standin, pay_invoice

pytestmark = pytest.mark.docker


@pytest.fixture
def db(pg_db: Database) -> Database:
    """Each whole Docker scenario runs once, with the bot's database on PostgreSQL (issue 19):
    the engine on SQLite is covered by the rest of the suite, and these scenarios spend their
    minutes on Docker, not on the bot's database."""
    return pg_db


ALICE, BOB = Actor("T0TEST:U0ALICE", "alice"), Actor("T0TEST:U0BOB", "bob")


def make_engine(db: Database, standin: Standin) -> Engine:
    return Engine(db, standin.runbook, background=False, context_factory=paced_context)


def current_gate(engine: Engine, run_id: int) -> Any:
    gate_id = open_gate_id(engine.db, run_id)
    assert gate_id is not None, "no open gate"
    view = gate_view(engine.db, engine.runbook, gate_id)
    assert view is not None
    return view


def evidence(view: Any) -> str:
    return "\n".join(f"{s.status} {s.step_id}: {s.evidence}" for s in view.steps)


def finish_monitoring(engine: Engine, run_id: int) -> bool:
    """Phase 9 checks in rounds, every 5 minutes for 30 (bot.monitoring): the scheduler is
    ticked at each round's time in turn, so every round runs and the gate opens after the
    last. (Jumping to the window's end would leave rounds 2-6 missed, and a missed round
    fails the window: the golden rule.)"""
    view = run_view(engine.db, engine.runbook, run_id)
    if view is None or not any(p.status == "monitoring" for p in view.phases):
        return False
    scheduler, base = Scheduler(engine), engine.now()
    for k in range(1, 8):  # rounds 2..7, then the window's end
        scheduler.tick(base + timedelta(minutes=5 * k))
    return True


def tick(engine: Engine, gate_id: int, item: str) -> None:
    """Ticks a manual step as a person would: Phase 7's claim with the test account's pubkey,
    its payment with the webhook arriving in the backend's logs a second later."""
    if item == "payment":
        project = engine.runbook.values_for("standin")["compose_project"]
        pay_invoice(str(project))
    value = STANDIN_PUBKEY if item == "nip05-claim" else None
    assert engine.tick(gate_id, item, BOB, value).outcome == "ticked"


def approve_until(engine: Engine, run_id: int, stop_at: str | None = None) -> Any:
    """Approves every gate (ticking manual steps) until the phase `stop_at` or the end."""
    while True:
        gate_id = open_gate_id(engine.db, run_id)
        if gate_id is None:
            if finish_monitoring(engine, run_id):
                continue
            return None
        view = gate_view(engine.db, engine.runbook, gate_id)
        assert view is not None
        if view.phase_id == stop_at:
            return view
        assert view.checks_passed or view.dry_run, f"{view.phase_id} failed:\n{evidence(view)}"
        for item in view.manual:
            tick(engine, gate_id, item.id)
        result = engine.decide(gate_id, BOB, "continue")
        assert result.outcome == "approved", result.message


def containers(client: Any, project: str) -> dict[str, str]:
    found = client.containers.list(
        all=True, filters={"label": f"com.docker.compose.project={project}"}
    )
    return {c.labels["com.docker.compose.service"]: c.status for c in found}


def migrations(standin: Standin) -> list[tuple[Any, ...]]:
    with psycopg.connect(standin.target_db_url) as conn:
        exists = conn.execute("SELECT to_regclass('_prisma_migrations')").fetchone()
        if exists is None or exists[0] is None:
            return []
        return conn.execute(
            "SELECT migration_name, finished_at IS NOT NULL FROM _prisma_migrations"
        ).fetchall()


def assert_no_secret_anywhere(db: Database, standin: Standin, run_id: int) -> None:
    exported = audit.export(db, run_id, "jsonl")
    for secret in standin.all_secret_forms():
        assert secret not in exported


@pytest.mark.timeout(400)  # seven monitoring rounds, each sampling CPU for ~5 s
def test_pass_path_runs_every_phase_and_completes(
    db: Database, standin: Standin, docker_client: Any
) -> None:
    engine = make_engine(db, standin)
    run = engine.start_run("standin", ALICE)
    assert run.id is not None
    assert approve_until(engine, run.id) is None
    view = run_view(db, engine.runbook, run.id)
    assert view is not None and view.status == "completed", [p.status for p in view.phases]
    assert all(p.status == "passed" for p in view.phases)
    assert containers(docker_client, standin.project) == {
        "backend": "running",
        "db": "running",
        "redis": "running",
        "nginx": "running",
    }
    assert containers(docker_client, standin.old_project) == {}
    assert migrations(standin) == [("20260217_add_nip05", True)]
    assert (standin.app_dir / "dist" / "main.js").exists()
    assert oct((standin.app_dir / ".env").stat().st_mode & 0o777) == "0o600"
    assert audit.verify(db) == []
    assert_no_secret_anywhere(db, standin, run.id)


def test_failed_smoke_test_refuses_continue_and_rollback_restores_old_services(
    db: Database, standin: Standin, docker_client: Any
) -> None:
    engine = make_engine(db, standin)
    run = engine.start_run("standin", ALICE)
    assert run.id is not None
    approve_until(engine, run.id, stop_at="start")
    standin.app.status_overrides["/api/v1/subscriptions/tiers"] = 500
    gate = approve_until(engine, run.id, stop_at="smoke")
    assert gate is not None  # start passed; now smoke's gate
    gate = current_gate(engine, run.id)
    assert not gate.checks_passed
    tiers = next(s for s in gate.steps if s.step_id == "tiers")
    assert tiers.status == "fail" and "500" in tiers.evidence
    assert engine.decide(gate.id, BOB, "continue").outcome == "refused"
    assert engine.decide(gate.id, BOB, "rollback", reason="tiers 500").outcome == "rolled_back"
    view = run_view(db, engine.runbook, run.id)
    assert view is not None and view.status == "rolled_back"
    assert containers(docker_client, standin.project) == {}
    assert containers(docker_client, standin.old_project) == {"backend": "running"}
    sections = [json.loads(e.data).get("section") for e in audit.events(db, run.id)]
    assert "restore" not in sections  # no restore for phase 6
    kinds = [e.kind for e in audit.events(db, run.id)]
    assert kinds[-1] == "run.rolled_back"


def test_failed_migration_restores_the_database_then_rolls_back(
    db: Database, standin: Standin, docker_client: Any
) -> None:
    engine = make_engine(db, standin)
    standin.fail("migrate")
    run = engine.start_run("standin", ALICE)
    assert run.id is not None
    approve_until(engine, run.id, stop_at="migrate")
    gate = current_gate(engine, run.id)
    assert not gate.checks_passed and gate.on_fail == "restore_and_rollback"
    failed = next(s for s in gate.steps if s.step_id == "prisma-migrate")
    assert failed.status == "fail" and "P3018" in failed.evidence
    assert [s.step_id for s in gate.steps] == [
        "pre-migration-backup",
        "prisma-generate",
        "prisma-migrate",
    ]
    assert migrations(standin) == [("20260217_add_nip05", False)]  # half-applied
    engine.decide(gate.id, BOB, "rollback", reason="migration failed")
    assert migrations(standin) == []  # restored from this run's backup, taken before migrating
    results = [json.loads(e.data) for e in audit.events(db, run.id) if e.kind == "step.result"]
    backup = next(r for r in results if r["step"] == "pre-migration-backup")["artifact"]
    restore = next(r for r in results if r["section"] == "restore")
    assert restore["status"] == "pass" and restore["artifact"]["path"] == backup["path"]
    assert restore["artifact"]["sha256"] == backup["sha256"]
    sections = [e.data for e in audit.events(db, run.id) if e.kind == "step.result"]
    order = [s for s in sections if '"restore"' in s or '"rollback"' in s]
    assert '"restore-db"' in order[0] and '"stop-new"' in order[1]
    assert containers(docker_client, standin.old_project) == {"backend": "running"}


@pytest.mark.timeout(400)  # seven monitoring rounds, each sampling CPU for ~5 s
def test_restart_mid_gate_resumes_the_same_run(
    db: Database, standin: Standin, docker_client: Any
) -> None:
    engine = make_engine(db, standin)
    run = engine.start_run("standin", ALICE)
    assert run.id is not None
    approve_until(engine, run.id, stop_at="build")
    waiting = current_gate(engine, run.id)
    engine.shutdown()
    db.dispose()
    revived = Engine(
        Database(db.url), standin.runbook, background=False, context_factory=paced_context
    )
    assert revived.recover() == [f"run #{run.id}: waiting at phase 4"]
    assert current_gate(revived, run.id).id == waiting.id
    assert approve_until(revived, run.id) is None
    view = run_view(revived.db, revived.runbook, run.id)
    assert view is not None and view.status == "completed"
    started = [e for e in audit.events(revived.db, run.id) if e.kind == "phase.started"]
    assert len(started) == len(standin.runbook.phases)  # no phase ran twice


def test_dry_run_reports_actions_and_changes_nothing(
    db: Database, standin: Standin, docker_client: Any
) -> None:
    engine = make_engine(db, standin)
    run = engine.start_run("standin", ALICE, dry_run=True)
    assert run.id is not None
    gate = approve_until(engine, run.id, stop_at="stop-old")
    down = next(s for s in gate.steps if s.step_id == "compose-down")
    assert down.status == "skipped"
    assert down.evidence.startswith("dry run: would stop 1 container")
    assert containers(docker_client, standin.old_project) == {"backend": "running"}
    # The old service is still up, so "none left" fails; in a dry run that may be passed over.
    assert not gate.checks_passed
    assert engine.decide(gate.id, BOB, "continue").outcome == "approved"
    gate = approve_until(engine, run.id, stop_at="build")
    assert [s.status for s in gate.steps if s.section == "actions"] == ["skipped"] * 3
    assert not (standin.app_dir / "dist").exists()
    assert standin.calls() == []
