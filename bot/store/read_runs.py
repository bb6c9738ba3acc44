"""The read models of runs and schedules (bot.views' dataclasses), read through the store's
door: a run's phase list (`run_view`), which runs are active or ended, a run's gates, a
schedule. `bot.store.reads.Reads` binds them to a database and a runbook for the surfaces."""

from __future__ import annotations

from sqlmodel import col, func, select

from bot.store.db import Database
from bot.store.models import Gate, PhaseRun, Run, Schedule, StepRun
from bot.store.read_door import door
from bot.store.unit import Store
from bot.views import PhaseLine, RevertStep, RunView, ScheduleView
from phases.runbook import Runbook


def run_view(db: Database | Store, runbook: Runbook, run_id: int) -> RunView | None:
    with door(db).tx() as tx:
        s = tx.session
        run = s.get(Run, run_id)
        if run is None:
            return None
        prs = list(
            s.exec(
                select(PhaseRun)
                .where(PhaseRun.run_id == run_id)
                .order_by(col(PhaseRun.phase_index), col(PhaseRun.attempt))
            )
        )
        gates = {g.phase_run_id: g for g in s.exec(select(Gate).where(Gate.run_id == run_id))}
        steps = (
            list(
                s.exec(
                    select(StepRun)
                    .where(StepRun.run_id == run_id, col(StepRun.phase_run_id).is_(None))
                    .order_by(col(StepRun.id))
                )
            )
            if run.reverts_run_id is not None
            else []
        )
    latest: dict[int, PhaseRun] = {}
    for each in prs:
        latest[each.phase_index] = each  # ordered by attempt: the last one wins
    lines = []
    for i, spec in enumerate(runbook.phases):
        pr = latest.get(i)
        gate = gates.get(pr.id) if pr and pr.id is not None else None
        if pr is None:
            status = "pending"
        elif gate is not None and gate.status == "open":
            status = "waiting"
        elif gate is not None and gate.status == "approved":
            status = "passed"
        elif gate is not None and gate.status == "overridden":
            status = "overridden"
        elif gate is not None and gate.status == "rolled_back":
            status = "failed"
        elif gate is not None and gate.status == "cancelled":
            status = "cancelled"
        else:
            status = {
                "running": "running",
                "interrupted": "interrupted",
                "failed": "failed",
                "retried": "running",
            }.get(pr.status, pr.status)
        minutes = None
        if pr is not None and pr.ended_at is not None:
            minutes = (pr.ended_at - pr.started_at).total_seconds() / 60
        lines.append(
            PhaseLine(
                i,
                runbook.phase_number(i),
                spec.id,
                spec.name,
                str(spec.estimate_minutes),
                status,
                pr.attempt if pr else 0,
                gate.decided_by if gate else None,
                gate.decided_at if gate else None,
                minutes,
            )
        )
    return RunView(
        id=run_id,
        environment=run.environment,
        runbook=run.runbook_name,
        status=run.status,
        dry_run=run.dry_run,
        requested_by=run.requested_by,
        channel=run.channel,
        surface_ref=run.surface_ref,
        started_at=run.started_at,
        ended_at=run.ended_at,
        phase_index=run.phase_index,
        rollback_reason=run.rollback_reason,
        rolled_back_by=run.rolled_back_by,
        estimate_min=runbook.estimate().min,
        estimate_max=runbook.estimate().max,
        phases=lines,
        reverts=run.reverts_run_id,
        revert_steps=_revert_steps(runbook, steps) if run.reverts_run_id is not None else [],
    )


def _revert_steps(runbook: Runbook, rows: list[StepRun]) -> list[RevertStep]:
    """What a revert run runs, in order (bot/engine/rollback.py: a revert restores whenever
    the runbook has restore steps, then its rollback steps, then its rollback checks), each
    with its last result; not the runbook's phases, which a revert does not run."""
    last = {(r.section, r.step_id): r for r in rows}
    planned = [("restore", st) for st in runbook.restore]
    planned += [("rollback", st) for st in runbook.rollback]
    planned += [("checks", st) for st in runbook.rollback_checks]
    out = []
    for section, st in planned:
        row = last.get((section, st.id))
        out.append(
            RevertStep(
                section,
                st.id,
                st.name,
                row.status if row is not None else "pending",
                row.evidence if row is not None else "",
            )
        )
    return out


def active_runs(db: Database | Store, environment: str | None = None) -> list[int]:
    with door(db).tx() as tx:
        q = select(Run.id).where(col(Run.active_env).is_not(None))
        if environment:
            q = q.where(Run.environment == environment)
        return [i for i in tx.session.exec(q.order_by(col(Run.id))) if i is not None]


def latest_run(db: Database | Store, environment: str) -> int | None:
    with door(db).tx() as tx:
        return tx.session.exec(
            select(Run.id).where(Run.environment == environment).order_by(col(Run.id).desc())
        ).first()


def gate_ids(db: Database | Store, run_id: int) -> list[int]:
    """Every gate of a run, oldest first (each attempt of a phase has its own)."""
    with door(db).tx() as tx:
        return [
            gid
            for gid in tx.session.exec(
                select(Gate.id).where(Gate.run_id == run_id).order_by(col(Gate.id))
            )
            if gid is not None
        ]


def open_gate_id(db: Database | Store, run_id: int) -> int | None:
    with door(db).tx() as tx:
        return tx.session.exec(
            select(Gate.id).where(Gate.run_id == run_id, Gate.status == "open")
        ).first()


def schedule_view(db: Database | Store, schedule_id: int) -> ScheduleView | None:
    with door(db).tx() as tx:
        row = tx.get(Schedule, schedule_id)
    if row is None or row.id is None:
        return None
    return ScheduleView(
        row.id, row.environment, row.start_at, row.status, row.run_id, row.cancelled_by
    )


def run_counts(db: Database | Store) -> dict[str, int]:
    """How many runs the database holds in each status (for /metrics)."""
    with door(db).tx() as tx:
        rows = tx.session.exec(select(Run.status, func.count()).group_by(Run.status)).all()
    return {str(status): int(n) for status, n in rows}


def recent_runs(db: Database | Store, limit: int = 10) -> list[int]:
    """The latest runs that have ended (completed, rolled back, cancelled), newest first."""
    with door(db).tx() as tx:
        q = (
            select(Run.id)
            .where(col(Run.active_env).is_(None), col(Run.ended_at).is_not(None))
            .order_by(col(Run.id).desc())
            .limit(limit)
        )
        return [i for i in tx.session.exec(q) if i is not None]
