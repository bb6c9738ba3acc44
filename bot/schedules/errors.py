"""What the schedule modules refuse with. Imports nothing of the store: a surface may catch
it without reaching the database, even indirectly."""

from __future__ import annotations

from bot.domain.errors import CutoverError


class ScheduleError(CutoverError):
    """A schedule request refused; the message says why and what to type instead."""
