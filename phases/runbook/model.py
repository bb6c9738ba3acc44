"""The runbook as data: the top-level model a runbook file is validated into, and its questions."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping

from pydantic import Field, PrivateAttr, model_validator

from phases.post_tasks import DEFAULT_REMINDER_HOURS, PostTaskSpec
from phases.runbook.advisories import runbook_warnings
from phases.runbook.checklists import ChecklistItem, PreCutover
from phases.runbook.criteria import CriterionSpec, NotesField
from phases.runbook.environments import EnvironmentSpec
from phases.runbook.fields import Strict, Value
from phases.runbook.freezes import FreezeSpec
from phases.runbook.phase_specs import Estimate, PhaseSpec, header_minutes
from phases.runbook.references import check_references
from phases.runbook.steps import StepSpec
from phases.runbook.variables import ENV_VAR, expand_env_vars, variable_refusal
from phases.secrets import url_userinfo
from phases.yaml_loader import RunbookError


class Contact(Strict):
    role: str = Field(min_length=1, max_length=80)
    who: str = Field(min_length=1, max_length=200)


class Runbook(Strict):
    name: str
    version: str = "1"  # the runbook's own version; the file format's is `format:`
    # Older names the file used, read as today's (phases/runbook_format.py): warned of.
    _deprecated: list[str] = PrivateAttr(default_factory=list)
    description: str = ""
    estimated_duration: str | None = None
    rollback_time_minutes: int | None = None
    user_impact: str | None = Field(default=None, max_length=300)  # told to stakeholders at T-1h
    contacts: list[Contact] = Field(default_factory=list)  # the runbook's emergency contacts
    pre_cutover: PreCutover | None = None
    phases: list[PhaseSpec] = Field(min_length=1)
    rollback: list[StepSpec] = Field(default_factory=list)
    restore: list[StepSpec] = Field(default_factory=list)
    # Checks after the rollback steps: the old service is back and healthy (verified rollback).
    rollback_checks: list[StepSpec] = Field(default_factory=list)
    # How long after a run completed `/cutover revert` may undo it (its restore and
    # rollback steps, as a new run): the runbook's "first 24 hours are critical". 0: never.
    revert_window_hours: float = Field(default=24, ge=0, le=24 * 30)
    success_criteria: list[CriterionSpec] = Field(default_factory=list)
    post_cutover_tasks: list[PostTaskSpec] = Field(default_factory=list)  # phases/post_tasks.py
    post_cutover_reminder_hours: float = Field(default=DEFAULT_REMINDER_HOURS, gt=0, le=24)
    notes_fields: list[NotesField] = Field(default_factory=list)
    vars: dict[str, str | list[str]] = Field(default_factory=dict)  # defaults for every environment
    # The bot's environment variables a ${VAR} may read besides CUTOVER_RUNBOOK_*: the
    # bot's own settings (SLACK_*, CUTOVER_*, DATABASE_URL, PG*) never, listed or not.
    variables: list[str] = Field(default_factory=list)
    environments: dict[str, EnvironmentSpec] = Field(min_length=1)
    # Break-glass for every step that does not say otherwise (`overridable` on a step wins;
    # a `critical: hard` step never is).
    overridable: bool = False
    freezes: list[FreezeSpec] = Field(default_factory=list)  # change freezes

    @model_validator(mode="after")
    def references(self) -> Runbook:
        """What one section names in another must exist (phases/runbook/references.py)."""
        check_references(self)
        return self

    def warnings(self) -> list[str]:
        """What `runbook check` points out without refusing (phases/runbook/advisories.py)."""
        return runbook_warnings(self)

    def estimate(self) -> Estimate:
        """The run's one estimated duration: the sum of its phases' estimates, the numbers the
        bot times each phase against. The notice, the start line, the status and the run's
        message all print this (via estimate_text), so no two places give two estimates."""
        return Estimate(
            min=sum(p.estimate_minutes.min for p in self.phases),
            max=sum(p.estimate_minutes.max for p in self.phases),
        )

    def estimate_text(self) -> str:
        """The estimate in words; where the runbook's header (`estimated_duration`) gives
        another span, it is quoted beside it as the header's words, never as a second
        estimate ("105-115 min by its phases (the runbook's header says 2-4 hours)")."""
        est = self.estimate()
        header = self.estimated_duration
        if not header or header_minutes(header) == (est.min, est.max):
            return str(est)
        return f"{est} by its phases (the runbook's header says {header})"

    def start_items(self) -> list[ChecklistItem]:
        """The pre-cutover items that must be done before a cutover may start."""
        if self.pre_cutover is None:
            return []
        return [
            i
            for cl in (self.pre_cutover.t_minus_24h, self.pre_cutover.t_minus_1h)
            for i in cl.items
            if i.gates_start
        ]

    def criterion(self, criterion_id: str) -> CriterionSpec:
        for c in self.success_criteria:
            if c.id == criterion_id:
                return c
        known = ", ".join(c.id for c in self.success_criteria) or "none"
        raise RunbookError(f"no success criterion {criterion_id!r}; this runbook has: {known}")

    def phase_number(self, index: int) -> str:
        number = self.phases[index].number
        return str(index + 1 if number is None else number)

    def phase(self, phase_id: str) -> PhaseSpec:
        for p in self.phases:
            if p.id == phase_id:
                return p
        raise KeyError(phase_id)

    def environment(self, name: str) -> EnvironmentSpec:
        try:
            return self.environments[name]
        except KeyError:
            known = ", ".join(sorted(self.environments))
            raise RunbookError(
                f"unknown environment {name!r}; this runbook defines: {known}"
            ) from None

    def values_for(self, env_name: str, *, expand: bool = True) -> dict[str, Value]:
        return self.environment(env_name).template_values(
            self.vars, expand=expand, variables=self.variables
        )

    def secret_values(self, env_name: str, environ: Mapping[str, str] | None = None) -> list[str]:
        """What the bot must never show for an environment, known before any file is read:
        every ${VAR} value its strings use (and the runbook-wide vars), and the userinfo of
        every URL among its values. Unset ${VAR}s are skipped (starting reports them)."""
        env = os.environ if environ is None else environ
        raw = self.values_for(env_name, expand=False)
        found: list[str] = []
        for value in raw.values():
            for item in value if isinstance(value, list) else [value]:
                names = ENV_VAR.findall(item)
                if any(variable_refusal(n, self.variables) for n in names):
                    continue  # never read (loading refuses such a runbook)
                found += [env[n] for n in names if n in env]
                with contextlib.suppress(RunbookError):
                    found += url_userinfo(expand_env_vars(item, env, self.variables))
        return found

    def step_overridable(self, step: StepSpec) -> bool:
        """Whether a failed `step` may be passed over by a break-glass override."""
        if step.critical == "hard":
            return False
        return step.overridable if step.overridable is not None else self.overridable

    def overrides_possible(self) -> bool:
        """True if any phase step may be overridden, or a freeze may be broken by an emergency
        start (then override quorums must be reachable)."""
        steps = [st for p in self.phases for st in [*p.actions, *p.checks]]
        return bool(self.freezes) or any(self.step_overridable(st) for st in steps)

    def all_steps(self) -> list[tuple[str, str, StepSpec]]:
        """(where, section, step) for every step, for validation and listing."""
        out: list[tuple[str, str, StepSpec]] = []
        for p in self.phases:
            out += [(f"phase {p.id!r}", "actions", s) for s in p.actions]
            out += [(f"phase {p.id!r}", "checks", s) for s in p.checks]
            out += [
                (f"phase {p.id!r} > manual {m.id!r}", "checks", s)
                for m in p.manual
                for s in m.checks
            ]
        out += [("rollback", "rollback", s) for s in self.rollback]
        out += [("restore", "restore", s) for s in self.restore]
        out += [("rollback_checks", "checks", s) for s in self.rollback_checks]
        return out
