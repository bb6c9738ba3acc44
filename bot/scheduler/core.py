"""The `Scheduler`: one tick of the leader's work, composed of the parts that do each job."""

from __future__ import annotations

import logging
import os
import secrets
import socket
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.domain.states import EventStatus
from bot.engine import monitoring
from bot.notices import late_note, repeat_note
from bot.post_tasks import KINDS as TASK_KINDS
from bot.post_tasks import PostTasks
from bot.scheduler.delivery import Delivery, Posted
from bot.scheduler.pre_cutover import SCHEDULE_KINDS, ScheduleNotices
from bot.scheduler.records import RecordJobs
from bot.scheduler.reminders import Reminders
from bot.schedules import ScheduleService
from bot.store.unit import Database, DatabaseUnavailable

if TYPE_CHECKING:
    from bot.engine import Engine
    from bot.store.scheduled_events import ScheduledEvent

log = logging.getLogger("bot.scheduler")  # the package's one logger: its name is in log lines


class Scheduler:
    """The leader's work, one tick at a time. Safe to run in several processes at once:
    every piece of work is claimed in the database first (the leader lock only keeps
    the others from doing the scanning for nothing)."""

    def __init__(
        self,
        engine: Engine,
        *,
        lease_seconds: float = 300.0,
        grace_seconds: float = 120.0,
        max_attempts: int = 5,
        record_window: timedelta = timedelta(hours=24),
        identity: str | None = None,
    ) -> None:
        self.engine = engine
        self.lease = timedelta(seconds=lease_seconds)
        self.grace = timedelta(seconds=grace_seconds)
        self.max_attempts = max_attempts
        self.record_window = record_window
        self.me = identity or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.schedules = ScheduleService(engine)
        self.tasks = PostTasks(engine)  # post-cutover tasks: listed, reminded, escalated
        self.reminders = Reminders(engine)  # gates and reverts past their timeout
        self.notices = ScheduleNotices(engine, self.schedules)  # T-24h, T-1h, T-0
        self.records = RecordJobs(engine, self.tasks, record_window)
        self.delivery = Delivery(
            engine,
            self._post,
            me=self.me,
            lease=self.lease,
            grace=self.grace,
            max_attempts=max_attempts,
        )

    @property
    def db(self) -> Database:
        return self.engine.db

    def tick(self, now: datetime | None = None) -> list[str]:
        """Does everything that is due at `now` (default: the engine's clock); says what."""
        now = now or self.engine.now()
        done: list[str] = []
        for step in (
            self._reconcile,
            self._gate_timeouts,
            self._revert_timeouts,
            self._monitoring,
            self._records,
            self.tasks.remind,
            self._deliver_due,
        ):
            try:
                done += step(now)
            except DatabaseUnavailable as exc:
                log.warning("scheduler tick stopped: %s", exc)
                break
            except Exception:
                log.exception("scheduler step %s failed", step.__name__)
        return done

    # ------------------------------------------------------------------ producers

    def _reconcile(self, now: datetime) -> list[str]:
        return self.schedules.reconcile(now)

    def _monitoring(self, now: datetime) -> list[str]:
        return monitoring.tick(self.engine, now, self.me, self.lease.total_seconds())

    def _gate_timeouts(self, now: datetime) -> list[str]:
        return self.reminders.gate_timeouts(now)

    def _revert_timeouts(self, now: datetime) -> list[str]:
        return self.reminders.revert_timeouts(now)

    def _records(self, now: datetime) -> list[str]:
        return self.records.due(now)

    # ------------------------------------------------------------------ delivery

    def _deliver_due(self, now: datetime) -> list[str]:
        return self.delivery.deliver_due(now)

    def _post(self, row: ScheduledEvent, now: datetime, reclaim: bool) -> Posted:
        notes: list[str] = []
        if now - row.due_at > self.grace:
            notes.append(late_note(row.due_at, now))
        if reclaim:
            notes.append(repeat_note(row.claimed_at, row.claimed_by))
        if row.kind in SCHEDULE_KINDS:
            return self.notices.post(row, now, notes)
        if row.kind in ("gate-reminder", "gate-escalation"):
            return self.reminders.post_gate(row, now, notes)
        if row.kind in ("revert-reminder", "revert-escalation"):
            return self.reminders.post_revert(row, now, notes)
        if row.kind in TASK_KINDS:
            return Posted(*self.tasks.post(row, now, notes))
        if row.kind in ("record", "tasks"):
            return self.records.post(row, notes)
        return Posted(EventStatus.SKIPPED, reason=f"unknown kind {row.kind!r}")
