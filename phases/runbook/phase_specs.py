"""A phase of the runbook: its estimate, its steps, its checkpoint and its monitor rounds."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, model_validator

from phases import tick_values
from phases.runbook.fields import ID_PATTERN, Strict
from phases.runbook.steps import ManualStep, StepSpec


class Estimate(Strict):
    min: int = Field(ge=0)
    max: int = Field(ge=0)

    @model_validator(mode="before")
    @classmethod
    def parse_range(cls, value: Any) -> Any:
        if isinstance(value, int):
            return {"min": value, "max": value}
        if isinstance(value, str):
            m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+))?\s*", value)
            if not m:
                raise ValueError("estimate must be minutes like 10 or a range like '10-15'")
            lo = int(m.group(1))
            return {"min": lo, "max": int(m.group(2) or lo)}
        return value

    @model_validator(mode="after")
    def ordered(self) -> Estimate:
        if self.max < self.min:
            raise ValueError("estimate range must be low-high")
        return self

    def __str__(self) -> str:
        return f"{self.min} min" if self.min == self.max else f"{self.min}-{self.max} min"


class MonitorSpec(Strict):
    every_minutes: int = Field(default=5, ge=1, le=60)
    for_minutes: int = Field(default=30, ge=1, le=24 * 60)


class PhaseSpec(Strict):
    id: str = Field(pattern=ID_PATTERN)
    # The runbook's own number for people (NostrMaxi's "Phase 4" is the 5th phase, after
    # readiness as phase 0); default: position from 1.
    number: int | None = Field(default=None, ge=0, le=999)
    name: str = Field(min_length=1, max_length=100)
    estimate_minutes: Estimate
    location: str | None = None
    actions: list[StepSpec] = Field(default_factory=list)
    checks: list[StepSpec] = Field(default_factory=list)
    manual: list[ManualStep] = Field(default_factory=list)
    checkpoint: str = Field(min_length=1, max_length=200)
    on_fail: Literal["rollback", "restore_and_rollback"] = "rollback"
    monitor: MonitorSpec | None = None  # repeat the checks on a schedule (post-cutover)

    @model_validator(mode="after")
    def unique_step_ids(self) -> PhaseSpec:
        ids = (
            [s.id for s in self.actions]
            + [s.id for s in self.checks]
            + [m.id for m in self.manual]
            + [c.id for c in self.tick_checks]
        )
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(
                f"step ids must be unique within a phase; repeated: {', '.join(dupes)}"
            )
        if not (self.actions or self.checks or self.manual):
            raise ValueError("a phase needs at least one action, check or manual step")
        actions = [a.id for a in self.actions]
        checks = [c.id for c in self.checks]
        for m in self.manual:
            if m.done_by and m.done_by not in actions:
                raise ValueError(
                    f"manual step {m.id!r}: done_by {m.done_by!r} is not an action of this "
                    f"phase; its actions: {', '.join(actions) or 'none'}"
                )
            if m.ask_unless and m.ask_unless not in checks:
                raise ValueError(
                    f"manual step {m.id!r}: ask_unless {m.ask_unless!r} is not a check of this "
                    f"phase; its checks: {', '.join(checks) or 'none'}"
                )
        values = {(m.id, m.value.name) for m in self.manual if m.value}
        for m in self.manual:
            for c in m.checks:
                for item, name in sorted(tick_values.refs(c.params) - values):
                    raise ValueError(
                        f"manual step {m.id!r}, check {c.id!r}: {{tick/{item}/{name}}} names no "
                        f"value of this phase's manual steps; declared: "
                        + (", ".join(f"tick/{i}/{n}" for i, n in sorted(values)) or "none")
                    )
        return self

    @property
    def tick_checks(self) -> list[StepSpec]:
        """The checks its manual steps run once ticked (never with the phase's checks)."""
        return [c for m in self.manual for c in m.checks]


HEADER_SPAN = re.compile(r"\s*(\d+)\s*(?:-\s*(\d+))?\s*(h|hours?|min|minutes?)\s*", re.IGNORECASE)


def header_minutes(header: str) -> tuple[int, int] | None:
    """ "2-4 hours" → (120, 240), "90 min" → (90, 90); other words → None (quoted as given)."""
    m = HEADER_SPAN.fullmatch(header)
    if m is None:
        return None
    unit = 60 if m.group(3).lower().startswith("h") else 1
    lo = int(m.group(1))
    return lo * unit, int(m.group(2) or lo) * unit
