"""The audit rows a run's restore point is read from: the point itself (set or missing) and
the passed backups its steps took, each after the phase start that names its attempt."""

from __future__ import annotations

from sqlmodel import and_, col, or_, select

from bot.domain.audit_kinds import AuditKind
from bot.store.models import AuditEvent
from bot.store.unit import Tx

POINT_KINDS = (AuditKind.RESTORE_POINT_SET, AuditKind.RESTORE_POINT_MISSING)


def point_row(tx: Tx, run_id: int) -> AuditEvent | None:
    """The run's restore point row (set or missing), or None while it is not fixed."""
    return tx.session.exec(
        select(AuditEvent)
        .where(AuditEvent.run_id == run_id, col(AuditEvent.kind).in_(POINT_KINDS))
        .order_by(col(AuditEvent.seq))
        .limit(1)
    ).first()


def backup_rows(tx: Tx, run_id: int) -> list[AuditEvent]:
    """The run's phase starts and the step results that name a backup, in order."""
    return list(
        tx.session.exec(
            select(AuditEvent)
            .where(
                AuditEvent.run_id == run_id,
                or_(
                    col(AuditEvent.kind) == AuditKind.PHASE_STARTED,
                    and_(
                        col(AuditEvent.kind) == AuditKind.STEP_RESULT,
                        col(AuditEvent.data).contains('"backup"'),
                    ),
                ),
            )
            .order_by(col(AuditEvent.seq))
        ).all()
    )
