"""Run rows and their phase runs, as the engine reads and locks them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, func, literal, update
from sqlmodel import col, select

from bot.store.models import Gate, PhaseRun, PhaseStatus, Run, Schedule
from bot.store.unit import Tx


def get(tx: Tx, run_id: int) -> Run | None:
    return tx.get(Run, run_id)


def active(tx: Tx, env_name: str) -> Run | None:
    """The environment's active run, if any (not locked)."""
    return tx.session.exec(select(Run).where(Run.active_env == env_name)).first()


def active_id(tx: Tx, env_name: str) -> int | None:
    return tx.session.exec(select(Run.id).where(Run.active_env == env_name)).first()


def lock_active(tx: Tx, env_name: str) -> Run | None:
    """The environment's active run, locked."""
    return tx.session.exec(select(Run).where(Run.active_env == env_name).with_for_update()).first()


def all_active(tx: Tx) -> list[Run]:
    return list(tx.session.exec(select(Run).where(col(Run.active_env).is_not(None))))


def stakeholders(tx: Tx, run_id: int) -> tuple[str, str | None] | None:
    """(environment, its schedule's stakeholders channel) of a run; None: no such run."""
    row = tx.session.exec(
        select(Run.environment, Schedule.stakeholders)
        .outerjoin(Schedule, col(Schedule.run_id) == col(Run.id))
        .where(Run.id == run_id)
    ).first()
    return (row[0], row[1]) if row is not None else None


def gate_of(tx: Tx, gate_id: int) -> tuple[int, str] | None:
    """(run id, environment) of a gate, read without a lock."""
    row = tx.session.exec(
        select(Gate.run_id, Run.environment)
        .join(Run, col(Run.id) == col(Gate.run_id))
        .where(Gate.id == gate_id)
    ).first()
    return (row[0], row[1]) if row is not None else None


def phase_began(tx: Tx, run_id: int) -> bool:
    """True once an action of one of the run's phases began (its `began_at`, written before
    the first one starts), whether or not it ended, or while a phase is between monitoring
    rounds. An interrupted phase counts too, and a running one claimed by a version that
    does not write began_at (`marks_begin` false): nothing proves they changed nothing."""
    found = tx.session.exec(
        select(PhaseRun.id).where(
            PhaseRun.run_id == run_id,
            col(PhaseRun.began_at).is_not(None)
            | col(PhaseRun.status).in_([PhaseStatus.MONITORING, PhaseStatus.INTERRUPTED])
            | ((col(PhaseRun.status) == PhaseStatus.RUNNING) & ~col(PhaseRun.marks_begin)),
        )
    ).first()
    return found is not None


def running_phase(tx: Tx, run_id: int) -> PhaseRun | None:
    return tx.session.exec(
        select(PhaseRun).where(PhaseRun.run_id == run_id, PhaseRun.status == PhaseStatus.RUNNING)
    ).first()


_BEGAN_AT = PhaseRun.__table__.c.began_at  # type: ignore[attr-defined]


def mark_began(tx: Tx, phase_run_id: int, at: datetime, step_id: str) -> None:
    """The phase's action `step_id` is about to begin (the caller holds the run's lock):
    began_at is set by the first, began_step by each."""
    tx.session.execute(
        update(PhaseRun)
        .where(col(PhaseRun.id) == phase_run_id)
        .values(
            began_at=func.coalesce(col(PhaseRun.began_at), literal(at, _BEGAN_AT.type)),
            began_step=step_id,
        ),
        execution_options={"synchronize_session": False},
    )


def latest_attempt(tx: Tx, run_id: int, phase_index: int) -> PhaseRun | None:
    """The newest attempt of the run's phase at `phase_index`."""
    return tx.session.exec(
        select(PhaseRun)
        .where(PhaseRun.run_id == run_id, PhaseRun.phase_index == phase_index)
        .order_by(col(PhaseRun.attempt).desc())
    ).first()


_LOCK_WITH_PHASE = (  # (made once: see bot.store.unit's _LOCK_RUN)
    select(Run, PhaseRun)
    .join(PhaseRun, col(PhaseRun.run_id) == col(Run.id))
    .where(Run.id == bindparam("run_id"), PhaseRun.id == bindparam("phase_run_id"))
    .with_for_update(of=Run)
)


def lock_with_phase(tx: Tx, run_id: int, phase_run_id: int) -> tuple[Run, PhaseRun]:
    """The run row locked, its phase run read with it (one round trip)."""
    params = {"run_id": run_id, "phase_run_id": phase_run_id}
    run, pr = tx.session.exec(_LOCK_WITH_PHASE, params=params).one()
    return run, pr


def lock(tx: Tx, run_id: int) -> Run:
    """The run row, locked; it must exist (NoResultFound otherwise)."""
    return tx.session.exec(select(Run).where(Run.id == run_id).with_for_update()).one()


def environment(tx: Tx, run_id: int) -> str:
    """The run's environment; it must exist (NoResultFound otherwise)."""
    return tx.session.exec(select(Run.environment).where(col(Run.id) == run_id)).one()


def monitoring(tx: Tx) -> list[PhaseRun]:
    """Every phase run in a monitoring window now."""
    return list(tx.session.exec(select(PhaseRun).where(PhaseRun.status == PhaseStatus.MONITORING)))
