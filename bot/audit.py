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
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

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


def append(
    session: Session,
    kind: str,
    *,
    actor: str,
    run_id: int | None = None,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one()
    seq = head.seq + 1
    stamp = now_iso(at)
    payload = canonical(data or {})
    digest = event_hash(head.hash, seq, stamp, run_id, actor, kind, payload)
    row = AuditEvent(
        seq=seq,
        at=stamp,
        run_id=run_id,
        actor=actor,
        kind=kind,
        data=payload,
        prev_hash=head.hash,
        hash=digest,
    )
    head.seq, head.hash = seq, digest
    session.add(row)
    session.add(head)
    session.flush()
    return row


@dataclass(frozen=True)
class Problem:
    seq: int | None
    what: str

    def __str__(self) -> str:
        return f"row {self.seq}: {self.what}" if self.seq is not None else self.what


def _rows(db: Database, batch: int = 5000) -> Iterator[AuditEvent]:
    last = 0
    while True:
        with db.session() as s:
            rows = list(
                s.exec(
                    select(AuditEvent)
                    .where(AuditEvent.seq > last)
                    .order_by(col(AuditEvent.seq))
                    .limit(batch)
                )
            )
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def verify(db: Database) -> list[Problem]:
    """Recomputes the chain; names each edited, deleted, inserted or reordered row."""
    problems: list[Problem] = []
    prev_hash, expected_seq = GENESIS, 1
    for row in _rows(db):
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
    with db.session() as s:
        head = s.get(AuditHead, 1)
    if head is not None and (head.seq != expected_seq - 1 or head.hash != prev_hash):
        problems.append(
            Problem(
                None,
                f"chain ends at row {expected_seq - 1} but the head records "
                f"row {head.seq}: rows at the end were deleted",
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
