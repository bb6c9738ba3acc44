"""A run's lease: which process executes it, until when (on the database's clock), and the
epoch (fencing token) each take-over increments. Conditional UPDATEs only: of two processes
taking or renewing at once, exactly one row count says yes."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Interval, bindparam, literal_column, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col, select

from bot.store.models import Run, RunStatus, UTCDateTime
from bot.store.unit import Tx

_PG_NOW = literal_column("clock_timestamp()", UTCDateTime())  # the clock of bot.store.db.db_now


def take(tx: Tx, run: Run, owner: str, lease: timedelta) -> int | None:
    """Takes the run's lease for `owner` with the next epoch (WHERE lease_epoch = the one
    read); returns that epoch, or None if another process took it first.

    The run's other changes made in this transaction and not yet written (a Continue moved
    it to its next phase) go in the same UPDATE, not in one of their own at the next flush:
    one round trip less for the claim of every phase after a click."""
    read = run.lease_epoch or 0
    unwritten = _unwritten(run)
    unwritten.pop("lease_until", None)  # (the take sets it)
    values = {**unwritten, "owner": owner, "lease_epoch": read + 1}
    session = tx.session
    postgres = session.get_bind().dialect.name == "postgresql"
    params = {**values, "take_run": run.id, "take_read": read}
    with session.no_autoflush:  # the transaction's other rows are written at its next flush
        if postgres:
            # The database's clock read in the UPDATE itself (db_now's clock_timestamp()): one
            # round trip less in the claim of every phase.
            row = session.execute(
                _take_statement(tuple(values), True),
                {**params, "take_lease": lease},
                execution_options={"synchronize_session": False},  # set below, as written
            ).first()
            if row is None:
                return None
            until = row[0]
        else:
            until = tx.db_now() + lease
            stmt = _take_statement((*values, "lease_until"), False)
            res = session.execute(stmt, {**params, "lease_until": until})
            if not getattr(res, "rowcount", 0):
                return None
    # What the UPDATE wrote, known without reading the row back (one round trip less in
    # the claim, which must fit between two drops of a flapping connection).
    for name, value in {**values, "lease_until": until}.items():
        set_committed_value(run, name, value)
    return read + 1


@functools.lru_cache(maxsize=64)
def _take_statement(columns: tuple[str, ...], postgres: bool) -> Any:
    """The take's conditional UPDATE for these columns, made once for each set of them (a
    claim after a Continue writes the same few every time): bound at execution."""
    stmt = update(Run).where(
        col(Run.id) == bindparam("take_run"), col(Run.lease_epoch) == bindparam("take_read")
    )
    values: dict[str, Any] = {name: bindparam(name) for name in columns}
    if not postgres:
        return stmt.values(values)
    values["lease_until"] = _PG_NOW + bindparam("take_lease", type_=Interval())
    return stmt.values(values).returning(col(Run.lease_until))


def _unwritten(run: Run) -> dict[str, Any]:
    """The run's columns changed in this session and not yet flushed, with their new values."""
    state = sa_inspect(run)
    changed: dict[str, Any] = {}
    for prop in state.mapper.column_attrs:
        added = state.attrs[prop.key].history.added
        if added:
            changed[prop.key] = added[0]
    return changed


def holds(tx: Tx, run_id: int, owner: str, epoch: int) -> bool:
    """Fencing: True if `owner` still holds the run's lease with `epoch`; the row is locked
    for the rest of the transaction, so no take-over slips in before the caller's write."""
    res = tx.session.execute(
        update(Run)
        .where(col(Run.id) == run_id, col(Run.owner) == owner, col(Run.lease_epoch) == epoch)
        .values(lease_epoch=epoch)
    )
    return bool(getattr(res, "rowcount", 0))


def renew(
    tx: Tx, held: dict[int, int], owner: str, lease: timedelta
) -> tuple[list[int], list[int]]:
    """Extends every lease `owner` holds (run id → epoch) on the database's clock; returns
    the runs renewed and, of those, the ones rolling back (aborted meanwhile)."""
    # The rows locked first (in id order): a take committing meanwhile (a claim, a rollback,
    # whose epoch this process already knows) is waited for, and its epoch then read. An
    # UPDATE alone would test the epoch against the row as its snapshot saw it, skip the
    # row, and the take's own process would stop its step as if the lease were lost.
    tx.session.exec(
        select(Run.id).where(col(Run.id).in_(list(held))).order_by(col(Run.id)).with_for_update()
    ).all()
    until = tx.db_now() + lease
    renewed: list[int] = []
    for run_id, epoch in held.items():
        res = tx.session.execute(
            update(Run)
            .where(
                col(Run.id) == run_id,
                col(Run.owner) == owner,
                col(Run.lease_epoch) == epoch,
                col(Run.active_env).is_not(None),
            )
            .values(lease_until=until)
        )
        if getattr(res, "rowcount", 0):
            renewed.append(run_id)
    rows = tx.session.exec(select(Run.id, Run.status).where(col(Run.id).in_(renewed)))
    aborted = [rid for rid, status in rows if rid and status == RunStatus.ROLLING_BACK]
    return renewed, aborted


def release(tx: Tx, run_id: int, owner: str, epoch: int) -> None:
    """No process executes the run now (if `owner` still held it with `epoch`)."""
    tx.session.execute(
        update(Run)
        .where(col(Run.id) == run_id, col(Run.owner) == owner, col(Run.lease_epoch) == epoch)
        .values(owner=None, lease_until=None)
    )


def leased(tx: Tx) -> list[tuple[int, str, datetime | None]]:
    """(run id, owner, lease until) of every active run some process executes."""
    rows = tx.session.exec(
        select(Run.id, Run.owner, Run.lease_until).where(
            col(Run.active_env).is_not(None), col(Run.owner).is_not(None)
        )
    )
    return [(rid, owner, until) for rid, owner, until in rows if rid is not None and owner]
