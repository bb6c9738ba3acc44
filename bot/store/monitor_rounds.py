"""A monitoring window's rounds (`monitor_round`): what each round of a phase run saw."""

from __future__ import annotations

from sqlmodel import col, select

from bot.models import MonitorRound
from bot.store.unit import Tx


def newest_first(tx: Tx, phase_run_id: int) -> list[MonitorRound]:
    """The phase run's rounds, the newest first."""
    return list(
        tx.session.exec(
            select(MonitorRound)
            .where(MonitorRound.phase_run_id == phase_run_id)
            .order_by(col(MonitorRound.round).desc())
        )
    )
