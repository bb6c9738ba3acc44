"""Where the bot posted the messages it edits later that no run or gate row points at: the
T-1h checklist (`checklist_key`) and a run's sign-off message (`signoff_key`).

Kept in the database (`message_ref`), not in process memory: after a restart, or on another
replica, a tick typed as a command or a sign-off by command edits the message already posted
instead of posting a copy. The first post recorded wins (the primary key decides); a process
whose post lost is told the winner and removes its own copy.
"""

from __future__ import annotations

from datetime import UTC, datetime

from bot.store.db import Database
from bot.store.models import MessageRef
from bot.views import Posted  # the plain data (surfaces read it through bot.ports)


def checklist_key(schedule_id: int) -> str:
    """The T-1h checklist of a scheduled cutover (the key of its scheduled_event row)."""
    return f"schedule:{schedule_id}:t-1h-checklist"


def signoff_key(run_id: int) -> str:
    return f"run:{run_id}:signoff"


def remember(
    db: Database, key: str, ref: str, *, run_id: int | None = None, body: str | None = None
) -> str:
    """Records that `key` was posted as `ref`; returns the ref that counts (the first one
    recorded, by this process or another)."""
    table = MessageRef.__table__  # type: ignore[attr-defined]
    insert = db.insert(table)
    stmt = insert.values(
        key=key, ref=ref, run_id=run_id, body=body, posted_at=datetime.now(UTC)
    ).on_conflict_do_nothing(index_elements=["key"])
    with db.session() as s:
        s.connection().execute(stmt)
        row = s.get(MessageRef, key)
        return row.ref if row is not None else ref


def lookup(db: Database, key: str) -> Posted | None:
    with db.session() as s:
        row = s.get(MessageRef, key)
        return Posted(row.ref, row.body) if row is not None else None


def replace(db: Database, key: str, ref: str, *, body: str | None = None) -> None:
    """Makes `ref` the message of `key` (a newer post of it supersedes the old one)."""
    with db.session() as s:
        row = s.get(MessageRef, key)
        if row is None:
            s.add(MessageRef(key=key, ref=ref, body=body, posted_at=datetime.now(UTC)))
        else:
            row.ref, row.body, row.posted_at = ref, body, datetime.now(UTC)
            s.add(row)
