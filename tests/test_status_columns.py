"""Status columns hold only what the state table knows, and read back as its enums."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import StatementError
from sqlmodel import select

from bot.store.db import Database
from bot.store.models import Gate, GateStatus, PhaseRun, PhaseStatus, Run, RunStatus
from tests.db_fixtures import db  # noqa: F401  (fixture)


def _run(database: Database) -> int:
    with database.session() as s:
        run = Run(environment="prod", runbook_name="r", runbook_digest="d", requested_by="T:U")
        s.add(run)
        s.flush()
        assert run.id is not None
        return run.id


def test_a_status_reads_back_as_the_state_tables_enum(db: Database) -> None:  # noqa: F811
    run_id = _run(db)
    with db.session() as s:
        pr = PhaseRun(run_id=run_id, phase_id="p", phase_index=0)
        s.add(pr)
        s.flush()
        assert pr.id is not None
        s.add(Gate(run_id=run_id, phase_run_id=pr.id, phase_id="p"))
    with db.session() as s:
        run = s.get(Run, run_id)
        assert run is not None and type(run.status) is RunStatus
        assert run.status is RunStatus.RUNNING
        gate = s.exec(select(Gate)).one()
        assert type(gate.status) is GateStatus
        phase = s.exec(select(PhaseRun)).one()
        assert phase.status is PhaseStatus.RUNNING


def test_a_status_the_state_table_does_not_know_is_refused_before_the_database(
    db: Database,  # noqa: F811
) -> None:
    run_id = _run(db)
    with (
        pytest.raises(StatementError, match="'finished' is not a valid RunStatus"),
        db.session() as s,
    ):
        run = s.get(Run, run_id)
        assert run is not None
        run.status = "finished"  # type: ignore[assignment]
    with db.session() as s:
        stored = s.execute(text("SELECT status FROM run WHERE id = :i"), {"i": run_id}).scalar()
    assert stored == "running"  # stored as plain text: the schema needs no enum type
