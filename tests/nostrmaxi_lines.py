"""The shipped NostrMaxi runbook's own steps, resolved for a test's per-test names.

Each line test runs a step exactly as `runbooks/nostrmaxi.yml` writes it, with the
environment values a test needs (its compose project, its loopback URLs) put in place of
production's, so the test proves the shipped data, not a copy of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from phases.checks import REGISTRY
from phases.checks.base import StepContext, StepResult, timed
from phases.runbook import RUN_PLACEHOLDERS, Runbook, Value, load_runbook, resolve_step

RUNBOOK = Path(__file__).resolve().parent.parent / "runbooks" / "nostrmaxi.yml"


def shipped() -> Runbook:
    return load_runbook(RUNBOOK)


def shipped_step(phase_id: str, step_id: str, **values: Value) -> tuple[str, Any]:
    """(kind, validated params) of a shipped step, with `values` over production's."""
    runbook = shipped()
    phase = runbook.phase(phase_id)
    step = next(s for s in [*phase.actions, *phase.checks] if s.id == step_id)
    merged = {**RUN_PLACEHOLDERS, **runbook.values_for("prod", expand=False), **values}
    kind, params = resolve_step(step, merged)
    return kind.name, params


def run_shipped(phase_id: str, step_id: str, ctx: StepContext, **values: Value) -> StepResult:
    """Runs a shipped step as the engine does (an exception becomes ERROR)."""
    kind, params = shipped_step(phase_id, step_id, **values)
    return timed(lambda: REGISTRY[kind].run(params, ctx), ctx.clock)
