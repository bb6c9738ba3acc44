"""Two bot processes on the real PostgreSQL: one notice per event; a standby takes over
when the leader's session dies (its advisory lock goes with it)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from bot.engine import Engine
from bot.scheduler import PgLeaderLock, Scheduler, SchedulerHandle, start_scheduler
from bot.schedules import ScheduleService
from bot.settings import Settings
from bot.store.db import Database
from tests.db_fixtures import postgres_reachable, throwaway_pg_database
from tests.require import unavailable
from tests.schedule_helpers import (
    ALICE,
    START,
    RecordingSurface,
    clock_at,
    make_engine,
    schedule_runbook,
    set_clock,
)

pytestmark = pytest.mark.postgres

H = timedelta(hours=1)


@pytest.fixture
def pg_url() -> Iterator[str]:
    if not postgres_reachable():
        unavailable("PostgreSQL not reachable (set CUTOVER_TEST_PG_URL)")
    with throwaway_pg_database() as url:
        Database(url).create_all()
        yield url


def kill_session(url: str, pid: int) -> None:
    """What a crashed leader looks like to the server: its session is gone."""
    admin = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def all_calls(*surfaces: RecordingSurface) -> list[tuple[str, str]]:
    """(method, kind) of every scheduled message, across processes."""
    out = []
    for s in surfaces:
        out += [("scheduled_notice", str(c.args[1])) for c in s.of("scheduled_notice")]
        out += [("start_reminder", "t-0") for _ in s.of("start_reminder")]
    return sorted(out)


def test_two_processes_send_one_notice_per_event_and_fail_over(pg_url: str, tmp_path: Path) -> None:
    runbook = schedule_runbook(tmp_path)
    clock = clock_at(START - 30 * H)
    db_a, db_b = Database(pg_url), Database(pg_url)
    engine_a, surface_a = make_engine(db_a, runbook, clock)
    engine_b, surface_b = make_engine(db_b, runbook, clock)
    a = SchedulerHandle(Scheduler(engine_a, identity="A"), PgLeaderLock(pg_url))
    b = SchedulerHandle(Scheduler(engine_b, identity="B"), PgLeaderLock(pg_url))
    sched = ScheduleService(engine_a).create("prod", START, ALICE, stakeholders="#launch")
    try:
        # Both ask for leadership at every tick; only A gets it, so only A sends.
        set_clock(clock, START - 24 * H)
        assert a.run_once() == [f"schedule:{sched.id}:t-24h: sent"]
        assert b.run_once() == []
        assert isinstance(a.lock, PgLeaderLock) and a.lock.backend_pid is not None

        # Even two schedulers ticking at the same instant (past the lock) claim each event once.
        set_clock(clock, START - H)
        results: list[list[str]] = []
        barrier = threading.Barrier(2)

        def tick(s: Scheduler) -> None:
            barrier.wait()
            results.append(s.tick())

        threads = [threading.Thread(target=tick, args=(h.scheduler,)) for h in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(x for r in results for x in r) == [
            f"schedule:{sched.id}:t-1h-checklist: sent",
            f"schedule:{sched.id}:t-1h: sent",
        ]

        # The leader's session dies; B takes over at its next try, A cannot come back.
        kill_session(pg_url, a.lock.backend_pid)
        wait_for(lambda: b.lock.try_acquire())
        assert not a.lock.still_held() and not a.lock.try_acquire()
        set_clock(clock, START)
        assert a.run_once() == []
        assert b.run_once() == [f"schedule:{sched.id}:t-0: sent"]
        assert b.run_once() == []
        assert all_calls(surface_a, surface_b) == [
            ("scheduled_notice", "t-1h"),
            ("scheduled_notice", "t-1h-checklist"),
            ("scheduled_notice", "t-24h"),
            ("start_reminder", "t-0"),
        ]
        assert len(surface_b.of("start_reminder")) == 1
    finally:
        for h in (a, b):
            h.stop()
        for e in (engine_a, engine_b):
            e.shutdown()
        db_a.dispose()
        db_b.dispose()


def test_real_background_schedulers_elect_one_leader_and_fail_over(
    pg_url: str, tmp_path: Path
) -> None:
    """start_scheduler as `cutover serve` runs it: APScheduler ticks in the leader only."""
    runbook = schedule_runbook(tmp_path)
    settings = Settings(
        database_url=pg_url,
        scheduler_tick_seconds=0.2,
        scheduler_elect_seconds=0.2,
    )
    dbs = [Database(pg_url), Database(pg_url)]
    surfaces = [RecordingSurface(), RecordingSurface()]
    engines = [
        Engine(d, runbook, surface=s, background=False) for d, s in zip(dbs, surfaces, strict=True)
    ]
    handles = [start_scheduler(e, e.db, settings) for e in engines]
    try:
        wait_for(lambda: sum(h.is_leader for h in handles) == 1)
        time.sleep(0.5)
        assert sum(h.is_leader for h in handles) == 1
        leader = next(i for i, h in enumerate(handles) if h.is_leader)

        first = ScheduleService(engines[0]).create(
            "prod", datetime.now(UTC) + timedelta(seconds=1.5), ALICE
        )
        wait_for(lambda: len(surfaces[leader].of("start_reminder")) == 1)
        time.sleep(0.6)  # a few more ticks: nothing is sent twice
        assert all_calls(*surfaces) == [
            ("scheduled_notice", "t-1h"),
            ("scheduled_notice", "t-1h-checklist"),
            ("scheduled_notice", "t-24h"),
            ("start_reminder", "t-0"),
        ]
        assert all_calls(surfaces[1 - leader]) == []

        # The leader stops (its lock session ends); the standby takes over.
        handles[leader].stop()
        other = 1 - leader
        wait_for(lambda: handles[other].is_leader, timeout=5)
        assert first.id is not None
        ScheduleService(engines[other]).cancel(first.id, ALICE)  # nobody started it
        second = ScheduleService(engines[other]).create(
            "prod", datetime.now(UTC) + timedelta(seconds=1), ALICE
        )
        wait_for(lambda: len(surfaces[other].of("start_reminder")) == 1)
        assert [c.args[0] for c in surfaces[other].of("start_reminder")] == [second.id]
        assert first.id != second.id
    finally:
        for h in handles:
            h.stop()
        for e in engines:
            e.shutdown()
        for d in dbs:
            d.dispose()
