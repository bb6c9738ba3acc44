"""The cutover record and the post-cutover task list of a run that ended, due and posted."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from bot.models import EventStatus, Run, RunStatus, ScheduledEvent
from bot.post_tasks import PostTasks
from bot.record import build_record, record_text, tasks_text
from bot.record_feed import ended_feed
from bot.scheduler.delivery import Posted

if TYPE_CHECKING:
    from bot.db import Database
    from bot.engine import Engine


class RecordJobs:
    """A run that completed or rolled back within `record_window`: its record event (and,
    for a real completed run, its post-cutover tasks), then posting them."""

    def __init__(self, engine: Engine, tasks: PostTasks, record_window: timedelta) -> None:
        self.engine = engine
        self.tasks = tasks
        self.record_window = record_window

    @property
    def db(self) -> Database:
        return self.engine.db

    def due(self, now: datetime) -> list[str]:
        """A run that completed or rolled back gets its record (and the post-cutover tasks)."""
        since = now - self.record_window
        with self.db.session() as s:
            runs = [
                r
                for r in s.exec(
                    select(Run).where(
                        col(Run.status).in_([RunStatus.COMPLETED, RunStatus.ROLLED_BACK])
                    )
                )
                if r.ended_at is not None and r.ended_at >= since
            ]
            keys = set(
                s.exec(
                    select(ScheduledEvent.key).where(
                        col(ScheduledEvent.key).in_([f"record:{r.id}" for r in runs])
                    )
                )
            )
        done: list[str] = []
        for run in runs:
            if f"record:{run.id}" in keys:
                continue
            try:
                with self.db.session() as s:
                    s.add(
                        ScheduledEvent(
                            key=f"record:{run.id}", kind="record", run_id=run.id, due_at=now
                        )
                    )
                    if (
                        not run.dry_run
                        and run.status == RunStatus.COMPLETED
                        and (self.engine.runbook.post_cutover_tasks)
                    ):
                        s.add(
                            ScheduledEvent(
                                key=f"tasks:{run.id}", kind="tasks", run_id=run.id, due_at=now
                            )
                        )
                        self.tasks.open(s, run, now)
            except IntegrityError:
                continue
            done.append(f"run #{run.id}: record due")
        return done

    def post(self, row: ScheduledEvent, notes: list[str]) -> Posted:
        engine = self.engine
        assert row.run_id is not None
        with self.db.session() as s:
            run = s.get(Run, row.run_id)
        if run is None:
            return Posted(EventStatus.SKIPPED, reason="run gone")
        ended: str | None = None
        if row.kind == "record":
            rec = build_record(self.db, engine.runbook, row.run_id)
            text, ended = record_text(rec, engine.runbook), ended_feed(rec)
        else:
            text = tasks_text(engine.runbook, row.run_id, run.ended_at)
        engine.surface.notice(row.run_id, "\n".join([*notes, text]))
        if row.kind == "record":
            if ended is not None:  # how it ended, from the record's facts (bot.record_feed)
                engine.feed(row.run_id, ended)
            engine.feed(row.run_id, text)  # the stakeholders get the record too
        return Posted(EventStatus.SENT, run.channel)
