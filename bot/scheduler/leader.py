"""Who leads: a PostgreSQL advisory lock, or a lock file next to a SQLite database."""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path
from typing import IO, Any, Protocol

import psycopg
from sqlalchemy.engine import make_url

from bot.db import Database

log = logging.getLogger("bot.scheduler")  # the package's one logger: its name is in log lines

# pg_try_advisory_lock key of the scheduler: "cutover" in ASCII. Locks are per database.
LOCK_KEY = int.from_bytes(b"cutover", "big")


class LeaderLock(Protocol):
    def try_acquire(self) -> bool:
        """True when this process holds the lock (now or already); never blocks long."""
        ...

    def still_held(self) -> bool: ...

    def release(self) -> None: ...


class PgLeaderLock:
    """pg_try_advisory_lock on a dedicated connection: the lock lives as long as the
    session. Kill the connection (or the process) and a standby gets it."""

    def __init__(self, url: str, key: int = LOCK_KEY) -> None:
        self.dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.key = key
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    @property
    def backend_pid(self) -> int | None:
        """The server process of the lock's session (to kill it in a failover test)."""
        conn = self._conn
        return conn.info.backend_pid if conn is not None else None

    def try_acquire(self) -> bool:
        with self._lock:
            if self._conn is not None and self._alive():
                return True
            try:
                conn = psycopg.connect(
                    self.dsn,
                    autocommit=True,
                    connect_timeout=5,
                    application_name="cutover-bot scheduler",
                    keepalives=1,
                    keepalives_idle=10,
                    keepalives_interval=5,
                    keepalives_count=3,
                )
            except psycopg.Error as exc:
                log.warning("scheduler leader election: cannot connect: %s", exc)
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


class FileLeaderLock:
    """SQLite: one process per database file is assumed; flock keeps a second one out."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self._held = path is None  # an in-memory database has one process by definition

    def try_acquire(self) -> bool:
        if self._held:
            return True
        import fcntl

        assert self.path is not None
        f = self.path.open("a", encoding="utf-8")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            return False
        self._file, self._held = f, True
        return True

    def still_held(self) -> bool:
        return self._held

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None
            self._held = False


def leader_lock_for(db: Database) -> LeaderLock:
    if not db.is_sqlite:
        return PgLeaderLock(db.url)
    database = make_url(db.url).database
    if not database or database == ":memory:":
        return FileLeaderLock(None)
    return FileLeaderLock(Path(database).with_name(Path(database).name + ".scheduler-lock"))
