"""The audit trail's reads: its head, its rows a batch at a time, their signatures, a run's
events, and the role lockdown's check and grants. Each takes a Tx (bot.audit composes them).

Plain rows (no ORM objects) where a read covers the whole trail: verify and the signatures
read it in short batches, each in a transaction of its own."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import bindparam, func, text
from sqlmodel import SQLModel, col, select

from bot.store import migrate
from bot.store.audit_chain import _EVENT, _HEAD, _SIGNATURE, GENESIS, trail_connection
from bot.store.models import AuditEvent, AuditHead
from bot.store.unit import Database, Tx

# A role name the lockdown's grants may name (letters, digits, _ and -, up to 63).
ROLE_NAME = migrate.ROLE_NAME


def head(tx: Tx) -> tuple[int, str]:
    """The chain's tip: its last row's sequence number and hash."""
    tip = tx.get(AuditHead, 1)
    return (tip.seq, tip.hash) if tip is not None else (0, GENESIS)


def key_event_rows(tx: Tx, kinds: Iterable[str], upto: int | None) -> Sequence[Any]:
    """The rows of these kinds (seq, kind, data), up to seq `upto`, in order."""
    query = select(_EVENT.c.seq, _EVENT.c.kind, _EVENT.c.data).where(_EVENT.c.kind.in_(kinds))
    if upto is not None:
        query = query.where(_EVENT.c.seq <= upto)
    return trail_connection(tx.session).execute(query.order_by(_EVENT.c.seq)).all()


_SIGNED = (
    select(_EVENT.c.seq, _EVENT.c.hash, _SIGNATURE.c.key_id, _SIGNATURE.c.signature)
    .select_from(_EVENT.outerjoin(_SIGNATURE, _SIGNATURE.c.seq == _EVENT.c.seq))
    .where(_EVENT.c.seq > bindparam("last"), _EVENT.c.seq <= bindparam("upto"))
    .order_by(_EVENT.c.seq, _SIGNATURE.c.key_id, _SIGNATURE.c.signature)
)


def signed_rows(tx: Tx, last: int, upto: int) -> Sequence[Any]:
    """Rows last+1..upto (seq, hash) each with its signatures (key_id, signature; None
    for a row without one), in order."""
    return trail_connection(tx.session).execute(_SIGNED, {"last": last, "upto": upto}).all()


def stray_signatures(tx: Tx) -> int:
    """Signature rows that sign no audit row."""
    orphans = (
        select(func.count())
        .select_from(_SIGNATURE.outerjoin(_EVENT, _SIGNATURE.c.seq == _EVENT.c.seq))
        .where(_EVENT.c.seq.is_(None))
    )
    return int(trail_connection(tx.session).execute(orphans).scalar_one())


def signed_by(tx: Tx, key_id: str, upto: int, limit: int) -> Sequence[Any]:
    """The last `limit` signatures (signature, the row's hash) by `key_id` of rows up to
    seq `upto`, newest first."""
    query = (
        select(_SIGNATURE.c.signature, _EVENT.c.hash)
        .select_from(_SIGNATURE.join(_EVENT, _EVENT.c.seq == _SIGNATURE.c.seq))
        .where(_SIGNATURE.c.key_id == key_id, _SIGNATURE.c.seq <= upto)
        .order_by(_SIGNATURE.c.seq.desc())
        .limit(limit)
    )
    return trail_connection(tx.session).execute(query).all()


def last_signed(tx: Tx, upto: int) -> Sequence[Any]:
    """The signatures (seq, key_id, signature, the row's hash) of the last signed row up to
    seq `upto` (none when no row is signed)."""
    last = select(func.max(_SIGNATURE.c.seq)).where(_SIGNATURE.c.seq <= upto).scalar_subquery()
    query = (
        select(_SIGNATURE.c.seq, _SIGNATURE.c.key_id, _SIGNATURE.c.signature, _EVENT.c.hash)
        .select_from(_SIGNATURE.join(_EVENT, _EVENT.c.seq == _SIGNATURE.c.seq))
        .where(_SIGNATURE.c.seq == last)
        .order_by(_SIGNATURE.c.key_id, _SIGNATURE.c.signature)
    )
    return trail_connection(tx.session).execute(query).all()


def event_rows(tx: Tx, last: int, upto: int, batch: int) -> Sequence[Any]:
    """Up to `batch` events after seq `last`, up to seq `upto`, in order, as plain rows."""
    query = select(*_EVENT.c).where(_EVENT.c.seq > bindparam("last"), _EVENT.c.seq <= upto)
    query = query.order_by(_EVENT.c.seq).limit(batch)
    return trail_connection(tx.session).execute(query, {"last": last}).all()


def rows_past_head(tx: Tx) -> int:
    """Rows past the head as it stands now (one statement, one snapshot)."""
    beyond = (
        select(func.count())
        .select_from(_EVENT)
        .where(_EVENT.c.seq > select(_HEAD.c.seq).where(_HEAD.c.id == 1).scalar_subquery())
    )
    return int(trail_connection(tx.session).execute(beyond).scalar_one())


def hash_at(tx: Tx, seq: int) -> str | None:
    """The hash of audit row `seq`, None when there is no such row."""
    query = select(_EVENT.c.hash).where(_EVENT.c.seq == seq)
    row = trail_connection(tx.session).execute(query).first()
    return None if row is None else str(row[0])


def events(
    tx: Tx, run_id: int | None, *, kind: str | None = None, containing: str | None = None
) -> list[AuditEvent]:
    """Events in order: a run's (every run's with None), of one kind, whose data holds a
    text (a cheap filter in the database for a few rows among many)."""
    query = select(AuditEvent)
    if run_id is not None:
        query = query.where(AuditEvent.run_id == run_id)
    if kind is not None:
        query = query.where(AuditEvent.kind == kind)
    if containing is not None:
        query = query.where(col(AuditEvent.data).contains(containing))
    return list(tx.session.exec(query.order_by(col(AuditEvent.seq))))


def role_standing(tx: Tx, role: str) -> tuple[bool, bool] | None:
    """Whether `role` is a superuser, and whether it owns audit_event (PostgreSQL); None
    when there is no such role or no audit_event table."""
    row = (
        tx.session.connection()
        .execute(
            text(
                "SELECT r.rolsuper, pg_has_role(r.rolname, t.tableowner, 'USAGE') "
                "FROM pg_roles r, pg_tables t WHERE r.rolname = :role "
                "AND t.schemaname = current_schema() AND t.tablename = 'audit_event'"
            ),
            {"role": role},
        )
        .one_or_none()
    )
    return None if row is None else (bool(row[0]), bool(row[1]))


def grant_statements(db: Database, app_role: str) -> list[str]:
    """The lockdown's grants for `app_role` on every table the bot has, quoted as this
    database quotes names (bot.store.migrate.grant_statements says what they grant)."""
    tables = [t.name for t in SQLModel.metadata.sorted_tables]
    return migrate.grant_statements(db.engine.dialect.identifier_preparer.quote, app_role, tables)


def execute_all(tx: Tx, statements: Iterable[str]) -> None:
    """Runs each SQL statement (the lockdown's grants) in this transaction."""
    conn = tx.session.connection()
    for statement in statements:
        conn.execute(text(statement))
