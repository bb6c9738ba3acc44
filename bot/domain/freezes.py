"""Change freezes: is an environment frozen at an instant, by which freeze, until when.

Pure: the runbook's `freezes` (date ranges and weekly windows, each in its own IANA time
zone) against an instant. Back-to-back windows (sat 00:00-00:00 and sun 00:00-00:00) are one
freeze: `until` is when the environment is open again, not the end of the first day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from phases.runbook import FreezeSpec, Runbook

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Frozen:
    freeze: FreezeSpec
    until: datetime  # UTC: when this freeze ends (adjacent windows merged)

    def text(self, env_name: str) -> str:
        """Who declared it, why and until when: what a refusal says."""
        return (
            f"{env_name} is in the change freeze {self.freeze.id!r} declared by "
            f"{self.freeze.by}: {self.freeze.reason} (until "
            f"{self.until.strftime('%Y-%m-%d %H:%M UTC')})"
        )


def _windows(f: FreezeSpec, at: datetime) -> list[tuple[datetime, datetime]]:
    """The freeze's windows (UTC) that could contain `at` or follow it closely."""
    tz = ZoneInfo(f.timezone)
    if f.weekly is None:
        start = datetime.fromisoformat(str(f.start)).replace(tzinfo=tz)
        end = datetime.fromisoformat(str(f.end)).replace(tzinfo=tz)
        return [(start.astimezone(UTC), end.astimezone(UTC))]
    w = f.weekly
    local = at.astimezone(tz)
    out = []
    sh, sm = map(int, w.start.split(":"))
    eh, em = map(int, w.end.split(":"))
    for offset in range(-1, 9):
        day = (local + timedelta(days=offset)).date()
        if DAYS[day.weekday()] not in w.days:
            continue
        start = datetime(day.year, day.month, day.day, sh, sm, tzinfo=tz)
        end = datetime(day.year, day.month, day.day, eh, em, tzinfo=tz)
        if end <= start:
            end += timedelta(days=1)
        out.append((start.astimezone(UTC), end.astimezone(UTC)))
    return out


def frozen(runbook: Runbook, env_name: str, at: datetime) -> Frozen | None:
    """The freeze `env_name` is in at `at`, or None."""
    at = at.astimezone(UTC)
    for f in runbook.freezes:
        if f.environments and env_name not in f.environments:
            continue
        windows = sorted(_windows(f, at))
        hit = next(((a, b) for a, b in windows if a <= at < b), None)
        if hit is None:
            continue
        until = hit[1]
        for a, b in windows:  # merge the windows that start before this one ends
            if a <= until < b or (a == until):
                until = max(until, b)
        return Frozen(f, until)
    return None
