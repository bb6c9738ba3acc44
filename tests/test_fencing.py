"""The lease's fencing token, on SQLite and on the real PostgreSQL: each take-over increments
the run's lease epoch, a step's process is given it, and a holder whose epoch was superseded
has its writes refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from bot import audit
from bot.engine import Engine
from bot.engine.core import LeaseLost
from bot.store.db import Database, db_now
from bot.store.models import Run, StepRun
from bot.surface import Actor
from phases.checks.base import Status, StepResult
from phases.runbook import StepSpec
from phases.runner import StepOutcome
from tests.small_runbook import small_runbook

ALICE = Actor("T1:U1", "alice")


def token_phase(out: Path) -> list[dict[str, object]]:
    return [
        {
            "id": "one",
            "name": "One",
            "estimate_minutes": 1,
            "checkpoint": "one",
            "actions": [
                {
                    "id": "token",
                    "name": "write the token",
                    "kind": "run",
                    "params": {"argv": ["sh", "-c", f'echo "$CUTOVER_FENCING_TOKEN" > {out}']},
                }
            ],
            "checks": [{"id": "ok", "name": "ok", "kind": "command", "params": {"argv": ["true"]}}],
        }
    ]


def the_run(db: Database) -> Run:
    with db.session() as s:
        return s.exec(select(Run)).one()


def test_a_steps_process_gets_the_runs_lease_epoch_as_its_fencing_token(
    db: Database, tmp_path: Path
) -> None:
    out = tmp_path / "token"
    engine = Engine(db, small_runbook(tmp_path, phases=token_phase(out)), background=False)
    engine.start_run("staging", ALICE)
    engine.shutdown()
    run = the_run(db)
    assert run.lease_epoch == 1  # one claim so far
    assert out.read_text().strip() == "1"


def test_a_holder_whose_epoch_was_superseded_has_its_step_result_refused(
    db: Database, tmp_path: Path
) -> None:
    engine = Engine(db, small_runbook(tmp_path), background=False)
    with db.session() as s:
        run = Run(
            environment="staging",
            active_env="staging",
            runbook_name="x",
            runbook_digest=engine.digest,
            requested_by=ALICE.id,
        )
        s.add(run)
        s.flush()
        engine._take_lease(s, run)
        run_id = run.id or 0
    assert the_run(db).owner == engine.me and the_run(db).lease_epoch == 1
    with db.session() as s:  # another replica took the lease over
        s.execute(
            update(Run)
            .where(col(Run.id) == run_id)
            .values(owner="replica-b#1.x", lease_epoch=2, lease_until=db_now(s))
        )
    step = StepSpec(id="deploy", name="deploy", kind="run")
    outcome = StepOutcome(step, "actions", StepResult(Status.PASS, "exit 0"))
    with pytest.raises(LeaseLost):
        engine.record_step(run_id, None, outcome, fenced=True)
    with db.session() as s:
        assert s.exec(select(StepRun)).first() is None
    assert [e.kind for e in audit.events(db, run_id)] == []
    engine.shutdown()
