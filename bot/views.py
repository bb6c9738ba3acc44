"""Read models for surfaces: a run's phase list and a gate's checkpoint, as plain data.

Pure: the queries that fill them are the store's (bot/store/read_*.py, bound for the
surfaces by `bot.store.reads.Reads`; `bot.ports.ReadsPort` is what a surface sees)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from bot.domain import tick_marks
from bot.domain.states import RunStatus
from phases.runbook import PhaseSpec


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


@dataclass(frozen=True)
class Kept:
    """One step's kept output, with where it ran: `phase` is the phase id (or the section,
    `rollback` or `restore`, for a step of the rollback) and `attempt` the phase's attempt."""

    step_run_id: int
    run_id: int
    phase: str
    attempt: int
    section: str
    step_id: str
    name: str
    status: str
    at: datetime
    truncated: bool
    bytes: int
    text: str = ""  # empty in a listing

    @property
    def address(self) -> str:
        return f"{self.phase}/{self.step_id}#{self.attempt}"


@dataclass(frozen=True)
class Posted:
    """Where the bot posted a message it edits later (bot/store/message_refs.py)."""

    ref: str  # "CHANNEL:TS"
    body: str | None
