"""The one door to the database for the engine: a `Store` whose `tx()` alone opens a
transaction, and the `Tx` that moves rows by the transition table.

    with store.tx() as tx:
        run, gate, pr = tx.lock_gate(run_id, gate_id)
        tx.apply(gate, "approve", actor.id, {"decision": "continue"})

`Tx.apply(row, trigger, actor, data)` is the one way a row changes status: it asks the table
(`bot.domain.states.move`) for the move, which raises IllegalTransition on a move it has not,
writes the bookkeeping that move declares (`decided_by`/`decided_at`, `ended_at`, the cleared
active slot and lease) and appends the move's audit row, all in this transaction: Prefect's
orchestration rules (a transition proposed, the table's guard, the universal transforms,
one audit row) sized to this project. Events without a move use `Tx.audit`; a refusal uses
`Tx.refuse`, the one way a refusal is audited. Audit rows are queued as they are made and
written together just before the COMMIT, or before the transaction's next read
(`bot.store.audit_chain.queue`): the chain's tip is locked for the end of a transaction only.
Queries live in the store's modules named for what they hold (`bot.store.runs`,
`bot.store.gates`, `bot.store.leases`, …); each takes a Tx.

Locks are always taken in one order, run row → gate row → audit head (`lock_gate`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import bindparam, event
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, select

from bot.domain import states
from bot.domain.audit_kinds import AuditKind
from bot.store.audit_chain import Appended, queue, record
from bot.store.db import Database, DatabaseUnavailable, db_now
from bot.store.models import Gate, PhaseRun, Run

__all__ = ["Database", "DatabaseUnavailable", "Duplicate", "Store", "Tx", "session_of"]

# A row a unique index refused (two starts racing for an environment's one active slot, two
# votes of one person): raised by the commit, or by the flush, of the transaction.
Duplicate = IntegrityError

T = TypeVar("T")
M = TypeVar("M", bound=SQLModel)


# The statements of every click and phase, made once (bound at execution): building one
# costs more Python than its round trip to a local PostgreSQL (docs/benchmarks.md).
_LOCK_RUN = select(Run).where(Run.id == bindparam("run_id")).with_for_update()
_LOCK_GATE = (
    select(Gate, PhaseRun)
    .join(PhaseRun, col(PhaseRun.id) == col(Gate.phase_run_id))
    .where(Gate.id == bindparam("gate_id"))
    .with_for_update(of=Gate)
)


class Tx:
    """One open transaction (commits when the `with` block ends normally, else rolls back)."""

    def __init__(self, session: Session, now: Callable[[], datetime]) -> None:
        self.session = session  # for the store's own modules, never the engine's
        self._now = now

    # ---------------------------------------------------------------- rows

    @classmethod
    def of(cls, tx: Tx | Session, now: Callable[[], datetime]) -> Tx:
        """`tx` itself, or a Tx over a caller's Session (modules not yet converted)."""
        return tx if isinstance(tx, Tx) else cls(tx, now)

    def get(self, model: type[M], row_id: Any) -> M | None:
        return self.session.get(model, row_id)

    def add(self, *rows: SQLModel) -> None:
        self.session.add_all(rows)

    def flush(self) -> None:
        self.session.flush()

    def insert(self, table: Any) -> Any:
        """An INSERT of this database's dialect, with `on_conflict_do_nothing/update`."""
        postgres = self.session.get_bind().dialect.name == "postgresql"
        return (pg_dialect.insert if postgres else sqlite_dialect.insert)(table)

    def db_now(self) -> datetime:
        """The database server's clock (leases are read and written on it, never ours)."""
        return db_now(self.session)

    def after_commit(self, fn: Callable[[], None]) -> None:
        """Runs `fn` once this transaction committed (nothing if it rolls back)."""
        event.listen(self.session, "after_commit", lambda _s: fn(), once=True)

    # ---------------------------------------------------------------- locks, in one order

    def lock_run(self, run_id: int) -> Run | None:
        """The run row, locked (FOR UPDATE; SQLite holds its write lock from BEGIN
        IMMEDIATE) for the rest of the transaction."""
        return self.session.exec(_LOCK_RUN, params={"run_id": run_id}).one_or_none()

    def lock_gate(self, run_id: int, gate_id: int) -> tuple[Run, Gate, PhaseRun]:
        """Locks the run, then its gate (FOR UPDATE OF gate), reading the gate's phase run
        with it in one round trip: every decision at a gate takes its locks in this order."""
        run = self.session.exec(_LOCK_RUN, params={"run_id": run_id}).one()
        gate, pr = self.session.exec(_LOCK_GATE, params={"gate_id": gate_id}).one()
        return run, gate, pr

    # ---------------------------------------------------------------- moves and audit rows

    def apply(
        self,
        row: Any,
        trigger: str,
        actor: str,
        data: dict[str, Any] | None = None,
        *,
        at: datetime | None = None,
        decided_by: str | None = None,
    ) -> str:
        """Moves `row` by `trigger` as the table says (IllegalTransition otherwise), writes the
        bookkeeping the move declares and appends its audit row; returns the new status.

        `actor`: who moved it (the audit row's actor, and `decided_by` unless `decided_by` is
        given: a quorum's voters). `data`: the audit row's fields; a gate's move also names
        the gate and its phase."""
        when = at or self._now()
        move = states.move(row, trigger)
        for name in move.sets:
            if name.endswith("_by"):  # decided_by, cancelled_by: who moved it
                setattr(row, name, decided_by or actor)
            elif name == "ended_at":
                if row.ended_at is None:  # a row ends once
                    row.ended_at = when
            else:
                setattr(row, name, when)
        for name in move.clears:
            setattr(row, name, None)
        self.session.add(row)
        if move.audit is not None:
            self.audit(
                move.audit, actor=actor, run_id=_run_of(row), data=_about(row, data), at=when
            )
        return move.dest

    def audit(
        self,
        kind: str,
        *,
        actor: str,
        run_id: int | None = None,
        data: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> None:
        """An audit row for an event that moves no row (a vote, a step result, a tick).
        Queued: written with the transaction's other rows before its next read or its
        commit, in this order (bot.store.audit_chain.queue)."""
        queue(self.session, kind, actor=actor, run_id=run_id, data=data, at=at or self._now())

    def refuse(
        self, actor: str, action: str, reason: str, *, run_id: int | None = None, **data: Any
    ) -> str:
        """Audits a refusal, the one way for every action and surface; returns the reason."""
        self.audit(
            AuditKind.ACTION_REFUSED,
            actor=actor,
            run_id=run_id,
            data={"action": action, "reason": reason, **data},
        )
        return reason


def session_of(tx: Tx | Session) -> Session:
    """The session under a Tx (for the store's modules; the modules not yet converted still
    hand a Session to the engine's helpers, which take either)."""
    return tx.session if isinstance(tx, Tx) else tx


def _run_of(row: Any) -> int | None:
    return row.id if isinstance(row, Run) else row.run_id


def _about(row: Any, data: dict[str, Any] | None) -> dict[str, Any]:
    """A gate's audit row names the gate and its phase, a phase run's its phase and attempt;
    a run's says what `data` says."""
    if isinstance(row, Gate):
        return {"gate": row.id, "phase": row.phase_id, **(data or {})}
    if isinstance(row, PhaseRun):
        return {"phase": row.phase_id, "attempt": row.attempt, **(data or {})}
    return dict(data or {})


class Store:
    """The database, as the engine sees it: transactions, and events in one of their own."""

    def __init__(self, db: Database, now: Callable[[], datetime] | None = None) -> None:
        self.db = db
        self._now = now or (lambda: datetime.now(UTC))

    @contextmanager
    def tx(self) -> Iterator[Tx]:
        """One transaction: commits if the block ends normally, rolls back otherwise."""
        with self.db.session() as s:
            yield Tx(s, self._now)

    def record(
        self,
        kind: str,
        *,
        actor: str,
        run_id: int | None = None,
        data: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> Appended:
        """One audit row in a transaction of its own (an event that changes no state)."""
        return record(self.db, kind, actor=actor, run_id=run_id, data=data, at=at or self._now())

    def refuse(
        self, actor: str, action: str, reason: str, *, run_id: int | None = None, **data: Any
    ) -> str:
        """A refusal audited in a transaction of its own (refused before any row lock)."""
        with self.tx() as tx:
            return tx.refuse(actor, action, reason, run_id=run_id, **data)

    def retrying(self, fn: Callable[[], T], what: str, *, patience: float = 60.0) -> T:
        """`fn`, retried while the database is unavailable (Database.retrying)."""
        return self.db.retrying(fn, what, patience=patience)
