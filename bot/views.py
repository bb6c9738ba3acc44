"""Read models for surfaces: a run's phase list and a gate's checkpoint, from the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlmodel import Session, col, func, select

from bot.db import Database
from bot.domain import approvals, tick_marks
from bot.models import (
    AuditEvent,
    Gate,
    ManualTick,
    OverrideVote,
    PhaseRun,
    Run,
    RunStatus,
    Schedule,
    StepOutput,
    StepRun,
    Vote,
)
from phases.runbook import PhaseSpec, Runbook


@dataclass(frozen=True)
class StepView:
    section: str
    step_id: str
    name: str
    status: str
    evidence: str
    duration_ms: int
    output_id: int | None = None  # its step_run id, when the step's output was kept
    last_lines: str = ""  # of its kept output (masked), quoted when the step failed

    @property
    def quote(self) -> str:
        """The last lines of a failing step's output, shown under it on the checkpoint."""
        return self.last_lines if self.status in ("fail", "error") else ""


@dataclass(frozen=True)
class ManualView:
    id: str
    text: str
    ticked_by: str | None


@dataclass(frozen=True)
class GateView:
    id: int
    run_id: int
    environment: str
    phase_id: str
    phase_name: str
    phase_index: int
    phase_number: str
    phase_count: int
    attempt: int
    status: str
    checks_passed: bool
    note: str | None
    checkpoint: str
    on_fail: str
    quorum: int
    votes: list[str]
    decided_by: str | None
    decided_at: datetime | None
    surface_ref: str | None
    channel: str | None
    run_surface_ref: str | None
    dry_run: bool
    steps: list[StepView] = field(default_factory=list)
    manual: list[ManualView] = field(default_factory=list)
    # Break-glass: the override votes so far (actor, justification), how many it needs, and
    # whether the runbook lets every failed step of this attempt be overridden.
    overrides: list[tuple[str, str]] = field(default_factory=list)
    override_quorum: int = 2
    overridable: bool = False
    failed: list[str] = field(default_factory=list)  # "actions/x", "checks/y"


@dataclass(frozen=True)
class PhaseLine:
    index: int
    number: str  # as people call it: the runbook's number, or position from 1
    id: str
    name: str
    estimate: str
    status: str  # pending | running | waiting | passed | failed | interrupted
    attempt: int
    decided_by: str | None
    decided_at: datetime | None
    minutes: float | None


@dataclass(frozen=True)
class RevertStep:
    """One step a revert run runs (restore, rollback, rollback check) and its result so far
    (its last step_run row; status "pending" while none)."""

    section: str  # restore | rollback | checks
    id: str
    name: str
    status: str
    evidence: str


@dataclass(frozen=True)
class RunView:
    id: int
    environment: str
    runbook: str
    status: str
    dry_run: bool
    requested_by: str
    channel: str | None
    surface_ref: str | None
    started_at: datetime
    ended_at: datetime | None
    phase_index: int
    rollback_reason: str | None
    rolled_back_by: str | None
    estimate_min: int
    estimate_max: int
    phases: list[PhaseLine]
    reverts: int | None = None  # a revert run: the completed run it undoes
    revert_steps: list[RevertStep] = field(default_factory=list)  # what a revert run runs

    def elapsed_minutes(self, now: datetime | None = None) -> float:
        end = self.ended_at or now or datetime.now(UTC)
        return max(0.0, (end - self.started_at).total_seconds() / 60)


def run_view(db: Database, runbook: Runbook, run_id: int) -> RunView | None:
    with db.session() as s:
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


def tick_checks_waiting(
    spec: PhaseSpec,
    ran: set[str],
    ticks: dict[str, str],
    marks: dict[str, tick_marks.Mark] | None = None,
) -> list[StepView]:
    """The checks of manual steps that have no result yet, shown as pending: waiting for
    their tick, or running since it (never absent, so never a greener checkpoint); or
    interrupted, as their audit row says (`marks`, bot/domain/tick_marks.py)."""
    out = []
    for m in spec.manual:
        mark = (marks or {}).get(m.id)
        for c in m.checks:
            if c.id in ran:
                continue
            if m.id in ticks and mark is not None and mark.interrupted:
                out.append(StepView("checks", c.id, c.name, "interrupted", interrupted(mark), 0))
                continue
            said = f"running: {m.id} was ticked" if m.id in ticks else f"runs once {m.id} is ticked"
            out.append(StepView("checks", c.id, c.name, "pending", said, 0))
    return out


interrupted = tick_marks.interrupted_said


def read_tick_marks(s: Session, run_id: int, gate_id: int) -> dict[str, tick_marks.Mark]:
    """The latest audit mark of each tick's checks at a gate (started, interrupted, resumed)."""
    rows = s.exec(
        select(AuditEvent.kind, AuditEvent.data, AuditEvent.at)
        .where(AuditEvent.run_id == run_id, col(AuditEvent.kind).in_(tick_marks.KINDS))
        .order_by(col(AuditEvent.seq))
    )
    return tick_marks.latest(rows, gate_id)


def gate_view(db: Database, runbook: Runbook, gate_id: int) -> GateView | None:
    with db.session() as s:
        row = s.exec(  # the gate, its run and its phase run in one read
            select(Gate, Run, PhaseRun)
            .join(Run, col(Run.id) == col(Gate.run_id))
            .join(PhaseRun, col(PhaseRun.id) == col(Gate.phase_run_id))
            .where(Gate.id == gate_id)
        ).first()
        if row is None:
            return None
        gate, run, pr = row
        spec = runbook.phase(gate.phase_id)
        steps = list(
            s.exec(
                select(StepRun, StepOutput.step_run_id, StepOutput.last_lines)
                .outerjoin(StepOutput, col(StepOutput.step_run_id) == col(StepRun.id))
                .where(StepRun.phase_run_id == gate.phase_run_id)
                .order_by(col(StepRun.id))
            )
        )
        votes = list(
            s.exec(select(Vote.actor).where(Vote.gate_id == gate_id).order_by(col(Vote.id)))
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
            if not gate.checks_passed
            else []  # a passed gate has nothing to override: no read
        )
        # what the trail says of checks bound to a tick (none in most phases: no read)
        marks = read_tick_marks(s, gate.run_id, gate_id) if spec.tick_checks and ticks else {}
    order = {st.id: i for i, st in enumerate([*spec.actions, *spec.checks, *spec.tick_checks])}
    steps.sort(key=lambda row: (row[0].section != "actions", order.get(row[0].step_id, 999)))
    failed, not_run = approvals.failed_steps(
        runbook, spec, [(st.section, st.step_id, st.status) for st, _, _ in steps]
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
                output_id,
                last_lines or "",
            )
            for st, output_id, last_lines in steps
        ]
        + tick_checks_waiting(spec, {st.step_id for st, _, _ in steps}, ticks, marks),
        manual=[ManualView(m.id, m.text, ticks.get(m.id)) for m in spec.manual],
        overrides=overrides,
        override_quorum=runbook.environments[run.environment].override_quorum_for(gate.quorum),
        overridable=bool(failed)
        and not not_run
        and all(f.overridable and not f.hard for f in failed),
        failed=[f.ref for f in failed],
    )


def active_runs(db: Database, environment: str | None = None) -> list[int]:
    with db.session() as s:
        q = select(Run.id).where(col(Run.active_env).is_not(None))
        if environment:
            q = q.where(Run.environment == environment)
        return [i for i in s.exec(q.order_by(col(Run.id))) if i is not None]


def latest_run(db: Database, environment: str) -> int | None:
    with db.session() as s:
        return s.exec(
            select(Run.id).where(Run.environment == environment).order_by(col(Run.id).desc())
        ).first()


def gate_ids(db: Database, run_id: int) -> list[int]:
    """Every gate of a run, oldest first (each attempt of a phase has its own)."""
    with db.session() as s:
        return [
            gid
            for gid in s.exec(select(Gate.id).where(Gate.run_id == run_id).order_by(col(Gate.id)))
            if gid is not None
        ]


def open_gate_id(db: Database, run_id: int) -> int | None:
    with db.session() as s:
        return s.exec(select(Gate.id).where(Gate.run_id == run_id, Gate.status == "open")).first()


STATUS_WORDS = {
    RunStatus.RUNNING: "running",
    RunStatus.WAITING: "waiting for a decision",
    RunStatus.ROLLING_BACK: "rolling back",
    RunStatus.ROLLED_BACK: "rolled back",
    RunStatus.COMPLETED: "completed",
    RunStatus.CANCELLED: "cancelled (nothing had changed, so nothing was rolled back)",
    RunStatus.REVERT_PENDING: "revert waiting for its approvers",
}


@dataclass(frozen=True)
class ScheduleView:
    id: int
    environment: str
    start_at: datetime
    status: str
    run_id: int | None
    cancelled_by: str | None


def schedule_view(db: Database, schedule_id: int) -> ScheduleView | None:
    with db.session() as s:
        row = s.get(Schedule, schedule_id)
    if row is None or row.id is None:
        return None
    return ScheduleView(
        row.id, row.environment, row.start_at, row.status, row.run_id, row.cancelled_by
    )


def run_counts(db: Database) -> dict[str, int]:
    """How many runs the database holds in each status (for /metrics)."""
    with db.session() as s:
        rows = s.exec(select(Run.status, func.count()).group_by(Run.status)).all()
    return {str(status): int(n) for status, n in rows}


def recent_runs(db: Database, limit: int = 10) -> list[int]:
    """The latest runs that have ended (completed, rolled back, cancelled), newest first."""
    with db.session() as s:
        q = (
            select(Run.id)
            .where(col(Run.active_env).is_(None), col(Run.ended_at).is_not(None))
            .order_by(col(Run.id).desc())
            .limit(limit)
        )
        return [i for i in s.exec(q) if i is not None]
