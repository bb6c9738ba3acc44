"""The audit rows a run page shows and checks, read through the store's door as plain rows
(seq, at, run_id, actor, kind, data, prev_hash, hash), no ORM objects: a thousand of those
cost more than the rest of the page (bot/runpage/page.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import col, select

from bot.store.db import Database
from bot.store.models import AuditEvent, AuditSignature
from bot.store.read_door import door
from bot.store.unit import Store

_EVENT = AuditEvent.__table__  # type: ignore[attr-defined]


def plain_events(db: Database | Store, run_id: int) -> list[Any]:
    """The run's rows, oldest first, as plain rows."""
    query = select(*_EVENT.c).where(_EVENT.c.run_id == run_id).order_by(_EVENT.c.seq)
    with door(db).tx() as tx:
        return list(tx.session.connection().execute(query).all())


def rows_and_signatures(
    db: Database | Store, before: Sequence[int], seqs: Sequence[int], signed: bool
) -> tuple[list[Any], dict[int, list[AuditSignature]]]:
    """The plain rows at `before` (the rows just before the shown ones, to check the links
    to them), and, when `signed`, the signatures of the rows at `seqs`, in one transaction."""
    with door(db).tx() as tx:
        s = tx.session
        found = list(s.connection().execute(select(*_EVENT.c).where(_EVENT.c.seq.in_(before))))
        sigs: dict[int, list[AuditSignature]] = {}
        if signed and seqs:
            for sig in s.exec(select(AuditSignature).where(col(AuditSignature.seq).in_(seqs))):
                sigs.setdefault(sig.seq, []).append(sig)
    return found, sigs
