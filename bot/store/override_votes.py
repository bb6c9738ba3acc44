"""Break-glass votes (`override_vote`): one row per person and subject (a gate's override,
an emergency start during a freeze), spent by the one transaction that acts on them."""

from __future__ import annotations

from sqlalchemy import delete
from sqlmodel import col

from bot.models import OverrideVote
from bot.store.unit import Tx


def spend(tx: Tx, subject: str) -> int:
    """Deletes the subject's votes; returns how many there were (fewer than counted: another
    transaction spent them first)."""
    res = tx.session.execute(delete(OverrideVote).where(col(OverrideVote.subject) == subject))
    return int(getattr(res, "rowcount", 0) or 0)
