"""Runs a phase's steps: actions one after another, then checks all at once.

Checks are read-only, so they run concurrently and a phase takes about as long
as its slowest check. Actions change state and keep their runbook order; the
first failing action stops the rest.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from phases.checks.base import Status, StepContext, StepResult, timed
from phases.runbook import RunbookError, StepSpec, Value, resolve_step

# Checks are I/O bound; a phase rarely has more than a dozen.
MAX_PARALLEL_CHECKS = 16


@dataclass(frozen=True)
class StepOutcome:
    step: StepSpec
    section: str  # "actions" | "checks" | "rollback" | "restore"
    result: StepResult


OnResult = Callable[[StepOutcome], None]


def run_step(step: StepSpec, values: Mapping[str, Value], ctx: StepContext) -> StepResult:
    """One step, bounded by its timeout, never raising; evidence is masked."""
    try:
        kind, params = resolve_step(step, values)
    except RunbookError as exc:
        return StepResult(Status.ERROR, f"misconfigured: {exc}")
    step_ctx = dataclasses.replace(ctx, timeout=step.timeout, stop_grace=step.stop_grace_seconds)
    if kind.mutates and ctx.dry_run:
        what = kind.describe(params) if kind.describe else f"{kind.name} {params}"
        return StepResult(Status.SKIPPED, ctx.masker.untrusted(f"dry run: would {what}"))

    if ctx.stop is not None and ctx.stop.is_set():  # an abort or a lost lease came first
        return StepResult(Status.ERROR, f"not started: stopped by {ctx.stop.reason}")

    box: list[StepResult] = []

    def target() -> None:
        box.append(timed(lambda: kind.run(params, step_ctx), ctx.clock))

    # A daemon thread per step: a step that ignores its own timeout cannot hang the phase.
    worker = threading.Thread(target=target, name=f"step-{step.id}", daemon=True)
    start = ctx.clock.monotonic()
    worker.start()
    worker.join(step.timeout + 1.0)
    if not box:
        elapsed = int((ctx.clock.monotonic() - start) * 1000)
        return StepResult(Status.ERROR, f"timed out after {step.timeout:g}s", elapsed)
    result = box[0]
    if result.status is Status.FAIL and not step.critical:
        result = dataclasses.replace(result, status=Status.WARN)
    # A target wrote this text: masked, and no mention or link in it reaches chat live.
    clean = ctx.masker.untrusted
    details = {k: clean(v) if isinstance(v, str) else v for k, v in result.details.items()}
    return dataclasses.replace(result, evidence=clean(result.evidence), details=details)


def run_actions(
    steps: Sequence[StepSpec],
    values: Mapping[str, Value],
    ctx: StepContext,
    section: str,
    on_result: OnResult | None = None,
    stop_on_failure: bool = True,
) -> list[StepOutcome]:
    outcomes: list[StepOutcome] = []
    for step in steps:
        outcome = StepOutcome(step, section, run_step(step, values, ctx))
        outcomes.append(outcome)
        if on_result:
            on_result(outcome)
        if stop_on_failure and outcome.result.status.blocks_gate:
            break
    return outcomes


def run_checks(
    steps: Sequence[StepSpec],
    values: Mapping[str, Value],
    ctx: StepContext,
    on_result: OnResult | None = None,
) -> list[StepOutcome]:
    """All checks at once; outcomes in runbook order."""
    if not steps:
        return []
    if len(steps) == 1:  # nothing to run alongside: no pool (run_step bounds it on its own)
        outcome = StepOutcome(steps[0], "checks", run_step(steps[0], values, ctx))
        if on_result:
            on_result(outcome)
        return [outcome]
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_CHECKS, len(steps))) as pool:
        futures: list[Future[StepResult]] = [
            pool.submit(run_step, step, values, ctx) for step in steps
        ]
        outcomes = []
        for step, fut in zip(steps, futures, strict=True):
            try:
                result = fut.result(timeout=step.timeout + 5.0)
            except FutureTimeout:
                result = StepResult(Status.ERROR, f"timed out after {step.timeout:g}s")
            outcome = StepOutcome(step, "checks", result)
            if on_result:
                on_result(outcome)
            outcomes.append(outcome)
    return outcomes
