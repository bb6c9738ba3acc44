"""The sign-off state of a run, read from its audit trail: which success criteria bound to
`signoff` an approver has vouched for, who and when. Surfaces draw it (Slack's sign-off
message, the console's text); the record reads the same rows (`bot.record`).

Sign-offs are asked for when the run's last phase begins (for NostrMaxi, Phase 9's 30
minutes of monitoring): the cutover is live, people can check what only a person can, and
the record posted when the run completes shows their sign-offs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlmodel import col, select

from bot.db import Database
from bot.domain import approvals
from bot.domain.audit_kinds import AuditKind
from bot.models import AuditEvent, Run
from phases.runbook import Runbook

# A criterion can be signed off while the run goes on (bot.domain.approvals owns the rule).
SIGNABLE = approvals.SIGNABLE


@dataclass(frozen=True)
class Signature:
    actor: str
    at: str  # ISO 8601 UTC, as the audit row has it
    note: str = ""


@dataclass(frozen=True)
class CriterionSignoff:
    id: str
    text: str
    signatures: tuple[Signature, ...] = ()


@dataclass(frozen=True)
class RunSignoffState:
    """The completed run's sign-off, as its rows say: who was asked (run.signoff_requested),
    how many must sign, and who did, when (run.signed_off), in order."""

    by: tuple[str, ...]
    groups: tuple[str, ...]
    quorum: int
    signatures: tuple[Signature, ...] = ()

    @property
    def done(self) -> bool:
        return len(self.signatures) >= self.quorum

    def awaited(self) -> str:
        """Who may still sign: the named people who have not, and the groups."""
        signed = {s.actor for s in self.signatures}
        people = [p for p in self.by if p not in signed]
        groups = [f"a member of {g}" for g in self.groups]
        return " or ".join(x for x in (", ".join(people), ", ".join(groups)) if x)


@dataclass(frozen=True)
class SignoffView:
    run_id: int
    environment: str
    status: str
    criteria: tuple[CriterionSignoff, ...]
    run: RunSignoffState | None = None  # the completed run's own sign-off, once asked

    @property
    def signable(self) -> bool:
        return self.status in SIGNABLE

    @property
    def done(self) -> bool:
        return all(c.signatures for c in self.criteria)

    @property
    def run_signable(self) -> bool:
        return self.run is not None and self.status == "completed" and not self.run.done


def refusal_for(status: str, run_id: int) -> str | None:
    """Why a run in `status` takes no sign-off, or None."""
    return approvals.signoff_refusal(run_id, status)


def signoff_view(db: Database, runbook: Runbook, run_id: int) -> SignoffView | None:
    with db.session() as s:
        run = s.get(Run, run_id)
        if run is None:
            return None
        rows = s.exec(
            select(AuditEvent)
            .where(
                AuditEvent.run_id == run_id,
                AuditEvent.kind == AuditKind.CRITERION_SIGNED_OFF,
            )
            .order_by(col(AuditEvent.seq))
        ).all()
    by_criterion: dict[str, list[Signature]] = {}
    for r in rows:
        data = json.loads(r.data)
        by_criterion.setdefault(str(data.get("criterion")), []).append(
            Signature(r.actor, r.at, str(data.get("note") or ""))
        )
    criteria = tuple(
        CriterionSignoff(c.id, c.text, tuple(by_criterion.get(c.id, [])))
        for c in runbook.success_criteria
        if c.signoff
    )
    return SignoffView(
        run_id, run.environment, str(run.status), criteria, run_signoff_state(db, run_id)
    )


def run_signoff_state(db: Database, run_id: int) -> RunSignoffState | None:
    """The run's own sign-off from its audit rows; None when none was asked."""
    with db.session() as s:
        rows = s.exec(
            select(AuditEvent)
            .where(
                AuditEvent.run_id == run_id,
                col(AuditEvent.kind).in_(
                    [AuditKind.RUN_SIGNOFF_REQUESTED, AuditKind.RUN_SIGNED_OFF]
                ),
            )
            .order_by(col(AuditEvent.seq))
        ).all()
    asked = next((r for r in rows if r.kind == AuditKind.RUN_SIGNOFF_REQUESTED), None)
    if asked is None:
        return None
    data = json.loads(asked.data)
    signatures = tuple(
        Signature(r.actor, r.at, str(json.loads(r.data).get("note") or ""))
        for r in rows
        if r.kind == AuditKind.RUN_SIGNED_OFF
    )
    return RunSignoffState(
        tuple(str(x) for x in data.get("by") or ()),
        tuple(str(x) for x in data.get("groups") or ()),
        int(data.get("quorum") or 1),
        signatures,
    )


def run_signoff_text(run_id: int, state: RunSignoffState) -> str:
    """The completed run's sign-off as text, for a surface without buttons (the console)."""
    signed = "; ".join(f"{s.actor} at {s.at[11:16]} UTC" for s in state.signatures)
    if state.done:
        return f"✍️ Run #{run_id} is signed off by {signed} ({state.quorum} needed)."
    so_far = f"; signed so far: {signed}" if signed else ""
    return (
        f"✍️ Sign-off of run #{run_id}: {state.quorum - len(state.signatures)} more of "
        f"{state.awaited()} to sign it off with `/cutover signoff {run_id} [--note TEXT]`"
        f"{so_far}."
    )


def signoff_text(view: SignoffView) -> str:
    """The sign-off request as text, for a surface without buttons (the console)."""
    lines = [
        f"✍️ Sign-off for run #{view.run_id} ({view.environment}): an approver vouches for "
        "each of these; the record shows who signed what."
    ]
    for c in view.criteria:
        if c.signatures:
            who = ", ".join(f"{s.actor} at {s.at[11:16]} UTC" for s in c.signatures)
            lines.append(f"✅ {c.text} — signed off by {who}")
        else:
            lines.append(f"❔ {c.text} — `/cutover signoff {view.run_id} {c.id} [--note TEXT]`")
    return "\n".join(lines)
