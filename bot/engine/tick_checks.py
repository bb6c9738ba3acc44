"""Ticks that carry a value, and the checks a manual step runs once it is ticked.

A step with `value` is ticked only with a value that matches it; the value is kept in the
tick's audit row (`value`, and `given` when it was normalised: an npub kept as hex). The
step's `checks` run after the tick commits, off the caller's thread, with `{tick/ITEM/NAME}`
from the gate's ticks and the tick's time (`ticked_at`); their results join the phase run's
steps, and one that fails turns the gate's `checks_passed` false (audit `gate.rechecked`):
the checkpoint never looks greener than the check. Until they have a result, Continue is
refused (`GateFacts.checking`). A tick whose checks never got a result (the process died)
runs them again when the step is ticked again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from sqlmodel import Session, select

from bot import audit
from bot.domain.audit_kinds import AuditKind
from bot.engine.core import EngineCore
from bot.models import AuditEvent, Gate, GateStatus, ManualTick, Run, StepRun
from bot.surface import SYSTEM
from phases import tick_values
from phases.runbook import ManualStep, PhaseSpec
from phases.runner import run_checks

log = logging.getLogger(__name__)


def ticked_values(s: Session, run_id: int, gate_id: int) -> dict[str, str]:
    """`tick/ITEM/NAME` → value, of every tick with a value at this gate (its audit rows)."""
    out: dict[str, str] = {}
    rows = s.exec(
        select(AuditEvent.data).where(
            AuditEvent.run_id == run_id, AuditEvent.kind == AuditKind.MANUAL_TICKED
        )
    )
    for raw in rows:
        data = json.loads(raw)
        if data.get("gate") == gate_id and isinstance(data.get("value"), dict):
            for name, value in data["value"].items():
                out[tick_values.key(str(data.get("item")), name)] = str(value)
    return out


def judge(
    s: Session, run_id: int, gate_id: int, step: ManualStep, given: str | None
) -> tuple[dict[str, Any], str | None]:
    """(what the tick's audit row keeps of its value, None), or ({}, why it is refused)."""
    data: dict[str, Any] = {}
    typed = (given or "").strip()
    if step.value is not None:
        kept, problem = tick_values.accept(step.value, typed)
        if problem is not None or kept is None:
            return {}, f"{step.id} not ticked: {problem}"
        data["value"] = {step.value.name: kept}
        if kept != typed:
            data["given"] = typed
    elif typed:
        return {}, f"{step.id} takes no value: tick it with its id alone"
    needs = sorted({i for c in step.checks for i, _ in tick_values.refs(c.params)} - {step.id})
    if needs:
        have = ticked_values(s, run_id, gate_id)
        missing = [i for i in needs if not any(k.startswith(f"tick/{i}/") for k in have)]
        if missing:
            return {}, (
                f"{step.id} not ticked: tick {', '.join(missing)} first "
                f"(its value is what {step.id}'s checks use)"
            )
    return data, None


def checking(s: Session, phase: PhaseSpec, gate: Gate) -> list[str]:
    """The checks of ticked steps that have no result yet in the gate's phase run."""
    if not phase.tick_checks:
        return []  # nothing bound to a tick: no read
    ticked = set(s.exec(select(ManualTick.item_id).where(ManualTick.gate_id == gate.id)))
    done = set(
        s.exec(
            select(StepRun.step_id).where(
                StepRun.phase_run_id == gate.phase_run_id, StepRun.section == "checks"
            )
        )
    )
    return [c.id for m in phase.manual if m.id in ticked for c in m.checks if c.id not in done]


class TickChecks(EngineCore):
    """The engine's part that runs a ticked step's checks (a base of Gates, whose `tick`
    calls `after_tick`)."""

    def after_tick(self, gate_id: int, item_id: str) -> None:
        """Called once a tick committed: its step's checks, in the background."""
        with self.db.session() as s:
            gate = s.get(Gate, gate_id)
            if gate is None:
                return
            step = next(m for m in self.runbook.phase(gate.phase_id).manual if m.id == item_id)
            pending = set(checking(s, self.runbook.phase(gate.phase_id), gate))
        if step.checks and pending & {c.id for c in step.checks}:
            self.spawn(self.run_tick_checks, gate_id, item_id)

    def run_tick_checks(self, gate_id: int, item_id: str) -> None:
        with self.db.session() as s:
            gate = s.get(Gate, gate_id)
            run = s.get(Run, gate.run_id) if gate is not None else None
            tick = s.exec(
                select(ManualTick).where(
                    ManualTick.gate_id == gate_id, ManualTick.item_id == item_id
                )
            ).first()
            if gate is None or run is None or run.id is None or tick is None:
                return
            values_ticked = ticked_values(s, run.id, gate_id)
        run_id, phase_run_id = run.id, gate.phase_run_id
        step = next(m for m in self.runbook.phase(gate.phase_id).manual if m.id == item_id)
        ctx, values = self.context(run, step.checks)
        values.update(values_ticked)
        # The window is counted on the clock that stamped the tick.
        ctx = dataclasses.replace(ctx, ticked_at=tick.at.timestamp(), clock=self.clock)
        outcomes = run_checks(step.checks, values, ctx)
        failed = [o.step.id for o in outcomes if o.result.status.blocks_gate]

        def record() -> None:
            with self.db.session() as s:
                # The lock order of every decision at a gate: the run, then its gate.
                s.exec(select(Run.id).where(Run.id == run_id).with_for_update()).one()
                locked = s.exec(select(Gate).where(Gate.id == gate_id).with_for_update()).one()
                for outcome in outcomes:
                    self.add_step(s, run_id, phase_run_id, outcome)
                if failed and locked.status == GateStatus.OPEN and locked.checks_passed:
                    locked.checks_passed = False
                    s.add(locked)
                    audit.append(
                        s,
                        AuditKind.GATE_RECHECKED,
                        actor=SYSTEM.id,
                        run_id=run_id,
                        data={
                            "gate": gate_id,
                            "phase": locked.phase_id,
                            "item": item_id,
                            "failed": failed,
                            "checks_passed": False,
                        },
                        at=self.now(),
                    )

        self.db.retrying(record, f"run #{run_id}: checks of the {item_id} tick")
        log.info("run #%s: checks of the %s tick: %s failed", run_id, item_id, len(failed))
        self.notify.gate_changed(gate_id)
        self.notify.run_changed(run_id)


__all__ = ["TickChecks", "checking", "judge", "ticked_values"]
