"""Alembic environment: run by bot/store/migrate.py with a connection it already holds (and, on
PostgreSQL, the advisory lock that lets one replica upgrade at a time).

For writing a new revision against a scratch database:
    CUTOVER_DATABASE_URL=sqlite:///scratch.db python -m bot.store.migrate revision -m "what changes"
"""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from bot.store import models  # noqa: F401  (registers the tables for --autogenerate)

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `cutover db upgrade` (bot/store/migrate.py)")
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    compare_type=True,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
