"""What the pre-cutover checklists read (bot/checklists.py): the tick and untick rows of a
scope, the readiness dry runs of an environment, and when its last real run started. Ticks
and readiness results are audit rows, appended through the store (`Store.record`)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, select

from bot.domain.audit_kinds import AuditKind
from bot.store.models import AuditEvent, Run
from bot.store.unit import Tx

READINESS_LOOK_BACK = 50  # readiness rows read, newest first (a bounded look back)


def ticks(tx: Tx, scope_key: str) -> list[AuditEvent]:
    """The `checklist.ticked`/`checklist.unticked` rows whose data names this scope, in
    order (a cheap filter in the database; the caller checks the scope it parsed)."""
    return list(
        tx.session.exec(
            select(AuditEvent)
            .where(
                col(AuditEvent.kind).in_(
                    [AuditKind.CHECKLIST_TICKED, AuditKind.CHECKLIST_UNTICKED]
                ),
                col(AuditEvent.data).contains(f'"scope":"{scope_key}"'),
            )
            .order_by(col(AuditEvent.seq))
        )
    )


def last_real_start(tx: Tx, environment: str) -> datetime | None:
    """When the environment's newest run that is not a dry run started (None: it has none,
    or it has not started)."""
    return tx.session.exec(
        select(Run.started_at)
        .where(Run.environment == environment, col(Run.dry_run).is_(False))
        .order_by(col(Run.id).desc())
    ).first()


def readiness(tx: Tx, environment: str) -> list[AuditEvent]:
    """The newest `readiness.checked` rows whose data names the environment, newest first."""
    return list(
        tx.session.exec(
            select(AuditEvent)
            .where(
                AuditEvent.kind == AuditKind.READINESS_CHECKED,
                col(AuditEvent.data).contains(f'"environment":"{environment}"'),
            )
            .order_by(col(AuditEvent.seq).desc())
            .limit(READINESS_LOOK_BACK)
        )
    )
