"""A transaction's audit rows are written together at its end: the chain's tip is locked for
one statement before the COMMIT, not from the transaction's first event on.

What must not change with it: the rows commit with the state change or not at all, in the
order they were made, hash-chained and signed; a read in the same transaction sees them."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from bot import audit
from bot.cli import main
from bot.domain.audit_kinds import AuditKind
from bot.store import audit_rows
from bot.store.audit_chain import queue
from bot.store.db import Database
from bot.store.models import AuditEvent, Run
from bot.store.unit import Store

NOTE = AuditKind.RECORD_NOTE


def kinds_and_notes(db: Database) -> list[tuple[int, str]]:
    with Store(db).tx() as tx:
        rows = tx.session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all()
        return [(r.seq, r.data) for r in rows]


def test_a_transactions_rows_do_not_hold_the_chain_while_it_runs(db: Database) -> None:
    """An event recorded by another thread while a transaction has queued three commits at
    once; the transaction's rows follow it, in the order they were made."""
    store = Store(db)
    recorded = threading.Event()

    def other() -> None:
        store.record(NOTE, actor="system", data={"note": "other"})
        recorded.set()

    with store.tx() as tx:
        for n in (1, 2, 3):
            tx.audit(NOTE, actor="system", data={"note": f"mine {n}"})
        if db.is_sqlite:  # one writer at a time: SQLite's lock is the transaction's own
            thread = None
        else:
            thread = threading.Thread(target=other)
            thread.start()
            assert recorded.wait(10), "another append waited for this transaction"
    if thread is not None:
        thread.join(10)
    else:
        other()
    rows = kinds_and_notes(db)
    mine = [seq for seq, data in rows if '"mine' in data]
    assert [data for _, data in rows if '"mine' in data] == [
        '{"note":"mine 1"}',
        '{"note":"mine 2"}',
        '{"note":"mine 3"}',
    ]
    assert mine == sorted(mine) and mine[-1] - mine[0] == 2  # together, in order
    assert audit.verify(db) == []


def test_a_read_in_the_transaction_sees_the_rows_it_queued(db: Database) -> None:
    with Store(db).tx() as tx:
        tx.audit(NOTE, actor="system", run_id=None, data={"note": "one"})
        seen = tx.session.exec(select(AuditEvent.data).where(AuditEvent.kind == NOTE)).all()
        assert seen == ['{"note":"one"}']  # an ORM read
        tx.audit(NOTE, actor="system", data={"note": "two"})
        rows = audit_rows.key_event_rows(tx, [NOTE], None)  # a Core read
        assert [r.data for r in rows] == ['{"note":"one"}', '{"note":"two"}']
    assert audit.verify(db) == []


def test_a_rows_data_is_taken_when_it_is_made(db: Database) -> None:
    """The caller's dict changed after the event was made changes nothing in the row."""
    data = {"note": "as made"}
    with Store(db).tx() as tx:
        tx.audit(NOTE, actor="system", data=data)
        data["note"] = "changed after"
    assert [d for _, d in kinds_and_notes(db)] == ['{"note":"as made"}']


class _FailingSigner:
    key_id = "broken"

    def sign(self, row_hash: str) -> str:
        raise RuntimeError("the signing key is unreadable")


def test_rows_that_cannot_be_written_take_their_state_change_with_them(db: Database) -> None:
    """The rows are written at the transaction's end: if they fail, nothing commits."""
    db.audit_signer = _FailingSigner()
    with pytest.raises(RuntimeError, match="signing key"), Store(db).tx() as tx:
        tx.add(
            Run(environment="staging", runbook_name="rb", runbook_digest="d", requested_by="T1:U1")
        )
        tx.flush()
        tx.audit(NOTE, actor="system", data={"note": "with the run"})
    db.audit_signer = None
    with Store(db).tx() as tx:
        assert tx.session.exec(select(Run)).all() == []
    assert kinds_and_notes(db) == []


def test_rows_written_together_are_each_signed(db: Database, tmp_path: Path) -> None:
    private, public = tmp_path / "audit.key", tmp_path / "audit.pub"
    assert (
        main(["audit", "keygen", "--private-key", str(private), "--public-key", str(public)]) == 0
    )
    db.audit_signer = audit.Signer.from_file(private)
    with Store(db).tx() as tx:
        for n in range(4):
            tx.audit(NOTE, actor="system", data={"note": n}, at=datetime(2026, 1, 1, tzinfo=UTC))
    db.audit_signer = None
    assert len(kinds_and_notes(db)) == 4
    assert main(["--database-url", db.url, "audit", "verify", "--public-key", str(public)]) == 0


def test_a_commit_by_any_other_way_writes_the_queued_rows_too(db: Database) -> None:
    """`Database.session` writes them before its COMMIT; a session committed directly (no
    code of the bot does) still does not drop them."""
    with Session(db.engine) as s:
        queue(s, NOTE, actor="system", data={"note": "kept"})
        s.commit()
    assert [d for _, d in kinds_and_notes(db)] == ['{"note":"kept"}']
    assert audit.verify(db) == []
