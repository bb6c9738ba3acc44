"""Who leads: a PostgreSQL advisory lock, or a lock file next to a SQLite database."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import IO, Protocol

from bot.store.leader_locks import AdvisoryLock, sqlite_file
from bot.store.unit import Database

log = logging.getLogger("bot.scheduler")  # the package's one logger: its name is in log lines

# pg_try_advisory_lock key of the scheduler: "cutover" in ASCII. Locks are per database.
LOCK_KEY = int.from_bytes(b"cutover", "big")


class LeaderLock(Protocol):
    def try_acquire(self) -> bool:
        """True when this process holds the lock (now or already); never blocks long."""
        ...

    def still_held(self) -> bool: ...

    def release(self) -> None: ...


class PgLeaderLock(AdvisoryLock):
    """pg_try_advisory_lock on a dedicated connection (bot.store.leader_locks): the lock
    lives as long as the session. Kill the connection (or the process) and a standby gets it."""

    def __init__(self, url: str, key: int = LOCK_KEY) -> None:
        super().__init__(url, key, name="cutover-bot scheduler", log=log)


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
    database = sqlite_file(db)
    if database is None:
        return FileLeaderLock(None)
    return FileLeaderLock(database.with_name(database.name + ".scheduler-lock"))
