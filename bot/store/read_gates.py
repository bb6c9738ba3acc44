"""A gate's checkpoint (bot.views.GateView), read through the store's door: its steps and
their kept output, votes, ticks, break-glass votes and what the trail says of checks bound
to a tick (`read_tick_marks`, which the engine reads in its own transactions too)."""

from __future__ import annotations

from sqlalchemy import bindparam
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from bot.domain import approvals, tick_marks
from bot.store.db import Database
from bot.store.models import (
    AuditEvent,
    Gate,
    ManualTick,
    OverrideVote,
    PhaseRun,
    Run,
    StepOutput,
    StepRun,
    Vote,
)
from bot.store.read_door import door
from bot.store.unit import Store, Tx, session_of
from bot.views import GateView, ManualView, StepView, tick_checks_waiting
from phases.runbook import Runbook


def read_tick_marks(s: Tx | Session, run_id: int, gate_id: int) -> dict[str, tick_marks.Mark]:
    """The latest audit mark of each tick's checks at a gate (started, interrupted, resumed)."""
    rows = session_of(s).exec(
        select(AuditEvent.kind, AuditEvent.data, AuditEvent.at)
        .where(AuditEvent.run_id == run_id, col(AuditEvent.kind).in_(tick_marks.KINDS))
        .order_by(col(AuditEvent.seq))
    )
    return tick_marks.latest(rows, gate_id)


def gate_view(db: Database | Store, runbook: Runbook, gate_id: int) -> GateView | None:
    with door(db).tx() as tx:
        row = tx.session.exec(  # the gate, its run and its phase run in one read
            select(Gate, Run, PhaseRun)
            .join(Run, col(Run.id) == col(Gate.run_id))
            .join(PhaseRun, col(PhaseRun.id) == col(Gate.phase_run_id))
            .where(Gate.id == gate_id)
        ).first()
        if row is None:
            return None
        return view_of(tx, runbook, *row)


_STEPS = (  # a phase run's steps with their kept output, as plain rows (no ORM objects to
    # build; made once: bot.store.unit's _LOCK_RUN)
    sa_select(
        *(
            col(c)
            for c in (
                StepRun.section,
                StepRun.step_id,
                StepRun.name,
                StepRun.status,
                StepRun.evidence,
                StepRun.duration_ms,
                StepOutput.step_run_id,
                StepOutput.last_lines,
            )
        )
    )
    .outerjoin(StepOutput, col(StepOutput.step_run_id) == col(StepRun.id))
    .where(col(StepRun.phase_run_id) == bindparam("phase_run_id"))
    .order_by(col(StepRun.id))
)


def view_of(
    tx: Tx, runbook: Runbook, gate: Gate, run: Run, pr: PhaseRun, *, fresh: bool = False
) -> GateView:
    """The checkpoint of `gate` (with its run and phase run), read in `tx`. `fresh`: the gate
    was opened in `tx` (what it commits is what the first post shows), so it has no votes
    and no break-glass votes yet: only its steps (and ticks) are read."""
    s = tx.session
    assert gate.id is not None
    gate_id = gate.id
    spec = runbook.phase(gate.phase_id)
    steps = list(s.execute(_STEPS, {"phase_run_id": gate.phase_run_id}))
    votes = (
        []
        if fresh
        else list(s.exec(select(Vote.actor).where(Vote.gate_id == gate_id).order_by(col(Vote.id))))
    )
    ticks = (
        {
            t.item_id: t.actor
            for t in s.exec(select(ManualTick).where(ManualTick.gate_id == gate_id))
        }
        if spec.manual
        else {}  # a phase with nothing to tick: no read
    )
    overrides = (
        [
            (v.actor, v.justification)
            for v in s.exec(
                select(OverrideVote)
                .where(OverrideVote.subject == f"gate:{gate_id}")
                .order_by(col(OverrideVote.id))
            )
        ]
        if not gate.checks_passed and not fresh
        else []  # a passed gate has nothing to override, a new one no vote yet: no read
    )
    # what the trail says of checks bound to a tick (none in most phases: no read)
    marks = read_tick_marks(s, gate.run_id, gate_id) if spec.tick_checks and ticks else {}
    order = {st.id: i for i, st in enumerate([*spec.actions, *spec.checks, *spec.tick_checks])}
    steps.sort(key=lambda st: (st.section != "actions", order.get(st.step_id, 999)))
    failed, not_run = approvals.failed_steps(
        runbook, spec, [(st.section, st.step_id, st.status) for st in steps]
    )
    return GateView(
        id=gate_id,
        run_id=gate.run_id,
        environment=run.environment,
        phase_id=gate.phase_id,
        phase_name=spec.name,
        phase_index=pr.phase_index,
        phase_number=runbook.phase_number(pr.phase_index),
        phase_count=len(runbook.phases),
        attempt=gate.attempt,
        status=gate.status,
        checks_passed=gate.checks_passed,
        note=gate.note,
        checkpoint=spec.checkpoint,
        on_fail=spec.on_fail,
        quorum=gate.quorum,
        votes=votes,
        decided_by=gate.decided_by,
        decided_at=gate.decided_at,
        surface_ref=gate.surface_ref,
        channel=run.channel,
        run_surface_ref=run.surface_ref,
        dry_run=run.dry_run,
        steps=[
            StepView(
                st.section,
                st.step_id,
                st.name,
                st.status,
                st.evidence,
                st.duration_ms,
                st.step_run_id,
                st.last_lines or "",
            )
            for st in steps
        ]
        + tick_checks_waiting(spec, {st.step_id for st in steps}, ticks, marks),
        manual=[ManualView(m.id, m.text, ticks.get(m.id)) for m in spec.manual],
        overrides=overrides,
        override_quorum=runbook.environments[run.environment].override_quorum_for(gate.quorum),
        overridable=bool(failed)
        and not not_run
        and all(f.overridable and not f.hard for f in failed),
        failed=[f.ref for f in failed],
    )
