"""Leader locks: a PostgreSQL advisory lock held on a dedicated connection of its own (the
lock lives exactly as long as that session: kill the connection, or the process, and a
standby gets it), and the file of an SQLite database, next to which a lock file sits. The
one raw connection the bot opens outside its pool; the scheduler's election uses it
(bot/scheduler/leader.py)."""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from bot.store.db import Database


class AdvisoryLock:
    """pg_try_advisory_lock(key) on a dedicated autocommit connection."""

    def __init__(self, url: str, key: int, *, name: str, log: logging.Logger) -> None:
        self.dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.key = key
        self.name = name  # the connection's application_name, seen in pg_stat_activity
        self.log = log
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    @property
    def backend_pid(self) -> int | None:
        """The server process of the lock's session (to kill it in a failover test)."""
        conn = self._conn
        return conn.info.backend_pid if conn is not None else None

    def try_acquire(self) -> bool:
        """True when this process holds the lock (now or already); never blocks long."""
        with self._lock:
            if self._conn is not None and self._alive():
                return True
            try:
                conn = psycopg.connect(
                    self.dsn,
                    autocommit=True,
                    connect_timeout=5,
                    application_name=self.name,
                    keepalives=1,
                    keepalives_idle=10,
                    keepalives_interval=5,
                    keepalives_count=3,
                )
            except psycopg.Error as exc:
                self.log.warning("%s leader election: cannot connect: %s", self.what, exc)
                return False
            try:
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
            except psycopg.Error:
                conn.close()
                return False
            if not row or not row[0]:
                conn.close()
                return False
            self._conn = conn
            return True

    @property
    def what(self) -> str:
        return self.name.removeprefix("cutover-bot ")

    def _alive(self) -> bool:
        assert self._conn is not None
        try:
            self._conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
            return False

    def still_held(self) -> bool:
        with self._lock:
            return self._conn is not None and self._alive()

    def release(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None


def sqlite_file(db: Database) -> Path | None:
    """The SQLite database's file; None for an in-memory database (or PostgreSQL)."""
    if not db.is_sqlite:
        return None
    database = make_url(db.url).database
    if not database or database == ":memory:":
        return None
    return Path(database)
