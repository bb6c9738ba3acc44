"""The runbook's post-cutover tasks (issue 24): what is left to do within 24 h of a completed
cutover, each with an optional owner who is reminded until it is done.

A task is a plain line (its id is made from its words, it has no owner: the environment's
approvers are reminded) or `{id, text, owner}`. `owner` is a Slack user id (`U…`, `W…`,
`TEAM:USER`), a Slack user group id (`S…`: every member may mark it done) or `console:NAME`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"
USER_PATTERN = r"([TE][A-Z0-9]+:)?[UW][A-Z0-9]+|console:[a-z_][a-z0-9_.-]{0,31}"
GROUP_PATTERN = r"S[A-Z0-9]+"
DEFAULT_REMINDER_HOURS = 4.0
WINDOW_HOURS = 24  # the runbook's "Post-Cutover Tasks (within 24 hours)"


class PostTaskSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ID_PATTERN)
    text: str = Field(min_length=1, max_length=200)
    owner: str | None = None

    @model_validator(mode="before")
    @classmethod
    def from_text(cls, value: Any) -> Any:
        if isinstance(value, str):  # a bare line: an id from its words, no owner
            slug = re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")[:40].strip("-")
            return {"id": slug or "task", "text": value}
        return value

    @field_validator("owner")
    @classmethod
    def owner_id(cls, value: str | None) -> str | None:
        if value is not None and not (
            re.fullmatch(USER_PATTERN, value) or re.fullmatch(GROUP_PATTERN, value)
        ):
            raise ValueError(
                f"owner {value!r} must be a Slack user id like U012AB3CD (or T0123:U012AB3CD), "
                "a user group id like S012AB3CD, or console:NAME for the console (ids, never "
                "display names or @handles)"
            )
        return value

    @property
    def group_owned(self) -> bool:
        return bool(self.owner and re.fullmatch(GROUP_PATTERN, self.owner))


def task_problems(tasks: Sequence[PostTaskSpec], item_ids: Iterable[str]) -> list[str]:
    """Ids must tell tasks apart, and from the pre-cutover items: `/cutover tick N ID` reads
    ID as run N's post-cutover task when it is one, else as schedule N's item."""
    ids = [t.id for t in tasks]
    out = [
        f"post-cutover task id {d!r} is repeated"
        for d in sorted({i for i in ids if ids.count(i) > 1})
    ]
    items = set(item_ids)
    out += [
        f"post-cutover task id {i!r} is also a pre-cutover item id: give one of them another "
        "id (/cutover tick tells them apart by id)"
        for i in sorted(set(ids) & items)
    ]
    return out
