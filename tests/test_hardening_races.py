"""A hundred clicks at once on one gate, on SQLite and on the real PostgreSQL.

Each click is a thread released by one barrier, as a burst of Slack deliveries
would be; the engine runs the next phase on its pool (background=True), as
under Slack, so the phase start races the clicks still arriving.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from sqlmodel import col, select

from bot import audit
from bot.engine import Decision, Engine
from bot.store.db import Database
from bot.store.models import AuditEvent, Gate, PhaseRun, Run, Vote
from bot.store.reads import open_gate_id
from bot.surface import Actor
from tests.small_runbook import small_runbook

CLICKS = 100
APPROVERS = [Actor("T1:U1", "alice"), Actor("T1:U2", "bob"), Actor("T1:U3", "carol")]
REQUESTER = Actor("console:alice", "alice at the console")


def burst(n: int, click: Callable[[int], Decision]) -> list[Decision]:
    """n clicks released at the same instant; their answers."""
    barrier = threading.Barrier(n)
    answers: list[Decision] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        barrier.wait()
        try:
            answer = click(i)
        except BaseException as exc:  # noqa: BLE001  (a click must never raise)
            with lock:
                errors.append(exc)
            return
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [], errors[:3]
    assert len(answers) == n
    return answers


def first_gate(db: Database, tmp_path: Path, **kw: object) -> tuple[Engine, int, int]:
    engine = Engine(db, small_runbook(tmp_path, **kw), background=False)  # type: ignore[arg-type]
    run = engine.start_run("staging", REQUESTER)
    assert run.id is not None
    gate = open_gate_id(db, run.id)
    assert gate is not None
    engine.background = True  # from here on, the next phase runs on the pool
    return engine, run.id, gate


def kinds(db: Database, run_id: int) -> Counter[str]:
    return Counter(e.kind for e in audit.events(db, run_id))


def assert_chain_whole(db: Database) -> None:
    with db.session() as s:
        seqs = list(s.exec(select(AuditEvent.seq).order_by(col(AuditEvent.seq))))
    assert seqs == list(range(1, len(seqs) + 1))
    assert audit.verify(db) == []


def test_hundred_continue_clicks_decide_once_and_start_one_next_phase(
    db: Database, tmp_path: Path
) -> None:
    engine, run_id, gate = first_gate(db, tmp_path)
    answers = burst(CLICKS, lambda i: engine.decide(gate, APPROVERS[i % 3], "continue"))
    engine.shutdown()  # the next phase, started on the pool, has finished

    outcomes = Counter(a.outcome for a in answers)
    assert outcomes == {"approved": 1, "already_decided": CLICKS - 1}
    winner = next(a for a in answers if a.outcome == "approved")
    assert all(a.message.startswith("already approved by ") for a in answers if a is not winner)
    events = kinds(db, run_id)
    assert events["gate.decided"] == 1 and events["gate.vote"] == 1
    assert events["phase.started"] == 2  # phase one, then phase two exactly once
    assert events["gate.opened"] == 2 and events["action.refused"] == 0
    with db.session() as s:
        assert len(s.exec(select(Vote).where(Vote.gate_id == gate)).all()) == 1
        phase_runs = s.exec(select(PhaseRun).where(PhaseRun.run_id == run_id)).all()
        gates = s.exec(select(Gate).where(Gate.run_id == run_id)).all()
        run = s.get(Run, run_id)
    assert sorted((p.phase_index, p.attempt) for p in phase_runs) == [(0, 1), (1, 1)]
    assert [g.status for g in sorted(gates, key=lambda g: g.id or 0)] == ["approved", "open"]
    assert run is not None and run.phase_index == 1 and run.status == "waiting"
    assert_chain_whole(db)


def test_hundred_mixed_clicks_continue_retry_rollback_make_one_decision(
    db: Database, tmp_path: Path
) -> None:
    engine, run_id, gate = first_gate(db, tmp_path)
    choices = ["continue", "retry", "rollback"]
    answers = burst(
        CLICKS,
        lambda i: engine.decide(gate, APPROVERS[i % 3], choices[(i // 3) % 3]),  # type: ignore[arg-type]
    )
    engine.shutdown()
    outcomes = Counter(a.outcome for a in answers)
    decided = {"approved", "retried", "rolled_back"} & set(outcomes)
    assert len(decided) == 1 and outcomes[next(iter(decided))] == 1
    assert "retried" not in decided  # the gate's checks passed: Retry is not a move it has
    # a Retry that came while the gate was still open is refused; every other click is late
    assert outcomes["already_decided"] + outcomes["refused"] == CLICKS - 1
    refused = [a for a in answers if a.outcome == "refused"]
    assert all("Retry is only for" in a.message for a in refused)
    events = kinds(db, run_id)
    assert events["gate.decided"] == 1
    with db.session() as s:
        run = s.get(Run, run_id)
        phase_runs = s.exec(select(PhaseRun).where(PhaseRun.run_id == run_id)).all()
    assert run is not None
    if "rolled_back" in decided:
        assert run.status == "rolled_back" and events["run.rolled_back"] == 1
        assert events["phase.started"] == 1
    else:  # continue starts phase two once; retry runs phase one's attempt 2 once
        assert events["phase.started"] == 2 and len(phase_runs) == 2
    assert_chain_whole(db)


def test_hundred_clicks_with_quorum_two_count_two_people_once_each(
    db: Database, tmp_path: Path
) -> None:
    engine, run_id, gate = first_gate(db, tmp_path, quorum=2)
    answers = burst(CLICKS, lambda i: engine.decide(gate, APPROVERS[i % 3], "continue"))
    engine.shutdown()
    outcomes = Counter(a.outcome for a in answers)
    assert outcomes["approved"] == 1 and outcomes["vote_recorded"] == 1
    # the first voter's repeats before the quorum: "you already approved"; after: decided
    assert outcomes["refused"] + outcomes["already_decided"] == CLICKS - 2
    with db.session() as s:
        votes = s.exec(select(Vote).where(Vote.gate_id == gate)).all()
        decided = s.get(Gate, gate)
    assert len(votes) == 2 and len({v.actor for v in votes}) == 2
    assert decided is not None and decided.decided_by == ",".join(v.actor for v in votes)
    events = kinds(db, run_id)
    assert events["gate.decided"] == 1 and events["gate.vote"] == 2
    assert events["phase.started"] == 2
    assert_chain_whole(db)


def test_hundred_clicks_by_the_requester_and_strangers_decide_nothing(
    db: Database, tmp_path: Path
) -> None:
    engine, run_id, gate = first_gate(db, tmp_path, allow_self_approval=False)
    strangers = [REQUESTER, Actor("T1:U9", "alice"), Actor("T2:U1", "alice")]
    answers = burst(CLICKS, lambda i: engine.decide(gate, strangers[i % 3], "continue"))
    engine.shutdown()
    assert Counter(a.outcome for a in answers) == {"refused": CLICKS}
    events = kinds(db, run_id)
    assert events["action.refused"] == CLICKS and events["gate.decided"] == 0
    assert open_gate_id(db, run_id) == gate
    with db.session() as s:
        assert s.exec(select(Vote)).all() == []
    assert_chain_whole(db)
