"""A monitoring window's rounds (`monitor_round`): what each round of a phase run saw, and
the window's optimistic claims (`bot.store.claims`: a conditional UPDATE moving one row by
the transition table, or nothing when another process moved it first)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, select

from bot.store.claims import claim
from bot.store.models import MonitorRound, PhaseRun, PhaseStatus, RoundStatus
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


def in_order(tx: Tx, phase_run_id: int) -> list[MonitorRound]:
    """The phase run's rounds, the first first."""
    return list(
        tx.session.exec(
            select(MonitorRound)
            .where(MonitorRound.phase_run_id == phase_run_id)
            .order_by(col(MonitorRound.round))
        )
    )


def first(tx: Tx, phase_run_id: int) -> MonitorRound | None:
    """The window's first round (round 0), if it was written."""
    return tx.session.exec(
        select(MonitorRound).where(
            MonitorRound.phase_run_id == phase_run_id, MonitorRound.round == 0
        )
    ).first()


def open_window(tx: Tx, phase_run_id: int) -> bool:
    """The phase run's `monitoring` move (claimed: False if another process made it)."""
    return claim(
        tx, PhaseRun, col(PhaseRun.id) == phase_run_id, values={}, move=("phase", "monitoring")
    )


def stop_window(tx: Tx, phase_run_id: int | None, now: datetime) -> bool:
    """The monitoring phase run's `failed` move, ended now (claimed)."""
    return claim(
        tx,
        PhaseRun,
        col(PhaseRun.id) == phase_run_id,
        values={"ended_at": now},
        move=("phase", "failed"),
        source=PhaseStatus.MONITORING,
    )


def reclaim(tx: Tx, r: MonitorRound, now: datetime, me: str) -> bool:
    """A running round whose runner died, claimed by `me` for another attempt."""
    return claim(
        tx,
        MonitorRound,
        col(MonitorRound.id) == r.id,
        col(MonitorRound.attempts) == r.attempts,
        col(MonitorRound.status) == RoundStatus.RUNNING,
        values={"attempts": r.attempts + 1, "claimed_at": now, "claimed_by": me},
    )


def end(
    tx: Tx, phase_run_id: int, index: int, attempts: int, status: str, now: datetime, results: str
) -> bool:
    """Round `index`'s attempt `attempts` ends `status` ("passed"/"failed") with its results
    (claimed: False if the round was reclaimed meanwhile)."""
    return claim(
        tx,
        MonitorRound,
        col(MonitorRound.phase_run_id) == phase_run_id,
        col(MonitorRound.round) == index,
        col(MonitorRound.attempts) == attempts,
        values={"ended_at": now, "results": results},
        move=("round", status),
        source=RoundStatus.RUNNING,
    )
