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
class SignoffView:
    run_id: int
    environment: str
    status: str
    criteria: tuple[CriterionSignoff, ...]

    @property
    def signable(self) -> bool:
        return self.status in SIGNABLE

    @property
    def done(self) -> bool:
        return all(c.signatures for c in self.criteria)


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
    return SignoffView(run_id, run.environment, str(run.status), criteria)


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
