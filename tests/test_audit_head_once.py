"""Replicas starting together make the audit chain's tip once: neither fails its start.

Each found the row missing and inserted it, and one failed on the primary key (seen in a
fresh-clone run of tests/test_migrations.py's replicas starting together)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from bot.store.db import Database
from tests.db_fixtures import postgres_reachable, throwaway_pg_database
from tests.require import unavailable

pytestmark = pytest.mark.postgres


def test_replicas_making_the_chain_tip_at_once_make_it_once() -> None:
    if not postgres_reachable():
        unavailable("PostgreSQL not reachable")
    with throwaway_pg_database("cutover_head") as url:
        Database(url).create_all()
        dbs = [Database(url) for _ in range(8)]
        for db in dbs:
            with db.session() as s:
                s.execute(text("SELECT 1"))  # connected before the race, not during it
        with dbs[0].session() as s:
            s.execute(text("DELETE FROM audit_head"))
        barrier, errors = threading.Barrier(len(dbs)), []

        def start(db: Database) -> None:
            barrier.wait()
            try:
                db._finish_schema()
            except Exception as exc:  # noqa: BLE001 - any failure of a start is the finding
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(db,)) for db in dbs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        with dbs[0].session() as s:
            rows = s.execute(text("SELECT id, seq FROM audit_head")).all()
        for db in dbs:
            db.dispose()
    assert errors == []
    assert [tuple(r) for r in rows] == [(1, 0)]
