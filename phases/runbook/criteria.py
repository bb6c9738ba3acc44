"""The success criteria and the record's notes fields, and what each is bound to."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, model_validator

from phases.runbook.fields import ID_PATTERN, REF_PATTERN, Strict


class CriterionSpec(Strict):
    """A success criterion and what shows it: a check's result, every monitoring round of
    a check, a manual step an approver ticked, or a person's sign-off. A criterion bound to
    nothing is reported as not verified, never guessed from its words."""

    id: str = Field(pattern=ID_PATTERN)
    text: str = Field(min_length=1, max_length=200)
    check: str | None = Field(default=None, pattern=REF_PATTERN)  # "phase/step": its latest result
    monitoring: str | None = Field(default=None, pattern=REF_PATTERN)  # "phase/step": every round
    minutes: int | None = Field(default=None, ge=1)  # monitoring must cover this long
    average_ms_below: int | None = Field(default=None, ge=1)  # monitoring: mean elapsed_ms
    # "phase/item" ticked by an approver
    manual: str | None = Field(default=None, pattern=REF_PATTERN)
    signoff: bool = False  # an approver signs it off (engine.sign_off)

    @model_validator(mode="before")
    @classmethod
    def from_text(cls, value: Any) -> Any:
        if isinstance(value, str):  # a bare line: bound to nothing
            slug = re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")[:40].strip("-")
            return {"id": slug or "criterion", "text": value}
        return value

    @model_validator(mode="after")
    def one_binding(self) -> CriterionSpec:
        bound = [x for x in (self.check, self.monitoring, self.manual) if x] + (
            ["signoff"] if self.signoff else []
        )
        if len(bound) > 1:
            raise ValueError("bind a criterion to one of check, monitoring, manual or signoff")
        if (self.minutes or self.average_ms_below) and not self.monitoring:
            raise ValueError("minutes and average_ms_below go with monitoring")
        return self

    @property
    def bound(self) -> bool:
        return bool(self.check or self.monitoring or self.manual or self.signoff)


class NotesField(Strict):
    """A line of the record's notes; `criterion` fills it from that criterion's verdict,
    `manual` ("phase/item") from that manual step's tick (who and when)."""

    name: str = Field(min_length=1, max_length=80)
    criterion: str | None = None
    manual: str | None = Field(default=None, pattern=REF_PATTERN)

    @model_validator(mode="after")
    def one_source(self) -> NotesField:
        if self.criterion and self.manual:
            raise ValueError(f"notes field {self.name!r}: give criterion or manual, not both")
        return self

    @model_validator(mode="before")
    @classmethod
    def from_text(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value
