"""Scheduled cutovers (`schedule`) and their notices (`scheduled_event`), as people book,
cancel and start them (bot.schedules); one schedule per environment and start time (a
unique key: a second booking of the same slot fails on insert, `Duplicate`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import col, select

from bot.domain import states
from bot.store.models import EventStatus, Run, Schedule, ScheduledEvent, ScheduleStatus
from bot.store.unit import Tx


def get(tx: Tx, schedule_id: int) -> Schedule | None:
    return tx.get(Schedule, schedule_id)


def lock(tx: Tx, schedule_id: int) -> Schedule:
    """The schedule row, locked; it must exist (NoResultFound otherwise)."""
    return tx.session.exec(
        select(Schedule).where(Schedule.id == schedule_id).with_for_update()
    ).one()


def every(tx: Tx) -> list[Schedule]:
    """Every schedule, soonest first."""
    return list(tx.session.exec(select(Schedule).order_by(col(Schedule.start_at))))


def with_status(tx: Tx, status: ScheduleStatus) -> list[Schedule]:
    return list(tx.session.exec(select(Schedule).where(Schedule.status == status)))


def waiting_in(tx: Tx, env_name: str) -> list[Schedule]:
    """The environment's schedules not started, cancelled or done yet, soonest first."""
    return list(
        tx.session.exec(
            select(Schedule)
            .where(Schedule.environment == env_name, Schedule.status == ScheduleStatus.SCHEDULED)
            .order_by(col(Schedule.start_at))
        )
    )


def blocking(tx: Tx, env_name: str, now: datetime, stale_after: timedelta) -> Schedule | None:
    """A scheduled cutover of the environment whose time has not been stale for long: one
    at a time (a schedule whose Start was never clicked stops blocking after `stale_after`)."""
    for other in tx.session.exec(
        select(Schedule).where(
            Schedule.environment == env_name, Schedule.status == ScheduleStatus.SCHEDULED
        )
    ):
        if other.start_at > now - stale_after:
            return other
    return None


def events_of(tx: Tx, schedule_ids: list[int | None]) -> list[ScheduledEvent]:
    """The notices of these schedules."""
    return list(
        tx.session.exec(
            select(ScheduledEvent).where(col(ScheduledEvent.schedule_id).in_(schedule_ids))
        )
    )


def drop_pending(tx: Tx, schedule_id: int) -> None:
    """Cancels every notice of the schedule still pending (one UPDATE, not one claim per
    row: a notice already claimed is being posted and is left to finish)."""
    tx.session.execute(
        update(ScheduledEvent)
        .where(
            col(ScheduledEvent.schedule_id) == schedule_id,
            col(ScheduledEvent.status) == EventStatus.PENDING,
        )
        .values(status=states.find("event", "cancel", EventStatus.PENDING).dest)
    )


def runs_in(tx: Tx, env_name: str) -> list[Run]:
    """The environment's runs, oldest first (a schedule is linked to the one started for it)."""
    return list(
        tx.session.exec(select(Run).where(Run.environment == env_name).order_by(col(Run.id)))
    )
