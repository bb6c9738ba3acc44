"""Schema migrations with Alembic: the one way the bot's tables are made and changed.

`cutover db upgrade` and `cutover serve` (at start) bring a database to the newest revision;
read commands only check that it is there (bot/store/db.py: Database.require_schema). Revisions are
in bot/store/migrations/versions. A database the bot made with `create_all` before migrations
existed has no alembic_version table: it is stamped at the baseline (the schema of 7e63008)
and upgraded from there, so deployed bots keep their runs and audit trail.

On PostgreSQL the upgrade holds a transaction-level advisory lock, so replicas starting
together upgrade one at a time and the later ones find nothing to do; PostgreSQL's DDL is
transactional, so an upgrade that fails changes nothing. On SQLite the transaction begins
IMMEDIATE (bot/store/db.py), which serializes writers the same way.

A locked-down app role (`cutover audit lockdown`) has rights on the tables that existed when
the lockdown ran, not on those a later migration makes. So every upgrade run by a role that
may grant re-applies the lockdown, in the same transaction, to each role the database shows
was locked down (`locked_down_roles`): whatever table any revision added, the bot's role can
use it at once, and still never change or remove an audit row.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from bot.store import models  # noqa: F401 - the tables, for SQLModel.metadata

MIGRATIONS = Path(__file__).with_name("migrations")
BASELINE = "r0001"
# Any constant, distinct from the audit guard's: "cut" + "mig".
UPGRADE_LOCK = 0x637574_6D6967


def config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def head() -> str:
    """The newest revision this version of the bot knows. Kept once found: the migration
    scripts are part of the installed code, and reading them (alembic parses every one)
    cost about 10 ms on each `create_all`, every test's and every restart's."""
    found = ScriptDirectory.from_config(config()).get_current_head()
    assert found is not None
    return found


@functools.cache
def revisions() -> frozenset[str]:
    """Every revision this version of the bot knows (kept once read, as `head`)."""
    return frozenset(s.revision for s in ScriptDirectory.from_config(config()).walk_revisions())


def known(revision: str) -> bool:
    return revision in revisions()


def current(conn: Connection) -> str | None:
    """The revision the database is at; None when it has no alembic_version table."""
    return MigrationContext.configure(conn).get_current_revision()


def has_tables(conn: Connection) -> bool:
    """Whether the bot's tables are there (made by `create_all` before migrations, say)."""
    return "run" in inspect(conn).get_table_names()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Brings the schema to the head revision; returns (revision before, revision after)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"SELECT pg_advisory_xact_lock({UPGRADE_LOCK})"))
        before = current(conn)
        cfg = config(conn)
        if before is None and has_tables(conn):
            command.stamp(cfg, BASELINE)  # made by create_all before migrations: adopt it
        command.upgrade(cfg, "head")
        after = current(conn)
        if conn.dialect.name == "postgresql":
            regrant(conn)
    assert after is not None
    return before, after


# ---------------------------------------------------------------------------- lockdown grants

APPEND_ONLY = ("audit_event", "audit_signature")
ROLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,62}")


def grant_statements(
    quote: Callable[[str], str], app_role: str, tables: Iterable[str]
) -> list[str]:
    """SQL that lets `app_role` run the bot but never change or remove an audit row.

    `tables`: the bot's tables in the database. The role gets SELECT/INSERT/UPDATE/DELETE on
    the state tables and their sequences, and only SELECT/INSERT on the append-only audit
    tables (UPDATE, DELETE and TRUNCATE revoked, from PUBLIC too).
    """
    role = quote(app_role)
    present = set(tables)
    state = [quote(t) for t in sorted(present) if t not in APPEND_ONLY and t != "alembic_version"]
    statements = [
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(state)} TO {role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
        # The schema's revision, read at start; upgrades run as the owner (docs/deploy.md).
        f"GRANT SELECT ON alembic_version TO {role}",
    ]
    for table in APPEND_ONLY:
        if table in present:
            statements += [
                f"REVOKE ALL ON {table} FROM {role}",
                f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM PUBLIC",
                f"GRANT SELECT, INSERT ON {table} TO {role}",
            ]
    return statements


def bot_tables(conn: Connection) -> list[str]:
    """The bot's tables (those the models describe) that this database has."""
    known = set(SQLModel.metadata.tables) | {"alembic_version"}
    return [t for t in inspect(conn).get_table_names() if t in known]


# The roles `audit lockdown` made: a direct grant of INSERT on audit_event without UPDATE or
# DELETE, neither superuser nor a member of the owner's role. Read from the table's ACL, so a
# database locked down by any earlier version is recognised.
_LOCKED_DOWN = """
SELECT r.rolname FROM pg_class c
JOIN LATERAL aclexplode(c.relacl) a ON true
JOIN pg_roles r ON r.oid = a.grantee
JOIN pg_roles o ON o.oid = c.relowner
WHERE c.oid = to_regclass('audit_event') AND NOT r.rolsuper
  AND NOT pg_has_role(r.oid, c.relowner, 'USAGE')
GROUP BY r.rolname
HAVING bool_or(a.privilege_type = 'INSERT')
   AND NOT bool_or(a.privilege_type IN ('UPDATE', 'DELETE', 'TRUNCATE'))
ORDER BY r.rolname
"""
# Whether this session may grant on the bot's tables: it owns them (or is a member of the
# owner's role), or is a superuser.
_MAY_GRANT = """
SELECT coalesce(bool_or(pg_has_role(current_user, c.relowner, 'USAGE')
       OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)), false)
FROM pg_class c WHERE c.oid = to_regclass('audit_event')
"""


def locked_down_roles(conn: Connection) -> list[str]:
    """The app roles this database was locked down for (PostgreSQL)."""
    return [str(r[0]) for r in conn.execute(text(_LOCKED_DOWN))]


def regrant(conn: Connection) -> list[str]:
    """Re-applies the lockdown to every locked-down role, for the tables there are now (new
    tables of any revision included); returns the roles. Nothing when this session may not
    grant: an app role upgrading an up-to-date schema at start changes nothing."""
    if not conn.execute(text(_MAY_GRANT)).scalar_one():
        return []
    roles = locked_down_roles(conn)
    tables = bot_tables(conn)
    quote = conn.dialect.identifier_preparer.quote
    for role in roles:
        for statement in grant_statements(quote, role, tables):
            conn.execute(text(statement))
    return roles


def stamp_head(conn: Connection) -> None:
    """Marks a schema made from the models (tests' create_all) as being at the head."""
    command.stamp(config(conn), "head")


def _revision(message: str) -> None:
    """A new revision autogenerated against CUTOVER_DATABASE_URL (a scratch database at head)."""
    from sqlalchemy import create_engine

    from bot.settings import normalize_database_url

    scratch = create_engine(normalize_database_url(os.environ["CUTOVER_DATABASE_URL"]))
    with scratch.begin() as conn:
        command.revision(config(conn), message=message, autogenerate=True)


if __name__ == "__main__":
    if sys.argv[1:2] != ["revision"] or len(sys.argv) != 4 or sys.argv[2] != "-m":
        sys.exit('usage: python -m bot.store.migrate revision -m "what changes"')
    _revision(sys.argv[3])
