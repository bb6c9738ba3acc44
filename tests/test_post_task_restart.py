"""Post-cutover task reminders survive a restart and a second replica (issue 24): the round's
scheduled event is in the database, so a new process delivers a reminder the last one
produced, re-posts one it died posting (saying it may be a repeat), and two replicas at once
produce one reminder, never two. SQLite and PostgreSQL, on the injectable clock."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot import audit
from bot.domain.audit_kinds import AuditKind
from bot.scheduler import Scheduler
from bot.store.db import Database
from bot.store.reads import tasks_view
from tests.post_task_helpers import T0, completed_run, tasks_runbook
from tests.schedule_helpers import RecordingSurface, clock_at, make_engine, set_clock

H = timedelta(hours=1)


class DiesOnReminder(RecordingSurface):
    """The process dies (SystemExit) while posting its first task reminder."""

    def notice(self, run_id: int | None, text: str, channel: str | None = None) -> None:
        if text.startswith("⏰ Reminder"):
            raise SystemExit("the process died while posting the reminder")
        super().notice(run_id, text, channel)


def count(db: Database, run_id: int, kind: str) -> int:
    return sum(e.kind == kind for e in audit.events(db, run_id))


def test_a_reminder_produced_before_a_restart_is_delivered_once_after_it(
    db: Database, tmp_path: Path
) -> None:
    runbook = tasks_runbook(tmp_path)
    engine, _, clock, run_id = completed_run(db, runbook)
    set_clock(clock, T0 + timedelta(minutes=1))
    Scheduler(engine).tick()
    set_clock(clock, T0 + 4 * H)
    assert Scheduler(engine).tasks.remind(engine.now()) == [f"run #{run_id}: task-reminder"]
    # … and the process stops before delivering it. A new one starts:
    later = clock_at(T0 + 4 * H + timedelta(minutes=2))
    fresh, surface = make_engine(db, runbook, later)
    assert Scheduler(fresh).tick() == [f"tasks:{run_id}:reminder:1: sent"]
    assert Scheduler(fresh).tick() == []
    assert len(surface.notices("⏰ Reminder")) == 1
    assert count(db, run_id, AuditKind.POST_TASKS_REMINDED) == 1


def test_a_reminder_the_process_died_posting_is_posted_again_once_as_a_maybe_repeat(
    db: Database, tmp_path: Path
) -> None:
    runbook = tasks_runbook(tmp_path)
    clock = clock_at(T0 - timedelta(minutes=10))
    engine, _, clock, run_id = completed_run(db, runbook, clock)
    set_clock(clock, T0 + timedelta(minutes=1))
    Scheduler(engine).tick()
    dying, _ = make_engine(db, runbook, clock, DiesOnReminder())
    set_clock(clock, T0 + 4 * H)
    with pytest.raises(SystemExit):
        Scheduler(dying).tick()  # claimed, then died while posting
    later = clock_at(T0 + 4 * H + timedelta(minutes=1))
    fresh, surface = make_engine(db, runbook, later)
    assert Scheduler(fresh).tick() == []  # its claim is still within the lease
    set_clock(later, T0 + 4 * H + timedelta(minutes=6))
    assert Scheduler(fresh).tick() == [f"tasks:{run_id}:reminder:1: sent late"]
    [reminder] = surface.notices("⏰ Reminder")
    assert "\n♻️ Possibly a repeat: an earlier attempt" in reminder.args[1]
    assert Scheduler(fresh).tick() == []
    assert count(db, run_id, AuditKind.POST_TASKS_REMINDED) == 1
    assert count(db, run_id, AuditKind.NOTICE_RECLAIMED) == 1


def test_two_replicas_at_once_produce_one_reminder(pg_db: Database, tmp_path: Path) -> None:
    runbook = tasks_runbook(tmp_path)
    engine, _, clock, run_id = completed_run(pg_db, runbook)
    set_clock(clock, T0 + timedelta(minutes=1))
    Scheduler(engine).tick()
    replicas = [make_engine(pg_db, runbook, clock_at(T0 + 4 * H))[0] for _ in range(4)]
    barrier = threading.Barrier(len(replicas))
    said: list[Any] = []

    def produce(e: Any) -> None:
        barrier.wait()
        said.extend(Scheduler(e).tasks.remind(e.now()))

    threads = [threading.Thread(target=produce, args=(e,)) for e in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert said == [f"run #{run_id}: task-reminder"]
    assert count(pg_db, run_id, AuditKind.POST_TASKS_REMINDED) == 1


def test_a_round_another_replica_claimed_first_is_refused_by_its_key(
    db: Database, tmp_path: Path
) -> None:
    """The round's unique key is the claim: a replica that read the rounds produced before
    another one produced this round (its list is stale) is refused by the key (the store's
    Duplicate), and writes no second audit row."""
    runbook = tasks_runbook(tmp_path)
    engine, _, clock, run_id = completed_run(db, runbook)
    set_clock(clock, T0 + timedelta(minutes=1))
    Scheduler(engine).tick()
    set_clock(clock, T0 + 4 * H)
    view = tasks_view(db, run_id)
    assert view is not None
    tasks = Scheduler(engine).tasks
    assert tasks._produce(view, engine.now(), set()) == "task-reminder"
    assert tasks._produce(view, engine.now(), set()) is None  # stale: nothing read as made
    assert count(db, run_id, AuditKind.POST_TASKS_REMINDED) == 1
