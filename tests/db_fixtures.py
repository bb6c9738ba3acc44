"""The bot's own database for tests: an SQLite file, or a throwaway PostgreSQL database."""

from __future__ import annotations

import atexit
import functools
import hashlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from bot.store import db as db_module
from bot.store import migrate, models
from bot.store.db import Database
from standins.pg import PG_URL, libpq, postgres_reachable, throwaway_pg_database
from tests.require import unavailable


def make_db(kind: str, tmp_path: Path) -> Iterator[Database]:
    """A fresh database at the schema's head: a copy of one `create_all` made once per
    process (SQLite: the file) or once per schema on the server (PostgreSQL: a template
    database), instead of ~30 ms (SQLite) or ~200 ms (PostgreSQL) of DDL for each test."""
    if kind == "sqlite":
        path = tmp_path / "cutover.db"
        shutil.copyfile(_sqlite_template(), path)
        db = Database(f"sqlite:///{path}")
        yield db
        db.dispose()
        return
    if not postgres_reachable():
        unavailable(f"PostgreSQL not reachable at {make_url(PG_URL).render_as_string()}")
    with throwaway_pg_database(template=_pg_template()) as url:
        db = Database(url)
        yield db
        db.dispose()


def _schema_digest() -> str:
    """Names the schema `create_all` makes: the head revision and the code that makes it."""
    h = hashlib.sha256(migrate.head().encode())
    for module in (models, db_module):
        h.update(Path(str(module.__file__)).read_bytes())
    return h.hexdigest()[:12]


@functools.cache
def _sqlite_template() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="cutover-schema-"))
    atexit.register(shutil.rmtree, folder, True)
    path = folder / "cutover.db"
    db = Database(f"sqlite:///{path}")
    db.create_all()
    db.dispose()  # closed cleanly: the write-ahead log is folded into the file
    return path


@functools.cache
def _pg_template() -> str:
    """The template database of this schema, made once on the server (the first worker to
    ask makes it under an advisory lock; the others wait, then copy it). Nobody connects to
    it after it is made, so CREATE DATABASE … TEMPLATE can copy it at any time."""
    name = f"cutover_schema_{_schema_digest()}"
    admin = libpq(PG_URL)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext('cutover test schema template'))")
        try:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                return name
            building = f"{name}_building"
            conn.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{building}"')
            url = make_url(PG_URL).set(database=building).render_as_string(hide_password=False)
            db = Database(url)
            db.create_all()
            db.dispose()
            conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
            return name
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext('cutover test schema template'))")


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
