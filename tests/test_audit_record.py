"""An event that changes no state (a note, a tick, a readiness check) is recorded in a
transaction of its own: on PostgreSQL on a pooled DBAPI cursor instead of an ORM session.
It must be the same row as an append inside a session would write (chained, signed,
masked), and it must fail the way a session fails: a database gone is DatabaseUnavailable,
a failure half-way leaves no row and no lock behind, a connection cut while it sat in the
pool is replaced."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from bot import audit
from bot.domain.audit_kinds import AuditKind
from bot.store.db import Database, DatabaseUnavailable
from bot.store.models import AuditEvent
from phases.secrets import Masker
from tests.db_fixtures import libpq
from tests.test_hardening_faults import Cutter


def signing(db: Database) -> audit.Signer:
    signer = audit.Signer(Ed25519PrivateKey.generate())
    db.audit_signer = signer
    return signer


def public_keys(signer: audit.Signer) -> dict[str, object]:
    return {signer.key_id: signer._private.public_key()}


def cut_every_connection(db: Database) -> int:
    """What a PostgreSQL restart or failover does to the pooled connections."""
    url = make_url(db.url)
    with psycopg.connect(libpq(db.url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (url.database,),
        ).fetchone()
    return int(row[0]) if row else 0


def test_an_event_recorded_alone_is_chained_and_signed_like_an_appended_one(db: Database) -> None:
    signer = signing(db)
    first = audit.record(db, AuditKind.RECORD_NOTE, actor="T1:U1", data={"text": "one"})
    with db.session() as s:
        middle = audit.append(s, AuditKind.RECORD_NOTE, actor="T1:U1", data={"text": "two"})
    last = audit.record(db, AuditKind.RECORD_NOTE, actor="T1:U2", run_id=None, data={"n": 3})
    assert (first.seq, middle.seq, last.seq) == (1, 2, 3)
    assert audit.head(db) == (3, last.hash)
    assert audit.verify(db) == []
    assert audit.verify_signatures(db, public_keys(signer)) == []  # type: ignore[arg-type]


def test_a_secret_in_a_recorded_event_is_masked_when_written(db: Database) -> None:
    secret = "tok-" + uuid.uuid4().hex
    masker = Masker([secret])
    audit.record(db, AuditKind.ACTION_REFUSED, actor="T1:U1", data={"reason": f"bad {secret}"})
    assert secret not in audit.export(db, None, "jsonl")
    del masker


class FailingSigner(audit.Signer):
    def sign(self, row_hash: str) -> str:
        raise RuntimeError("the key file went away")


def test_a_record_that_fails_half_way_leaves_no_row_and_no_lock(db: Database) -> None:
    audit.record(db, AuditKind.RECORD_NOTE, actor="T1:U1", data={"text": "before"})
    db.audit_signer = FailingSigner(Ed25519PrivateKey.generate())
    with pytest.raises(RuntimeError, match="key file"):
        audit.record(db, AuditKind.RECORD_NOTE, actor="T1:U1", data={"text": "lost"})
    assert audit.head(db)[0] == 1  # the failed row is not there
    if not db.is_sqlite:  # the chain's tip is not left locked by the failed transaction
        with psycopg.connect(libpq(db.url)) as other:
            other.execute("SET lock_timeout = '2s'")
            other.execute("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
    signer = signing(db)
    after = audit.record(db, AuditKind.RECORD_NOTE, actor="T1:U1", data={"text": "after"})
    assert after.seq == 2
    assert audit.verify(db) == []
    # the first row was written without a key: named as unsigned, the last one verifies
    problems = audit.verify_signatures(db, public_keys(signer))  # type: ignore[arg-type]
    assert [p.seq for p in problems] == [1]


@pytest.mark.postgres
def test_a_record_after_every_connection_was_cut_lands_on_a_new_one(pg_db: Database) -> None:
    for n in range(3):  # the pool holds a connection that has been used
        audit.record(pg_db, AuditKind.RECORD_NOTE, actor="T1:U1", data={"n": n})
    assert cut_every_connection(pg_db) >= 1
    appended = audit.record(pg_db, AuditKind.RECORD_NOTE, actor="T1:U1", data={"n": 3})
    assert appended.seq == 4
    assert audit.verify(pg_db) == []


@pytest.mark.postgres
def test_a_record_while_the_database_is_down_says_so_and_changes_nothing(
    pg_db: Database,
) -> None:
    down = Database(
        make_url(pg_db.url).set(host="127.0.0.1", port=1).render_as_string(hide_password=False)
    )
    try:
        with pytest.raises(DatabaseUnavailable, match="nothing was changed") as caught:
            audit.record(down, AuditKind.RECORD_NOTE, actor="T1:U1", data={"text": "x"})
        assert "127.0.0.1:1" in str(caught.value)
    finally:
        down.dispose()


@pytest.mark.postgres
def test_a_database_error_in_a_record_is_raised_and_the_pool_stays_usable(
    pg_db: Database,
) -> None:
    audit.record(pg_db, AuditKind.RECORD_NOTE, actor="T1:U1", data={"n": 1})
    # The seq the next append takes is already used. (A planted audit_signature row no longer
    # collides, issue 22: its key is (seq, signature); an audit_event row still does.)
    with pg_db.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO audit_event (seq, at, actor, kind, data, prev_hash, hash) "
            "VALUES (2, 'x', 'x', 'x', '{}', 'x', 'x')"
        )
    signing(pg_db)
    with pytest.raises(IntegrityError, match="audit_event") as caught:  # as a session raises it
        audit.record(pg_db, AuditKind.RECORD_NOTE, actor="T1:U1", data={"n": 2})
    assert not isinstance(caught.value, DatabaseUnavailable)
    assert audit.head(pg_db)[0] == 1  # the row and the head's move were rolled back together
    with pg_db.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE audit_event DISABLE TRIGGER USER")
        conn.exec_driver_sql("DELETE FROM audit_event WHERE seq = 2")
        conn.exec_driver_sql("ALTER TABLE audit_event ENABLE TRIGGER USER")
    assert audit.record(pg_db, AuditKind.RECORD_NOTE, actor="T1:U1", data={"n": 2}).seq == 2


@pytest.mark.postgres
def test_a_record_whose_first_connection_is_cut_while_it_is_set_up_says_nothing_was_changed(
    pg_db: Database,
) -> None:
    """The pool's first connection runs the dialect's set-up queries (SQLAlchemy's
    first_connect), which SQLAlchemy wraps: a cut there must read as the database being
    unavailable, as a cut anywhere else does (seen once when cuts every 10 ms, below, met a
    new pool: the writer's thread died on a bare OperationalError)."""
    fresh = Database(pg_db.url)
    admin = libpq(pg_db.url)

    def cut_it(dbapi_conn: object, _record: object) -> None:
        pid = dbapi_conn.info.backend_pid  # type: ignore[attr-defined]
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))

    event.listen(fresh.engine, "first_connect", cut_it, insert=True)  # before the set-up
    try:
        with pytest.raises(DatabaseUnavailable, match="nothing was changed"):
            audit.record(fresh, AuditKind.RECORD_NOTE, actor="T1:U1", data={"n": 1})
        event.remove(fresh.engine, "first_connect", cut_it)
        assert audit.record(fresh, AuditKind.RECORD_NOTE, actor="T1:U1", data={"n": 2}).seq == 1
    finally:
        fresh.dispose()


@pytest.mark.postgres
def test_records_while_connections_are_cut_every_10_ms_lose_and_duplicate_nothing(
    pg_db: Database,
) -> None:
    """Two writers record while PostgreSQL drops every connection every 10 ms: each record
    either lands once or says DatabaseUnavailable (never another error), and the trail
    stays one unbroken, signed chain."""
    signer = signing(pg_db)
    landed: list[tuple[int, int]] = []
    refused: list[tuple[int, int]] = []
    unchanged: list[tuple[int, int]] = []  # refused with "nothing was changed"
    tried: list[tuple[int, int]] = []

    def writer(t: int, cutter: Cutter) -> None:
        # 60 records each, and on until the cutter has cut 3 connections: on a fast machine
        # 120 records could all land between two cuts, and the test would show nothing.
        n = 0
        while n < 60 or (cutter.cuts < 3 and n < 5000):
            tried.append((t, n))
            try:
                audit.record(pg_db, AuditKind.RECORD_NOTE, actor="T1:U1", data={"t": t, "n": n})
                landed.append((t, n))
            except DatabaseUnavailable as exc:
                if exc.at_commit:
                    assert "may or may not have been recorded" in str(exc), str(exc)
                else:
                    assert "nothing was changed" in str(exc), str(exc)
                    unchanged.append((t, n))
                refused.append((t, n))
            n += 1

    with Cutter(pg_db) as cutter:
        threads = [threading.Thread(target=writer, args=(t, cutter)) for t in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert cutter.cuts >= 3 and len(tried) >= 120
    assert sorted(landed + refused) == sorted(tried)  # each either landed or was refused

    with pg_db.session() as s:
        rows = s.exec(select(AuditEvent)).all()
    written = Counter((d["t"], d["n"]) for d in (json.loads(e.data) for e in rows))
    assert all(written[k] == 1 for k in landed)  # every one that landed, once
    # one refused at its COMMIT may have landed all the same (and said so), never twice;
    # one that said "nothing was changed" never did
    assert set(written) <= set(landed) | set(refused) and max(written.values()) == 1
    assert not set(written) & set(unchanged)
    assert audit.verify(pg_db) == []
    assert audit.verify_signatures(pg_db, public_keys(signer)) == []  # type: ignore[arg-type]
    after = audit.record(pg_db, AuditKind.RECORD_NOTE, actor="T1:U1", data={"after": True})
    assert after.seq == sum(written.values()) + 1
