"""The cutover record and the post-cutover task list of a run that ended, due and posted."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.domain.states import EventStatus, RunStatus
from bot.post_tasks import PostTasks
from bot.record import build_record, record_text, tasks_text
from bot.record_feed import ended_feed
from bot.scheduler.delivery import Posted
from bot.store import runs, scheduled_events
from bot.store.unit import Duplicate

if TYPE_CHECKING:
    from bot.engine import Engine
    from bot.store.scheduled_events import ScheduledEvent
    from bot.store.unit import Store


class RecordJobs:
    """A run that completed or rolled back within `record_window`: its record event (and,
    for a real completed run, its post-cutover tasks), then posting them."""

    def __init__(self, engine: Engine, tasks: PostTasks, record_window: timedelta) -> None:
        self.engine = engine
        self.tasks = tasks
        self.record_window = record_window

    @property
    def store(self) -> Store:
        return self.engine.store

    def due(self, now: datetime) -> list[str]:
        """A run that completed or rolled back gets its record (and the post-cutover tasks)."""
        with self.store.tx() as tx:
            ended = scheduled_events.records_missing(tx, now - self.record_window)
        done: list[str] = []
        for run in ended:
            try:
                with self.store.tx() as tx:
                    scheduled_events.add(tx, f"record:{run.id}", "record", now, run_id=run.id)
                    if (
                        not run.dry_run
                        and run.status == RunStatus.COMPLETED
                        and (self.engine.runbook.post_cutover_tasks)
                    ):
                        scheduled_events.add(tx, f"tasks:{run.id}", "tasks", now, run_id=run.id)
                        self.tasks.open(tx, run, now)
            except Duplicate:
                continue
            done.append(f"run #{run.id}: record due")
        return done

    def post(self, row: ScheduledEvent, notes: list[str]) -> Posted:
        engine = self.engine
        assert row.run_id is not None
        with self.store.tx() as tx:
            run = runs.get(tx, row.run_id)
        if run is None:
            return Posted(EventStatus.SKIPPED, reason="run gone")
        ended: str | None = None
        if row.kind == "record":
            rec = build_record(engine.db, engine.runbook, row.run_id)
            text, ended = record_text(rec, engine.runbook), ended_feed(rec)
        else:
            text = tasks_text(engine.runbook, row.run_id, run.ended_at)
        engine.surface.notice(row.run_id, "\n".join([*notes, text]))
        if row.kind == "record":
            if ended is not None:  # how it ended, from the record's facts (bot.record_feed)
                engine.feed(row.run_id, ended)
            engine.feed(row.run_id, text)  # the stakeholders get the record too
        return Posted(EventStatus.SENT, run.channel)
