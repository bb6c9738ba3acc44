"""The audit trail's hash chain and its append, the one way a row joins the trail: each row
hashed with the one before, signed when the database has a signer, appended under the lock on
the chain's tip (bot.audit re-exports it; verification, keys and export live there).

An event of a state change is `queue`d in the caller's transaction and written with the
others it queued just before its COMMIT (or before its next read: a transaction sees its own
rows), in one statement: the state change and its audit rows commit together or not at all,
and the chain's tip, which every append in every replica waits on, is locked for the end of
the transaction only, not from its first event on. An event that changes no state is
`record`ed in a transaction of its own. The tip lives in audit_head, locked for the append:
rows get gap-free sequence numbers in commit order, a transaction's rows in the order it made
them. Every string in a row's data is masked when the event is made: a row cannot be scrubbed.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import bindparam, event
from sqlalchemy.engine import Connection
from sqlalchemy.orm import ORMExecuteState
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, select

from bot import metrics
from bot.store.db import PRE_COMMIT, Database, dbapi_error, pooled_cursor
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
_QUEUE = "audit_queue"  # session.info: the events queued in this transaction, not yet written


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


def _tip(session: OrmSession, conn: Connection) -> tuple[int, str]:
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


@dataclass(frozen=True)
class _Queued:
    """An event waiting for its transaction's next write of the trail: its data masked and
    serialized when it was queued (the caller's dict may change after)."""

    kind: str
    actor: str
    run_id: int | None
    payload: str
    stamp: str


def _chained(
    tip: tuple[int, str], signer: Signer | None, events: list[_Queued]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows after `tip`, each hashed with the one before, and their signature rows (none
    without a signer)."""
    seq, prev_hash = tip
    rows: list[dict[str, Any]] = []
    sigs: list[dict[str, Any]] = []
    for ev in events:
        seq += 1
        digest = event_hash(prev_hash, seq, ev.stamp, ev.run_id, ev.actor, ev.kind, ev.payload)
        rows.append(
            {
                "seq": seq,
                "at": ev.stamp,
                "run_id": ev.run_id,
                "actor": ev.actor,
                "kind": ev.kind,
                "data": ev.payload,
                "prev_hash": prev_hash,
                "hash": digest,
            }
        )
        if signer is not None:
            sigs.append({"seq": seq, "key_id": signer.key_id, "signature": signer.sign(digest)})
        prev_hash = digest
    return rows, sigs


@functools.lru_cache(maxsize=32)
def _pg_append_many(n: int, signed: bool) -> str:
    """One statement for `n` rows, their signatures and the new tip (PostgreSQL): the whole
    transaction's append is one round trip under the tip's lock. (Only placeholders are
    formatted in: S608 does not apply.)"""
    values = ", ".join(
        f"(%(seq{i})s, %(at{i})s, %(run_id{i})s, %(actor{i})s, %(kind{i})s, %(data{i})s, "
        f"%(prev_hash{i})s, %(hash{i})s)"
        for i in range(n)
    )
    sig = ""
    if signed:
        sig_values = ", ".join(f"(%(seq{i})s, %(key_id{i})s, %(signature{i})s)" for i in range(n))
        sig = (
            ", sig AS (INSERT INTO audit_signature (seq, key_id, signature) "  # noqa: S608
            f"VALUES {sig_values})"
        )
    return (
        "WITH tip AS (UPDATE audit_head SET seq = %(tip_seq)s, hash = %(tip_hash)s "  # noqa: S608
        f"WHERE id = 1){sig} "
        "INSERT INTO audit_event (seq, at, run_id, actor, kind, data, prev_hash, hash) "
        f"VALUES {values}"
    )


def _pg_params(rows: list[dict[str, Any]], sigs: list[dict[str, Any]]) -> dict[str, Any]:
    params: dict[str, Any] = {"tip_seq": rows[-1]["seq"], "tip_hash": rows[-1]["hash"]}
    for i, row in enumerate(rows):
        params.update({f"{name}{i}": value for name, value in row.items()})
    for i, sig in enumerate(sigs):
        params.update({f"key_id{i}": sig["key_id"], f"signature{i}": sig["signature"]})
    return params


def queue(
    session: Session,
    kind: str,
    *,
    actor: str,
    run_id: int | None = None,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Queues one event in the session's transaction: written, with every other event it
    queued, by `write_queued`, which runs before the transaction's next read and before
    its commit. So a state change and its audit row still commit together, and the
    transaction locks the chain's tip for one statement at its end instead of from its
    first event on (every other transaction's append waits on that lock)."""
    queued = _Queued(kind, actor, run_id, canonical(_masked(data or {})), now_iso(at))
    pending = session.info.get(_QUEUE)
    if pending is None:
        session.info[_QUEUE] = [queued]
        hooks = session.info.setdefault(PRE_COMMIT, [])
        if write_queued not in hooks:
            hooks.append(write_queued)
    else:
        pending.append(queued)


def write_queued(session: OrmSession) -> Appended | None:
    """Writes the events queued in this transaction, in the order they were queued, after
    its pending rows (the tip locked from here to the commit); returns the last one."""
    events: list[_Queued] | None = session.info.pop(_QUEUE, None)
    if not events:
        return None
    session.flush()  # the transaction's pending rows first, as they always went
    conn = session.connection()
    rows, sigs = _chained(_tip(session, conn), session.info.get("audit_signer"), events)
    if conn.dialect.name == "postgresql":
        if len(rows) == 1:
            params = {**rows[0], **(sigs[0] if sigs else {})}
            _pg_execute(conn, _PG_APPEND_SIGNED if sigs else _PG_APPEND, params)
        else:
            _pg_execute(conn, _pg_append_many(len(rows), bool(sigs)), _pg_params(rows, sigs))
    else:
        conn.execute(_INSERT_EVENT, rows)
        conn.execute(_UPDATE_HEAD, {"seq": rows[-1]["seq"], "hash": rows[-1]["hash"]})
        if sigs:
            conn.execute(_INSERT_SIGNATURE, sigs)
    if conn.get_nested_transaction() is None:
        session.info[_TIP] = (conn.get_transaction(), rows[-1]["seq"], rows[-1]["hash"])
    for ev in events:
        metrics.audit_appended(ev.kind)
    return Appended(rows[-1]["seq"], rows[-1]["hash"])


@event.listens_for(OrmSession, "do_orm_execute")
def _reads_see_queued(state: ORMExecuteState) -> None:
    """A read in a transaction sees the events it queued (a restore point looks for the
    backup row its phase's start just queued): they are written before it."""
    if state.is_select:
        write_queued(state.session)


@event.listens_for(OrmSession, "before_commit")
def _no_commit_without_its_rows(session: OrmSession) -> None:
    """Whatever commits a session writes the events it queued first: `Database.session`
    writes them before its COMMIT (where a failure changed nothing); this catches any other
    way to a commit, so that no queued row is ever dropped."""
    write_queued(session)


def trail_connection(session: Session) -> Connection:
    """The transaction's connection for a Core read of the trail, its queued events written."""
    write_queued(session)
    return session.connection()


def append(
    session: Session,
    kind: str,
    *,
    actor: str,
    run_id: int | None = None,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> Appended:
    """Appends one event inside the session's transaction now (with any it queued before);
    returns its number and hash.

    Core statements, not the ORM: the head row is locked from the SELECT … FOR UPDATE
    to the commit, so every statement under that lock is kept short.
    """
    queue(session, kind, actor=actor, run_id=run_id, data=data, at=at)
    written = write_queued(session)
    assert written is not None
    return written


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
        one = _Queued(kind, actor, run_id, canonical(_masked(data or {})), now_iso(at))
        rows, sigs = _chained((int(tip[0]), str(tip[1])), db.audit_signer, [one])
        row, sig = rows[0], (sigs[0] if sigs else None)
        cursor.execute(_PG_APPEND if sig is None else _PG_APPEND_SIGNED, {**row, **(sig or {})})
    metrics.audit_appended(kind)
    return Appended(row["seq"], row["hash"])
