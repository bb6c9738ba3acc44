"""The trail read out: a run's events, and the export (JSON lines or CSV) of its rows."""

from __future__ import annotations

import csv
import io
import json

from sqlmodel import col, select

from bot.db import Database
from bot.models import AuditEvent

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


def events_containing(db: Database, run_id: int, kind: str, text: str) -> list[AuditEvent]:
    """A run's events of one kind whose data holds `text` (a cheap filter in the database
    for a few rows among many, e.g. the step results that carry an artifact)."""
    with db.session() as s:
        return list(
            s.exec(
                select(AuditEvent)
                .where(
                    AuditEvent.run_id == run_id,
                    AuditEvent.kind == kind,
                    col(AuditEvent.data).contains(text),
                )
                .order_by(col(AuditEvent.seq))
            )
        )


def events(db: Database, run_id: int) -> list[AuditEvent]:
    with db.session() as s:
        return list(
            s.exec(
                select(AuditEvent).where(AuditEvent.run_id == run_id).order_by(col(AuditEvent.seq))
            )
        )
