"""Manual steps an action of the same phase did (`done_by`): ticked by the bot when the
gate opens, so the gate, the checkpoint's checklist and the record all read one fact.

A person still ticks it when the action did not pass (skipped because nothing is
configured, failed, or not run): the bot never ticks on a result it did not see pass.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from bot import audit
from bot.domain.audit_kinds import AuditKind
from bot.models import ManualTick, StepRun
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
