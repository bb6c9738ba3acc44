"""Scheduled events (`scheduled_event`): every message the scheduler posts at a time, keyed
uniquely ("schedule:3:t-1h", "gate:12:reminder", "record:7", …) so a restart or a second
replica neither loses nor doubles one; claimed, released and finished by the optimistic
claims of `bot.store.claims` (status and attempts as the version), moved by the transition
table's "event" machine. Also what a due event reads: the schedule a notice belongs to, the
runs whose record is not scheduled yet."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlmodel import col, select

from bot.store.claims import claim as _claim
from bot.store.models import EventStatus, Run, RunStatus, Schedule, ScheduledEvent
from bot.store.unit import Tx

# The rows this module hands out, named here for the scheduler's type hints: it reads them
# and never builds, adds or queries one itself (its import contract forbids bot.store.models).
__all__ = ["Schedule", "ScheduledEvent"]


def due(tx: Tx) -> list[ScheduledEvent]:
    """Every event not yet sent or skipped (pending, or claimed by a process that is posting
    it or died doing so), the earliest due first."""
    return list(
        tx.session.exec(
            select(ScheduledEvent)
            .where(col(ScheduledEvent.status).in_([EventStatus.PENDING, EventStatus.CLAIMED]))
            .order_by(col(ScheduledEvent.due_at), col(ScheduledEvent.id))
        )
    )


def add(
    tx: Tx,
    key: str,
    kind: str,
    due_at: datetime,
    *,
    run_id: int | None = None,
    gate_id: int | None = None,
) -> None:
    """Schedules an event; its key taken now (flushed), so a second replica (or a restart)
    making the same one fails here with `Duplicate` before anything else is written in this
    transaction, and the whole transaction rolls back."""
    tx.add(ScheduledEvent(key=key, kind=kind, run_id=run_id, gate_id=gate_id, due_at=due_at))
    tx.flush()


def claim(tx: Tx, row: ScheduledEvent, now: datetime, me: str) -> bool:
    """`me` claims the event to post it (a pending one, or one whose claim lapsed); False: it
    was claimed (or reclaimed) by another process first."""
    return _claim(
        tx,
        ScheduledEvent,
        col(ScheduledEvent.id) == row.id,
        col(ScheduledEvent.attempts) == row.attempts,
        values={"claimed_at": now, "claimed_by": me, "attempts": row.attempts + 1},
        move=("event", "claim"),
        source=row.status,
    )


def release(tx: Tx, event_id: int | None, attempt: int, error: str, *, final: bool) -> bool:
    """Attempt `attempt` failed to post: the event goes back to pending for a retry, or is
    given up (`final`), with the error kept."""
    return _claim(
        tx,
        ScheduledEvent,
        col(ScheduledEvent.id) == event_id,
        col(ScheduledEvent.attempts) == attempt,
        values={"error": error},
        move=("event", "give_up" if final else "release"),
        source=EventStatus.CLAIMED,
    )


def finish(
    tx: Tx,
    event_id: int | None,
    attempt: int,
    now: datetime,
    *,
    sent: bool,
    late_seconds: int | None,
) -> bool:
    """Attempt `attempt` posted the event (`sent`) or found nothing to post (skipped); False:
    the claim lapsed meanwhile and another process reclaimed it."""
    return _claim(
        tx,
        ScheduledEvent,
        col(ScheduledEvent.id) == event_id,
        col(ScheduledEvent.attempts) == attempt,
        values={"sent_at": now, "late_seconds": late_seconds},
        move=("event", "sent" if sent else "skipped"),
        source=EventStatus.CLAIMED,
    )


def keys_of_runs(tx: Tx, run_ids: Iterable[int | None]) -> set[str]:
    """The keys of every event of these runs."""
    return set(
        tx.session.exec(
            select(ScheduledEvent.key).where(col(ScheduledEvent.run_id).in_(list(run_ids)))
        )
    )


def schedule(tx: Tx, schedule_id: int | None) -> Schedule | None:
    """The schedule a notice event belongs to (None: gone)."""
    return tx.get(Schedule, schedule_id) if schedule_id is not None else None


def records_missing(tx: Tx, since: datetime) -> list[Run]:
    """Runs that completed or rolled back at `since` or later and have no "record:RUN" event
    yet (the scheduler makes it, and the post-cutover tasks' one)."""
    runs = [
        r
        for r in tx.session.exec(
            select(Run).where(col(Run.status).in_([RunStatus.COMPLETED, RunStatus.ROLLED_BACK]))
        )
        if r.ended_at is not None and r.ended_at >= since
    ]
    keys = set(
        tx.session.exec(
            select(ScheduledEvent.key).where(
                col(ScheduledEvent.key).in_([f"record:{r.id}" for r in runs])
            )
        )
    )
    return [r for r in runs if f"record:{r.id}" not in keys]
