"""The runbook as data: a YAML file validated with pydantic.

Errors name the file, the phase, the step and the field, so whoever wrote the
runbook can fix it without reading this code.
"""

from __future__ import annotations

import contextlib
import os
import re
import string
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from phases import runbook_format, tick_values
from phases.checks import REGISTRY, StepKind
from phases.checks.base import StepParams
from phases.post_tasks import DEFAULT_REMINDER_HOURS, PostTaskSpec, task_problems
from phases.secrets import url_userinfo
from phases.signoff_spec import SignoffSpec, signoff_problem
from phases.yaml_loader import RunbookError as RunbookError  # re-exported: its old home
from phases.yaml_loader import load_yaml_file

Value = str | list[str]
ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"
_REF = r"^[a-z0-9][a-z0-9_-]{0,39}/[a-z0-9][a-z0-9_-]{0,39}$"  # "phase/step"
APPROVER_PATTERN = r"([TE][A-Z0-9]+:)?[UW][A-Z0-9]+|console:[a-z_][a-z0-9_.-]{0,31}"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StepSpec(Strict):
    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=150)
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)
    timeout: float = Field(default=30.0, gt=0, le=3600)
    # A non-critical FAIL is shown as WARN and does not block the gate. `hard`: blocks it, and
    # no break-glass override may ever pass over it (docs/approvals.md).
    critical: bool | Literal["hard"] = True
    # Break-glass: approvers may continue past this step's FAIL/ERROR with a justification and
    # the override quorum. None: as the runbook's `overridable` says. Never with critical: hard.
    overridable: bool | None = None
    # An abort (or a lost lease) stops a running command: SIGTERM to its process group, then
    # SIGKILL if it still runs this many seconds later.
    stop_grace_seconds: float = Field(default=10.0, ge=0, le=600)

    @model_validator(mode="after")
    def hard_is_never_overridable(self) -> StepSpec:
        if self.critical == "hard" and self.overridable:
            raise ValueError(
                "a step with critical: hard can never be overridden: drop overridable: true "
                "or make it critical: true"
            )
        return self


class ManualStep(Strict):
    """Something a person does and an approver ticks before the phase's Continue.

    `undoes`: the pre-cutover item this step reverses (the T-1h maintenance page, disabled
    again in Phase 8). That item gates Start, so every real run had it ticked, and this step
    is its required counterpart. `done_by`: an action of the same phase that does it (a
    status-page API call): when that action passed, the bot ticks the step itself, naming
    the action and its evidence; otherwise a person ticks it. `ask_unless`: a check of the
    same phase whose pass makes the step needless ("test the payment webhook by hand if no
    organic payment was seen"): when the checkpoint opens and that check passed (a
    monitoring phase: in any round), the bot ticks the step, quoting the check's evidence;
    otherwise the step is asked of a person like any other. `value`: what its tick must
    carry (phases/tick_values.py: a claimed NIP-05 name's pubkey); `checks`: what the bot
    checks once it is ticked, with `{tick/ITEM/NAME}` filled from the gate's ticks.
    `on_restart`: what the process that holds the run next does with those checks when the
    one running them died (a restart, a dead replica): `rerun` them (declare it only for
    checks safe to repeat: a lookup, a log read), or `ask` (the default: nothing is repeated
    silently; the checkpoint says they were interrupted, and a person ticks again or
    Retries)."""

    id: str = Field(pattern=ID_PATTERN)
    text: str = Field(min_length=1, max_length=150)
    undoes: str | None = Field(default=None, pattern=ID_PATTERN)
    done_by: str | None = Field(default=None, pattern=ID_PATTERN)
    ask_unless: str | None = Field(default=None, pattern=ID_PATTERN)
    value: tick_values.TickValue | None = None
    checks: list[StepSpec] = Field(default_factory=list)
    on_restart: Literal["rerun", "ask"] = "ask"

    @model_validator(mode="after")
    def rerun_needs_checks(self) -> ManualStep:
        if self.on_restart == "rerun" and not self.checks:
            raise ValueError(f"manual step {self.id}: on_restart: rerun needs checks to re-run")
        return self


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


class MonitorSpec(Strict):
    every_minutes: int = Field(default=5, ge=1, le=60)
    for_minutes: int = Field(default=30, ge=1, le=24 * 60)


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
    check: str | None = Field(default=None, pattern=_REF)
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


class CriterionSpec(Strict):
    """A success criterion and what shows it: a check's result, every monitoring round of
    a check, a manual step an approver ticked, or a person's sign-off. A criterion bound to
    nothing is reported as not verified, never guessed from its words."""

    id: str = Field(pattern=ID_PATTERN)
    text: str = Field(min_length=1, max_length=200)
    check: str | None = Field(default=None, pattern=_REF)  # "phase/step": its latest result
    monitoring: str | None = Field(default=None, pattern=_REF)  # "phase/step": every round
    minutes: int | None = Field(default=None, ge=1)  # monitoring must cover this long
    average_ms_below: int | None = Field(default=None, ge=1)  # monitoring: mean elapsed_ms
    manual: str | None = Field(default=None, pattern=_REF)  # "phase/item" ticked by an approver
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
    manual: str | None = Field(default=None, pattern=_REF)

    @model_validator(mode="after")
    def one_source(self) -> NotesField:
        if self.criterion and self.manual:
            raise ValueError(f"notes field {self.name!r}: give criterion or manual, not both")
        return self

    @model_validator(mode="before")
    @classmethod
    def from_text(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


_HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class WeeklyWindow(Strict):
    """Every week on `days`, from `start` to `end` local time; an `end` not after `start`
    is on the next day (fri 18:00 → 08:00; 00:00 → 00:00 is the whole day)."""

    days: list[Day] = Field(min_length=1)
    start: str = Field(pattern=_HHMM)
    end: str = Field(pattern=_HHMM)


class FreezeSpec(Strict):
    """A change freeze: starts (not dry runs) and schedules of the environments it names
    (default: every one) are refused within it, saying who declared it, why and until when.
    An emergency start inside it is a break-glass: a justification and the override quorum.
    Either a date range (`start`, `end`: local ISO times, `YYYY-MM-DDTHH:MM`) or `weekly`,
    both in `timezone` (IANA)."""

    id: str = Field(pattern=ID_PATTERN)
    reason: str = Field(min_length=1, max_length=200)
    by: str = Field(default="the runbook", min_length=1, max_length=100)  # who declared it
    timezone: str = "UTC"
    start: str | None = None
    end: str | None = None
    weekly: WeeklyWindow | None = None
    environments: list[str] = Field(default_factory=list)  # empty: every environment

    @model_validator(mode="after")
    def one_kind(self) -> FreezeSpec:
        from datetime import datetime
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"freeze {self.id!r}: timezone {self.timezone!r} is not an IANA zone "
                "(e.g. UTC, Europe/Berlin)"
            ) from None
        ranged = self.start is not None or self.end is not None
        if ranged == (self.weekly is not None):
            raise ValueError(
                f"freeze {self.id!r}: give either start and end (a date range) or weekly"
            )
        if ranged:
            try:
                a = datetime.fromisoformat(str(self.start))
                b = datetime.fromisoformat(str(self.end))
            except ValueError:
                raise ValueError(
                    f"freeze {self.id!r}: start and end are local times like 2026-12-20T00:00"
                ) from None
            if a.tzinfo or b.tzinfo:
                raise ValueError(
                    f"freeze {self.id!r}: write start and end without an offset; the zone "
                    "is timezone"
                )
            if b <= a:
                raise ValueError(f"freeze {self.id!r}: end must be after start")
        return self


class Contact(Strict):
    role: str = Field(min_length=1, max_length=80)
    who: str = Field(min_length=1, max_length=200)


_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{6,}")  # a Slack channel id, not a #name
_PRODUCTION_LIKE = re.compile(r"^(prod|production|prd|live)([-_].*)?$")


_HEADER_SPAN = re.compile(r"\s*(\d+)\s*(?:-\s*(\d+))?\s*(h|hours?|min|minutes?)\s*", re.IGNORECASE)


def _header_minutes(header: str) -> tuple[int, int] | None:
    """ "2-4 hours" → (120, 240), "90 min" → (90, 90); other words → None (quoted as given)."""
    m = _HEADER_SPAN.fullmatch(header)
    if m is None:
        return None
    unit = 60 if m.group(3).lower().startswith("h") else 1
    lo = int(m.group(1))
    return lo * unit, int(m.group(2) or lo) * unit


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
        ids = [p.id for p in self.phases]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"phase ids must be unique; repeated: {', '.join(dupes)}")
        if self.pre_cutover:
            for label, cl in (
                ("t_minus_24h", self.pre_cutover.t_minus_24h),
                ("t_minus_1h", self.pre_cutover.t_minus_1h),
            ):
                if cl.phase and cl.phase not in ids:
                    raise ValueError(f"pre_cutover.{label}.phase {cl.phase!r} is not a phase id")
            problems = self._checklist_problems()
            if problems:
                raise ValueError("; ".join(problems))
        elif any(m.undoes for p in self.phases for m in p.manual):
            raise ValueError("a manual step has undoes but the runbook has no pre_cutover items")
        for name in self.environments:
            if not re.fullmatch(ID_PATTERN, name):
                raise ValueError(f"environment name {name!r} must match {ID_PATTERN}")
        problems = self._criteria_problems() + self._variable_problems()
        problems += task_problems(self.post_cutover_tasks, self._item_ids())
        problems += [
            f"freeze {f.id!r}: no environment {e!r}"
            for f in self.freezes
            for e in f.environments
            if e not in self.environments
        ]
        if self.overrides_possible():  # an override_quorum written that no one could reach
            problems += [
                f"environment {name!r}: {problem}"
                for name, env in self.environments.items()
                if env.override_quorum is not None and (problem := env.override_problem())
            ]
        if problems:
            raise ValueError("; ".join(problems))
        if any(p.on_fail == "restore_and_rollback" for p in self.phases) and not self.restore:
            raise ValueError(
                "a phase has on_fail: restore_and_rollback but the runbook has no restore steps"
            )
        return self

    def _criteria_problems(self) -> list[str]:
        out: list[str] = []
        ids = [c.id for c in self.success_criteria]
        for dupe in sorted({i for i in ids if ids.count(i) > 1}):
            out.append(f"success criterion id {dupe!r} is repeated")
        phases = {p.id: p for p in self.phases}
        for c in self.success_criteria:
            for field, ref in (
                ("check", c.check),
                ("monitoring", c.monitoring),
                ("manual", c.manual),
            ):
                if not ref:
                    continue
                phase_id, item = ref.split("/")
                phase = phases.get(phase_id)
                if phase is None:
                    out.append(
                        f"success criterion {c.id!r}: {field} {ref!r}: no phase {phase_id!r}"
                    )
                    continue
                names = (
                    [m.id for m in phase.manual]
                    if field == "manual"
                    else [st.id for st in [*phase.actions, *phase.checks]]
                )
                if item not in names:
                    out.append(
                        f"success criterion {c.id!r}: {field} {ref!r}: phase {phase_id!r} has no "
                        f"{'manual step' if field == 'manual' else 'step'} {item!r}"
                    )
                if field == "monitoring" and phase.monitor is None:
                    out.append(
                        f"success criterion {c.id!r}: phase {phase_id!r} has no monitor rounds"
                    )
        known = set(ids)
        for f in self.notes_fields:
            if f.criterion and f.criterion not in known:
                out.append(f"notes field {f.name!r}: no success criterion {f.criterion!r}")
            if f.manual:
                phase_id, item = f.manual.split("/")
                phase = phases.get(phase_id)
                if phase is None or item not in [m.id for m in phase.manual]:
                    out.append(f"notes field {f.name!r}: no manual step {f.manual!r}")
        return out

    def _variable_problems(self) -> list[str]:
        """Every ${VAR} the runbook uses must be one it may read (see `variable_refusal`)."""
        out: list[str] = []
        for name in self.variables:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                out.append(f"variables: {name!r} is not an environment variable name")
            elif reserved_variable(name):
                out.append(f"variables: {variable_refusal(name, ())}")
        where: list[tuple[str, Value]] = [(f"vars > {k}", v) for k, v in self.vars.items()]
        for env_name, env in self.environments.items():
            raw = env.template_values(expand=False)
            where += [(f"environments > {env_name} > {k}", v) for k, v in raw.items()]
        for label, value in where:
            for item in value if isinstance(value, list) else [value]:
                for name in _ENV_VAR.findall(item):
                    problem = variable_refusal(name, self.variables)
                    if problem:
                        out.append(f"{label}: {problem}")
        return out

    def _item_ids(self) -> list[str]:
        pre = self.pre_cutover
        lists = (pre.t_minus_24h, pre.t_minus_1h) if pre else ()
        return [i.id for cl in lists for i in cl.items if i.id]

    def _checklist_problems(self) -> list[str]:
        """Items that gate Start must be unambiguous and reachable: unique ids across both
        checklists, and a bound check that a pre-cutover dry run actually runs."""
        assert self.pre_cutover is not None
        out: list[str] = []
        lists = (
            ("t_minus_24h", self.pre_cutover.t_minus_24h),
            ("t_minus_1h", self.pre_cutover.t_minus_1h),
        )
        ids = [i.id for _label, cl in lists for i in cl.items if i.id]
        for dupe in sorted({i for i in ids if ids.count(i) > 1}):
            out.append(f"pre_cutover: checklist item id {dupe!r} is repeated")
        dry_run_phases = {cl.phase for _label, cl in lists if cl.phase}
        phases = {p.id: p for p in self.phases}
        gating = {i.id for _label, cl in lists for i in cl.items if i.id and i.gates_start}
        for p in self.phases:
            for m in p.manual:
                if m.undoes and m.undoes not in gating:
                    out.append(
                        f"phase {p.id!r} manual step {m.id!r}: undoes {m.undoes!r} is not a "
                        "pre-cutover item with gates_start: true (only such an item is known "
                        "to be done in every run); ids that gate Start: "
                        + (", ".join(sorted(gating)) or "none")
                    )
        for label, cl in lists:
            for item in cl.items:
                if not item.check:
                    continue
                where = f"pre_cutover.{label} item {item.id!r}: check {item.check!r}"
                phase_id, step_id = item.check.split("/")
                phase = phases.get(phase_id)
                if phase is None:
                    out.append(f"{where}: no phase {phase_id!r}")
                elif step_id not in [c.id for c in phase.checks]:
                    actions = [a.id for a in phase.actions]
                    out.append(
                        f"{where}: phase {phase_id!r} has no check {step_id!r}"
                        + (" (it is an action; bind a check)" if step_id in actions else "")
                        + f"; its checks: {', '.join(c.id for c in phase.checks) or 'none'}"
                    )
                elif phase_id not in dry_run_phases:
                    out.append(
                        f"{where}: no pre-cutover dry run runs phase {phase_id!r}; set "
                        f"pre_cutover.t_minus_24h.phase or t_minus_1h.phase to {phase_id!r}"
                    )
        return out

    def warnings(self) -> list[str]:
        """What `runbook check` points out without refusing: a production-like environment
        with no stakeholders channel tells no stakeholder of a start nobody scheduled; a
        channel given by name breaks when it is renamed (the bot looks the name up once per
        process) and cannot be posted to with an org-wide token."""
        out = [f"deprecated: {line}" for line in self._deprecated]
        out += [
            f"environment {name!r} looks like production but has no stakeholders channel: "
            "a start without a schedule (or a schedule without --stakeholders) tells no "
            'stakeholder; add stakeholders: "#channel" to it'
            for name, env in sorted(self.environments.items())
            if _PRODUCTION_LIKE.match(name) and not env.stakeholders
        ]
        for name, env in sorted(self.environments.items()):
            for key in ("channel", "stakeholders"):
                value = getattr(env, key)
                if value and not _CHANNEL_ID.fullmatch(value) and "${" not in value:
                    out.append(
                        f"environment {name!r}: {key} {value!r} is given by name; the bot "
                        "looks it up once, but a rename before that breaks it and an "
                        "org-wide token cannot use names: write the channel id instead "
                        "(open the channel, click its name: the Channel ID is at the bottom, "
                        "e.g. C0123ABCD), with the name in a comment: "
                        f'{key}: "C0123ABCD"  # {value}'
                    )
        if self.overrides_possible():  # the default quorum + 1: no break-glass there
            out += [
                f"environment {name!r}: {problem}: no override is possible there"
                for name, env in sorted(self.environments.items())
                if env.override_quorum is None and (problem := env.override_problem())
            ]
        return out

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
        if not header or _header_minutes(header) == (est.min, est.max):
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
                names = _ENV_VAR.findall(item)
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


PhaseSpec.model_rebuild()

_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# ${VAR}s a runbook may read without listing them under `variables:`.
RUNBOOK_VAR_PREFIX = "CUTOVER_RUNBOOK_"
# The bot's own settings and credentials (bot/settings.py: CUTOVER_*, SLACK_*; its database
# through DATABASE_URL or libpq's PG*): a runbook never reads them, listed or not. A step
# that could read them could send the signing secret anywhere, or approve its own gate.
_RESERVED_PREFIXES = ("SLACK_", "CUTOVER_", "PG")
_RESERVED_NAMES = frozenset({"DATABASE_URL"})


def reserved_variable(name: str) -> bool:
    """True for the bot's own settings and credentials (never readable by a runbook)."""
    upper = name.upper()
    if upper.startswith(RUNBOOK_VAR_PREFIX):
        return False
    return upper in _RESERVED_NAMES or upper.startswith(_RESERVED_PREFIXES)


def variable_refusal(name: str, variables: Collection[str]) -> str | None:
    """Why a runbook may not read ${name}, with what to write instead; None if it may."""
    if reserved_variable(name):
        stem = re.sub(r"^(SLACK_|CUTOVER_|PG)", "", name.upper()) or "VALUE"
        return (
            f"${{{name}}} is one of the bot's own settings or credentials; a runbook never "
            f"reads those (its steps could send them anywhere). Give the target its own "
            f"variable, e.g. ${{{RUNBOOK_VAR_PREFIX}{stem}}}, set in the bot's environment"
        )
    if name.startswith(RUNBOOK_VAR_PREFIX) or name in variables:
        return None
    return (
        f"${{{name}}} is not a variable this runbook may read: list it at the top of the "
        f"runbook (variables: [{name}]) or name it {RUNBOOK_VAR_PREFIX}{name}"
    )


def expand_env_vars(
    value: str, environ: Mapping[str, str] | None = None, variables: Collection[str] = ()
) -> str:
    """`value` with each ${VAR} filled from the environment; a variable the runbook may not
    read (`variable_refusal`) or that is unset is a RunbookError, never an empty string."""
    env = os.environ if environ is None else environ

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        refusal = variable_refusal(name, variables)
        if refusal:
            raise RunbookError(refusal)
        if name not in env:
            raise RunbookError(
                f"${{{name}}} is used by the runbook but not set in the bot's environment"
            )
        return env[name]

    return _ENV_VAR.sub(sub, value)


class _Template(string.Formatter):
    def __init__(self, values: Mapping[str, Value]) -> None:
        self.values = values

    def get_value(self, key: int | str, args: Any, kwargs: Any) -> Any:
        if isinstance(key, int) or key not in self.values:
            known = ", ".join(sorted(self.values))
            raise RunbookError(f"unknown placeholder {{{key}}}; known: {known}")
        value = self.values[key]
        if isinstance(value, list):
            raise RunbookError(f"{{{key}}} is a list: use it alone as a whole list item")
        return value


_WHOLE = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")


def render(value: Any, values: Mapping[str, Value]) -> Any:
    """Fills {placeholders} in every string of a parameter tree; {{ and }} are literal braces.

    A list item that is exactly "{name}" of a list value is spliced in, so an
    argv can start with a command that is itself several words.
    """
    if isinstance(value, str):
        whole = _WHOLE.match(value)
        if whole and isinstance(values.get(whole.group(1)), list):
            return list(values[whole.group(1)])
        return _Template(values).vformat(value, (), {})
    if isinstance(value, list):
        out: list[Any] = []
        for item in value:
            rendered = render(item, values)
            if isinstance(item, str) and isinstance(rendered, list):
                out.extend(rendered)
            else:
                out.append(rendered)
        return out
    if isinstance(value, dict):
        return {k: render(v, values) for k, v in value.items()}
    return value


def resolve_step(step: StepSpec, values: Mapping[str, Value]) -> tuple[StepKind[Any], StepParams]:
    """The step's kind and its parameters rendered for one environment and validated."""
    kind = REGISTRY.get(step.kind)
    if kind is None:
        known = ", ".join(sorted(REGISTRY))
        raise RunbookError(f"unknown kind {step.kind!r}; known kinds: {known}")
    rendered = render(step.params, values)
    try:
        return kind, kind.params.model_validate(rendered)
    except ValidationError as exc:
        raise RunbookError(_describe(exc, prefix="params")) from None


def _describe(exc: ValidationError, prefix: str = "") -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in ((prefix,) if prefix else ()) + tuple(err["loc"]))
        lines.append(f"{loc}: {err['msg']}")
    return "; ".join(lines)


def _locate(data: Any, loc: tuple[Any, ...]) -> str:
    """('phases', 3, 'timeout') -> "phases[3] (id 'migrate') > timeout": where, in words."""
    parts: list[str] = []
    node = data
    for key in loc:
        if isinstance(key, int):
            label = f"[{key}]"
            try:
                node = node[key]
                if isinstance(node, dict) and "id" in node:
                    label += f" (id {node['id']!r})"
            except (IndexError, KeyError, TypeError):
                node = None
            if parts:
                parts[-1] += label
            else:
                parts.append(label)
        else:
            parts.append(str(key))
            try:
                node = node[key]
            except (KeyError, TypeError, IndexError):
                node = None
    return " > ".join(parts) or "(top level)"


def load_runbook(path: str | Path) -> Runbook:
    p = Path(path)
    data = load_yaml_file(p)  # bounded, refuses repeated keys (phases/yaml_loader.py)
    if not isinstance(data, dict):
        raise RunbookError(f"{p}: a runbook is a YAML mapping with name, phases and environments")
    runbook_format.check_format(data, str(p))  # a format this bot does not read: refused first
    renamed = runbook_format.read_renamed(data)  # older names read as today's, with a warning
    try:
        runbook = Runbook.model_validate(data)
    except ValidationError as exc:
        msgs = [f"{_locate(data, tuple(e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise RunbookError(f"{p}: " + "\n  ".join(msgs)) from None
    problems = validate_steps(runbook)
    if problems:
        raise RunbookError(f"{p}: " + "\n  ".join(problems))
    runbook._deprecated = renamed
    return runbook


# Values a run fills in as it goes (bot/engine/core.py `context`): the runbook may use them,
# so validation gives them stand-in values.
RUN_PLACEHOLDERS: dict[str, Value] = {
    "run_backup": "/path/of/this/runs/verified/backup.dump",
    "run_backup_sha256": "0" * 64,
}


def tick_placeholders(runbook: Runbook) -> dict[str, Value]:
    """What validation and preflight fill `{tick/ITEM/NAME}` with (a value a tick gives)."""
    return {
        tick_values.key(m.id, m.value.name): tick_values.stand_in(m.value)
        for p in runbook.phases
        for m in p.manual
        if m.value
    }


def validate_steps(runbook: Runbook) -> list[str]:
    """Checks every step's kind and parameters against each environment, before anything runs."""
    problems: list[str] = []
    ticked = tick_placeholders(runbook)
    for where, section, step in runbook.all_steps():
        kind = REGISTRY.get(step.kind)
        if kind is None:
            known = ", ".join(sorted(REGISTRY))
            problems.append(
                f"{where} > {section} > {step.id!r}: unknown kind {step.kind!r}; known: {known}"
            )
            continue
        if section == "checks" and kind.mutates:
            problems.append(
                f"{where} > checks > {step.id!r}: kind {step.kind!r} changes state; "
                "put it under actions (checks are read-only)"
            )
        for env_name in runbook.environments:
            values = {**RUN_PLACEHOLDERS, **runbook.values_for(env_name, expand=False)}
            if "> manual " in where:
                values.update(ticked)
            token_problem = _literal_token(step, values)
            if token_problem:
                problems.append(f"{where} > {section} > {step.id!r}: {token_problem}")
                break
            try:
                resolve_step(step, values)
            except RunbookError as exc:
                problems.append(
                    f"{where} > {section} > {step.id!r} (environment {env_name!r}): {exc}"
                )
    return problems


def _literal_token(step: StepSpec, values: Mapping[str, Value]) -> str | None:
    """A `bearer_token` must come from the bot's environment (a {var} set from ${VAR}), so
    it is masked wherever the bot shows text and never sits in the runbook's git history."""
    token = step.params.get("bearer_token")
    if token is None:
        return None
    whole = _WHOLE.match(token) if isinstance(token, str) else None
    source = values.get(whole.group(1)) if whole else None
    if isinstance(source, str) and _ENV_VAR.search(source):
        return None
    return (
        "bearer_token must be a {placeholder} of a var set from the bot's environment "
        "(vars: {prom_token: ${CUTOVER_RUNBOOK_PROM_TOKEN}}, then bearer_token: "
        "'{prom_token}'), never the token itself"
    )
