"""Signed requests already received, remembered in the database for the replay window.

Slack signs timestamp + body and Bolt refuses a timestamp more than 5 minutes off; within
that window the same signed bytes sent again (a replay, a proxy resending, or the same
request reaching a second replica) must not be worked on twice. A row per signature, with
the primary key deciding, holds across restarts and for every replica on the database.

Time here is the database's, never a replica's: Bolt compares the request's timestamp with
its own replica's clock, and replicas' clocks drift apart. A row is kept for Slack's window
plus SKEW (how far a replica's clock may be off the database's) from when it was first
received, by the database's clock, and only the database's clock decides when it is pruned:
a replica whose clock runs ahead cannot forget a signature another replica still accepts.
A request older than that by the database's clock (only a replica whose clock is off by
more than SKEW would have let it through) is refused: the guard could no longer tell.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import column, delete, text
from sqlalchemy.engine import Connection

from bot.ports import FIRST, SEEN, TOO_OLD  # the verdicts, re-exported
from bot.store.db import Database
from bot.store.models import SeenRequest, UTCDateTime

log = logging.getLogger(__name__)

SLACK_WINDOW = timedelta(minutes=5)  # Bolt refuses a request timestamp further off than this
SKEW = timedelta(minutes=5)  # the most a replica's clock may be off the database's
KEEP = SLACK_WINDOW + SKEW
WINDOW = KEEP  # the old name
PRUNE_EVERY = 500  # inserts between deletions of expired rows

# PostgreSQL: the database's clock, the age check and the insert in one statement; its
# commit does not wait for the WAL flush (see `SeenRequests._receive_pg`).
_PG_RECEIVE = (
    "WITH clock AS (SELECT statement_timestamp() AS now, "
    "set_config('synchronous_commit', 'off', true) AS async) "
    "INSERT INTO seen_request (signature, expires_at) "
    "SELECT %(sig)s, now + %(keep)s FROM clock "
    "WHERE %(signed)s::timestamptz IS NULL OR %(signed)s::timestamptz + %(keep)s >= now "
    "ON CONFLICT (signature) DO NOTHING RETURNING signature"
)
_PG_TOO_OLD = "SELECT %(signed)s::timestamptz + %(keep)s < statement_timestamp()"


def database_now(conn: Connection) -> datetime:
    """The database server's clock (UTC), the one clock every replica shares."""
    if conn.dialect.name == "sqlite":
        clock = "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now') AS now"
    else:
        clock = "SELECT statement_timestamp() AS now"
    value: datetime = conn.execute(text(clock).columns(column("now", UTCDateTime()))).scalar_one()
    return value


class SeenRequests:
    def __init__(self, db: Database, keep: timedelta = KEEP) -> None:
        self.db, self.keep = db, keep
        table = SeenRequest.__table__  # type: ignore[attr-defined]
        self._signature = table.c.signature
        self._insert = db.insert(table)
        self._count = 0
        self._lock = threading.Lock()
        self._skew_warned = False

    def first_time(self, signature: str) -> bool:
        """Records `signature`; False if it was recorded before (by any replica)."""
        return self.receive(signature) == FIRST

    def receive(self, signature: str, signed_at: datetime | None = None) -> str:
        """FIRST (recorded now), SEEN (recorded before, by any replica), or TOO_OLD: signed
        longer ago than rows are kept, by the database's clock (nothing recorded)."""
        if not self.db.is_sqlite:
            return self._receive_pg(signature, signed_at)
        with self.db.session() as s:
            conn = s.connection()
            now = database_now(conn)
            if signed_at is not None and signed_at + self.keep < now:
                return TOO_OLD
            values = self._insert.values(signature=signature[:200], expires_at=now + self.keep)
            stmt = values.on_conflict_do_nothing(index_elements=["signature"]).returning(
                self._signature
            )
            first = conn.execute(stmt).first() is not None  # a row only when this made it
        self._count_and_prune()
        return FIRST if first else SEEN

    def _receive_pg(self, signature: str, signed_at: datetime | None) -> str:
        """`receive` on PostgreSQL in one statement (before every click's work): the clock
        read, the age check and the insert; the age is asked again only when nothing was
        inserted, to tell a replay from a request too old.

        Its COMMIT does not wait for the WAL flush (`synchronous_commit` off, for this
        transaction only; about a millisecond of every click): every replica sees the row at
        once all the same, and the row cannot be lost while anything the request caused is
        kept. The work's own commit waits for the WAL to be flushed up to its commit record,
        which the row's came before: a server crash can lose the row only together with
        every effect of the request, and then working on a resent copy is what should
        happen. (A request that changes nothing, `/cutover status`, may then be answered
        twice.)"""
        params = {"sig": signature[:200], "keep": self.keep, "signed": signed_at}
        with self.db.dbapi_transaction() as cursor:
            first = cursor.execute(_PG_RECEIVE, params).fetchone() is not None
            too_old = (
                not first
                and signed_at is not None
                and bool(cursor.execute(_PG_TOO_OLD, params).fetchone()[0])
            )
        if too_old:
            return TOO_OLD
        self._count_and_prune()
        return FIRST if first else SEEN

    def _count_and_prune(self) -> None:
        with self._lock:
            self._count += 1
            prune = self._count % PRUNE_EVERY == 0
        if prune:
            self.prune()

    def prune(self) -> int:
        """Deletes rows expired by the database's clock (this replica's clock plays no part)."""
        with self.db.session() as s:
            conn = s.connection()
            now = database_now(conn)
            self._warn_if_skewed(now)
            res = conn.execute(
                delete(SeenRequest).where(SeenRequest.expires_at < now)  # type: ignore[arg-type]
            )
            return int(getattr(res, "rowcount", 0) or 0)

    def _warn_if_skewed(self, db_now: datetime) -> None:
        off = abs(datetime.now(UTC) - db_now)
        if off > SKEW and not self._skew_warned:
            self._skew_warned = True
            log.warning(
                "this replica's clock is %d s off the database's (more than %d s): Slack "
                "requests may be refused as stale; fix the clock (NTP)",
                off.total_seconds(),
                SKEW.total_seconds(),
            )
