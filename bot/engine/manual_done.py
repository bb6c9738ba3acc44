"""Manual steps an action of the same phase did (`done_by`), or that a check of the phase
made needless (`ask_unless`): ticked by the bot when the gate opens, so the gate, the
checkpoint's checklist and the record all read one fact.

A person still ticks it when the action or check did not pass (skipped because nothing is
configured, failed, or not run): the bot never ticks on a result it did not see pass.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from bot import audit
from bot.domain.audit_kinds import AuditKind
from bot.models import ManualTick, MonitorRound, StepRun
from bot.surface import SYSTEM
from phases.checks.base import Status
from phases.runbook import PhaseSpec


def tick_done_by_actions(
    s: Session, run_id: int, phase_run_id: int, gate_id: int, phase: PhaseSpec, now: datetime
) -> list[str]:
    """Ticks (as the bot, with an audit row naming the action and its evidence) each manual
    step whose `done_by` action passed in this phase run; returns their ids."""
    wanted = {m.done_by: m.id for m in phase.manual if m.done_by}
    if not wanted:
        return []  # nothing an action can do: no read
    rows = s.exec(
        select(StepRun)
        .where(
            StepRun.phase_run_id == phase_run_id,
            StepRun.section == "actions",
            col(StepRun.step_id).in_(list(wanted)),
        )
        .order_by(col(StepRun.id))
    )
    latest = {r.step_id: r for r in rows}  # a step's last result in this attempt
    ticked: list[str] = []
    for action, item in wanted.items():
        row = latest.get(action)
        if row is None or row.status != Status.PASS:
            continue
        s.add(ManualTick(gate_id=gate_id, item_id=item, actor=SYSTEM.id, at=now))
        audit.append(
            s,
            AuditKind.MANUAL_TICKED,
            actor=SYSTEM.id,
            run_id=run_id,
            data={"gate": gate_id, "item": item, "done_by": action, "evidence": row.evidence},
            at=now,
        )
        ticked.append(item)
    return ticked


def _check_passed(s: Session, phase_run_id: int, check: str) -> dict[str, Any] | None:
    """The latest passing result of `check` in this phase run, with its evidence: its step
    row, or (a monitoring window, whose step rows come after its gate) its latest passing
    round. None when it never passed."""
    row = s.exec(
        select(StepRun)
        .where(
            StepRun.phase_run_id == phase_run_id,
            StepRun.section == "checks",
            StepRun.step_id == check,
        )
        .order_by(col(StepRun.id).desc())
    ).first()
    if row is not None and row.status == Status.PASS:
        return {"evidence": row.evidence}
    rounds = s.exec(
        select(MonitorRound)
        .where(MonitorRound.phase_run_id == phase_run_id)
        .order_by(col(MonitorRound.round).desc())
    )
    for r in rounds:
        for item in json.loads(r.results or "[]"):
            if item.get("step") == check and item.get("status") == Status.PASS:
                return {"evidence": item.get("evidence"), "round": r.round + 1}
    return None


def tick_unless_asked(
    s: Session, run_id: int, phase_run_id: int, gate_id: int, phase: PhaseSpec, now: datetime
) -> list[str]:
    """Ticks (as the bot, audited with the check and its evidence) each manual step whose
    `ask_unless` check passed in this phase run; the others stay for a person. Returns the
    ticked ids."""
    ticked: list[str] = []
    for m in phase.manual:
        if not m.ask_unless:
            continue
        seen = _check_passed(s, phase_run_id, m.ask_unless)
        if seen is None:
            continue
        s.add(ManualTick(gate_id=gate_id, item_id=m.id, actor=SYSTEM.id, at=now))
        audit.append(
            s,
            AuditKind.MANUAL_TICKED,
            actor=SYSTEM.id,
            run_id=run_id,
            data={"gate": gate_id, "item": m.id, "ask_unless": m.ask_unless, **seen},
            at=now,
        )
        ticked.append(m.id)
    return ticked
