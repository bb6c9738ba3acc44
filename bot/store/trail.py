"""A run's audit trail, as the engine reads it back under its locks (rows are appended
through `Tx.audit`/`Tx.apply` only; the chain itself is bot/store/audit_chain.py's)."""

from __future__ import annotations

from sqlmodel import col, select

from bot.store.models import AuditEvent
from bot.store.unit import Tx


def first_seq(tx: Tx, run_id: int, kind: str) -> int | None:
    """The sequence number of the run's first row of `kind`; None: it has none."""
    return tx.session.exec(
        select(AuditEvent.seq).where(AuditEvent.run_id == run_id, AuditEvent.kind == kind)
    ).first()


def first_data(tx: Tx, run_id: int, kind: str) -> str | None:
    """The data (JSON) of the run's first row of `kind`; None: it has none."""
    return tx.session.exec(
        select(AuditEvent.data).where(AuditEvent.run_id == run_id, AuditEvent.kind == kind)
    ).first()


def by_actor(tx: Tx, run_id: int, kind: str, actor: str) -> list[AuditEvent]:
    """The run's rows of `kind` written by `actor`, in order."""
    return list(
        tx.session.exec(
            select(AuditEvent)
            .where(
                AuditEvent.run_id == run_id,
                AuditEvent.kind == kind,
                AuditEvent.actor == actor,
            )
            .order_by(col(AuditEvent.seq))
        )
    )
