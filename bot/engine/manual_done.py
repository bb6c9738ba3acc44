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

from bot.domain.audit_kinds import AuditKind
from bot.store import monitor_rounds, steps
from bot.store.models import ManualTick
from bot.store.unit import Tx
from bot.surface import SYSTEM
from phases.checks.base import Status
from phases.runbook import PhaseSpec


def tick_done_by_actions(
    tx: Tx, run_id: int, phase_run_id: int, gate_id: int, phase: PhaseSpec, now: datetime
) -> list[str]:
    """Ticks (as the bot, with an audit row naming the action and its evidence) each manual
    step whose `done_by` action passed in this phase run; returns their ids."""
    wanted = {m.done_by: m.id for m in phase.manual if m.done_by}
    if not wanted:
        return []  # nothing an action can do: no read
    latest = steps.latest_actions(tx, phase_run_id, list(wanted))
    ticked: list[str] = []
    for action, item in wanted.items():
        row = latest.get(action)
        if row is None or row.status != Status.PASS:
            continue
        tx.add(ManualTick(gate_id=gate_id, item_id=item, actor=SYSTEM.id, at=now))
        tx.audit(
            AuditKind.MANUAL_TICKED,
            actor=SYSTEM.id,
            run_id=run_id,
            data={"gate": gate_id, "item": item, "done_by": action, "evidence": row.evidence},
            at=now,
        )
        ticked.append(item)
    return ticked


def _check_passed(tx: Tx, phase_run_id: int, check: str) -> dict[str, Any] | None:
    """The latest passing result of `check` in this phase run, with its evidence: its step
    row, or (a monitoring window, whose step rows come after its gate) its latest passing
    round. None when it never passed."""
    row = steps.latest_check(tx, phase_run_id, check)
    if row is not None and row.status == Status.PASS:
        return {"evidence": row.evidence}
    for r in monitor_rounds.newest_first(tx, phase_run_id):
        for item in json.loads(r.results or "[]"):
            if item.get("step") == check and item.get("status") == Status.PASS:
                return {"evidence": item.get("evidence"), "round": r.round + 1}
    return None


def tick_unless_asked(
    tx: Tx, run_id: int, phase_run_id: int, gate_id: int, phase: PhaseSpec, now: datetime
) -> list[str]:
    """Ticks (as the bot, audited with the check and its evidence) each manual step whose
    `ask_unless` check passed in this phase run; the others stay for a person. Returns the
    ticked ids."""
    ticked: list[str] = []
    for m in phase.manual:
        if not m.ask_unless:
            continue
        seen = _check_passed(tx, phase_run_id, m.ask_unless)
        if seen is None:
            continue
        tx.add(ManualTick(gate_id=gate_id, item_id=m.id, actor=SYSTEM.id, at=now))
        tx.audit(
            AuditKind.MANUAL_TICKED,
            actor=SYSTEM.id,
            run_id=run_id,
            data={"gate": gate_id, "item": m.id, "ask_unless": m.ask_unless, **seen},
            at=now,
        )
        ticked.append(m.id)
    return ticked
