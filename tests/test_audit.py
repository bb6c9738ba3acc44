"""The audit trail: hash chain, tamper detection, export, and the CLI around them."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot import audit
from bot.cli import main
from bot.engine import Engine
from bot.store.db import Database
from bot.store.reads import open_gate_id
from bot.surface import Actor
from tests.small_runbook import small_runbook

BOB = Actor("T1:U2", "bob")


def seeded(db: Database, tmp_path: Path) -> int:
    engine = Engine(db, small_runbook(tmp_path), background=False)
    run = engine.start_run("staging", BOB)
    assert run.id is not None
    gate = open_gate_id(db, run.id)
    assert gate is not None
    engine.decide(gate, BOB, "continue")
    return run.id


@contextmanager
def tampering(db: Database) -> Iterator[Any]:
    """A connection that edits audit rows as a superuser attacker would.

    On PostgreSQL the append-only triggers refuse UPDATE/DELETE/TRUNCATE, so the
    attacker disables them first (owner or superuser only) and re-enables them after.
    """
    with db.engine.begin() as conn:
        if not db.is_sqlite:
            conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
        yield conn
        if not db.is_sqlite:
            conn.execute(text("ALTER TABLE audit_event ENABLE TRIGGER USER"))


def test_untouched_chain_verifies(db: Database, tmp_path: Path) -> None:
    seeded(db, tmp_path)
    assert audit.verify(db) == []


def test_row_edited_in_the_database_is_named(db: Database, tmp_path: Path) -> None:
    seeded(db, tmp_path)
    with tampering(db) as conn:
        conn.execute(text("UPDATE audit_event SET actor = 'T1:U666' WHERE seq = 5"))
    problems = [str(p) for p in audit.verify(db)]
    assert problems == [
        "row 5: content does not match its hash (edited; kind 'gate.vote', at "
        + problems[0].split("at ", 1)[1]
    ]


def test_deleted_row_is_named(db: Database, tmp_path: Path) -> None:
    seeded(db, tmp_path)
    with tampering(db) as conn:
        conn.execute(text("DELETE FROM audit_event WHERE seq = 3"))
    problems = [str(p) for p in audit.verify(db)]
    assert "row 4: rows 3 are missing (deleted)" in problems
    assert any(p.startswith("row 4: does not link") for p in problems)


def test_deleted_last_rows_are_found_through_the_head(db: Database, tmp_path: Path) -> None:
    seeded(db, tmp_path)
    with tampering(db) as conn:
        conn.execute(text("DELETE FROM audit_event WHERE seq >= 7"))
    problems = [str(p) for p in audit.verify(db)]
    assert len(problems) == 1 and "rows at the end were deleted" in problems[0]


def test_swapped_rows_are_found(db: Database, tmp_path: Path) -> None:
    seeded(db, tmp_path)
    with tampering(db) as conn:
        a = conn.execute(text("SELECT kind, data FROM audit_event WHERE seq = 2")).one()
        b = conn.execute(text("SELECT kind, data FROM audit_event WHERE seq = 3")).one()
        conn.execute(
            text("UPDATE audit_event SET kind=:k, data=:d WHERE seq = 2"),
            {"k": b.kind, "d": b.data},
        )
        conn.execute(
            text("UPDATE audit_event SET kind=:k, data=:d WHERE seq = 3"),
            {"k": a.kind, "d": a.data},
        )
    seqs = {p.seq for p in audit.verify(db)}
    assert seqs == {2, 3}


def test_export_jsonl_and_csv_carry_every_event_of_the_run(db: Database, tmp_path: Path) -> None:
    run_id = seeded(db, tmp_path)
    lines = audit.export(db, run_id, "jsonl").splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["kind"] for e in events][:2] == ["run.started", "phase.started"]
    assert all(e["run_id"] == run_id for e in events)
    rows = list(csv.DictReader(io.StringIO(audit.export(db, run_id, "csv"))))
    assert [r["hash"] for r in rows] == [e["hash"] for e in events]
    with pytest.raises(ValueError, match="use jsonl or csv"):
        audit.export(db, run_id, "xml")


def test_cli_verify_reports_the_edited_row_and_exits_1(
    sqlite_db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeded(sqlite_db, tmp_path)
    url = sqlite_db.url
    assert main(["--database-url", url, "audit", "verify"]) == 0
    assert "audit chain OK: 9 events verified" in capsys.readouterr().out
    with tampering(sqlite_db) as conn:
        conn.execute(text("UPDATE audit_event SET data = '{}' WHERE seq = 4"))
    assert main(["--database-url", url, "audit", "verify"]) == 1
    out = capsys.readouterr().out
    assert "audit chain BROKEN" in out and "row 4: content does not match its hash" in out


def test_cli_export_writes_jsonl(
    sqlite_db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = seeded(sqlite_db, tmp_path)
    assert (
        main(["--database-url", sqlite_db.url, "audit", "export", str(run_id), "--format", "jsonl"])
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 9 and json.loads(out[0])["kind"] == "run.started"


def test_row_inserted_past_the_head_is_found(db: Database, tmp_path: Path) -> None:
    seeded(db, tmp_path)
    with db.engine.begin() as conn:
        row = conn.execute(text("SELECT * FROM audit_event WHERE seq = 9")).mappings().one()
        forged = {**row, "seq": 10, "prev_hash": row["hash"], "kind": "gate.decided"}
        conn.execute(
            text(
                "INSERT INTO audit_event (seq, at, run_id, actor, kind, data, prev_hash, hash) "
                "VALUES (:seq, :at, :run_id, :actor, :kind, :data, :prev_hash, :hash)"
            ),
            forged,
        )
    problems = [str(p) for p in audit.verify(db)]
    assert "1 row(s) lie past the chain's head" in " ".join(problems)


def test_verify_while_the_bot_appends_reports_nothing(db: Database, tmp_path: Path) -> None:
    import threading

    seeded(db, tmp_path)
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            with db.session() as s:
                audit.append(s, "test.event", actor="system")

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        results = [audit.verify(db) for _ in range(5)]
    finally:
        stop.set()
        thread.join()
    assert results == [[]] * 5
    assert audit.verify(db) == []
