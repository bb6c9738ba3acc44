"""Database access: one transaction per state change, on SQLite or PostgreSQL.

On SQLite every transaction starts with BEGIN IMMEDIATE, so two processes
deciding the same gate serialize instead of both reading "open". On
PostgreSQL the engine locks the gate row (SELECT … FOR UPDATE) instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session, SQLModel, create_engine

from bot import models  # noqa: F401  (registers the tables)


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached; nothing was changed."""


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let us issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite:
            self.engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": 30}
            )
            _sqlite_setup(self.engine)
        else:
            self.engine = create_engine(
                url,
                pool_size=pool_size,
                max_overflow=pool_size * 4,
                pool_pre_ping=True,
                pool_timeout=30,
            )

    @property
    def safe_url(self) -> str:
        """The URL without its password, for messages."""
        return make_url(self.url).render_as_string(hide_password=True)

    def create_all(self) -> None:
        try:
            SQLModel.metadata.create_all(self.engine)
            with self.session() as s:
                if s.get(models.AuditHead, 1) is None:
                    s.add(models.AuditHead(id=1))
        except OperationalError as exc:
            raise DatabaseUnavailable(
                f"database {self.safe_url} unreachable: {_short(exc)}"
            ) from None

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: commits if the block ends normally, rolls back otherwise."""
        try:
            with Session(self.engine, expire_on_commit=False) as s, s.begin():
                yield s
        except OperationalError as exc:
            if _is_connection_error(exc):
                raise DatabaseUnavailable(
                    f"database {self.safe_url} unavailable: {_short(exc)}; nothing was changed"
                ) from None
            raise

    def dispose(self) -> None:
        self.engine.dispose()


def _short(exc: DBAPIError) -> str:
    text = str(exc.orig) if exc.orig is not None else str(exc)
    return text.strip().splitlines()[0][:200] if text.strip() else type(exc).__name__


def _is_connection_error(exc: OperationalError) -> bool:
    if exc.connection_invalidated:
        return True
    text = str(exc.orig).lower()
    return any(
        s in text
        for s in (
            "connection",
            "could not connect",
            "server closed",
            "terminating",
            "unable to open",
        )
    )
