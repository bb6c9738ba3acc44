"""The trail read out: a run's events, and the export (JSON lines or CSV) of its rows."""

from __future__ import annotations

import csv
import io
import json

from bot.store import audit_rows
from bot.store.models import AuditEvent
from bot.store.unit import Database, Store

EXPORT_FIELDS = ["seq", "at", "run_id", "actor", "kind", "data", "prev_hash", "hash"]


def export(db: Database, run_id: int | None, fmt: str) -> str:
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"unknown format {fmt!r}; use jsonl or csv")
    with Store(db).tx() as tx:
        rows = audit_rows.events(tx, run_id)
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
    with Store(db).tx() as tx:
        return audit_rows.events(tx, run_id, kind=kind, containing=text)


def events(db: Database, run_id: int) -> list[AuditEvent]:
    with Store(db).tx() as tx:
        return audit_rows.events(tx, run_id)
