"""The state machine, as data: every status a row can have and every move between them.

Each machine (run, phase, gate, schedule, scheduled event, monitoring round) is a table of
`Transition(trigger, sources, dest, guard)`. Code never assigns a status: it calls
`transition(row, trigger)`, which refuses a move the table does not have (IllegalTransition)
and returns the new status; conditional UPDATEs take their WHERE clause from
`sources(machine, trigger)`, so the table is also what the database enforces. The whole
machine is listed in docs/state-machine.md (`python -m bot.domain.states`; a test keeps it
in step).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bot.domain.audit_kinds import AuditKind as K
from bot.domain.errors import IllegalTransition


class RunStatus(enum.StrEnum):
    RUNNING = "running"  # executing a phase or about to
    WAITING = "waiting"  # a gate is open
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    COMPLETED = "completed"
    CANCELLED = "cancelled"  # ended before any action changed anything: no rollback needed
    # A revert of a completed run (its own run, linked by reverts_run_id), waiting for its
    # quorum of approvers before its restore and rollback steps run; nothing ran yet.
    REVERT_PENDING = "revert_pending"

    @property
    def active(self) -> bool:
        return self in (
            RunStatus.RUNNING,
            RunStatus.WAITING,
            RunStatus.ROLLING_BACK,
            RunStatus.REVERT_PENDING,
        )


class PhaseStatus(enum.StrEnum):
    RUNNING = "running"
    CHECKED = "checked"  # steps done, gate open
    PASSED = "passed"  # gate approved
    FAILED = "failed"  # gate rolled back
    RETRIED = "retried"  # superseded by a new attempt
    INTERRUPTED = "interrupted"  # its executor stopped while it ran
    MONITORING = "monitoring"  # between rounds of a monitoring phase
    CANCELLED = "cancelled"  # its run was cancelled at its gate


class GateStatus(enum.StrEnum):
    OPEN = "open"
    APPROVED = "approved"
    ROLLED_BACK = "rolled_back"
    RETRIED = "retried"
    CANCELLED = "cancelled"
    OVERRIDDEN = "overridden"  # continued past failed checks: break-glass, with justification


class ScheduleStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"
    STARTED = "started"  # a run of it was started (run_id)
    DONE = "done"  # that run ended


class EventStatus(enum.StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"  # a process is posting it (claimed_at + the lease)
    SENT = "sent"
    SKIPPED = "skipped"  # moot when due (start time passed, gate decided meanwhile)
    CANCELLED = "cancelled"  # its schedule was cancelled or started early
    FAILED = "failed"  # posting failed every attempt


class RoundStatus(enum.StrEnum):
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    MISSED = "missed"  # its slot passed while no bot was up


class DecisionKind(enum.StrEnum):
    CONTINUE = "continue"
    ROLLBACK = "rollback"
    RETRY = "retry"


@dataclass(frozen=True)
class Transition:
    """One move. Besides the status, a move declares its bookkeeping, which the store's
    `Tx.apply` writes and nobody sets by hand: `sets` (each named column gets the move's
    actor or time: `*_by` the actor, `*_at` the time; `ended_at` only once, a row ends
    once), `clears` (columns set to None: an ended run leaves its environment's active slot
    and its lease) and `audit` (the kind of the audit row the move appends, if it has one)."""

    trigger: str
    sources: tuple[str, ...]
    dest: str
    guard: Callable[[Any], bool] | None = None
    unless: str = ""  # what the guard demands, said when it refuses
    sets: tuple[str, ...] = ()
    clears: tuple[str, ...] = ()
    audit: str | None = None

    def allowed(self, row: Any) -> bool:
        return self.guard is None or self.guard(row)


def _t(
    trigger: str,
    sources: Iterable[str] | str,
    dest: str,
    guard: Callable[[Any], bool] | None = None,
    unless: str = "",
    *,
    does: Effects | None = None,
    audit: str | None = None,
) -> Transition:
    srcs = (sources,) if isinstance(sources, str) else tuple(sources)
    sets, clears = (does.sets, does.clears) if does is not None else ((), ())
    return Transition(trigger, srcs, dest, guard, unless, sets, clears, audit)


@dataclass(frozen=True)
class Effects:
    sets: tuple[str, ...] = ()
    clears: tuple[str, ...] = ()


# The bookkeeping of the common moves.
DECIDED = Effects(sets=("decided_by", "decided_at"))  # a gate decided: by whom, when
ENDED = Effects(sets=("ended_at",))  # a phase's steps are over
RELEASED = Effects(clears=("owner", "lease_until"))  # no process executes the run now
RUN_ENDED = Effects(sets=("ended_at",), clears=("active_env", "owner", "lease_until"))
CANCELLED = Effects(sets=("cancelled_by",))  # a schedule cancelled: by whom


R, P, G = RunStatus, PhaseStatus, GateStatus
S, E, RS = ScheduleStatus, EventStatus, RoundStatus

MACHINES: dict[str, tuple[type[enum.StrEnum], list[Transition]]] = {
    "run": (
        RunStatus,
        [
            _t("gate_opened", R.RUNNING, R.WAITING, does=RELEASED),
            _t("approved", R.WAITING, R.RUNNING),
            _t("retried", R.WAITING, R.RUNNING),
            _t("overridden", R.WAITING, R.RUNNING),
            _t("completed", R.RUNNING, R.COMPLETED, does=RUN_ENDED, audit=K.RUN_COMPLETED),
            _t("rolled_back_at_gate", R.WAITING, R.ROLLING_BACK),
            _t("aborted", [R.RUNNING, R.WAITING], R.ROLLING_BACK, audit=K.RUN_ABORTED),
            _t("monitoring_failed", R.RUNNING, R.ROLLING_BACK),
            _t("rollback_finished", R.ROLLING_BACK, R.ROLLED_BACK, does=RUN_ENDED),
            _t(
                "cancelled",
                [R.RUNNING, R.WAITING, R.REVERT_PENDING],
                R.CANCELLED,
                does=RUN_ENDED,
                audit=K.RUN_CANCELLED,
            ),
            _t("revert_approved", R.REVERT_PENDING, R.ROLLING_BACK),
        ],
    ),
    "phase": (
        PhaseStatus,
        [
            _t("checked", P.RUNNING, P.CHECKED, does=ENDED),
            _t("monitoring", P.RUNNING, P.MONITORING),
            _t("monitoring_done", P.MONITORING, P.CHECKED, does=ENDED),
            _t("interrupted", P.RUNNING, P.INTERRUPTED, audit=K.PHASE_INTERRUPTED),
            _t("not_begun", P.RUNNING, P.RETRIED, audit=K.PHASE_NOT_BEGUN),  # no action began
            _t("approved", [P.CHECKED, P.INTERRUPTED], P.PASSED),
            _t("overridden", P.CHECKED, P.PASSED),  # every step ran; the failed ones overridden
            _t("retried", [P.CHECKED, P.INTERRUPTED], P.RETRIED),
            _t("failed", [P.RUNNING, P.CHECKED, P.INTERRUPTED, P.MONITORING], P.FAILED, does=ENDED),
            _t("cancelled", [P.RUNNING, P.CHECKED, P.INTERRUPTED], P.CANCELLED),
        ],
    ),
    "gate": (
        GateStatus,
        [
            _t("approve", G.OPEN, G.APPROVED, does=DECIDED, audit=K.GATE_DECIDED),
            _t("rollback", G.OPEN, G.ROLLED_BACK, does=DECIDED, audit=K.GATE_DECIDED),
            _t(
                "retry",
                G.OPEN,
                G.RETRIED,
                lambda g: not g.checks_passed,
                "its checks failed or the phase was interrupted: a passed phase is "
                "continued or rolled back, never re-run",
                does=DECIDED,
                audit=K.GATE_DECIDED,
            ),
            _t("cancel", G.OPEN, G.CANCELLED, does=DECIDED, audit=K.GATE_DECIDED),
            _t(
                "override",
                G.OPEN,
                G.OVERRIDDEN,
                lambda g: not g.checks_passed,
                "its checks failed: a passed phase is continued, never overridden",
                does=DECIDED,
                audit=K.GATE_OVERRIDDEN,
            ),
        ],
    ),
    "schedule": (
        ScheduleStatus,
        [
            _t("cancel", S.SCHEDULED, S.CANCELLED, does=CANCELLED, audit=K.SCHEDULE_CANCELLED),
            _t("start", S.SCHEDULED, S.STARTED, audit=K.SCHEDULE_STARTED),
            _t("done", S.STARTED, S.DONE, audit=K.SCHEDULE_DONE),
        ],
    ),
    "event": (
        EventStatus,
        [
            _t("claim", [E.PENDING, E.CLAIMED], E.CLAIMED),  # a lapsed claim is re-claimed
            _t("sent", E.CLAIMED, E.SENT),
            _t("skipped", [E.PENDING, E.CLAIMED], E.SKIPPED),
            _t("release", E.CLAIMED, E.PENDING),
            _t("give_up", E.CLAIMED, E.FAILED),
            _t("cancel", E.PENDING, E.CANCELLED),
        ],
    ),
    "round": (
        RoundStatus,
        [
            _t("passed", RS.RUNNING, RS.PASSED),
            _t("failed", RS.RUNNING, RS.FAILED),
            _t("missed", RS.RUNNING, RS.MISSED),
        ],
    ),
}

# Which machine a table's rows follow, by class name (the store's tables; no import needed).
ROW_MACHINE = {
    "Run": "run",
    "PhaseRun": "phase",
    "Gate": "gate",
    "Schedule": "schedule",
    "ScheduledEvent": "event",
    "MonitorRound": "round",
}


def find(machine: str, trigger: str, source: str) -> Transition:
    """The transition `trigger` from `source`; IllegalTransition if the table has none."""
    _, table = MACHINES[machine]
    for t in table:
        if t.trigger == trigger and source in t.sources:
            return t
    raise IllegalTransition(f"a {machine} cannot be {trigger.replace('_', ' ')} when {source}")


def sources(machine: str, trigger: str) -> tuple[str, ...]:
    """Every status `trigger` may leave from: the WHERE clause of a conditional UPDATE."""
    found = [s for t in MACHINES[machine][1] if t.trigger == trigger for s in t.sources]
    if not found:
        raise KeyError(f"the {machine} machine has no trigger {trigger!r}")
    return tuple(dict.fromkeys(found))


def dest(machine: str, trigger: str) -> str:
    dests = {t.dest for t in MACHINES[machine][1] if t.trigger == trigger}
    if len(dests) != 1:
        raise KeyError(f"the {machine} machine's trigger {trigger!r} has no single destination")
    return dests.pop()


def can(row: Any, trigger: str) -> bool:
    machine = ROW_MACHINE[type(row).__name__]
    try:
        return find(machine, trigger, str(row.status)).allowed(row)
    except IllegalTransition:
        return False


def move(row: Any, trigger: str) -> Transition:
    """Moves `row` by `trigger` (its status only) and returns the move made, whose declared
    bookkeeping the caller writes (`bot.store.unit.Tx.apply`); or raises IllegalTransition."""
    machine = ROW_MACHINE[type(row).__name__]
    t = find(machine, trigger, str(row.status))
    if not t.allowed(row):
        raise IllegalTransition(
            f"a {machine} cannot be {trigger.replace('_', ' ')} unless {t.unless}"
        )
    row.status = MACHINES[machine][0](t.dest)
    return t


def transition(row: Any, trigger: str) -> str:
    """Moves `row` by `trigger`: sets and returns its new status, or raises IllegalTransition.
    Its declared bookkeeping is not written: rows the store moves go through `Tx.apply`."""
    return move(row, trigger).dest


def mermaid() -> str:
    """The whole machine as Markdown with one Mermaid state diagram per table."""
    out = [
        "# The state machine",
        "",
        "Generated from `bot/domain/states.py` by `python -m bot.domain.states`; "
        "a test fails when the two differ. A move not drawn here is refused.",
    ]
    for name, (enum_cls, table) in MACHINES.items():
        out += ["", f"## {name}", "", "```mermaid", "stateDiagram-v2"]
        for t in table:
            for src in t.sources:
                label = t.trigger + (" [guarded]" if t.guard else "")
                out.append(f"    {src} --> {t.dest}: {label}")
        out.append("```")
        guarded = [t for t in table if t.guard]
        for t in guarded:
            out.append(f"- `{t.trigger}` only if {t.unless}.")
        for t in table:
            effects = [f"sets `{c}`" for c in t.sets] + [f"clears `{c}`" for c in t.clears]
            if t.audit:
                effects.append(f"audits `{t.audit}`")
            if effects:
                froms = ", ".join(t.sources)
                out.append(f"- `{t.trigger}` (from {froms}) {', '.join(effects)}.")
        out.append("")
        out.append("States: " + ", ".join(f"`{s.value}`" for s in enum_cls) + ".")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(mermaid(), end="")
