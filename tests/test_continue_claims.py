"""A Continue claims the next phase in its own transaction (one commit for both): what that
transaction's failures leave behind. Its COMMIT's answer lost: the phase still starts, once.
Rolled back: nothing claimed, nothing left registered, the gate still decidable."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot import audit
from bot.engine import Engine
from bot.store.db import Database
from bot.store.models import PhaseRun, Run
from bot.store.reads import open_gate_id
from bot.store.unit import DatabaseUnavailable, Tx
from bot.surface import Actor
from tests.claimed_phases import begin_first_action, claimed_phase
from tests.small_runbook import small_runbook

ALICE, BOB = Actor("T1:U1", "alice"), Actor("T1:U2", "bob")


def failing_next_tx(engine: Engine, *, after_commit: bool) -> list[bool]:
    """The engine's next transaction fails: its COMMIT lands and its answer is lost (a
    dropped connection), or it raises before its COMMIT (rolled back). Returns a flag list
    that holds True once it failed."""
    store, real = engine.store, engine.store.tx
    failed: list[bool] = []

    @contextmanager
    def tx() -> Iterator[Tx]:
        if failed:
            with real() as t:
                yield t
            return
        failed.append(True)
        with real() as t:
            yield t
            if not after_commit:
                raise RuntimeError("a bug in the decision's transaction")
        lost = DatabaseUnavailable("database unavailable: the COMMIT's answer was lost")
        lost.at_commit = True  # as Database.session says it when the cut came at the COMMIT
        raise lost

    store.tx = tx  # type: ignore[method-assign]
    return failed


def phase_two_starts(db: Database, run_id: int) -> list[int]:
    return [
        json.loads(e.data)["attempt"]
        for e in audit.events(db, run_id)
        if e.kind == "phase.started" and json.loads(e.data)["phase"] == "two"
    ]


def at_phase_one_gate(db: Database, tmp_path: Path) -> tuple[Engine, int, int]:
    """A run started: (the engine, the run's id, its open gate's id at phase one)."""
    engine = Engine(db, small_runbook(tmp_path), background=False)
    run = engine.start_run("staging", ALICE)
    assert run.id is not None
    gate_one = open_gate_id(db, run.id)
    assert gate_one is not None
    return engine, run.id, gate_one


def test_a_continue_whose_commit_answer_was_lost_still_starts_its_phase_once(
    db: Database, tmp_path: Path
) -> None:
    engine, run_id, gate_one = at_phase_one_gate(db, tmp_path)
    failing_next_tx(engine, after_commit=True)
    with pytest.raises(DatabaseUnavailable):
        engine.decide(gate_one, BOB, "continue")
    # The decision landed, and with it the claim: the phase's thread found its claim by its
    # token and ran the phase; nothing was claimed twice.
    assert phase_two_starts(db, run_id) == [1]
    gate_two = open_gate_id(db, run_id)
    assert gate_two not in (None, gate_one)
    kinds = [e.kind for e in audit.events(db, run_id)]
    assert kinds.count("gate.decided") == 1 and kinds.count("gate.opened") == 2
    assert run_id not in engine.services.leases.executing


def test_a_continue_whose_transaction_rolled_back_claims_nothing_and_can_be_clicked_again(
    db: Database, tmp_path: Path
) -> None:
    engine, run_id, gate_one = at_phase_one_gate(db, tmp_path)
    failing_next_tx(engine, after_commit=False)
    with pytest.raises(RuntimeError):
        engine.decide(gate_one, BOB, "continue")
    assert phase_two_starts(db, run_id) == []
    assert open_gate_id(db, run_id) == gate_one  # still open
    assert run_id not in engine.services.leases.executing  # no stop request left behind
    assert run_id not in engine.services.leases.epochs  # nor a lease to renew
    assert engine.decide(gate_one, BOB, "continue").outcome == "approved"
    assert phase_two_starts(db, run_id) == [1]
    assert open_gate_id(db, run_id) not in (None, gate_one)


def test_an_abort_before_the_claimed_phase_began_cancels_a_run_that_changed_nothing(
    db: Database, tmp_path: Path
) -> None:
    """Phase one had checks only; Continue claimed phase two (which has an action), and the
    abort came before its thread began: nothing changed, so no rollback step runs, the
    claimed phase ends with the run, and its thread, once it runs, begins nothing."""
    engine = Engine(db, small_runbook(tmp_path, two_acts=True), background=False)
    run = engine.start_run("staging", ALICE)
    assert run.id is not None
    held: list[Any] = []
    engine.spawn = lambda fn, *a: held.append((fn, a))  # type: ignore[method-assign]
    engine.decide(open_gate_id(db, run.id) or 0, BOB, "continue")
    engine.spawn = lambda fn, *a: fn(*a)  # type: ignore[method-assign]
    decision = engine.abort("staging", BOB, "wrong day")
    assert decision.outcome == "cancelled", decision
    assert "no rollback steps were run" in decision.message
    fn, args = held[0]
    fn(*args)  # the claimed phase's thread runs now: it finds the run cancelled
    assert not (tmp_path / "two-acted").exists() and not (tmp_path / "rolled-back").exists()
    with db.session() as s:
        statuses = [(p.phase_id, p.status) for p in s.exec(select(PhaseRun))]
        ended = s.get(Run, run.id)
    assert statuses == [("one", "passed"), ("two", "cancelled")]
    assert ended is not None and ended.status == "cancelled" and ended.owner is None
    assert run.id not in engine.services.leases.executing
    events = [e.kind for e in audit.events(db, run.id)]
    assert "run.cancelled" in events and "rollback.started" not in events


def test_an_abort_after_an_action_was_killed_mid_way_rolls_back_not_cancels(
    db: Database, tmp_path: Path
) -> None:
    """Phase two's action began (began_at) and its process died before its result: the
    interrupted gate's abort must roll back ("no action had changed anything" would be
    a lie), although no action step has a result row."""
    runbook = small_runbook(tmp_path, two_acts=True)
    a = Engine(db, runbook, background=False, replica_id="replica-a")
    run = a.start_run("staging", ALICE)
    assert run.id is not None
    a.spawn = lambda *_: None  # type: ignore[method-assign]
    a.decide(open_gate_id(db, run.id) or 0, BOB, "continue")
    _, phase_run, _ = claimed_phase(a, run.id)
    begin_first_action(a, run.id, phase_run.id)  # the action begins; then the bot dies
    a.shutdown()
    b = Engine(db, runbook, background=False, replica_id="replica-a")  # its restart
    assert b.recover() == [f"run #{run.id}: phase two interrupted; gate opened"]
    decision = b.abort("staging", BOB, "it looks wrong")
    assert decision.outcome == "rolled_back", decision
    assert (tmp_path / "rolled-back").exists()
    events = [e.kind for e in audit.events(db, run.id)]
    assert "rollback.started" in events and "run.cancelled" not in events
