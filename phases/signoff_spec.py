"""Who signs off a cutover: an environment's `signoff` names the people (Slack user ids, as
approvers are named) and user groups who must sign the completed run off, and how many.

    environments:
      prod:
        signoff:
          by: [U0123ABCD, T0123:U0456EFGH]   # people, by id (never a display name)
          groups: [S0789IJKL]                # or members of these Slack user groups
          quorum: 1                          # how many different people must sign (default 1)

An environment without `signoff` asks nobody: its record says no sign-off was asked, never
who it might have been. Bare user ids take the environment's `slack_team`, as approvers do.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from phases.runbook import EnvironmentSpec

SIGNER_PATTERN = r"([TE][A-Z0-9]+:)?[UW][A-Z0-9]+|console:[a-z_][a-z0-9_.-]{0,31}"
GROUP_PATTERN = r"S[A-Z0-9]+"


class SignoffSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    by: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    quorum: int = Field(default=1, ge=1, le=10)

    @field_validator("by")
    @classmethod
    def signer_ids(cls, values: list[str]) -> list[str]:
        for v in values:
            if not re.fullmatch(SIGNER_PATTERN, v):
                raise ValueError(
                    f"signoff.by {v!r} must be a Slack user id like U012AB3CD or "
                    "T0123:U012AB3CD (ids, never display names), or console:NAME"
                )
        return values

    @field_validator("groups")
    @classmethod
    def group_ids(cls, values: list[str]) -> list[str]:
        for v in values:
            if not re.fullmatch(GROUP_PATTERN, v):
                raise ValueError(f"signoff.groups {v!r} must be a Slack user group id like S0123")
        return values

    @model_validator(mode="after")
    def names_someone(self) -> SignoffSpec:
        if not self.by and not self.groups:
            raise ValueError(
                "signoff names nobody: list people in `by` (user ids) or `groups` (user group "
                "ids), or leave signoff out (then no sign-off is asked)"
            )
        return self


def signers(spec: SignoffSpec, slack_team: str | None) -> list[str]:
    """The people named, fully qualified (TEAM:USER, console:NAME), in the runbook's order."""
    return [s if ":" in s else f"{slack_team}:{s}" for s in spec.by]


def signoff_problem(env: EnvironmentSpec) -> str | None:
    """Why an environment's `signoff` cannot work (no team for bare ids; a quorum the named
    people can never reach, counting the starter out when self-approval is off), or None."""
    spec = env.signoff
    if spec is None:
        return None
    bare = [s for s in spec.by if ":" not in s]
    if bare and not env.slack_team:
        return f"signoff.by {', '.join(bare)} have no team: set slack_team or write TEAM:USER"
    if spec.groups:
        return None  # members are counted when the sign-offs arrive
    named = set(signers(spec, env.slack_team))
    could = len(named) - (0 if env.allow_self_approval or not named & env.approver_set() else 1)
    if could < spec.quorum:
        return (
            f"signoff.quorum {spec.quorum} can never be reached: signoff.by names {len(named)} "
            "people"
            + ("" if env.allow_self_approval else " and the starter may not sign their own run")
            + "; name more or lower the quorum"
        )
    return None
