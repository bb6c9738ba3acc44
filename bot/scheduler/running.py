"""Running the scheduler: leader election every few seconds, the leader's APScheduler tick."""

from __future__ import annotations

import contextlib
import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.domain.audit_kinds import AuditKind
from bot.scheduler.core import Scheduler
from bot.scheduler.leader import LeaderLock, leader_lock_for
from bot.store.unit import Database
from bot.surface import SYSTEM

if TYPE_CHECKING:
    from bot.engine import Engine
    from bot.settings import Settings

log = logging.getLogger("bot.scheduler")  # the package's one logger: its name is in log lines


class SchedulerHandle:
    """One process's part: try for leadership every `elect_seconds`; while leader, tick
    every `tick_seconds` in an APScheduler BackgroundScheduler."""

    def __init__(
        self,
        scheduler: Scheduler,
        lock: LeaderLock,
        *,
        tick_seconds: float = 30.0,
        elect_seconds: float = 10.0,
    ) -> None:
        self.scheduler = scheduler
        self.lock = lock
        self.tick_seconds = tick_seconds
        self.elect_seconds = elect_seconds
        self.first_tick_delay = min(tick_seconds, 5.0)
        self._aps: BackgroundScheduler | None = None
        self._guard = threading.RLock()
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def is_leader(self) -> bool:
        return self._aps is not None

    def start(self) -> SchedulerHandle:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._elect_loop, name="cutover-scheduler-elect", daemon=True
            )
            self._thread.start()
        return self

    def _elect_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.elect()
            except Exception:
                log.exception("scheduler leader election failed")
            self._wake.wait(self.elect_seconds)
            self._wake.clear()

    def elect(self) -> bool:
        """Takes leadership if free; starts or stops the tick job to match. True if leader."""
        with self._guard:
            if self._stopping.is_set():
                return False
            held = self.lock.try_acquire()
            if held and self._aps is None:
                aps = BackgroundScheduler(timezone=UTC)
                aps.add_job(
                    self._tick_job,
                    IntervalTrigger(seconds=self.tick_seconds, timezone=UTC),
                    id="cutover-tick",
                    # The first tick a moment after: recover() runs first at startup.
                    next_run_time=datetime.now(UTC) + timedelta(seconds=self.first_tick_delay),
                    max_instances=1,
                    coalesce=True,
                    misfire_grace_time=None,
                )
                aps.start()
                self._aps = aps
                log.info("scheduler: %s is the leader", self.scheduler.me)
                with contextlib.suppress(Exception):
                    self.scheduler.engine.store.record(
                        AuditKind.SCHEDULER_LEADER,
                        actor=SYSTEM.id,
                        data={"process": self.scheduler.me},
                        at=self.scheduler.engine.now(),
                    )
            elif not held and self._aps is not None:
                log.warning("scheduler: %s lost the leadership", self.scheduler.me)
                self._demote()
            return held

    def _demote(self) -> None:
        aps, self._aps = self._aps, None
        if aps is not None:
            with contextlib.suppress(Exception):
                aps.shutdown(wait=False)

    def _tick_job(self) -> None:
        if not self.lock.still_held():  # the lock's session died: someone else may lead now
            self._wake.set()
            return
        self.scheduler.tick()

    def run_once(self, now: datetime | None = None) -> list[str]:
        """elect, then tick if leader (without the background job): for tests and tools."""
        if not self.lock.try_acquire():
            return []
        return self.scheduler.tick(now)

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._guard:
            aps, self._aps = self._aps, None
        if aps is not None:
            with contextlib.suppress(Exception):
                aps.shutdown(wait=True)
        self.lock.release()


def start_scheduler(
    engine: Engine, db: Database | None = None, settings: Settings | None = None
) -> SchedulerHandle:
    """Starts this process's scheduler (leader election + the tick); `.stop()` ends it.

    `cutover serve` and `cutover console` call this after `engine.recover()`.
    With settings.scheduler_enabled false the handle is returned unstarted.
    """
    from bot.settings import Settings

    settings = settings or Settings()
    db = db or engine.db
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # a line per tick otherwise
    scheduler = Scheduler(
        engine,
        lease_seconds=settings.notice_lease_seconds,
        grace_seconds=settings.notice_grace_seconds,
    )
    handle = SchedulerHandle(
        scheduler,
        leader_lock_for(db),
        tick_seconds=settings.scheduler_tick_seconds,
        elect_seconds=settings.scheduler_elect_seconds,
    )
    return handle.start() if settings.scheduler_enabled else handle
