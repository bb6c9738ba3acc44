"""The audit trail: append-only, each row hash-chained to the one before.

An append happens inside the caller's transaction, so a state change and its
audit row commit together or not at all. The chain's tip lives in audit_head,
locked for the append: rows get gap-free sequence numbers in commit order.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, func, text
from sqlmodel import Session, SQLModel, col, select

from bot import metrics
from bot.db import Database
from bot.models import AuditEvent, AuditHead

GENESIS = "0" * 64


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


_EVENT = AuditEvent.__table__  # type: ignore[attr-defined]
_HEAD = AuditHead.__table__  # type: ignore[attr-defined]
_HEAD_FOR_UPDATE = select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1).with_for_update()
_INSERT_EVENT = _EVENT.insert()
_UPDATE_HEAD = (
    _HEAD.update().where(_HEAD.c.id == 1).values(seq=bindparam("seq"), hash=bindparam("hash"))
)
# PostgreSQL: the row and the new tip in one statement (one round trip less under the lock)
_APPEND_PG = text(
    "WITH tip AS (UPDATE audit_head SET seq = :seq, hash = :hash WHERE id = 1) "
    "INSERT INTO audit_event (seq, at, run_id, actor, kind, data, prev_hash, hash) "
    "VALUES (:seq, :at, :run_id, :actor, :kind, :data, :prev_hash, :hash)"
)


def append(
    session: Session,
    kind: str,
    *,
    actor: str,
    run_id: int | None = None,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """Appends one event inside the session's transaction; returns it (not session-bound).

    Core statements, not the ORM: the head row is locked from the SELECT … FOR UPDATE
    to the commit, so every statement under that lock is kept short.
    """
    session.flush()  # the caller's pending rows go first, as they did with the ORM
    conn = session.connection()
    prev_seq, prev_hash = conn.execute(_HEAD_FOR_UPDATE).one()
    seq = prev_seq + 1
    stamp = now_iso(at)
    payload = canonical(data or {})
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
    if conn.dialect.name == "postgresql":
        conn.execute(_APPEND_PG, row)
    else:
        conn.execute(_INSERT_EVENT, row)
        conn.execute(_UPDATE_HEAD, {"seq": seq, "hash": digest})
    metrics.audit_appended(kind)
    return AuditEvent(**row)


@dataclass(frozen=True)
class Problem:
    seq: int | None
    what: str

    def __str__(self) -> str:
        return f"row {self.seq}: {self.what}" if self.seq is not None else self.what


def _rows(db: Database, upto: int, batch: int = 10000) -> Iterator[Any]:
    """Events up to seq `upto` in order, as plain rows (no ORM objects), a short read a batch."""
    query = select(*_EVENT.c).where(_EVENT.c.seq > bindparam("last"), _EVENT.c.seq <= upto)
    query = query.order_by(_EVENT.c.seq).limit(batch)
    last = 0
    while True:
        with db.session() as s:
            rows = s.connection().execute(query, {"last": last}).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def verify(db: Database) -> list[Problem]:
    """Recomputes the chain; names each edited, deleted, inserted or reordered row.

    The head is read first: rows a live bot appends meanwhile lie beyond it and are
    left for the next verify, instead of looking like a chain that outgrew its head.
    """
    with db.session() as s:
        head = s.get(AuditHead, 1)
        head_seq, head_hash = (head.seq, head.hash) if head is not None else (0, GENESIS)
    problems: list[Problem] = []
    prev_hash, expected_seq = GENESIS, 1
    for row in _rows(db, head_seq):
        if row.seq != expected_seq:
            if row.seq > expected_seq:
                missing = (
                    f"{expected_seq}"
                    if row.seq == expected_seq + 1
                    else (f"{expected_seq}-{row.seq - 1}")
                )
                problems.append(Problem(row.seq, f"rows {missing} are missing (deleted)"))
            expected_seq = row.seq
        if row.prev_hash != prev_hash:
            problems.append(
                Problem(
                    row.seq,
                    "does not link to the row before it "
                    "(a row before it was deleted, inserted or reordered)",
                )
            )
        recomputed = event_hash(
            row.prev_hash, row.seq, row.at, row.run_id, row.actor, row.kind, row.data
        )
        if recomputed != row.hash:
            problems.append(
                Problem(
                    row.seq,
                    f"content does not match its hash (edited; kind {row.kind!r}, at {row.at})",
                )
            )
        prev_hash, expected_seq = row.hash, row.seq + 1
    # One statement, one snapshot: rows past the head as it stands now were not appended
    # through it (a live append moves row and head in one transaction).
    beyond = (
        select(func.count())
        .select_from(_EVENT)
        .where(_EVENT.c.seq > select(_HEAD.c.seq).where(_HEAD.c.id == 1).scalar_subquery())
    )
    with db.session() as s:
        stray = s.connection().execute(beyond).scalar_one()
    if stray:
        problems.append(
            Problem(
                None,
                f"{stray} row(s) lie past the chain's head: inserted "
                "without going through the audit log",
            )
        )
    if head_seq != expected_seq - 1 or head_hash != prev_hash:
        problems.append(
            Problem(
                None,
                f"chain ends at row {expected_seq - 1} but the head records "
                f"row {head_seq}: rows at the end were deleted",
            )
        )
    return problems


EXPORT_FIELDS = ["seq", "at", "run_id", "actor", "kind", "data", "prev_hash", "hash"]


def export(db: Database, run_id: int | None, fmt: str) -> str:
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"unknown format {fmt!r}; use jsonl or csv")
    with db.session() as s:
        query = select(AuditEvent).order_by(col(AuditEvent.seq))
        if run_id is not None:
            query = query.where(AuditEvent.run_id == run_id)
        rows = list(s.exec(query))
    if fmt == "jsonl":
        return "".join(
            json.dumps({**r.model_dump(), "data": json.loads(r.data)}, sort_keys=True) + "\n"
            for r in rows
        )
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=EXPORT_FIELDS)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: getattr(r, k) for k in EXPORT_FIELDS})
    return buf.getvalue()


def events(db: Database, run_id: int) -> list[AuditEvent]:
    with db.session() as s:
        return list(
            s.exec(
                select(AuditEvent).where(AuditEvent.run_id == run_id).order_by(col(AuditEvent.seq))
            )
        )


# ---------------------------------------------------------------------------- lockdown


ROLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,62}")


class LockdownError(ValueError):
    """Lockdown cannot protect the table for this role; the message says why."""


def lockdown_statements(db: Database, app_role: str) -> list[str]:
    """SQL that lets `app_role` run the bot but never change or remove an audit row.

    The role keeps SELECT/INSERT/UPDATE/DELETE on the state tables and SELECT/INSERT on
    audit_event; UPDATE, DELETE and TRUNCATE on audit_event are revoked. A REVOKE does
    not bind the table's owner or a superuser, so the bot must run as another role.
    """
    if db.is_sqlite:
        raise LockdownError("lockdown is for PostgreSQL; an SQLite file has no roles")
    if not ROLE_NAME.fullmatch(app_role):
        raise LockdownError(
            f"{app_role!r} is not a plain role name (letters, digits, _ and -, up to 63)"
        )
    quote = db.engine.dialect.identifier_preparer.quote
    role = quote(app_role)
    state = [
        quote(t.name) for t in SQLModel.metadata.sorted_tables if t.name != AuditEvent.__tablename__
    ]
    return [
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(state)} TO {role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
        # The schema's revision, read at start; upgrades run as the owner (docs/deploy.md).
        f"GRANT SELECT ON alembic_version TO {role}",
        f"REVOKE ALL ON audit_event FROM {role}",
        "REVOKE UPDATE, DELETE, TRUNCATE ON audit_event FROM PUBLIC",
        f"GRANT SELECT, INSERT ON audit_event TO {role}",
    ]


def lockdown(db: Database, app_role: str) -> list[str]:
    """Applies `lockdown_statements` in one transaction; returns them."""
    statements = lockdown_statements(db, app_role)
    with db.engine.begin() as conn:
        row = conn.execute(
            text(
                "SELECT r.rolsuper, pg_has_role(r.rolname, t.tableowner, 'USAGE') "
                "FROM pg_roles r, pg_tables t WHERE r.rolname = :role "
                "AND t.schemaname = current_schema() AND t.tablename = 'audit_event'"
            ),
            {"role": app_role},
        ).one_or_none()
        if row is None:
            raise LockdownError(f"no role {app_role!r}, or no audit_event table: nothing changed")
        if row[0] or row[1]:
            raise LockdownError(
                f"role {app_role!r} is a superuser or owns audit_event: a REVOKE cannot bind it. "
                "Create the tables as another role and run the bot as this one; nothing changed"
            )
        for statement in statements:
            conn.execute(text(statement))
    return statements
