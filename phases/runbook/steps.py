"""A phase's steps: an automated step (its kind and parameters) and a manual step a person ticks."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from phases import tick_values
from phases.runbook.fields import ID_PATTERN, Strict


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
