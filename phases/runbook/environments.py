"""Where a runbook runs: an environment's targets, approvers, quorums and template values."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

from pydantic import Field, field_validator, model_validator

from phases.runbook.fields import APPROVER_PATTERN, Strict, Value
from phases.runbook.variables import expand_env_vars
from phases.signoff_spec import SignoffSpec, signoff_problem


class EnvironmentSpec(Strict):
    """Where a runbook runs. String values may hold ${VAR} read from the bot's environment."""

    domain: str
    base_url: str
    expected_ip: str | None = None
    compose_project: str | None = None
    env_file: str | None = None
    database_url: str | None = None
    channel: str | None = None  # where runs of this environment are posted
    # Where stakeholders hear start, phases passed, the end or the rollback, and the record
    # (a schedule's --stakeholders channel wins for its run).
    stakeholders: str | None = None
    approvers: list[str] = Field(default_factory=list)  # "TEAM:USER" or "USER" ids
    approver_groups: list[str] = Field(default_factory=list)  # Slack user group ids
    quorum: int = Field(default=1, ge=1, le=10)
    allow_self_approval: bool = True
    gate_timeout_minutes: int = Field(default=30, ge=1)
    vars: dict[str, str | list[str]] = Field(default_factory=dict)
    # Keys of the env file whose values are not secret (DOMAIN, NODE_ENV): shown as they are.
    # Every other value of the env file is masked wherever the bot shows text.
    public_env_keys: list[str] = Field(default_factory=list)

    slack_team: str | None = Field(default=None, pattern=r"^[TE][A-Z0-9]+$")
    # Break-glass overrides (continue past a failed overridable step, an emergency start in a
    # freeze): who may vote (default: the approvers) and how many must (default: quorum + 1;
    # never fewer than 2, so whoever asks can never decide it alone).
    override_approvers: list[str] = Field(default_factory=list)
    override_approver_groups: list[str] = Field(default_factory=list)
    override_quorum: int | None = Field(default=None, ge=2, le=11)
    signoff: SignoffSpec | None = None  # who signs the completed run off (phases/signoff_spec.py)

    @field_validator("approvers", "override_approvers")
    @classmethod
    def approver_ids(cls, values: list[str]) -> list[str]:
        for v in values:
            if not re.fullmatch(APPROVER_PATTERN, v):
                raise ValueError(
                    f"approver {v!r} must be a Slack user id like U012AB3CD or T0123:U012AB3CD "
                    "(ids, never display names), or console:NAME for the console"
                )
        return values

    @model_validator(mode="after")
    def approvers_have_team(self) -> EnvironmentSpec:
        bare = [a for a in [*self.approvers, *self.override_approvers] if ":" not in a]
        if bare and not self.slack_team:
            raise ValueError(
                f"approvers {', '.join(bare)} have no team: set slack_team or write TEAM:USER"
            )
        return self

    @model_validator(mode="after")
    def signoff_workable(self) -> EnvironmentSpec:
        problem = signoff_problem(self)
        if problem:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def quorum_reachable(self) -> EnvironmentSpec:
        """Every permitted starter must leave `quorum` people who may approve their run.

        User groups cannot be counted offline: with groups, the bot checks again at start.
        """
        if self.approver_groups:
            return self
        voters = self.listed_voters_per_starter()
        if voters < self.quorum:
            who = "other approvers" if not self.allow_self_approval else "approvers"
            raise ValueError(
                f"quorum {self.quorum} can never be reached: a run started by one of the "
                f"{len(self.approvers)} approvers leaves {max(voters, 0)} {who} to vote"
                + (" (allow_self_approval is false)" if not self.allow_self_approval else "")
                + "; add approvers or approver_groups, or lower quorum"
            )
        return self

    def listed_voters_per_starter(self) -> int:
        """How many listed approvers may vote on a run one of them started (only approvers
        may start; with self-approval off the starter is not one of the voters)."""
        return max(len(self.approver_set()) - (0 if self.allow_self_approval else 1), 0)

    def override_quorum_for(self, gate_quorum: int | None = None) -> int:
        """How many must vote for a break-glass override: `override_quorum`, else one more
        than the gate's quorum (the environment's, for an emergency start)."""
        return self.override_quorum or (gate_quorum or self.quorum) + 1

    def override_approver_set(self) -> frozenset[str]:
        """Who may vote for an override, fully qualified: `override_approvers`, or (none
        listed, no override groups) the environment's approvers."""
        listed = self.override_approvers
        if not listed and not self.override_approver_groups:
            return self.approver_set()
        return frozenset(a if ":" in a else f"{self.slack_team}:{a}" for a in listed)

    def override_groups(self) -> list[str]:
        """The user groups whose members may vote for an override."""
        if self.override_approvers or self.override_approver_groups:
            return list(self.override_approver_groups)
        return list(self.approver_groups)

    def override_problem(self) -> str | None:
        """Why an override could never reach its quorum (counted as `quorum_reachable`
        counts: a starter who may not approve their own run leaves the others), or None."""
        if self.override_groups():
            return None  # members are counted when the request arrives
        voters = len(self.override_approver_set())
        if not self.allow_self_approval:
            voters -= 1
        need = self.override_quorum_for()
        if voters >= need:
            return None
        return (
            f"an override needs {need} approvers (override_quorum, default quorum + 1) but "
            f"only {max(voters, 0)} could vote; add override_approvers or lower override_quorum"
        )

    def approver_set(self) -> frozenset[str]:
        """Fully qualified ids (TEAM:USER, console:NAME): identity is team + user, never a name."""
        return frozenset(a if ":" in a else f"{self.slack_team}:{a}" for a in self.approvers)

    def template_values(
        self,
        defaults: Mapping[str, Value] | None = None,
        *,
        expand: bool = True,
        variables: Collection[str] = (),
    ) -> dict[str, Value]:
        """The names a step parameter may use as {name}; ${VAR}s filled from the environment
        (only those `variable_refusal` allows with the runbook's `variables`)."""
        values: dict[str, Value] = dict(defaults or {})
        values.update(
            {
                k: v
                for k, v in self.model_dump(
                    exclude={
                        "approvers",
                        "approver_groups",
                        "override_approvers",
                        "override_approver_groups",
                        "vars",
                        "slack_team",
                        "public_env_keys",
                    }
                ).items()
                if isinstance(v, str)
            }
        )
        values.update(self.vars)
        if not expand:
            return values
        return {
            k: [expand_env_vars(x, None, variables) for x in v]
            if isinstance(v, list)
            else expand_env_vars(v, None, variables)
            for k, v in values.items()
        }
