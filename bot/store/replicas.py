"""Replica ids (`replica`): one row per replica id, naming the live process that holds it
(its incarnation) and its heartbeat, on the database's clock."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, update
from sqlmodel import col, select

from bot.store.models import Replica
from bot.store.unit import Tx


def claim(tx: Tx, replica_id: str, incarnation: str, now: datetime) -> Replica:
    """Inserts the id's row for `incarnation` unless one exists; returns the row, locked."""
    tx.session.execute(
        tx.insert(Replica)
        .values(id=replica_id, incarnation=incarnation, heartbeat_at=now)
        .on_conflict_do_nothing()
    )
    return tx.session.exec(select(Replica).where(Replica.id == replica_id).with_for_update()).one()


def beat(tx: Tx, replica_id: str, incarnation: str) -> bool:
    """Renews the heartbeat if `incarnation` still holds the id; False: taken over."""
    res = tx.session.execute(
        update(Replica)
        .where(col(Replica.id) == replica_id, col(Replica.incarnation) == incarnation)
        .values(heartbeat_at=tx.db_now())
    )
    return bool(getattr(res, "rowcount", 0))


def release(tx: Tx, replica_id: str, incarnation: str) -> None:
    tx.session.execute(
        delete(Replica).where(
            col(Replica.id) == replica_id, col(Replica.incarnation) == incarnation
        )
    )
