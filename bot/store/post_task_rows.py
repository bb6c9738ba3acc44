"""What post-cutover tasks (bot/post_tasks.py) read and claim: the runs whose task list was
scheduled lately, the reminder and escalation rounds already produced for them, and a new
round's scheduled event, whose unique key is the claim (a second replica's, or a restarted
process's, insert of the same round is refused: `Duplicate`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlmodel import col, select

from bot.store.models import ScheduledEvent
from bot.store.unit import Tx

LISTED = "tasks"  # the scheduled event that posts a run's task list


def listed_since(tx: Tx, since: datetime) -> list[int | None]:
    """The runs whose task list was due at or after `since`."""
    return list(
        tx.session.exec(
            select(ScheduledEvent.run_id).where(
                ScheduledEvent.kind == LISTED, col(ScheduledEvent.due_at) >= since
            )
        )
    )


def round_keys(tx: Tx, run_ids: Iterable[int | None], kinds: Iterable[str]) -> set[str]:
    """The keys of these runs' scheduled events of these kinds (the rounds produced)."""
    return set(
        tx.session.exec(
            select(ScheduledEvent.key).where(
                col(ScheduledEvent.run_id).in_(list(run_ids)),
                col(ScheduledEvent.kind).in_(list(kinds)),
            )
        )
    )


def claim_round(tx: Tx, key: str, kind: str, run_id: int, due_at: datetime) -> None:
    """Inserts the round's scheduled event and flushes it, so that the key is taken before
    anything else is written in this transaction; `Duplicate` when it was taken already."""
    tx.add(ScheduledEvent(key=key, kind=kind, run_id=run_id, due_at=due_at))
    tx.flush()
