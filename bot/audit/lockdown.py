"""Lockdown: the bot's database role may append audit rows but never change or remove one."""

from __future__ import annotations

from bot.store import audit_rows
from bot.store.unit import Database, Store

ROLE_NAME = audit_rows.ROLE_NAME


class LockdownError(ValueError):
    """Lockdown cannot protect the table for this role; the message says why."""


def lockdown_statements(db: Database, app_role: str) -> list[str]:
    """SQL that lets `app_role` run the bot but never change or remove an audit row.

    The role keeps SELECT/INSERT/UPDATE/DELETE on the state tables and SELECT/INSERT on
    audit_event; UPDATE, DELETE and TRUNCATE on audit_event are revoked. A REVOKE does
    not bind the table's owner or a superuser, so the bot must run as another role.
    Every later `cutover db upgrade` re-applies it (bot/store/migrate.py: regrant).
    """
    if db.is_sqlite:
        raise LockdownError("lockdown is for PostgreSQL; an SQLite file has no roles")
    if not ROLE_NAME.fullmatch(app_role):
        raise LockdownError(
            f"{app_role!r} is not a plain role name (letters, digits, _ and -, up to 63)"
        )
    return audit_rows.grant_statements(db, app_role)


def lockdown(db: Database, app_role: str) -> list[str]:
    """Applies `lockdown_statements` in one transaction; returns them."""
    statements = lockdown_statements(db, app_role)
    with Store(db).tx() as tx:
        standing = audit_rows.role_standing(tx, app_role)
        if standing is None:
            raise LockdownError(f"no role {app_role!r}, or no audit_event table: nothing changed")
        if standing[0] or standing[1]:
            raise LockdownError(
                f"role {app_role!r} is a superuser or owns audit_event: a REVOKE cannot bind it. "
                "Create the tables as another role and run the bot as this one; nothing changed"
            )
        audit_rows.execute_all(tx, statements)
    return statements
