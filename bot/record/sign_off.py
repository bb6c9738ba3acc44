"""The record's Sign-Off line, and who went on past each unmet criterion (and how)."""

from __future__ import annotations

from typing import Any

from bot.domain.audit_kinds import AuditKind
from bot.record.trail import Trail, hm
from bot.record_signoff import sign_off_line, state_from_rows
from bot.store.models import Run
from phases.runbook import CriterionSpec


def went_on(t: Trail, spec: CriterionSpec) -> dict[str, Any] | None:
    """The Continue that went on past a criterion: the decision at the last checkpoint of
    the phase its binding names (a check, monitoring or manual step of that phase)."""
    ref = spec.check or spec.monitoring or spec.manual
    if ref is None:
        return None
    phase = ref.split("/")[0]
    gates = [g for g in t.opened if g.get("phase") == phase]
    if not gates:
        return None
    last = gates[-1]["gate"]
    overridden = [o for o in t.overrides if o["kind"] == AuditKind.GATE_OVERRIDDEN]
    return next(
        (d for d in t.decisions if d.get("gate") == last and d.get("decision") == "continue"),
        next((o for o in overridden if o.get("gate") == last), None),
    )


def _past(t: Trail, spec: CriterionSpec) -> str:
    d = went_on(t, spec)
    if d is None:
        return f"{spec.id} (nobody decided to go on past it)"
    who = ", ".join(d.get("approvers") or [d["actor"]])
    how = (
        "overridden (break-glass)"
        if d.get("kind") == AuditKind.GATE_OVERRIDDEN
        else "continued past"
    )
    return f"{spec.id} ({how} by {who} at {hm(d['at'])}, checkpoint {d.get('phase')})"


def sign_off_line_of(run: Run, t: Trail, unmet: list[CriterionSpec]) -> str:
    """Who signed the run off, as their rows say (bot.record_signoff); never inferred."""
    return sign_off_line(
        status=str(run.status),
        dry_run=run.dry_run,
        environment=run.environment,
        state=state_from_rows(t.run_signoff_asked, t.run_signed),
        unmet=[_past(t, c) for c in unmet],
        undecided=any(went_on(t, c) is None for c in unmet),
    )
