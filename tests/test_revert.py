"""`/cutover revert ENV --reason …`: a completed run undone (its rollback steps) as a new
run linked to it, approved by the environment's quorum, within the runbook's window, refused
after a later run, to a stranger and past the window; on PostgreSQL, at the console and in
Slack (signed requests against the stand-in)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from sqlmodel import select

from bot import audit
from bot.app import console_engine
from bot.console import Console
from bot.engine import Engine
from bot.record import build_record, record_text
from bot.store.db import Database
from bot.store.models import AuditEvent, RevertVote, Run, RunStatus
from bot.surface import Actor
from tests.servers import ManualClock
from tests.slack_harness import running_bot, wait_for
from tests.small_runbook import small_runbook
from tests.trail_checker import check_record, exported_rows

COMPLETE = ["/cutover start staging", "c", "c", "tick browser", "c", "c"]
ALICE = Actor("console:alice", "alice")


def console(db: Database, tmp_path: Path, **rb: Any) -> tuple[Engine, io.StringIO, ManualClock]:
    out = io.StringIO()
    engine = console_engine(db, small_runbook(tmp_path, **rb), out)
    clock = ManualClock()
    engine.clock = clock
    return engine, out, clock


def type_in(engine: Engine, out: io.StringIO, lines: list[str], who: str = "alice") -> str:
    start = len(out.getvalue())
    Console(engine, Actor(f"console:{who}", who), io.StringIO("\n".join(lines) + "\n"), out).loop()
    return out.getvalue()[start:]


def run_row(db: Database, run_id: int) -> Run:
    with db.session() as s:
        row = s.get(Run, run_id)
        assert row is not None
        return row


def kinds(db: Database, run_id: int) -> list[str]:
    return [e.kind for e in audit.events(db, run_id)]


def refusals(db: Database) -> list[dict[str, Any]]:
    """Every audited refusal of a revert, with who was refused (`actor`)."""
    with db.session() as s:
        rows = s.exec(select(AuditEvent).where(AuditEvent.kind == "action.refused")).all()
    return [
        {**json.loads(e.data), "actor": e.actor}
        for e in rows
        if json.loads(e.data).get("action") == "revert"
    ]


def test_revert_runs_the_rollback_steps_as_a_new_run_linked_to_the_completed_one(
    pg_db: Database, tmp_path: Path
) -> None:
    engine, out, clock = console(pg_db, tmp_path)
    type_in(engine, out, COMPLETE)
    assert run_row(pg_db, 1).status == RunStatus.COMPLETED
    clock.advance(2 * 3600)  # a bad release found at T+2h
    said = type_in(engine, out, ["/cutover revert staging --reason 5xx errors since launch"])
    assert "revert of run #1 asked for and approved by alice (run #2, 1/1)" in said
    wait_for(lambda: run_row(pg_db, 2).status == RunStatus.ROLLED_BACK, "the revert to end")
    revert = run_row(pg_db, 2)
    assert revert.reverts_run_id == 1 and revert.environment == "staging"
    assert revert.active_env is None
    assert (tmp_path / "rolled-back").exists()  # the runbook's rollback step ran
    trail = kinds(pg_db, 2)
    assert trail[:4] == ["run.started", "revert.requested", "revert.approved", "revert.started"]
    assert "rollback.started" in trail and trail[-1] == "run.rolled_back"
    requested = next(e for e in audit.events(pg_db, 2) if e.kind == "revert.requested")
    assert requested.actor == "console:alice"
    assert json.loads(requested.data)["reverts"] == 1
    assert json.loads(requested.data)["reason"] == "5xx errors since launch"
    assert run_row(pg_db, 1).status == RunStatus.COMPLETED  # the original is left as it was
    record = record_text(build_record(pg_db, engine.runbook, 2), engine.runbook)
    assert "Rollback Triggered: YES" in record
    assert "revert of run #1: 5xx errors since launch" in record
    check_record(record, exported_rows(pg_db, 2), engine.runbook)  # every line from the trail


def test_revert_after_the_window_is_refused_and_audited(pg_db: Database, tmp_path: Path) -> None:
    engine, out, clock = console(pg_db, tmp_path)
    type_in(engine, out, COMPLETE)
    clock.advance(24 * 3600 + 60)
    said = type_in(engine, out, ["/cutover revert staging --reason too late"])
    assert "more than 24 h ago (the runbook's revert_window_hours): revert refused" in said
    with pg_db.session() as s:
        assert s.exec(select(Run).where(Run.id == 2)).first() is None
    [refused] = refusals(pg_db)
    assert "revert refused" in refused["reason"]


def test_revert_is_refused_once_a_later_run_of_the_environment_started(
    pg_db: Database, tmp_path: Path
) -> None:
    engine, out, _ = console(pg_db, tmp_path)
    type_in(engine, out, COMPLETE)
    type_in(engine, out, ["/cutover start staging --dry-run", "r changed my mind", "yes"])
    said = type_in(engine, out, ["/cutover revert staging --reason errors"])
    assert "run #2 of staging started after run #1: a revert of #1 would undo it too" in said
    assert len(refusals(pg_db)) == 1
    assert not (tmp_path / "rolled-back").exists() or run_row(pg_db, 2).dry_run


def test_a_stranger_may_not_revert(pg_db: Database, tmp_path: Path) -> None:
    engine, out, _ = console(pg_db, tmp_path)
    type_in(engine, out, COMPLETE)
    said = type_in(engine, out, ["/cutover revert staging --reason mine now"], who="mallory")
    assert "only approvers of staging may revert its cutover; nothing was started" in said
    [refused] = refusals(pg_db)
    assert refused["environment"] == "staging" and refused["actor"] == "console:mallory"


def test_quorum_of_a_revert_engine_level(pg_db: Database, tmp_path: Path) -> None:
    """Quorum 2: the requester's vote is one of two (a double request counts once), another
    approver's makes two and the steps run; with a pending revert, a stranger is refused."""
    engine, out, _ = console(pg_db, tmp_path, quorum=2)
    complete_with_votes(engine, pg_db)
    first = engine.revert("staging", ALICE, "errors up")
    assert first.outcome == "vote_recorded" and "1/2" in first.message
    again = engine.revert("staging", ALICE, "errors up")  # a double click
    assert again.outcome == "already_voted"
    stranger = engine.revert("staging", Actor("console:mallory", "mallory"), "x")
    assert stranger.outcome == "refused"
    revert_id = first.run_id
    assert revert_id is not None
    with pg_db.session() as s:
        assert len(list(s.exec(select(RevertVote).where(RevertVote.run_id == revert_id)))) == 1
        assert len(list(s.exec(select(Run)))) == 2  # one revert run, however many clicks
    assert run_row(pg_db, revert_id).status == RunStatus.REVERT_PENDING
    second = engine.revert("staging", Actor("T1:U2", "bob"), "agreed")
    assert second.outcome == "approved"
    wait_for(lambda: run_row(pg_db, revert_id).status == RunStatus.ROLLED_BACK, "the revert")
    assert kinds(pg_db, revert_id).count("revert.approved") == 2


def test_self_approval_off_the_requester_does_not_count(pg_db: Database, tmp_path: Path) -> None:
    engine, _, _ = console(pg_db, tmp_path, allow_self_approval=False)
    complete_with_votes(engine, pg_db, starter=Actor("T1:U3", "carol"))
    asked = engine.revert("staging", ALICE, "errors up")
    assert asked.outcome == "vote_recorded"
    assert asked.run_id is not None
    assert run_row(pg_db, asked.run_id).status == RunStatus.REVERT_PENDING
    own = engine.approve_revert(asked.run_id, ALICE)
    assert own.outcome == "refused" and "forbids approving your own run" in own.message
    done = engine.approve_revert(asked.run_id, Actor("T1:U2", "bob"))
    assert done.outcome == "approved"


def test_a_pending_revert_is_cancelled_by_abort(pg_db: Database, tmp_path: Path) -> None:
    engine, _, _ = console(pg_db, tmp_path, quorum=2)
    complete_with_votes(engine, pg_db)
    asked = engine.revert("staging", ALICE, "errors up")
    assert asked.run_id is not None
    cancelled = engine.abort("staging", ALICE, "false alarm")
    assert cancelled.outcome == "cancelled"
    assert run_row(pg_db, asked.run_id).status == RunStatus.CANCELLED
    assert not (tmp_path / "rolled-back").exists()


def complete_with_votes(engine: Engine, db: Database, starter: Actor = ALICE) -> None:
    """Starts run #1 of staging and approves every gate with as many approvers as it needs."""
    from bot.store.reads import open_gate_id

    run = engine.start_run("staging", starter)
    assert run.id is not None
    run_id = run.id
    voters = [Actor("T1:U1", "u1"), Actor("T1:U2", "bob"), ALICE]
    for _ in range(10):
        if run_row(db, run_id).status == RunStatus.COMPLETED:
            return
        gate = wait_for(lambda: open_gate_id(db, run_id), "a gate")
        engine.tick(gate, "browser", voters[0])
        for voter in voters:
            if voter.is_(starter.id):
                continue
            if engine.decide(gate, voter, "continue").outcome == "approved":
                break
        wait_for(
            lambda g=gate: (
                open_gate_id(db, run_id) != g or run_row(db, run_id).status == RunStatus.COMPLETED
            ),
            "the next gate",
        )
    raise AssertionError("run #1 did not complete")


def test_slack_revert_by_slash_command_is_permissioned_and_audited(
    pg_db: Database, tmp_path: Path
) -> None:
    runbook = small_runbook(tmp_path, env={"channel": "C0CUTOVER"})
    with running_bot(pg_db, runbook) as bot:
        complete_with_votes(bot.engine, pg_db, starter=Actor("T1:U1", "u1"))
        refused, key = bot.command("/cutover revert staging --reason nope", user="U9")
        assert "only approvers of staging may revert" in bot.reply(key)
        sent, key = bot.command("/cutover revert staging --reason 5xx errors", user="U2")
        assert "revert of run #1 asked for and approved by" in bot.reply(key)
        wait_for(lambda: run_row(pg_db, 2).status == RunStatus.ROLLED_BACK, "the revert")
        again, key = bot.command("/cutover revert staging --reason twice", user="U2")
        assert "run #2 already reverts run #1" in bot.reply(key)
    # the stranger, then the second request once run #2 already reverted run #1
    assert [r["actor"] for r in refusals(pg_db)] == ["T1:U9", "T1:U2"]
    assert [k for k in kinds(pg_db, 2) if k.startswith(("run.", "revert."))] == [
        "run.started",
        "revert.requested",
        "revert.approved",
        "revert.started",
        "run.rolled_back",
    ]
