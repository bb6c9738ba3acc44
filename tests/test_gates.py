"""Gates and approvals, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot import audit
from bot.domain.errors import Conflict, InvalidInput
from bot.engine import Engine
from bot.store.db import Database
from bot.store.models import AuditEvent, Gate, Run, Vote
from bot.store.reads import open_gate_id, run_view
from bot.surface import Actor
from tests.small_runbook import small_runbook

ALICE, BOB, CAROL = Actor("T1:U1", "alice"), Actor("T1:U2", "bob"), Actor("T1:U3", "carol")
MALLORY = Actor("T1:U9", "alice")  # same display name as an approver, different id
OTHER_TEAM_ALICE = Actor("T2:U1", "alice")


def engine_for(db: Database, tmp_path: Path, **kw: object) -> Engine:
    return Engine(db, small_runbook(tmp_path, **kw), background=False)  # type: ignore[arg-type]


def gate_now(engine: Engine, run_id: int | None) -> int:
    assert run_id is not None
    gate = open_gate_id(engine.db, run_id)
    assert gate is not None, "no open gate"
    return gate


def kinds(db: Database, run_id: int | None) -> list[str]:
    assert run_id is not None
    return [e.kind for e in audit.events(db, run_id)]


def test_phase_checks_pass_and_gate_waits_for_a_person(db: Database, tmp_path: Path) -> None:
    engine = engine_for(db, tmp_path)
    run = engine.start_run("staging", ALICE)
    view = run_view(db, engine.runbook, run.id or 0)
    assert view is not None and view.status == "waiting"
    assert [p.status for p in view.phases] == ["waiting", "pending", "pending"]


def test_continue_by_an_approver_runs_the_next_phase(db: Database, tmp_path: Path) -> None:
    engine = engine_for(db, tmp_path)
    run = engine.start_run("staging", ALICE)
    first = gate_now(engine, run.id)
    assert engine.decide(first, BOB, "continue").outcome == "approved"
    second = gate_now(engine, run.id)
    assert second != first
    view = run_view(db, engine.runbook, run.id or 0)
    assert view is not None
    assert view.phases[0].status == "passed" and view.phases[0].decided_by == BOB.id


def test_click_by_non_approver_is_refused_audited_and_changes_nothing(
    db: Database, tmp_path: Path
) -> None:
    engine = engine_for(db, tmp_path)
    run = engine.start_run("staging", ALICE)
    gate = gate_now(engine, run.id)
    for who in (MALLORY, OTHER_TEAM_ALICE):
        result = engine.decide(gate, who, "continue")
        assert result.outcome == "refused" and "not an approver" in result.message
    assert gate_now(engine, run.id) == gate
    assert kinds(db, run.id).count("action.refused") == 2
    with db.session() as s:
        assert s.exec(select(Vote)).all() == []


def test_same_click_twice_decides_once(db: Database, tmp_path: Path) -> None:
    engine = engine_for(db, tmp_path)
    run = engine.start_run("staging", ALICE)
    gate = gate_now(engine, run.id)
    assert engine.decide(gate, BOB, "continue").outcome == "approved"
    again = engine.decide(gate, BOB, "continue")
    assert again.outcome == "already_decided"
    assert "already approved by T1:U2" in again.message
    assert kinds(db, run.id).count("gate.decided") == 1


def test_fifty_clicks_at_once_decide_the_gate_exactly_once(db: Database, tmp_path: Path) -> None:
    engine = engine_for(db, tmp_path)
    run = engine.start_run("staging", ALICE)
    gate = gate_now(engine, run.id)
    engine.background = True  # the next phase runs on the pool, as under Slack
    barrier = threading.Barrier(50)
    outcomes: list[str] = []
    lock = threading.Lock()

    def click(i: int) -> None:
        who = [ALICE, BOB, CAROL][i % 3]
        barrier.wait()
        r = engine.decide(gate, who, "continue")
        with lock:
            outcomes.append(r.outcome)

    threads = [threading.Thread(target=click, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.shutdown()
    assert outcomes.count("approved") == 1
    assert outcomes.count("already_decided") == 49
    with db.session() as s:
        assert len(s.exec(select(Vote).where(Vote.gate_id == gate)).all()) == 1
        gates = s.exec(select(Gate).where(Gate.run_id == run.id)).all()
    assert len(gates) == 2  # phase two opened exactly once
    assert kinds(db, run.id).count("phase.started") == 2
    assert audit.verify(db) == []


def test_quorum_counts_one_vote_per_person(db: Database, tmp_path: Path) -> None:
    engine = engine_for(db, tmp_path, quorum=2)
    run = engine.start_run("staging", ALICE)
    gate = gate_now(engine, run.id)
    first = engine.decide(gate, BOB, "continue")
    assert first.outcome == "vote_recorded" and first.message == "1/2 approved"
    repeat = engine.decide(gate, BOB, "continue")
    assert repeat.outcome == "refused" and "already approved" in repeat.message
    assert gate_now(engine, run.id) == gate
    assert engine.decide(gate, CAROL, "continue").outcome == "approved"
    with db.session() as s:
        decided = s.get(Gate, gate)
    assert decided is not None and decided.decided_by == "T1:U2,T1:U3"


def test_requester_cannot_approve_when_self_approval_is_forbidden(
    db: Database, tmp_path: Path
) -> None:
    engine = engine_for(db, tmp_path, allow_self_approval=False)
    run = engine.start_run("staging", ALICE)
    gate = gate_now(engine, run.id)
    refused = engine.decide(gate, ALICE, "continue")
    assert refused.outcome == "refused" and "you started this run" in refused.message
    assert engine.decide(gate, BOB, "continue").outcome == "approved"


def test_one_rollback_is_final(db: Database, tmp_path: Path) -> None:
    engine = engine_for(db, tmp_path)
    run = engine.start_run("staging", ALICE)
    gate = gate_now(engine, run.id)
    assert engine.decide(gate, BOB, "rollback", reason="smoke red").outcome == "rolled_back"
    assert (tmp_path / "rolled-back").exists()  # the rollback steps ran
    late = engine.decide(gate, CAROL, "continue")
    assert late.outcome == "already_decided" and "rolled back by T1:U2" in late.message
    with db.session() as s:
        r = s.get(Run, run.id)
    assert r is not None and r.status == "rolled_back" and r.active_env is None
    assert "run.rolled_back" in kinds(db, run.id)


def test_failed_check_refuses_continue_and_allows_retry(db: Database, tmp_path: Path) -> None:
    engine = engine_for(db, tmp_path)
    run = engine.start_run("staging", ALICE)
    (tmp_path / "fail-two").write_text("")
    engine.decide(gate_now(engine, run.id), BOB, "continue")  # phase two runs and fails
    gate = gate_now(engine, run.id)
    refused = engine.decide(gate, BOB, "continue")
    assert refused.outcome == "refused" and "checks did not pass" in refused.message
    (tmp_path / "fail-two").unlink()
    assert engine.decide(gate, BOB, "retry").outcome == "retried"
    fresh = gate_now(engine, run.id)
    with db.session() as s:
        g = s.get(Gate, fresh)
    assert g is not None and g.attempt == 2 and g.checks_passed


def test_manual_steps_must_be_ticked_before_continue(db: Database, tmp_path: Path) -> None:
    engine = engine_for(db, tmp_path)
    run = engine.start_run("staging", ALICE)
    engine.decide(gate_now(engine, run.id), BOB, "continue")
    gate = gate_now(engine, run.id)
    refused = engine.decide(gate, BOB, "continue")
    assert refused.outcome == "refused" and "browser" in refused.message
    assert engine.tick(gate, "browser", MALLORY).outcome == "refused"
    assert engine.tick(gate, "browser", CAROL).outcome == "ticked"
    assert engine.decide(gate, BOB, "continue").outcome == "approved"


def test_only_one_active_run_per_environment(db: Database, tmp_path: Path) -> None:
    engine = engine_for(db, tmp_path)
    run = engine.start_run("staging", ALICE)
    with pytest.raises(Conflict, match=f"run #{run.id} is already active for staging"):
        engine.start_run("staging", BOB)
    engine.start_run("prod", ALICE)  # another environment is free


def test_last_gate_approved_completes_the_run(db: Database, tmp_path: Path) -> None:
    engine = engine_for(db, tmp_path)
    run = engine.start_run("staging", ALICE)
    engine.decide(gate_now(engine, run.id), BOB, "continue")
    gate = gate_now(engine, run.id)
    engine.tick(gate, "browser", BOB)
    engine.decide(gate, BOB, "continue")
    engine.decide(gate_now(engine, run.id), CAROL, "continue")
    view = run_view(db, engine.runbook, run.id or 0)
    assert view is not None and view.status == "completed"
    assert kinds(db, run.id)[-1] == "run.completed"
    engine.start_run("staging", ALICE)  # the environment is free again


def test_abort_rolls_back_from_an_open_gate_and_requires_a_reason(
    db: Database, tmp_path: Path
) -> None:
    engine = engine_for(db, tmp_path, act=True)
    run = engine.start_run("staging", ALICE)
    with pytest.raises(InvalidInput, match="--reason"):
        engine.abort("staging", BOB, " ")
    assert engine.abort("staging", MALLORY, "because").outcome == "refused"
    assert engine.abort("staging", BOB, "db on fire").outcome == "rolled_back"
    with db.session() as s:
        r = s.get(Run, run.id)
    assert r is not None and r.status == "rolled_back"
    assert r.rollback_reason == "aborted: db on fire"


def test_every_state_change_has_its_audit_row_and_the_chain_verifies(
    db: Database, tmp_path: Path
) -> None:
    engine = engine_for(db, tmp_path)
    run = engine.start_run("staging", ALICE)
    engine.decide(gate_now(engine, run.id), MALLORY, "continue")
    engine.decide(gate_now(engine, run.id), BOB, "continue")
    assert kinds(db, run.id) == [
        "run.started",
        "phase.started",
        "step.result",
        "gate.opened",
        "action.refused",
        "gate.vote",
        "gate.decided",
        "phase.started",
        "step.result",
        "gate.opened",
    ]
    with db.session() as s:
        rows = s.exec(select(AuditEvent)).all()
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    assert audit.verify(db) == []


def test_abort_between_phases_still_runs_the_rollback_once(db: Database, tmp_path: Path) -> None:
    engine = engine_for(db, tmp_path, act=True)
    run = engine.start_run("staging", ALICE)
    spawned: list[Any] = []
    engine.spawn = lambda fn, *a: spawned.append(fn)  # type: ignore[method-assign]
    engine.decide(gate_now(engine, run.id), BOB, "continue")  # next phase claimed, not begun
    engine.spawn = lambda fn, *a: fn(*a)  # type: ignore[method-assign]
    assert engine.abort("staging", BOB, "stop now").outcome == "rolled_back"
    # The rollback waits for the claimed phase's thread, which stops before its first step
    # and hands over: never beside it.
    assert not (tmp_path / "rolled-back").exists()
    spawned[0](run.id)  # the phase's thread begins
    assert (tmp_path / "rolled-back").exists()
    engine.execute_rollback(run.id or 0)  # a second executor finds the rollback claimed
    assert kinds(db, run.id).count("rollback.started") == 1
    with db.session() as s:
        r = s.get(Run, run.id)
    assert r is not None and r.status == "rolled_back"


def test_rollback_reason_quoting_a_secret_is_stored_masked(db: Database, tmp_path: Path) -> None:
    engine = engine_for(db, tmp_path)
    engine.masker.add("hunter2-very-secret-value")
    run = engine.start_run("staging", ALICE)
    engine.decide(gate_now(engine, run.id), BOB, "rollback", reason="pw hunter2-very-secret-value")
    with db.session() as s:
        r = s.get(Run, run.id)
    assert r is not None and r.rollback_reason == "pw [redacted]"
    assert "hunter2-very-secret-value" not in audit.export(db, run.id, "jsonl")
