"""The audit trail's hash chain and its append, the one way a row joins the trail: each row
hashed with the one before, signed when the database has a signer, appended under the lock on
the chain's tip (bot.audit re-exports it; verification, keys and export live there).

An append happens inside the caller's transaction, so a state change and its
audit row commit together or not at all; an event that changes no state is
`record`ed in a transaction of its own. The chain's tip lives in audit_head,
locked for the append: rows get gap-free sequence numbers in commit order.
Every string in a row's data is masked before it is written: a row cannot be scrubbed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import bindparam
from sqlalchemy.engine import Connection
from sqlmodel import Session, select

from bot import metrics
from bot.store.db import Database, dbapi_error, pooled_cursor
from bot.store.models import AuditEvent, AuditHead, AuditSignature
from phases.secrets import mask_everywhere

GENESIS = "0" * 64


class Signer(Protocol):
    """What the append asks of the database's signer (bot.audit.Signer)."""

    key_id: str

    def sign(self, row_hash: str) -> str: ...


def canonical(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def event_hash(
    prev_hash: str, seq: int, at: str, run_id: int | None, actor: str, kind: str, data: str
) -> str:
    body = canonical(
        {"seq": seq, "at": at, "run_id": run_id, "actor": actor, "kind": kind, "data": data}
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def now_iso(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds")


def _masked(value: Any) -> Any:
    """Every string in a row's data, masked: an audit row can never be scrubbed later."""
    if isinstance(value, str):
        return mask_everywhere(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return value


_EVENT = AuditEvent.__table__  # type: ignore[attr-defined]
_SIGNATURE = AuditSignature.__table__  # type: ignore[attr-defined]
_INSERT_SIGNATURE = _SIGNATURE.insert()
_HEAD = AuditHead.__table__  # type: ignore[attr-defined]
_HEAD_FOR_UPDATE = select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1).with_for_update()
_INSERT_EVENT = _EVENT.insert()
_UPDATE_HEAD = (
    _HEAD.update().where(_HEAD.c.id == 1).values(seq=bindparam("seq"), hash=bindparam("hash"))
)
# PostgreSQL: the row and the new tip in one statement (one round trip less under the lock),
# sent on the DBAPI cursor: SQLAlchemy's execution context cost about 0.1 ms of CPU per
# statement, a third of the floor's whole append (docs/benchmarks.md, issue 9).
_PG_HEAD_FOR_UPDATE = "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE"
_PG_APPEND = (
    "WITH tip AS (UPDATE audit_head SET seq = %(seq)s, hash = %(hash)s WHERE id = 1) "
    "INSERT INTO audit_event (seq, at, run_id, actor, kind, data, prev_hash, hash) "
    "VALUES (%(seq)s, %(at)s, %(run_id)s, %(actor)s, %(kind)s, %(data)s, %(prev_hash)s, "
    "%(hash)s)"
)
_PG_APPEND_SIGNED = (
    "WITH tip AS (UPDATE audit_head SET seq = %(seq)s, hash = %(hash)s WHERE id = 1), "
    "sig AS (INSERT INTO audit_signature (seq, key_id, signature) "
    "VALUES (%(seq)s, %(key_id)s, %(signature)s)) "
    "INSERT INTO audit_event (seq, at, run_id, actor, kind, data, prev_hash, hash) "
    "VALUES (%(seq)s, %(at)s, %(run_id)s, %(actor)s, %(kind)s, %(data)s, %(prev_hash)s, "
    "%(hash)s)"
)
_TIP = "audit_tip"  # session.info: (transaction, seq, hash) of this transaction's last append


def _pg_execute(conn: Connection, sql: str, params: dict[str, Any] | None = None) -> Any:
    """One statement on the transaction's DBAPI cursor; a failure is raised as SQLAlchemy
    raises it (a dropped connection invalidated, as `Database.session` expects)."""
    pooled = conn.connection
    cursor = pooled_cursor(pooled)
    try:
        cursor.execute(sql, params)
    except conn.dialect.loaded_dbapi.Error as exc:
        wrapped = dbapi_error(conn.dialect, exc, pooled.dbapi_connection, cursor, sql, params)
        if wrapped.connection_invalidated:
            conn.invalidate(exc)
        raise wrapped from exc
    return cursor


def _tip(session: Session, conn: Connection) -> tuple[int, str]:
    """The chain's tip, locked until the commit. A second append in one transaction holds
    the lock already and knows the tip it wrote: no second SELECT … FOR UPDATE. (With a
    savepoint open the tip is read again: a savepoint rolled back would undo an append.)"""
    cached = session.info.get(_TIP)
    txn = conn.get_transaction()
    if cached is not None and cached[0] is txn and conn.get_nested_transaction() is None:
        return cached[1], cached[2]
    if conn.dialect.name == "postgresql":
        row = _pg_execute(conn, _PG_HEAD_FOR_UPDATE).fetchone()
    else:
        row = conn.execute(_HEAD_FOR_UPDATE).one()
    return int(row[0]), str(row[1])


@dataclass(frozen=True)
class Appended:
    """What an append wrote: its sequence number and hash (the chain's new head)."""

    seq: int
    hash: str


def _next_row(
    tip: tuple[int, str],
    signer: Signer | None,
    kind: str,
    actor: str,
    run_id: int | None,
    data: dict[str, Any] | None,
    at: datetime | None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The row after `tip` (masked, hashed) and its signature row, if there is a signer."""
    seq, prev_hash = tip[0] + 1, tip[1]
    stamp = now_iso(at)
    payload = canonical(_masked(data or {}))
    digest = event_hash(prev_hash, seq, stamp, run_id, actor, kind, payload)
    row = {
        "seq": seq,
        "at": stamp,
        "run_id": run_id,
        "actor": actor,
        "kind": kind,
        "data": payload,
        "prev_hash": prev_hash,
        "hash": digest,
    }
    if signer is None:
        return row, None
    return row, {"seq": seq, "key_id": signer.key_id, "signature": signer.sign(digest)}


def append(
    session: Session,
    kind: str,
    *,
    actor: str,
    run_id: int | None = None,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> Appended:
    """Appends one event inside the session's transaction; returns its number and hash.

    Core statements, not the ORM: the head row is locked from the SELECT … FOR UPDATE
    to the commit, so every statement under that lock is kept short.
    """
    session.flush()  # the caller's pending rows go first, as they did with the ORM
    conn = session.connection()
    row, sig = _next_row(
        _tip(session, conn), session.info.get("audit_signer"), kind, actor, run_id, data, at
    )
    if conn.dialect.name == "postgresql":
        _pg_execute(conn, _PG_APPEND if sig is None else _PG_APPEND_SIGNED, {**row, **(sig or {})})
    else:
        conn.execute(_INSERT_EVENT, row)
        conn.execute(_UPDATE_HEAD, {"seq": row["seq"], "hash": row["hash"]})
        if sig is not None:
            conn.execute(_INSERT_SIGNATURE, sig)
    if conn.get_nested_transaction() is None:
        session.info[_TIP] = (conn.get_transaction(), row["seq"], row["hash"])
    metrics.audit_appended(kind)
    return Appended(row["seq"], row["hash"])


def record(
    db: Database,
    kind: str,
    *,
    actor: str,
    run_id: int | None = None,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> Appended:
    """Appends one event in a transaction of its own, for an event that changes no state
    (a note, a tick, a readiness check, a chat post that failed).

    On PostgreSQL the transaction runs on a pooled DBAPI cursor (`Database.dbapi_transaction`)
    instead of an ORM session, whose begin, commit and close cost about as much Python as
    the append itself; the row, its hash, its signature and the lock on the tip are the
    same as `append` writes. An event that goes with a state change uses `append`, inside
    the state change's own transaction.
    """
    if db.is_sqlite:
        with db.session() as s:
            return append(s, kind, actor=actor, run_id=run_id, data=data, at=at)
    with db.dbapi_transaction() as cursor:
        tip = cursor.execute(_PG_HEAD_FOR_UPDATE).fetchone()
        row, sig = _next_row(tip, db.audit_signer, kind, actor, run_id, data, at)
        cursor.execute(_PG_APPEND if sig is None else _PG_APPEND_SIGNED, {**row, **(sig or {})})
    metrics.audit_appended(kind)
    return Appended(row["seq"], row["hash"])
