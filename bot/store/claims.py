"""One helper for the bot's optimistic claims: a conditional UPDATE that moves exactly one
row, or nothing (someone else moved it first).

Every "claim this notice / this round / this reminder" and every status move outside the
engine's locked transactions goes through `claim`; with a `move`, the WHERE clause on status
and the new status come from the transition table (`bot.domain.states`), so a claim can only
make a move the machine has.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, SQLModel, col

from bot.domain import states
from bot.store.unit import Tx, session_of


def claim(
    s: Tx | Session,
    table: type[SQLModel],
    *where: Any,
    values: Mapping[str, Any],
    move: tuple[str, str] | None = None,
    source: str | None = None,
) -> bool:
    """UPDATE table SET values WHERE where… AND status …; True if exactly one row changed.

    `move` = (machine, trigger): the row goes where the transition table says; it may leave
    only from `source` (which must be one the trigger has, else IllegalTransition), or, with
    no `source`, from any status the trigger has. `s`: the caller's Tx (or, in the modules
    not converted to the store yet, its Session).
    """
    stmt = update(table).where(*where)
    sets = dict(values)
    if move is not None:
        machine, trigger = move
        status = col(table.status)  # type: ignore[attr-defined]
        if source is not None:
            sets["status"] = states.find(machine, trigger, source).dest
            stmt = stmt.where(status == source)
        else:
            stmt = stmt.where(status.in_(states.sources(machine, trigger)))
            sets["status"] = states.dest(machine, trigger)
    res = session_of(s).execute(stmt.values(sets))
    return getattr(res, "rowcount", 0) == 1
