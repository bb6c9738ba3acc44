"""The door the read models go through: a `Store` over a database (or the store itself)."""

from __future__ import annotations

from bot.store.db import Database
from bot.store.unit import Store


def door(db: Database | Store) -> Store:
    """`db` as a Store (reads open their transaction with `Store.tx()`, as the engine does)."""
    return db if isinstance(db, Store) else Store(db)
