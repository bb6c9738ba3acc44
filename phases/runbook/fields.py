"""What every runbook section shares: the strict base model, the id patterns, a value's type."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

Value = str | list[str]
ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"
REF_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}/[a-z0-9][a-z0-9_-]{0,39}$"  # "phase/step"
APPROVER_PATTERN = r"([TE][A-Z0-9]+:)?[UW][A-Z0-9]+|console:[a-z_][a-z0-9_.-]{0,31}"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
