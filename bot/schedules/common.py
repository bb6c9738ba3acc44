"""What the schedule modules share: the notices' timing, results and texts. Imports nothing of
the store (the queries are in bot/store/schedules.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

from bot import preflight
from bot.notices import when
from bot.schedules.errors import ScheduleError

if TYPE_CHECKING:
    from bot.store.models import Schedule

__all__ = [
    "EARLY_START",
    "EVENTS",
    "STALE_AFTER",
    "PreflightResult",
    "ScheduleError",
    "StartResult",
    "already_scheduled",
    "event_key",
]

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


def already_scheduled(other: Schedule) -> str:
    return (
        f"{other.environment} already has cutover #{other.id} scheduled for "
        f"{when(other.start_at)}; /cutover unschedule {other.id} first"
    )
