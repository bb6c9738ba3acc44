"""Signed requests already received, remembered in the database for the replay window.

Slack signs timestamp + body and Bolt refuses a timestamp more than 5 minutes off; within
that window the same signed bytes sent again (a replay, a proxy resending, or the same
request reaching a second replica) must not be worked on twice. A row per signature, with
the primary key deciding, holds across restarts and for every replica on the database.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete

from bot.db import Database
from bot.models import SeenRequest

log = logging.getLogger(__name__)

WINDOW = timedelta(minutes=10)  # twice Slack's 5 minutes: clock skew either way
PRUNE_EVERY = 500  # inserts between deletions of expired rows


class SeenRequests:
    def __init__(self, db: Database, window: timedelta = WINDOW) -> None:
        self.db, self.window = db, window
        table = SeenRequest.__table__  # type: ignore[attr-defined]
        self._signature = table.c.signature
        self._insert = db.insert(table)
        self._count = 0
        self._lock = threading.Lock()

    def first_time(self, signature: str) -> bool:
        """Records `signature`; False if it was recorded before (by any replica)."""
        now = datetime.now(UTC)
        values = self._insert.values(signature=signature[:200], expires_at=now + self.window)
        stmt = values.on_conflict_do_nothing(index_elements=["signature"]).returning(
            self._signature
        )
        with self.db.session() as s:  # a row comes back only when this insert made it
            first = s.connection().execute(stmt).first() is not None
        with self._lock:
            self._count += 1
            prune = self._count % PRUNE_EVERY == 0
        if prune:
            self.prune(now)
        return first

    def prune(self, now: datetime | None = None) -> int:
        with self.db.session() as s:
            res = s.execute(
                delete(SeenRequest).where(SeenRequest.expires_at < (now or datetime.now(UTC)))  # type: ignore[arg-type]
            )
            return int(getattr(res, "rowcount", 0) or 0)
