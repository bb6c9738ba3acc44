"""What the schedule modules share: the notices' timing, results, errors and row helpers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import update
from sqlmodel import Session, col, select

from bot import preflight
from bot.domain import states
from bot.engine import EngineError
from bot.models import EventStatus, Schedule, ScheduledEvent, ScheduleStatus
from bot.notices import when

# (kind, how long before the start time it is due)
EVENTS: list[tuple[str, timedelta]] = [
    ("t-24h", timedelta(hours=24)),
    ("t-1h", timedelta(hours=1)),
    ("t-1h-checklist", timedelta(hours=1)),
    ("t-0", timedelta(0)),
]
# A run started this long before the scheduled time (or later) is that schedule's run.
EARLY_START = timedelta(hours=1)
# A schedule whose time passed this long ago without a run no longer blocks a new one.
STALE_AFTER = timedelta(hours=12)


class ScheduleError(EngineError):
    """A schedule request refused; the message says why and what to type instead."""


@dataclass(frozen=True)
class PreflightResult:
    items: list[preflight.Item]
    text: str  # masked report, checkpoint-like: one line per item with its evidence
    elapsed_ms: int

    @property
    def failed(self) -> list[preflight.Item]:
        return [i for i in self.items if i.status == "fail"]


@dataclass(frozen=True)
class StartResult:
    outcome: Literal["started", "refused", "already_started", "unknown"]
    message: str
    run_id: int | None = None


def event_key(schedule_id: int, kind: str) -> str:
    return f"schedule:{schedule_id}:{kind}"


def blocking_schedule(s: Session, env_name: str, now: datetime) -> Schedule | None:
    """A scheduled cutover of the environment whose time has not been stale for long: one
    at a time (a schedule whose Start was never clicked stops blocking after STALE_AFTER)."""
    for other in s.exec(
        select(Schedule).where(
            Schedule.environment == env_name, Schedule.status == ScheduleStatus.SCHEDULED
        )
    ):
        if other.start_at > now - STALE_AFTER:
            return other
    return None


def already_scheduled(other: Schedule) -> str:
    return (
        f"{other.environment} already has cutover #{other.id} scheduled for "
        f"{when(other.start_at)}; /cutover unschedule {other.id} first"
    )


def drop_pending(s: Session, schedule_id: int) -> None:
    s.execute(  # every pending notice of the schedule, not one row: no claim
        update(ScheduledEvent)
        .where(
            col(ScheduledEvent.schedule_id) == schedule_id,
            col(ScheduledEvent.status) == EventStatus.PENDING,
        )
        .values(status=states.find("event", "cancel", EventStatus.PENDING).dest)
    )
