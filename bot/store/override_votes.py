"""Break-glass votes (`override_vote`): one row per person and subject (a gate's override,
an emergency start during a freeze), spent by the one transaction that acts on them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlmodel import col, select

from bot.store.models import OverrideVote
from bot.store.unit import Tx


def spend(tx: Tx, subject: str) -> int:
    """Deletes the subject's votes; returns how many there were (fewer than counted: another
    transaction spent them first)."""
    res = tx.session.execute(delete(OverrideVote).where(col(OverrideVote.subject) == subject))
    return int(getattr(res, "rowcount", 0) or 0)


def voters(tx: Tx, subject: str) -> tuple[str, ...]:
    """Who voted for the subject, in order."""
    return tuple(
        tx.session.exec(
            select(OverrideVote.actor)
            .where(OverrideVote.subject == subject)
            .order_by(col(OverrideVote.id))
        )
    )


def justifications(tx: Tx, subject: str, but: str) -> dict[str, str]:
    """What each voter of the subject but `but` said (voter → justification)."""
    return dict(
        tx.session.exec(
            select(OverrideVote.actor, OverrideVote.justification).where(
                OverrideVote.subject == subject, col(OverrideVote.actor) != but
            )
        ).all()
    )


def fresh(tx: Tx, subject: str, since: datetime) -> list[OverrideVote]:
    """The subject's votes cast since `since`, in order; older ones are deleted (a stale
    vote does not count)."""
    tx.session.execute(
        delete(OverrideVote).where(
            col(OverrideVote.subject) == subject, col(OverrideVote.at) < since
        )
    )
    return list(
        tx.session.exec(
            select(OverrideVote)
            .where(OverrideVote.subject == subject)
            .order_by(col(OverrideVote.id))
        )
    )
