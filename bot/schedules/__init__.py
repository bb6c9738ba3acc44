"""Scheduled cutovers: create, list, cancel and start them. Every surface uses this.

A schedule gets four `scheduled_event` rows when it is created (T-24h readiness,
T-1h stakeholder notice, T-1h checklist, T-0 start reminder); `bot.scheduler`
posts each when due, once. A run is only ever started by an approver (the
reminder's Start button or `/cutover start ENV`).
"""

from bot.schedules.booking import ScheduleBook
from bot.schedules.common import (
    EARLY_START,
    EVENTS,
    STALE_AFTER,
    PreflightResult,
    StartResult,
    already_scheduled,
    event_key,
)
from bot.schedules.errors import ScheduleError
from bot.schedules.reconcile import Reconciler
from bot.schedules.service import ScheduleService
from bot.schedules.start_gate import StartGate

__all__ = [
    "EARLY_START",
    "EVENTS",
    "STALE_AFTER",
    "PreflightResult",
    "Reconciler",
    "ScheduleBook",
    "ScheduleError",
    "ScheduleService",
    "StartGate",
    "StartResult",
    "already_scheduled",
    "event_key",
]
