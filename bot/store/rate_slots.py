"""Rate budgets every replica shares (`rate_slot`): one row per budget (a channel's posts, a
Web API method's tier, one person's Home), holding the time before which its next call may
not go.

Slack's limits are per app per workspace (per channel for chat.postMessage), whatever
number of replicas call: kept in each process, two replicas would each spend the whole
budget and together get 429s. So a slot is taken in the database: read the row, then a
compare-and-swap UPDATE that succeeds only if no other replica moved it meanwhile (no row
lock held, the same statement on SQLite and PostgreSQL; a lost race reads again). On
PostgreSQL, `reserve` (taken before every post) is one upsert instead, under its row lock.

Times are seconds on one clock every replica shares: the database's (`db_now`) unless a
clock is given (tests pass theirs, so pacing can run faster than real time).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import text

from bot.store.db import Database, db_now
from bot.store.models import RateSlot

_TRIES = 50  # compare-and-swap attempts; each lost one means another replica took a slot
_PG_CLOCK = "extract(epoch FROM clock_timestamp())::float8"  # db_now's clock, in seconds
_PG_RESERVE = (
    "WITH clock AS (SELECT {clock} AS now, "
    "set_config('synchronous_commit', 'off', true) AS async) "
    "INSERT INTO rate_slot (name, next_at) SELECT %(k)s, now + %(iv)s FROM clock "
    "ON CONFLICT (name) DO UPDATE "
    "SET next_at = GREATEST(rate_slot.next_at + %(iv)s, EXCLUDED.next_at) "
    "RETURNING next_at, (SELECT now FROM clock)"
)


class SharedSlots:
    """`reserve` (queue for the next slot), `take` (a slot now or never) and `hold` (Slack
    said wait) on budgets shared through the database."""

    def __init__(self, db: Database, clock: Callable[[], float] | None = None) -> None:
        self.db, self.clock = db, clock

    def reserve(self, key: str, interval: float) -> float:
        """Takes `key`'s next slot, `interval` seconds after the one before; returns the
        seconds to wait for it (0: now)."""
        if not self.db.is_sqlite:  # one statement: the upsert's row lock orders the takers
            return self._reserve_pg(key[:200], interval)
        return self._swap(key, lambda now, due: (max(now, due) + interval, max(now, due) - now))

    def _reserve_pg(self, key: str, interval: float) -> float:
        """`reserve` on PostgreSQL in one round trip (before every post): the clock read, the
        row made or moved to max(due, now) + interval, under the upsert's row lock (a second
        taker waits for it and sees the moved row). Its commit does not wait for the WAL
        flush (`synchronous_commit` off, for this transaction only): every replica sees the
        slot at once all the same, and a server crash could lose only the last slot taken,
        which had run out by the time the server was back."""
        clock = "%(now)s::float8" if self.clock is not None else _PG_CLOCK
        params = {"k": key, "iv": interval, "now": self.clock() if self.clock else None}
        with self.db.dbapi_transaction() as cursor:
            next_at, now = cursor.execute(_PG_RESERVE.format(clock=clock), params).fetchone()
        return max(float(next_at) - interval - float(now), 0.0)

    def take(self, key: str, interval: float) -> float:
        """Takes a slot of `key` only if one is free now (0.0; the next one then `interval`
        later); otherwise takes nothing and returns the seconds until one is free."""
        return self._swap(key, lambda now, due: (now + interval, 0.0) if due <= now else None)

    def hold(self, key: str, seconds: float) -> None:
        """No slot of `key` before `seconds` from now (a 429's Retry-After)."""
        self._swap(key, lambda now, due: (now + seconds, 0.0) if due < now + seconds else None)

    def free(self, key: str) -> None:
        """`key`'s next slot is free now (a turn given back before its time)."""
        self._swap(key, lambda now, due: (now, 0.0) if due > now else None)

    def _swap(self, key: str, step: Callable[[float, float], tuple[float, float] | None]) -> float:
        """Applies `step(now, due) → (new due, answer)` to `key`'s row atomically; a None step
        changes nothing and answers the seconds until `due`."""
        key = key[:200]
        for _ in range(_TRIES):
            with self.db.session() as s:
                now = self.clock() if self.clock is not None else db_now(s).timestamp()
                row = s.execute(
                    text("SELECT next_at FROM rate_slot WHERE name = :k"), {"k": key}
                ).first()
                if row is None:
                    done = step(now, now)
                    if done is None:
                        return 0.0
                    table = RateSlot.__table__  # type: ignore[attr-defined]
                    stmt = self.db.insert(table).values(name=key, next_at=done[0])
                    stmt = stmt.on_conflict_do_nothing(index_elements=["name"])
                    # RETURNING, not rowcount: psycopg reports no count for this INSERT.
                    if s.execute(stmt.returning(table.c.name)).first() is not None:
                        return done[1]
                    continue  # another replica made the row first: read it
                due = float(row[0])
                done = step(now, due)
                if done is None:
                    return max(due - now, 0.0)
                swapped = s.execute(
                    text(
                        "UPDATE rate_slot SET next_at = :new WHERE name = :k AND next_at = :old "
                        "RETURNING name"
                    ),
                    {"new": done[0], "k": key, "old": due},
                ).first()
                if swapped is not None:
                    return done[1]
        raise RuntimeError(f"rate slot {key!r}: {_TRIES} tries lost to other replicas")
