"""Times people type or pick: ISO 8601, a local time in an IANA zone, a form's fields."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from commands.parser.usage import UsageError

# An IANA zone name ("UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires"), not a time.
ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+)*")


def parse_time(value: str, now: datetime | None = None) -> datetime:
    """ISO 8601 with a time zone ("2026-03-01T14:00Z", "…T15:00+01:00"); never naive."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"{value!r} is not an ISO 8601 time; write e.g. 2026-03-01T14:00Z (no spaces)"
        ) from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise UsageError(
            f"{value!r} has no time zone; add Z (UTC) or an offset like +01:00, "
            "e.g. 2026-03-01T14:00Z"
        )
    if now is not None and when <= now:
        raise UsageError(f"{value} is in the past; pick a later time")
    return when


class FieldError(ValueError):
    """A wrong value in one field of a form (`field`: which one); the message says what to
    pick instead."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field, self.problem = field, problem


def local_instant(naive: datetime, zone: str) -> datetime:
    """A wall-clock time in an IANA zone as one aware datetime. A time the clocks skip
    (spring forward) or show twice (fall back) is refused with both instants it could mean:
    guessing one is how a cutover starts an hour early or late. Raises ValueError (the
    message says what to pick) or LookupError (no such zone)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise LookupError(zone) from None
    naive = naive.replace(tzinfo=None)
    first, second = naive.replace(tzinfo=tz, fold=0), naive.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first

    def reading(at: datetime) -> str:
        return f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC (as {at.tzname()}, {_offset(at)})"

    shown = f"{naive:%Y-%m-%d %H:%M} in {zone}"
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != naive:
        raise ValueError(
            f"{shown} does not exist: the clocks skip it (daylight saving). It could mean "
            f"{reading(first)} or {reading(second)}; pick a time outside the skipped hour."
        )
    raise ValueError(
        f"{shown} happens twice: the clocks go back (daylight saving). It could mean "
        f"{reading(first)} or {reading(second)}; pick another time, or type it with its "
        f"offset, e.g. {naive:%Y-%m-%dT%H:%M}{_offset(first)}."
    )


def _offset(at: datetime) -> str:
    off = at.strftime("%z")
    return f"{off[:3]}:{off[3:]}" if off else "+00:00"


def compose_time(date: str | None, clock: str | None, zone: str | None, now: datetime) -> datetime:
    """A form's date (YYYY-MM-DD), time (HH:MM) and IANA time zone as one aware datetime,
    after `now`. Raises FieldError naming the field to fix (a local time the clocks skip or
    show twice included: see local_instant)."""
    from datetime import date as date_type
    from datetime import time as time_type

    if not date:
        raise FieldError("date", "Pick the day of the cutover.")
    if not clock:
        raise FieldError("time", "Pick the start time.")
    if not zone:
        raise FieldError("tz", "Pick the time zone the start time is in.")
    try:
        day = date_type.fromisoformat(date)
    except ValueError:
        raise FieldError("date", f"{date!r} is not a date; write it as 2026-03-01.") from None
    try:
        at = time_type.fromisoformat(clock)
    except ValueError:
        raise FieldError("time", f"{clock!r} is not a time; write it as 14:00.") from None
    try:
        when = local_instant(datetime.combine(day, at.replace(tzinfo=None)), zone)
    except LookupError:
        raise FieldError(
            "tz", f"{zone!r} is not a time zone; pick one like UTC or Europe/Berlin."
        ) from None
    except ValueError as exc:
        raise FieldError("time", str(exc)) from None
    if when <= now:
        raise FieldError(
            "time",
            f"{when:%Y-%m-%d %H:%M} {zone} is in the past (now "
            f"{now.astimezone(when.tzinfo):%Y-%m-%d %H:%M} there); pick a later time.",
        )
    return when


def epoch_time(value: object, now: datetime) -> datetime:
    """A datetimepicker's answer (a UNIX time in seconds: the instant the person picked in
    their own time zone) as an aware UTC datetime after `now`. Raises FieldError."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise FieldError("when", "Pick the day and the start time.")
    try:
        seconds = int(value)
        when = datetime.fromtimestamp(seconds, UTC)
    except (ValueError, OverflowError, OSError):
        raise FieldError("when", f"{value!r} is not a time; pick the day and time.") from None
    if when <= now:
        raise FieldError(
            "when",
            f"{when:%Y-%m-%d %H:%M} UTC is in the past (now {now.astimezone(UTC):%Y-%m-%d %H:%M}"
            " UTC); pick a later time.",
        )
    return when


def zoned_time(value: str, zone: str, now: datetime | None) -> datetime:
    """`2026-03-29T14:00 Europe/Berlin`: a local time without offset, and its IANA zone."""
    try:
        naive = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"{value!r} is not an ISO 8601 time; write e.g. 2026-03-01T15:00 Europe/Berlin"
        ) from None
    if naive.tzinfo is not None:
        raise UsageError(
            f"{value!r} has an offset and {zone!r} is a zone: give one of them, e.g. "
            f"{naive:%Y-%m-%dT%H:%M} {zone}"
        )
    try:
        when = local_instant(naive, zone)
    except LookupError:
        raise UsageError(
            f"{zone!r} is not a time zone; write an IANA name like UTC or Europe/Berlin"
        ) from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if now is not None and when <= now:
        raise UsageError(f"{value} {zone} is in the past; pick a later time")
    return when
