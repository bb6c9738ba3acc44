"""The run's audit trail digested by kind (`Trail`), and what a record and criterion hold."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from bot import audit
from bot.domain.audit_kinds import AuditKind, read_data, read_kind
from bot.store.db import Database

Verdict = Literal["yes", "no", "not verified"]
VERDICT_ICONS = {"yes": "✅", "no": "❌", "not verified": "❔"}


@dataclass(frozen=True)
class Criterion:
    text: str
    verdict: Verdict
    evidence: str
    id: str = ""


@dataclass
class Trail:
    """The run's audit trail, digested by typed kind. Every entry keeps its row's "seq",
    "actor" and "at", so each line of the record can name the row that justifies it."""

    started: dict[str, Any] | None = None  # the run.started row
    ended: dict[str, Any] | None = None  # run.completed / run.rolled_back / run.cancelled
    steps: list[dict[str, Any]] = field(default_factory=list)  # step.result + "phase", "attempt"
    gates: dict[int, str] = field(default_factory=dict)  # gate id → phase id
    opened: list[dict[str, Any]] = field(default_factory=list)  # gate.opened rows
    decisions: list[dict[str, Any]] = field(default_factory=list)
    ticks: list[dict[str, Any]] = field(default_factory=list)  # + "phase", "attempt"
    refused: list[dict[str, Any]] = field(default_factory=list)
    interrupted: list[dict[str, Any]] = field(default_factory=list)
    aborted: list[dict[str, Any]] = field(default_factory=list)  # run.aborted mid-phase
    revert: dict[str, Any] | None = None  # revert.requested: this run undoes a completed one
    revert_started: dict[str, Any] | None = None  # revert.started: its quorum was reached
    reverted: list[dict[str, Any]] = field(default_factory=list)  # run.reverted: undone by
    rounds: list[dict[str, Any]] = field(default_factory=list)
    missed: list[int] = field(default_factory=list)
    missed_rows: list[dict[str, Any]] = field(default_factory=list)  # monitor.missed + "attempt"
    reminders: list[dict[str, Any]] = field(default_factory=list)
    phase_starts: list[dict[str, Any]] = field(default_factory=list)
    signoffs: list[dict[str, Any]] = field(default_factory=list)  # + "actor", "at"
    run_signoff_asked: dict[str, Any] | None = None  # run.signoff_requested (bot.record_signoff)
    run_signed: list[dict[str, Any]] = field(default_factory=list)  # run.signed_off rows
    rollback: dict[str, Any] | None = None  # the run.rolled_back event's data
    people_notes: list[dict[str, Any]] = field(default_factory=list)  # /cutover note
    overrides: list[dict[str, Any]] = field(default_factory=list)  # gate.overridden (break-glass)
    deviations: list[dict[str, Any]] = field(default_factory=list)  # /cutover deviation

    def attempt_of(self, gate: int) -> int:
        return next((int(g.get("attempt") or 1) for g in self.opened if g["gate"] == gate), 1)


@dataclass(frozen=True)
class CutoverRecord:
    run_id: int
    environment: str
    status: str
    dry_run: bool
    notes: list[tuple[str, str | list[str]]]
    criteria: list[Criterion]
    people_notes: list[str] = field(default_factory=list)
    # What was deployed (the `deployed` step's artifact: commit, images), if it ran; and
    # whether the runbook has such a step (then its absence is said, not hidden).
    deployed: dict[str, Any] | None = None
    deployed_expected: bool = False
    # Every manual step of every checkpoint that opened, with who ticked it and when.
    manual: list[str] = field(default_factory=list)
    # A revert run: what it undoes, who asked, who approved; a reverted run: by which run.
    revert_lines: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)  # post-cutover tasks (bot/post_task_view.py)
    sign_off: str = ""  # the Sign-Off line, whether or not notes_fields shows it

    def note(self, name: str) -> str | list[str]:
        for key, value in self.notes:
            if key.lower() == name.lower():
                return value
        raise KeyError(name)


ENDED = (AuditKind.RUN_COMPLETED, AuditKind.RUN_ROLLED_BACK, AuditKind.RUN_CANCELLED)


def read_trail(db: Database, run_id: int, events: list[Any] | None = None) -> Trail:
    """`events`: the run's rows, when the caller read them already (the run page)."""
    t = Trail()
    phase: str | None = None
    attempt = 1
    for ev in audit.events(db, run_id) if events is None else events:
        kind = read_kind(ev.kind)  # a row an older bot wrote, under the name it used then
        data = read_data(ev.kind, json.loads(ev.data))
        row = {**data, "seq": ev.seq, "actor": ev.actor, "at": ev.at}
        if kind == AuditKind.RUN_STARTED:
            t.started = row
        elif kind in ENDED:
            t.ended = {**row, "kind": kind}
            if kind == AuditKind.RUN_ROLLED_BACK:
                t.rollback = data
        elif kind == AuditKind.PHASE_STARTED:
            phase, attempt = data.get("phase"), int(data.get("attempt") or 1)
            t.phase_starts.append(row)
        elif kind == AuditKind.STEP_RESULT:
            section = data.get("section")
            phased = section in ("actions", "checks")
            t.steps.append(
                {**row, "phase": phase if phased else None, "attempt": attempt if phased else None}
            )
        elif kind == AuditKind.GATE_OPENED:
            t.gates[int(data["gate"])] = str(data["phase"])
            t.opened.append({**row, "gate": int(data["gate"])})
        elif kind == AuditKind.GATE_DECIDED:
            t.decisions.append(row)
        elif kind == AuditKind.GATE_RECHECKED:  # a check run after a tick failed
            for g in t.opened:
                if g["gate"] == data["gate"]:
                    g["checks_passed"] = False
        elif kind in (AuditKind.GATE_OVERRIDDEN, AuditKind.FREEZE_OVERRIDDEN):
            t.overrides.append({**row, "kind": kind})
        elif kind == AuditKind.GATE_VOTE and data.get("comment"):  # Continue with comment
            where = t.gates.get(int(data["gate"]), data.get("phase"))
            t.people_notes.append({**row, "text": f"continued at {where}: {data['comment']}"})
        elif kind == AuditKind.MANUAL_TICKED:
            gate = int(data["gate"])
            t.ticks.append({**row, "phase": t.gates.get(gate), "attempt": t.attempt_of(gate)})
        elif kind == AuditKind.ACTION_REFUSED:
            t.refused.append(row)
        elif kind == AuditKind.PHASE_INTERRUPTED:
            t.interrupted.append(row)
        elif kind == AuditKind.RUN_ABORTED:
            t.aborted.append(row)
        elif kind == AuditKind.REVERT_REQUESTED:
            t.revert = row
        elif kind == AuditKind.REVERT_STARTED:
            t.revert_started = row
        elif kind == AuditKind.RUN_REVERTED:
            t.reverted.append(row)
        elif kind == AuditKind.MONITOR_ROUND:
            t.rounds.append({**row, "attempt": attempt})
        elif kind == AuditKind.MONITOR_MISSED:
            t.missed += list(data.get("rounds") or [])
            t.missed_rows.append({**row, "attempt": attempt})
        elif kind in (
            AuditKind.GATE_REMINDED,
            AuditKind.GATE_ESCALATED,
            AuditKind.REVERT_REMINDED,
            AuditKind.REVERT_ESCALATED,
        ):
            t.reminders.append({**row, "kind": kind})
        elif kind == AuditKind.CRITERION_SIGNED_OFF:
            t.signoffs.append(row)
        elif kind == AuditKind.RUN_SIGNOFF_REQUESTED:
            t.run_signoff_asked = row
        elif kind == AuditKind.RUN_SIGNED_OFF:
            t.run_signed.append(row)
        elif kind == AuditKind.RECORD_NOTE:
            t.people_notes.append(row)
        elif kind == AuditKind.RECORD_DEVIATION:
            t.deviations.append(row)
    return t


def hm(at: str) -> str:
    """An audit row's time as the record prints it ("14:10 UTC")."""
    return f"{at[11:16]} UTC"
