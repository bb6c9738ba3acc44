"""The bot's own database for tests: an SQLite file, or a throwaway PostgreSQL database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from bot.store.db import Database
from standins.pg import PG_URL, libpq, postgres_reachable, throwaway_pg_database
from tests.require import unavailable


def make_db(kind: str, tmp_path: Path) -> Iterator[Database]:
    if kind == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'cutover.db'}")
        db.create_all()
        yield db
        db.dispose()
        return
    if not postgres_reachable():
        unavailable(f"PostgreSQL not reachable at {make_url(PG_URL).render_as_string()}")
    with throwaway_pg_database() as url:
        db = Database(url)
        db.create_all()
        yield db
        db.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """The bot's database, once on SQLite and once on the real PostgreSQL."""
    yield from make_db(request.param, tmp_path)


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    yield from make_db("sqlite", tmp_path)


@pytest.fixture
def pg_db(tmp_path: Path) -> Iterator[Database]:
    yield from make_db("postgres", tmp_path)


@pytest.fixture
def app_role(pg_db: Database) -> Iterator[str]:
    """A login role that does not own the tables: what the bot should run as."""
    role = f"cutover_app_{uuid.uuid4().hex[:8]}"
    with pg_db.engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN')
    try:
        yield role
    finally:
        with pg_db.engine.begin() as conn:
            conn.exec_driver_sql(f'DROP OWNED BY "{role}"')
        pg_db.dispose()
        with psycopg.connect(libpq(pg_db.url), autocommit=True) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


@contextmanager
def users_target(prefix: str) -> Iterator[str]:
    """A target application's database (libpq URL): one table, `users`, with two rows, as
    the backup and restore tests find it before the cutover."""
    if not postgres_reachable():
        unavailable("backup and restore tests need the PostgreSQL server")
    with throwaway_pg_database(prefix) as url:
        target = libpq(url)
        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute("CREATE TABLE users (id int PRIMARY KEY, pubkey text)")
            conn.execute("INSERT INTO users VALUES (1, 'abc'), (2, 'def')")
        yield target


def public_tables(url: str) -> list[str]:
    """The tables of a libpq URL's database, in its public schema, by name."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall()
    return [r[0] for r in rows]
