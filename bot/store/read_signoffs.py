"""The sign-off state of a run (bot.signoffs' dataclasses), read from its audit rows through
the store's door: the success criteria an approver vouched for (`signoff_view`), and the
completed run's own sign-off (`run_signoff_state`)."""

from __future__ import annotations

import json

from sqlmodel import col, select

from bot.domain.audit_kinds import AuditKind
from bot.signoffs import CriterionSignoff, RunSignoffState, Signature, SignoffView
from bot.store.db import Database
from bot.store.models import AuditEvent, Run
from bot.store.read_door import door
from bot.store.unit import Store
from phases.runbook import Runbook


def signoff_view(db: Database | Store, runbook: Runbook, run_id: int) -> SignoffView | None:
    store = door(db)
    with store.tx() as tx:
        run = tx.get(Run, run_id)
        if run is None:
            return None
        rows = tx.session.exec(
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
        run_id, run.environment, str(run.status), criteria, run_signoff_state(store, run_id)
    )


def run_signoff_state(db: Database | Store, run_id: int) -> RunSignoffState | None:
    """The run's own sign-off from its audit rows; None when none was asked."""
    with door(db).tx() as tx:
        rows = tx.session.exec(
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
