"""A completed run's sign-offs (`run_signoff`): one row per person, unique (run, person)."""

from __future__ import annotations

from sqlmodel import func, select

from bot.store.models import RunSignoff
from bot.store.unit import Tx


def of(tx: Tx, run_id: int, actor: str) -> RunSignoff | None:
    """This person's sign-off of the run, if any."""
    return tx.session.exec(
        select(RunSignoff).where(RunSignoff.run_id == run_id, RunSignoff.actor == actor)
    ).first()


def count(tx: Tx, run_id: int) -> int:
    """How many people signed the run off."""
    return int(
        tx.session.exec(
            select(func.count()).select_from(RunSignoff).where(RunSignoff.run_id == run_id)
        ).one()
    )
