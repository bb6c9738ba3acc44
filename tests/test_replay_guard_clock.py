"""The replay guard keeps time by the database's clock: two replicas whose clocks disagree by
minutes share one memory of the signed requests received, and neither forgets one early."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from bot.slack.middleware import ALREADY_RECEIVED, TOO_OLD_TEXT, ReplayGuard
from bot.store import replays
from bot.store.db import Database
from bot.store.replays import SeenRequests


@contextmanager
def replica_clock(monkeypatch: pytest.MonkeyPatch, off: timedelta) -> Iterator[None]:
    """This process's clock runs `off` ahead (negative: behind) while inside: a replica on a
    machine whose clock drifted (the guard module reads the wall clock through `datetime`)."""

    class Skewed(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[no-untyped-def,override]
            return datetime.now(tz) + off

    with monkeypatch.context() as m:
        m.setattr(replays, "datetime", Skewed, raising=False)
        yield


def db_now(db: Database) -> datetime:
    with db.session() as s:
        value = s.connection().execute(text("SELECT statement_timestamp()")).scalar_one()
    return value.astimezone(UTC)


@pytest.mark.postgres
def test_a_replica_whose_clock_runs_ahead_does_not_prune_a_signature_another_still_accepts(
    pg_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = SeenRequests(pg_db), SeenRequests(pg_db)  # two replicas on one PostgreSQL
    assert a.first_time("v0=start-staging")
    with replica_clock(monkeypatch, timedelta(minutes=20)):  # b's clock: 20 minutes ahead
        assert b.first_time("v0=something-else")
        b.prune()
    # The captured start sent again, within Slack's window, to either replica: refused.
    assert not a.first_time("v0=start-staging")
    assert not b.first_time("v0=start-staging")


@pytest.mark.postgres
def test_a_replica_whose_clock_runs_behind_does_not_keep_signatures_too_long(
    pg_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pruning by the database's clock works the other way too: rows past the window go."""
    guard = SeenRequests(pg_db, keep=timedelta(seconds=-1))  # already expired when written
    assert guard.first_time("v0=old")
    with replica_clock(monkeypatch, timedelta(minutes=-20)):
        assert guard.prune() >= 1
    assert guard.first_time("v0=old")


@pytest.mark.postgres
def test_a_request_signed_longer_ago_than_the_guard_remembers_is_refused(
    pg_db: Database,
) -> None:
    """Only a replica whose clock is off by more than the skew bound lets Bolt pass such a
    request; the guard could no longer tell it from a replay, so it does nothing."""
    guard = ReplayGuard(SeenRequests(pg_db))
    now = db_now(pg_db)
    stale = str(int((now - replays.KEEP - timedelta(seconds=5)).timestamp()))
    assert guard.refusal("v0=stale", stale) == TOO_OLD_TEXT
    fresh = str(int(now.timestamp()))
    assert guard.refusal("v0=fresh", fresh) is None
    assert guard.refusal("v0=fresh", fresh) == ALREADY_RECEIVED


def test_the_guard_keeps_slacks_window_plus_the_skew_bound() -> None:
    assert timedelta(minutes=5) == replays.SLACK_WINDOW
    assert replays.KEEP == replays.SLACK_WINDOW + replays.SKEW


@pytest.mark.postgres
def test_the_guards_commit_does_not_wait_for_the_wal_flush_and_the_works_commit_does(
    pg_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard's transaction alone runs with synchronous_commit off: the work's commit after
    it (a state change, with its audit row) still waits for the flush, which covers the
    guard's row too (it came first in the WAL)."""
    seen: list[str] = []
    opened = Database.dbapi_transaction

    @contextmanager
    def watched(self: Database) -> Iterator[object]:
        with opened(self) as cursor:
            yield cursor
            seen.append(cursor.execute("SHOW synchronous_commit").fetchone()[0])

    monkeypatch.setattr(Database, "dbapi_transaction", watched)
    assert SeenRequests(pg_db).receive("v0=continue-click") == replays.FIRST
    assert seen == ["off"]
    with pg_db.session() as s:  # the next transaction on the pool: the setting did not stay
        assert s.connection().execute(text("SHOW synchronous_commit")).scalar_one() == "on"
