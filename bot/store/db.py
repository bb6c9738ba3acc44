"""Database access: one transaction per state change, on SQLite or PostgreSQL.

On SQLite every transaction starts with BEGIN IMMEDIATE, so two processes
deciding the same gate serialize instead of both reading "open". On
PostgreSQL the engine locks the gate row (SELECT … FOR UPDATE) instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from psycopg.pq import ExecStatus, TransactionStatus
from sqlalchemy import bindparam, column, event, text
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError, ProgrammingError
from sqlmodel import Session, SQLModel, create_engine

from bot.domain.errors import Unavailable
from bot.settings import normalize_database_url
from bot.store import migrate, models

log = logging.getLogger(__name__)
T = TypeVar("T")


class DatabaseUnavailable(Unavailable):
    """The database could not be reached: nothing was changed, or, when the connection
    dropped at the COMMIT, its answer was lost (`at_commit`: the change may have landed)."""

    at_commit: bool = False


class SchemaNotReady(Unavailable):
    """The database has no cutover schema, or an older or newer one: `cutover db upgrade`."""


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


def _begin_at_checkout(engine: Engine) -> None:
    """Hands out only live PostgreSQL connections, without a round trip of its own (issue 9).

    `pool_pre_ping` sent a `SELECT 1` at every checkout: a fifth round trip per transaction
    (BEGIN, the statements, COMMIT being the others). Instead the BEGIN that psycopg would
    send before the first statement is sent here, at checkout: it is the liveness check. A
    connection the server dropped (a restart, a failover, pg_terminate_backend) fails it,
    the pool discards it (DisconnectionError) and connects anew, so a click right after a
    database restart still runs on a working connection, and nothing had been sent on the
    dead one. The statements then run inside the open transaction; COMMIT ends it as before.

    A connection made just now that fails too is not replaced again: the database is down
    or dropping connections, and the first statement raises as it would have (the pool
    gives up after two replacements with an error that says less).
    """

    @event.listens_for(engine, "connect")
    def on_connect(_dbapi_conn: Any, record: Any) -> None:
        record.info["fresh"] = True

    @event.listens_for(engine, "checkout")
    def on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        fresh = record.info.pop("fresh", False)
        pgconn = dbapi_conn.pgconn
        if dbapi_conn.autocommit or pgconn.transaction_status == TransactionStatus.INTRANS:
            return  # an autocommit connection, or one begun already
        if pgconn.transaction_status == TransactionStatus.IDLE:
            result = pgconn.exec_(b"BEGIN")
            if result.status == ExecStatus.COMMAND_OK:
                return
        if not fresh:
            raise DisconnectionError("connection dropped by the server while in the pool")


# session.info: what a transaction writes just before its COMMIT (callables of the session)
PRE_COMMIT = "pre_commit"


class Database:
    """The bot's database. `must_exist`: an SQLite file that is not there is an error
    (SchemaNotReady) instead of a new empty file, for commands that only read."""

    def __init__(self, url: str, *, pool_size: int = 10, must_exist: bool = False) -> None:
        url = normalize_database_url(url)  # postgres:// accepted; DatabaseURLError if unusable
        self.url = url
        # Signs every audit row appended through this database (bot.audit.Signer); its key
        # is read from a file, never stored in the database.
        self.audit_signer: Any = None
        # Where the last chain head this bot signed and posted is kept, outside the database
        # (bot.audit_guard.CheckpointFile); None: no checkpoint.
        self.audit_checkpoint: Any = None
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and must_exist:
            path = parsed.database or ""
            if path not in ("", ":memory:") and not Path(path).is_file():
                raise SchemaNotReady(
                    f"database {self.safe_url}: no such file {path}; check the path, or "
                    "create it with `cutover db upgrade`"
                )
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
                pool_timeout=30,
                pool_use_lifo=True,  # the connections in use stay warm; the spares idle
            )
            _begin_at_checkout(self.engine)

    @property
    def safe_url(self) -> str:
        """The URL without its password, for messages."""
        return make_url(self.url).render_as_string(hide_password=True)

    def upgrade(self) -> tuple[str | None, str]:
        """Brings the schema to the newest revision (bot/store/migrate.py), one process at a time;
        returns (revision before, revision after). Then the audit chain's head row and, on
        PostgreSQL, audit_event's append-only triggers."""
        try:
            before, after = migrate.upgrade(self.engine)
            self._finish_schema()
        except OperationalError as exc:
            raise DatabaseUnavailable(
                f"database {self.safe_url} unreachable: {_short(exc)}"
            ) from None
        except ProgrammingError as exc:  # e.g. a locked-down app role may not change tables
            raise SchemaNotReady(
                f"database {self.safe_url}: cannot upgrade the schema ({_short(exc)}); run "
                "`cutover db upgrade` as the role that owns the tables (docs/deploy.md)"
            ) from None
        if before != after:
            log.info("database %s upgraded from %s to %s", self.safe_url, before or "none", after)
        return before, after

    def create_all(self) -> None:
        """The schema straight from the models, stamped at the head revision: for tests and
        benches, where a fresh database per test must be quick. Deployments use upgrade()."""
        try:
            SQLModel.metadata.create_all(self.engine)
            with self.engine.begin() as conn:
                if migrate.current(conn) != migrate.head():  # a restart: nothing to write
                    migrate.stamp_head(conn)
            self._finish_schema()
        except OperationalError as exc:
            raise DatabaseUnavailable(
                f"database {self.safe_url} unreachable: {_short(exc)}"
            ) from None

    def require_schema(self) -> None:
        """For commands that only read: the schema must be there, at this version's revision.
        Creates nothing; SchemaNotReady names the (masked) URL and what to run."""
        try:
            with self.engine.connect() as conn:
                revision = migrate.current(conn)
                tables = migrate.has_tables(conn)
        except OperationalError as exc:
            raise DatabaseUnavailable(
                f"database {self.safe_url} unreachable: {_short(exc)}"
            ) from None
        head = migrate.head()
        if revision == head:
            return
        where = f"database {self.safe_url}"
        if revision is None and not tables:
            problem = "has no cutover tables (a wrong URL or path?)"
        elif revision is None:
            problem = "has the tables of a cutover from before migrations"
        elif not migrate.known(revision):
            raise SchemaNotReady(
                f"{where} is at schema revision {revision}, newer than this cutover knows "
                f"({head}); run a newer cutover"
            )
        else:
            problem = f"is at schema revision {revision}, this cutover needs {head}"
        raise SchemaNotReady(f"{where} {problem}; run `cutover db upgrade`")

    def _finish_schema(self) -> None:
        # The chain's tip, made once: replicas starting together both found it missing and
        # both inserted it (one then failed its start on the primary key), so the insert
        # itself skips a row that is there.
        head = models.AuditHead(id=1)
        table: Any = models.AuditHead.__table__  # type: ignore[attr-defined]
        insert = (sqlite_dialect.insert if self.is_sqlite else pg_dialect.insert)(table)
        with self.session() as s:
            s.execute(
                insert.values(id=head.id, seq=head.seq, hash=head.hash).on_conflict_do_nothing()
            )
        if not self.is_sqlite:
            self._protect_audit_table()

    def _protect_audit_table(self) -> None:
        """Triggers that refuse UPDATE, DELETE and TRUNCATE of audit_event (PostgreSQL).

        Idempotent and safe to run from several processes at once: an advisory lock
        serializes the install, and a trigger is created only when it is missing, so a
        restart takes no table lock that would stall appends and needs no DDL rights.
        A superuser or the table's owner can still disable the triggers: run the bot as
        a role that does not own the tables (`cutover audit lockdown --app-role ROLE`).
        """
        try:
            with self.engine.begin() as conn:
                if _audit_guards(conn) == dict.fromkeys(_AUDIT_GUARD_TRIGGERS, True):
                    return  # installed and enabled; an app role without DDL rights starts fine
                conn.execute(text(f"SELECT pg_advisory_xact_lock({_AUDIT_GUARD_LOCK})"))
                conn.execute(text(_AUDIT_GUARD_FUNCTION))
                found = _audit_guards(conn)
                for name, ddl in _AUDIT_GUARD_TRIGGERS.items():
                    if name not in found:
                        conn.execute(text(ddl))
                    elif not found[name]:
                        log.warning("audit_event trigger %s was disabled; enabling it", name)
                        conn.execute(text(f"ALTER TABLE audit_event ENABLE TRIGGER {name}"))
        except ProgrammingError as exc:  # e.g. an app role that may not create or alter them
            log.error(
                "audit_event is not protected by its triggers and this role cannot install "
                "them (%s); run `cutover audit lockdown` as the tables' owner",
                _short(exc),
            )

    def insert(self, table: Any) -> Any:
        """An INSERT of this database's dialect, which has `on_conflict_do_nothing/update`
        (the one statement both SQLite and PostgreSQL spell alike): a unique key decides."""
        return (sqlite_dialect.insert if self.is_sqlite else pg_dialect.insert)(table)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: commits if the block ends normally, rolls back otherwise."""
        committing = False
        try:
            with (
                Session(
                    self.engine, expire_on_commit=False, info={"audit_signer": self.audit_signer}
                ) as s,
                s.begin(),
            ):
                yield s
                # What the transaction left to write at its end (the audit rows it queued):
                # written before the COMMIT, so a failure here is one that changed nothing.
                while s.info.get(PRE_COMMIT):
                    s.info[PRE_COMMIT].pop(0)(s)
                committing = True  # the block is done: what follows is the COMMIT
        except OperationalError as exc:
            if _is_connection_error(exc):
                raise self._unavailable(exc, at_commit=committing) from None
            raise

    def _unavailable(self, exc: DBAPIError, *, at_commit: bool = False) -> DatabaseUnavailable:
        if not at_commit:
            return DatabaseUnavailable(
                f"database {self.safe_url} unavailable: {_short(exc)}; nothing was changed"
            )
        # Never "nothing was changed" here: the COMMIT may have landed before the cut.
        lost = DatabaseUnavailable(
            f"database {self.safe_url} unavailable: {_short(exc)}; the connection dropped at "
            "the COMMIT, so this may or may not have been recorded: check `/cutover status` "
            "before doing it again"
        )
        lost.at_commit = True
        return lost

    @contextmanager
    def dbapi_transaction(self) -> Iterator[Any]:
        """One transaction on a pooled psycopg cursor, without an ORM session: for the audit
        appends that change no state (`audit.record`), where the session's own begin,
        commit and close cost more Python than the append's statements (docs/benchmarks.md).

        PostgreSQL only. The connection comes from the same pool, with its BEGIN already
        sent at checkout; the block's end commits, an exception rolls back. A connection
        lost on the way is dropped from the pool and reported as `session()` reports it
        (DatabaseUnavailable); any other database error is raised as SQLAlchemy raises it.
        """
        if self.is_sqlite:
            raise TypeError("dbapi_transaction is for PostgreSQL; use session() on SQLite")
        dialect = self.engine.dialect
        pooled: Any = None
        cursor: Any = None
        committing = False
        try:
            pooled = self.engine.raw_connection()
            cursor = pooled_cursor(pooled)
            yield cursor
            committing = True
            pooled.dbapi_connection.commit()
        except dialect.loaded_dbapi.Error as exc:
            if pooled is None:  # no connection could be made
                wrapped = DBAPIError.instance(
                    None, None, exc, dialect.loaded_dbapi.Error, dialect=dialect
                )
            else:
                wrapped = dbapi_error(dialect, exc, pooled.dbapi_connection, cursor)
                if wrapped.connection_invalidated:
                    pooled.invalidate(exc)
                else:
                    _rollback_quietly(pooled)
            if isinstance(wrapped, OperationalError) and _is_connection_error(wrapped):
                raise self._unavailable(wrapped, at_commit=committing) from None
            raise wrapped from exc
        except OperationalError as exc:
            # Wrapped by SQLAlchemy already: the pool's first connection runs the dialect's
            # set-up queries through a Connection. A cut there is a cut like any other.
            if pooled is not None:
                _rollback_quietly(pooled)
            if _is_connection_error(exc):
                raise self._unavailable(exc) from None
            raise
        except BaseException:
            if pooled is not None:
                _rollback_quietly(pooled)
            raise
        finally:
            if pooled is not None:
                pooled.close()

    def retrying(self, fn: Callable[[], T], what: str, *, patience: float = 60.0) -> T:
        """Runs fn (one or more whole transactions) again while the database is unavailable.

        For the bot's own background work (recording a step result, opening a gate):
        a connection cut mid-transaction rolls that transaction back, so running it
        again changes nothing twice; fn must also be safe if a COMMIT that lost its
        connection did land. Gives up after `patience` seconds and raises.
        """
        delay, deadline = 0.05, time.monotonic() + patience
        while True:
            try:
                return fn()
            except DatabaseUnavailable as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("%s: %s; retrying in %.2fs", what, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def dispose(self) -> None:
        self.engine.dispose()


_AUDIT_GUARD_LOCK = 0x637574_0A0D17  # any constant: "cut" + "audit"

_AUDIT_GUARD_FUNCTION = """
CREATE OR REPLACE FUNCTION cutover_audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_event is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'the audit trail only takes INSERTs; see docs/hardening.md';
END
$$
"""

_AUDIT_GUARD_TRIGGERS = {
    "audit_event_no_update_delete": (
        "CREATE TRIGGER audit_event_no_update_delete BEFORE UPDATE OR DELETE ON audit_event "
        "FOR EACH ROW EXECUTE FUNCTION cutover_audit_append_only()"
    ),
    "audit_event_no_truncate": (
        "CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event "
        "FOR EACH STATEMENT EXECUTE FUNCTION cutover_audit_append_only()"
    ),
}


def _audit_guards(conn: Any) -> dict[str, bool]:
    """The guard triggers on audit_event: name → enabled."""
    rows = conn.execute(
        text(
            "SELECT tgname, tgenabled <> 'D' FROM pg_trigger "
            "WHERE tgrelid = 'audit_event'::regclass AND tgname IN :names"
        ).bindparams(bindparam("names", value=list(_AUDIT_GUARD_TRIGGERS), expanding=True))
    )
    return {row[0]: bool(row[1]) for row in rows}


_CURSOR = "cutover_cursor"  # a pooled connection's info: its cursor for DBAPI statements


def pooled_cursor(pooled: Any) -> Any:
    """The pooled connection's own cursor, made once and kept with it (its `info` lives as
    long as the connection does): a statement on the hot path makes no cursor of its own."""
    dbapi_conn = pooled.dbapi_connection
    cursor = pooled.info.get(_CURSOR)
    if cursor is None or cursor.closed or cursor.connection is not dbapi_conn:
        cursor = pooled.info[_CURSOR] = dbapi_conn.cursor()
    return cursor


def dbapi_error(
    dialect: Any,
    exc: Exception,
    dbapi_conn: Any,
    cursor: Any,
    sql: str | None = None,
    params: Any = None,
) -> DBAPIError:
    """A psycopg error as SQLAlchemy raises it (OperationalError, IntegrityError, …), with
    `connection_invalidated` set when the connection is gone: the caller discards it."""
    gone = bool(dbapi_conn.closed) or dialect.is_disconnect(exc, dbapi_conn, cursor)
    wrapped = DBAPIError.instance(
        sql, params, exc, dialect.loaded_dbapi.Error, connection_invalidated=gone, dialect=dialect
    )
    assert isinstance(wrapped, DBAPIError)  # a DBAPI error always wraps as one
    return wrapped


def _rollback_quietly(pooled: Any) -> None:
    """Ends a failed transaction; a connection that cannot even roll back is discarded."""
    try:
        pooled.dbapi_connection.rollback()
    except Exception as exc:
        pooled.invalidate(exc)


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


def db_now(s: Session) -> datetime:
    """The database server's clock (aware, UTC), read in the caller's transaction: the one
    clock every replica shares, so a lease never depends on a machine's own clock (a replica
    whose clock runs ahead must not think a live lease lapsed). PostgreSQL: clock_timestamp();
    SQLite (one machine by nature): its CURRENT_TIMESTAMP, to the millisecond."""
    if s.get_bind().dialect.name == "postgresql":
        clock = "SELECT clock_timestamp() AS now"
    else:
        clock = "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now') AS now"
    value: datetime = s.execute(
        text(clock).columns(column("now", models.UTCDateTime()))
    ).scalar_one()
    return value
