"""The store's one door (bot/store/unit.py): `Tx.apply` moves a row by the transition table,
writes the bookkeeping the table declares for that move and appends the move's audit row,
in one transaction; a refused move writes nothing. On SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlmodel import select

from bot import audit
from bot.domain.errors import IllegalTransition
from bot.store.db import Database
from bot.store.models import AuditEvent, Gate, PhaseRun, Run, Schedule
from bot.store.unit import Store

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _run(store: Store, status: str = "running") -> tuple[int, int, int]:
    with store.tx() as tx:
        run = Run(
            environment="prod",
            active_env="prod",
            runbook_name="r",
            runbook_digest="d",
            requested_by="x",
            status=status,
            owner="replica#1",
            lease_until=T0,
        )
        tx.add(run)
        tx.flush()
        assert run.id is not None
        pr = PhaseRun(run_id=run.id, phase_id="p", phase_index=0, status="checked")
        tx.add(pr)
        tx.flush()
        assert pr.id is not None
        gate = Gate(run_id=run.id, phase_run_id=pr.id, phase_id="p", checks_passed=True)
        tx.add(gate)
        tx.flush()
        assert gate.id is not None
        return run.id, pr.id, gate.id


def _trail(db: Database, run_id: int) -> list[tuple[str, str, dict[str, object]]]:
    return [(e.kind, e.actor, json.loads(e.data)) for e in audit.events(db, run_id)]


def test_approving_a_gate_sets_who_and_when_and_appends_its_decision_row(db: Database) -> None:
    store = Store(db, lambda: T0)
    run_id, _, gate_id = _run(store, "waiting")
    with store.tx() as tx:
        run, gate, _pr = tx.lock_gate(run_id, gate_id)
        tx.apply(gate, "approve", "T1:U2", {"decision": "continue"}, decided_by="T1:U1,T1:U2")
    with store.tx() as tx:
        again = tx.get(Gate, gate_id)
        assert again is not None
        assert (again.status, again.decided_by) == ("approved", "T1:U1,T1:U2")
        assert again.decided_at == T0
    assert _trail(db, run_id) == [
        ("gate.decided", "T1:U2", {"gate": gate_id, "phase": "p", "decision": "continue"})
    ]


def test_completing_a_run_ends_it_and_frees_its_environment_and_lease(db: Database) -> None:
    store = Store(db, lambda: T0)
    run_id, _, _ = _run(store)
    with store.tx() as tx:
        run = tx.lock_run(run_id)
        assert run is not None
        tx.apply(run, "completed", "system", {"environment": "prod"})
    with store.tx() as tx:
        done = tx.get(Run, run_id)
        assert done is not None
        assert (done.status, done.ended_at) == ("completed", T0)
        assert (done.active_env, done.owner, done.lease_until) == (None, None, None)
    assert _trail(db, run_id) == [("run.completed", "system", {"environment": "prod"})]


def test_a_phase_ends_once_a_later_move_keeps_its_end(db: Database) -> None:
    store = Store(db, lambda: T0)
    run_id, pr_id, _ = _run(store)
    with store.tx() as tx:
        pr = tx.get(PhaseRun, pr_id)
        assert pr is not None
        pr.ended_at = datetime(2026, 5, 1, 11, 0, tzinfo=UTC)
        tx.apply(pr, "failed", "T1:U1")
    with store.tx() as tx:
        failed = tx.get(PhaseRun, pr_id)
        assert failed is not None
        assert (failed.status, failed.ended_at) == (
            "failed",
            datetime(2026, 5, 1, 11, 0, tzinfo=UTC),
        )
    assert _trail(db, run_id) == []  # a phase's failure is told by its gate or its run


def test_a_move_the_table_has_not_is_refused_and_nothing_is_written(db: Database) -> None:
    store = Store(db, lambda: T0)
    run_id, _, gate_id = _run(store)
    with pytest.raises(IllegalTransition), store.tx() as tx:
        run = tx.lock_run(run_id)
        gate = tx.get(Gate, gate_id)
        assert run is not None and gate is not None
        tx.apply(gate, "approve", "T1:U1", {"decision": "continue"})
        tx.apply(run, "approved", "T1:U1")  # running, not waiting: no such move
    with store.tx() as tx:
        gate = tx.get(Gate, gate_id)
        assert gate is not None and gate.status == "open" and gate.decided_by is None
    assert _trail(db, run_id) == []


def test_a_refusal_is_audited_with_the_action_and_the_reason(db: Database) -> None:
    store = Store(db, lambda: T0)
    run_id, _, gate_id = _run(store)
    said = store.refuse("T1:U9", "continue", "you are not an approver", run_id=run_id, gate=gate_id)
    assert said == "you are not an approver"
    assert _trail(db, run_id) == [
        (
            "action.refused",
            "T1:U9",
            {"action": "continue", "reason": "you are not an approver", "gate": gate_id},
        )
    ]


def test_cancelling_a_schedule_says_who_cancelled_it_and_appends_its_row(db: Database) -> None:
    """A schedule's move names its mover as a gate's does: `cancelled_by` is the table's
    bookkeeping (`*_by`: the actor), written by `Tx.apply` with the schedule.cancelled row."""
    store = Store(db, lambda: T0)
    with store.tx() as tx:
        sched = Schedule(environment="prod", start_at=T0, created_by="T1:U1", created_at=T0)
        tx.add(sched)
        tx.flush()
        schedule_id = sched.id
    with store.tx() as tx:
        row = tx.get(Schedule, schedule_id)
        assert row is not None
        tx.apply(row, "cancel", "T1:U2", {"schedule": schedule_id, "environment": "prod"})
    with store.tx() as tx:
        again = tx.get(Schedule, schedule_id)
        assert again is not None
        assert (again.status, again.cancelled_by, again.run_id) == ("cancelled", "T1:U2", None)
        rows = tx.session.exec(select(AuditEvent)).all()
    assert [(e.kind, e.actor, e.run_id, json.loads(e.data)) for e in rows] == [
        ("schedule.cancelled", "T1:U2", None, {"schedule": schedule_id, "environment": "prod"})
    ]
    with store.tx() as tx, pytest.raises(IllegalTransition):
        row = tx.get(Schedule, schedule_id)
        assert row is not None
        tx.apply(row, "start", "T1:U1")  # cancelled: no move starts it
