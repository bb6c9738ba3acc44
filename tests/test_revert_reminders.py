"""A revert waiting for its approvers is reminded and escalated as a gate is (issue 20): after
the environment's gate timeout and twice it, once each, audited; it fails closed (never
approves itself, however long it waits), and the record says it waited. On PostgreSQL, with
the injectable clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot import audit
from bot.record import build_record, record_text
from bot.scheduler import Scheduler
from bot.store.db import Database
from bot.store.models import RunStatus
from bot.surface import Actor
from tests.schedule_helpers import clock_at, make_engine, set_clock
from tests.small_runbook import small_runbook
from tests.test_revert import ALICE, complete_with_votes, run_row
from tests.trail_checker import check_record, exported_rows

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_a_pending_revert_is_reminded_then_escalated_and_never_approves_itself(
    pg_db: Database, tmp_path: Path
) -> None:
    runbook = small_runbook(
        tmp_path, quorum=2, env={"channel": "#cutover", "gate_timeout_minutes": 20}
    )
    clock = clock_at(T0)
    engine, surface = make_engine(pg_db, runbook, clock)
    complete_with_votes(engine, pg_db)
    asked = engine.revert("staging", ALICE, "errors up")
    assert asked.outcome == "vote_recorded" and asked.run_id == 2
    scheduler = Scheduler(engine)

    set_clock(clock, T0 + timedelta(minutes=19))
    assert [d for d in scheduler.tick() if "revert" in d] == []
    set_clock(clock, T0 + timedelta(minutes=20))
    assert scheduler.tick()[:2] == ["run #2: revert-reminder", "revert:2:reminder: sent"]
    [reminder] = surface.notices("Reminder: the revert of run #1")
    assert reminder.args[0] == 2  # in the revert run's thread
    assert "(1/2; gate timeout 20 min)" in reminder.args[1]
    assert "Nothing proceeds by itself" in reminder.args[1]
    set_clock(clock, T0 + timedelta(minutes=40))
    assert scheduler.tick()[:2] == ["run #2: revert-escalation", "revert:2:escalation: sent"]
    [escalation] = surface.notices("Escalation: the revert of staging's run #1")
    assert escalation.args[0] is None and escalation.args[2] == "#cutover"  # the channel
    assert "never approves by itself" in escalation.args[1]
    set_clock(clock, T0 + timedelta(hours=30))  # long past the revert window too
    assert [d for d in scheduler.tick() if "revert" in d] == []
    assert run_row(pg_db, 2).status == RunStatus.REVERT_PENDING  # fails closed
    kinds = [e.kind for e in audit.events(pg_db, 2)]
    assert kinds.count("revert.reminded") == 1 and kinds.count("revert.escalated") == 1
    assert kinds.count("revert.approved") == 1 and "revert.started" not in kinds
    # A person still decides; the record says it waited, each line from the trail.
    engine.abort("staging", Actor("T1:U2", "bob"), "nobody agreed")
    text = record_text(build_record(pg_db, runbook, 2), runbook)
    assert (
        "the revert waited for its approvers past the gate timeout (reminded at 09:20 UTC" in text
    )
    assert "(escalated at 09:40 UTC, 1/2 approvals)" in text
    check_record(text, exported_rows(pg_db, 2), runbook)


def test_a_revert_decided_before_its_reminder_goes_out_gets_none(
    pg_db: Database, tmp_path: Path
) -> None:
    runbook = small_runbook(tmp_path, quorum=2, env={"gate_timeout_minutes": 20})
    clock = clock_at(T0)
    engine, surface = make_engine(pg_db, runbook, clock)
    complete_with_votes(engine, pg_db)
    engine.revert("staging", ALICE, "errors up")
    set_clock(clock, T0 + timedelta(minutes=25))
    scheduler = Scheduler(engine)
    scheduler._revert_timeouts(engine.now())  # the reminder is due …
    engine.abort("staging", ALICE, "false alarm")  # … and the revert is cancelled first
    assert "revert:2:reminder: skipped" in scheduler.tick()
    assert surface.notices("Reminder: the revert") == []
