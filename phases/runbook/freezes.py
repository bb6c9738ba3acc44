"""Change freezes: a date range or a weekly window within which starts are refused."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from phases.runbook.fields import ID_PATTERN, Strict

_HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class WeeklyWindow(Strict):
    """Every week on `days`, from `start` to `end` local time; an `end` not after `start`
    is on the next day (fri 18:00 → 08:00; 00:00 → 00:00 is the whole day)."""

    days: list[Day] = Field(min_length=1)
    start: str = Field(pattern=_HHMM)
    end: str = Field(pattern=_HHMM)


class FreezeSpec(Strict):
    """A change freeze: starts (not dry runs) and schedules of the environments it names
    (default: every one) are refused within it, saying who declared it, why and until when.
    An emergency start inside it is a break-glass: a justification and the override quorum.
    Either a date range (`start`, `end`: local ISO times, `YYYY-MM-DDTHH:MM`) or `weekly`,
    both in `timezone` (IANA)."""

    id: str = Field(pattern=ID_PATTERN)
    reason: str = Field(min_length=1, max_length=200)
    by: str = Field(default="the runbook", min_length=1, max_length=100)  # who declared it
    timezone: str = "UTC"
    start: str | None = None
    end: str | None = None
    weekly: WeeklyWindow | None = None
    environments: list[str] = Field(default_factory=list)  # empty: every environment

    @model_validator(mode="after")
    def one_kind(self) -> FreezeSpec:
        from datetime import datetime
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"freeze {self.id!r}: timezone {self.timezone!r} is not an IANA zone "
                "(e.g. UTC, Europe/Berlin)"
            ) from None
        ranged = self.start is not None or self.end is not None
        if ranged == (self.weekly is not None):
            raise ValueError(
                f"freeze {self.id!r}: give either start and end (a date range) or weekly"
            )
        if ranged:
            try:
                a = datetime.fromisoformat(str(self.start))
                b = datetime.fromisoformat(str(self.end))
            except ValueError:
                raise ValueError(
                    f"freeze {self.id!r}: start and end are local times like 2026-12-20T00:00"
                ) from None
            if a.tzinfo or b.tzinfo:
                raise ValueError(
                    f"freeze {self.id!r}: write start and end without an offset; the zone "
                    "is timezone"
                )
            if b <= a:
                raise ValueError(f"freeze {self.id!r}: end must be after start")
        return self
