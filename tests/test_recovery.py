"""A bot restarted mid-cutover picks the run up where it stood; nothing re-runs silently."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlmodel import select

from bot import audit
from bot.engine import Engine
from bot.store.db import Database
from bot.store.models import Gate, PhaseRun, Run
from bot.store.reads import open_gate_id
from bot.surface import Actor
from tests.claimed_phases import begin_first_action, claimed_phase
from tests.small_runbook import small_runbook

BOB, CAROL = Actor("T1:U2", "bob"), Actor("T1:U3", "carol")


def restarted(db: Database, engine: Engine) -> Engine:
    """A new process: a fresh connection pool and engine on the same database and runbook."""
    engine.shutdown()
    db.dispose()
    return Engine(Database(db.url), engine.runbook, background=False)


def crash_after_commit(engine: Engine) -> None:
    """The process dies right after a decision commits, before any follow-up work starts."""

    def nothing(*_: Any) -> None:
        return None

    engine.spawn = nothing  # type: ignore[method-assign]


def test_restart_while_a_gate_waits_keeps_the_gate(db: Database, tmp_path: Path) -> None:
    engine = Engine(db, small_runbook(tmp_path), background=False)
    run = engine.start_run("staging", BOB)
    gate = open_gate_id(db, run.id or 0)
    engine2 = restarted(db, engine)
    assert engine2.recover() == [f"run #{run.id}: waiting at phase 1"]
    assert open_gate_id(engine2.db, run.id or 0) == gate
    assert engine2.decide(gate or 0, CAROL, "continue").outcome == "approved"
    assert open_gate_id(engine2.db, run.id or 0) not in (None, gate)


def test_restart_mid_phase_opens_a_gate_and_never_reruns_it_silently(
    db: Database, tmp_path: Path
) -> None:
    engine = Engine(db, small_runbook(tmp_path, two_acts=True), background=False)
    run = engine.start_run("staging", BOB)
    crash_after_commit(engine)
    engine.decide(open_gate_id(db, run.id or 0) or 0, BOB, "continue")
    _, phase_run, _ = claimed_phase(engine, run.id)
    begin_first_action(engine, run.id, phase_run.id)  # its action begins, then the bot dies
    engine2 = restarted(db, engine)
    assert engine2.recover() == [f"run #{run.id}: phase two interrupted; gate opened"]
    gate_id = open_gate_id(engine2.db, run.id or 0)
    with engine2.db.session() as s:
        gate = s.get(Gate, gate_id)
        attempts = s.exec(
            select(PhaseRun).where(PhaseRun.run_id == run.id, PhaseRun.phase_id == "two")
        ).all()
    assert gate is not None and not gate.checks_passed and "half done" in (gate.note or "")
    assert [(a.attempt, a.status) for a in attempts] == [(1, "interrupted")]
    refused = engine2.decide(gate_id or 0, BOB, "continue")
    assert refused.outcome == "refused"
    assert engine2.decide(gate_id or 0, BOB, "retry").outcome == "retried"
    with engine2.db.session() as s:
        attempts = s.exec(
            select(PhaseRun).where(PhaseRun.run_id == run.id, PhaseRun.phase_id == "two")
        ).all()
    assert [(a.attempt, a.status) for a in attempts] == [(1, "retried"), (2, "checked")]
    assert [e.kind for e in audit.events(engine2.db, run.id or 0)].count("phase.interrupted") == 1


def test_restart_after_approval_starts_the_next_phase_once(db: Database, tmp_path: Path) -> None:
    """The process died right after the Continue committed (which claimed phase two): no
    action of it had begun, so the restarted bot starts it again, and says so."""
    engine = Engine(db, small_runbook(tmp_path, two_acts=True), background=False)
    run = engine.start_run("staging", BOB)
    crash_after_commit(engine)
    engine.decide(open_gate_id(db, run.id or 0) or 0, BOB, "continue")
    engine2 = restarted(db, engine)
    assert engine2.recover() == [f"run #{run.id}: phase two had not begun; started again"]
    assert engine2.recover() == [f"run #{run.id}: waiting at phase 2"]
    assert (tmp_path / "two-acted").read_text() == "acted\n"  # once
    events = audit.events(engine2.db, run.id or 0)
    started = [json.loads(e.data) for e in events if e.kind == "phase.started"]
    assert [(d["phase"], d["attempt"]) for d in started] == [("one", 1), ("two", 1), ("two", 2)]
    assert [e.kind for e in events].count("phase.not_begun") == 1
    assert "phase.interrupted" not in [e.kind for e in events]


def test_restart_during_rollback_finishes_the_rollback(db: Database, tmp_path: Path) -> None:
    engine = Engine(db, small_runbook(tmp_path), background=False)
    run = engine.start_run("staging", BOB)
    crash_after_commit(engine)
    engine.decide(open_gate_id(db, run.id or 0) or 0, BOB, "rollback")
    assert not (tmp_path / "rolled-back").exists()
    engine2 = restarted(db, engine)
    assert engine2.recover() == [f"run #{run.id}: rollback resumed"]
    assert (tmp_path / "rolled-back").exists()
    with engine2.db.session() as s:
        r = s.get(Run, run.id)
    assert r is not None and r.status == "rolled_back"
    assert audit.verify(engine2.db) == []
