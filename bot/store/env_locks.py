"""Environment locks (`env_lock`, the environment as its key): one row per locked
environment, shared by every replica."""

from __future__ import annotations

from sqlmodel import col, select

from bot.store.models import EnvLock
from bot.store.unit import Tx


def get(tx: Tx, env_name: str) -> EnvLock | None:
    return tx.get(EnvLock, env_name)


def lock(tx: Tx, env_name: str) -> EnvLock | None:
    """The environment's lock row, locked (None: not locked)."""
    return tx.session.exec(
        select(EnvLock).where(EnvLock.environment == env_name).with_for_update()
    ).first()


def remove(tx: Tx, row: EnvLock) -> None:
    tx.session.delete(row)


def every(tx: Tx) -> list[EnvLock]:
    return list(tx.session.exec(select(EnvLock).order_by(col(EnvLock.environment))))
