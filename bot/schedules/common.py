"""What the schedule modules share: the notices' timing, results and texts. Imports nothing of
the store (the queries are in bot/store/schedules.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from bot import preflight
from bot.notices import EVENTS as EVENTS  # re-exported: surfaces read it there
from bot.notices import already_scheduled_text
from bot.ports import StartResult as StartResult  # re-exported: the plain data
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


def event_key(schedule_id: int, kind: str) -> str:
    return f"schedule:{schedule_id}:{kind}"


def already_scheduled(other: Schedule) -> str:
    return already_scheduled_text(other.environment, other.id, other.start_at)
