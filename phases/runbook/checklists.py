"""The pre-cutover checklists (T-24h, T-1h) and the items among them that gate Start."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from phases.runbook.fields import ID_PATTERN, REF_PATTERN, Strict


class ChecklistItem(Strict):
    """A pre-cutover checklist line. With `gates_start: true` it must be done before the
    cutover may start: ticked by an approver (`/cutover tick`, the checkbox of the T-1h
    message), or, with `check: "phase/step"`, shown by that check's latest result (a
    readiness dry run: T-24h, T-1h, or `/cutover tick` asking the bot to check it now),
    which must have passed within `fresh_minutes`. A bare string is a line that gates
    nothing."""

    id: str | None = Field(default=None, pattern=ID_PATTERN)
    text: str = Field(min_length=1, max_length=150)
    gates_start: bool = False
    check: str | None = Field(default=None, pattern=REF_PATTERN)
    fresh_minutes: int | None = Field(default=None, ge=1, le=7 * 24 * 60)

    @model_validator(mode="before")
    @classmethod
    def from_text(cls, value: Any) -> Any:
        return {"text": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def marking(self) -> ChecklistItem:
        if self.gates_start and not self.id:
            raise ValueError(
                "an item with gates_start: true needs an id (people tick it by id: "
                "/cutover tick SCHEDULE ID)"
            )
        if self.check and not self.gates_start:
            raise ValueError("check binds an item that gates Start: add gates_start: true")
        if self.fresh_minutes is not None and not self.check:
            raise ValueError("fresh_minutes goes with check (how recent its result must be)")
        return self

    @property
    def fresh(self) -> int:
        """Minutes a bound check's passing result counts for (default 60)."""
        return self.fresh_minutes or DEFAULT_FRESH_MINUTES


DEFAULT_FRESH_MINUTES = 60


class Checklist(Strict):
    title: str
    items: list[ChecklistItem] = Field(min_length=1)
    phase: str | None = None  # id of the phase whose checks this checklist runs (dry run)


class PreCutover(Strict):
    t_minus_24h: Checklist
    t_minus_1h: Checklist
