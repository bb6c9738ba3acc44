"""Post-cutover monitoring (runbook phase 9): a phase with `monitor: {every_minutes,
for_minutes}` runs its checks in rounds instead of once, then opens its gate.

Round 0 runs when the phase starts (`Engine.advance` calls `start_monitoring`);
the scheduler's tick runs the next round when it is due (`tick`). Rounds are rows
of `monitor_round` (UNIQUE phase_run_id + round: inserting the row is the claim to
run it), so the schedule survives a restart: the next round is due at round 0's
time + its offset. Each round is posted as a thread notice; a FAIL or ERROR is
flagged at once (notice to the channel + audit "monitor.breach"). Slots that
passed while the bot was down are recorded as missed, never run late in a burst.
After the last round the gate opens with checks_passed = every round ran and passed: a
missed round is a ❌ like a failed one (monitoring was not continuous), never a pass with a
note, so going on past it takes a decision at the gate (Retry the window, or Rollback).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from bot.domain.audit_kinds import AuditKind
from bot.engine.core import Notify
from bot.notices import STATUS_ICONS
from bot.store import monitor_rounds, runs
from bot.store.models import MonitorRound, PhaseRun, PhaseStatus, RoundStatus, Run, RunStatus
from bot.store.unit import Duplicate, Store
from bot.surface import SYSTEM
from phases.checks.base import Status, StepContext, StepResult
from phases.runbook import MonitorSpec, PhaseSpec, Runbook, Value
from phases.runner import StepOutcome, run_checks

log = logging.getLogger(__name__)


class MonitorHost(Protocol):
    """What monitoring needs of the engine: the phase executor (`Phases`) when a window
    starts, the scheduler's engine for the rounds that follow."""

    @property
    def store(self) -> Store: ...
    @property
    def runbook(self) -> Runbook: ...
    @property
    def notify(self) -> Notify: ...
    @property
    def now(self) -> Callable[[], datetime]: ...
    @property
    def spawn(self) -> Callable[..., None]: ...
    @property
    def execute_rollback(self) -> Callable[[int], None]: ...
    @property
    def context(self) -> Callable[..., tuple[StepContext, dict[str, Value]]]: ...
    @property
    def open_gate(self) -> Callable[..., int | None]: ...
    @property
    def record_step(self) -> Callable[..., None]: ...


DETAIL_KEYS = ("elapsed_ms", "status_code", "used_percent", "connections", "containers", "tallies")


def round_offsets(spec: MonitorSpec) -> list[int]:
    """Seconds after the window starts: 0, every, 2×every … and for_minutes itself."""
    every, total = spec.every_minutes * 60, spec.for_minutes * 60
    offsets = list(range(0, total, every))
    return [*offsets, total]


def start_monitoring(engine: MonitorHost, run_id: int, phase_run_id: int, phase: PhaseSpec) -> None:
    """Turns a just-started phase into a monitoring window and runs its first round."""
    assert phase.monitor is not None
    now = engine.now()
    offsets = round_offsets(phase.monitor)
    me = f"{socket.gethostname()}:{os.getpid()}"
    with engine.store.tx() as tx:
        if not monitor_rounds.open_window(tx, phase_run_id):
            return
        tx.add(
            MonitorRound(
                run_id=run_id,
                phase_run_id=phase_run_id,
                round=0,
                due_at=now,
                claimed_at=now,
                claimed_by=me,
            )
        )
        tx.audit(
            AuditKind.MONITOR_STARTED,
            actor=SYSTEM.id,
            run_id=run_id,
            data={
                "phase": phase.id,
                "rounds": len(offsets),
                "every_minutes": phase.monitor.every_minutes,
                "for_minutes": phase.monitor.for_minutes,
            },
            at=now,
        )
    engine.notify.run_changed(run_id)
    engine.notify.notice(
        run_id,
        f"📈 {phase.name}: {len(phase.checks)} checks every {phase.monitor.every_minutes} min "
        f"for {phase.monitor.for_minutes} min ({len(offsets)} rounds); a breach is flagged at "
        "once. The checkpoint opens after the last round.",
    )
    _run_round(engine, phase_run_id, 0, attempts=1)
    if len(offsets) == 1:
        _finish(engine, phase_run_id)


def tick(engine: MonitorHost, now: datetime, me: str, lease_seconds: float) -> list[str]:
    """Runs every monitoring round that is due; opens gates of finished windows."""
    done: list[str] = []
    with engine.store.tx() as tx:
        prs = runs.monitoring(tx)
    for pr in prs:
        assert pr.id is not None
        try:
            done += _tick_one(engine, pr, now, me, lease_seconds)
        except Exception:
            log.exception("monitoring of phase run %s failed", pr.id)
    return done


def _tick_one(
    engine: MonitorHost, pr: PhaseRun, now: datetime, me: str, lease_seconds: float
) -> list[str]:
    assert pr.id is not None
    with engine.store.tx() as tx:
        run = runs.get(tx, pr.run_id)
        rounds = monitor_rounds.in_order(tx, pr.id)
    assert run is not None and run.id is not None
    if run.status != RunStatus.RUNNING:
        return _stop(engine, pr, run)
    phase = engine.runbook.phases[pr.phase_index]
    if phase.monitor is None or not rounds:
        return []
    offsets = round_offsets(phase.monitor)
    start = rounds[0].due_at
    for r in rounds:
        if r.status == "running":
            claimed = r.claimed_at or start
            if now - claimed < timedelta(seconds=lease_seconds):
                return []  # being run right now
            # Its runner died: run it again (checks are read-only).
            with engine.store.tx() as tx:
                if not monitor_rounds.reclaim(tx, r, now, me):
                    return []
                tx.audit(
                    AuditKind.MONITOR_RECLAIMED,
                    actor=SYSTEM.id,
                    run_id=run.id,
                    data={"phase": phase.id, "round": r.round + 1, "previous": r.claimed_by},
                    at=now,
                )
            _run_round(engine, pr.id, r.round, attempts=r.attempts + 1)
            return [f"run #{run.id}: monitoring round {r.round + 1} re-run"]
    last = rounds[-1].round
    if last >= len(offsets) - 1:
        return _finish(engine, pr.id)
    due = [i for i in range(last + 1, len(offsets)) if start + timedelta(seconds=offsets[i]) <= now]
    if not due:
        return []
    target, missed = due[-1], due[:-1]
    try:
        with engine.store.tx() as tx:
            for i in missed:
                tx.add(
                    MonitorRound(
                        run_id=run.id,
                        phase_run_id=pr.id,
                        round=i,
                        due_at=start + timedelta(seconds=offsets[i]),
                        status=RoundStatus.MISSED,
                        ended_at=now,
                    )
                )
            tx.add(
                MonitorRound(
                    run_id=run.id,
                    phase_run_id=pr.id,
                    round=target,
                    due_at=start + timedelta(seconds=offsets[target]),
                    claimed_at=now,
                    claimed_by=me,
                )
            )
            if missed:
                tx.audit(
                    AuditKind.MONITOR_MISSED,
                    actor=SYSTEM.id,
                    run_id=run.id,
                    data={"phase": phase.id, "rounds": [i + 1 for i in missed]},
                    at=now,
                )
    except Duplicate:
        return []  # another process claimed it
    if missed:
        engine.notify.notice(
            run.id,
            f"⚠️ Monitoring rounds {', '.join(str(i + 1) for i in missed)} of {len(offsets)} "
            "were missed while the bot was not running; monitoring was not continuous.",
        )
    _run_round(engine, pr.id, target, attempts=1)
    done = [f"run #{run.id}: monitoring round {target + 1}/{len(offsets)}"]
    if target == len(offsets) - 1:
        done += _finish(engine, pr.id)
    return done


def _stop(engine: MonitorHost, pr: PhaseRun, run: Run) -> list[str]:
    """The run is rolling back (aborted) or over: the window ends; a rollback proceeds."""
    with engine.store.tx() as tx:
        stopped = monitor_rounds.stop_window(tx, pr.id, engine.now())
    if stopped and run.status == RunStatus.ROLLING_BACK and run.id is not None:
        engine.spawn(engine.execute_rollback, run.id)
        return [f"run #{run.id}: monitoring stopped; rolling back"]
    return []


def _summary_line(result: dict[str, Any]) -> str:
    icon = STATUS_ICONS.get(result["status"], "•")
    return f"  {icon} {result['name']}: {result['evidence']}"


def _window_start(engine: MonitorHost, phase_run_id: int) -> float | None:
    """When this monitoring window began (its first round's time): a round's "since the
    phase started" (the logins, payments since monitoring began), not since the run did."""
    with engine.store.tx() as tx:
        first = monitor_rounds.first(tx, phase_run_id)
    if first is None:
        return None
    due = first.due_at
    return (due if due.tzinfo else due.replace(tzinfo=UTC)).timestamp()


def _run_round(engine: MonitorHost, phase_run_id: int, index: int, attempts: int) -> None:
    with engine.store.tx() as tx:
        pr = tx.get(PhaseRun, phase_run_id)
        run = runs.get(tx, pr.run_id) if pr else None
    assert pr is not None and run is not None and run.id is not None
    phase = engine.runbook.phases[pr.phase_index]
    assert phase.monitor is not None
    offsets = round_offsets(phase.monitor)
    ctx, values = engine.context(run)
    ctx = dataclasses.replace(ctx, phase_started_at=_window_start(engine, phase_run_id))
    outcomes = run_checks(phase.checks, values, ctx)
    results = [
        {
            "step": o.step.id,
            "name": o.step.name,
            "kind": o.step.kind,
            "status": str(o.result.status),
            "evidence": o.result.evidence,
            "duration_ms": o.result.duration_ms,
            **{k: o.result.details[k] for k in DETAIL_KEYS if k in o.result.details},
        }
        for o in outcomes
    ]
    failed = [r for r in results if Status(r["status"]).blocks_gate]
    status = "failed" if failed else "passed"
    now = engine.now()
    label = f"{index + 1}/{len(offsets)}"
    minute = offsets[index] // 60
    with engine.store.tx() as tx:
        if not monitor_rounds.end(
            tx, phase_run_id, index, attempts, status, now, json.dumps(results, default=str)
        ):
            return  # reclaimed by someone else meanwhile: their result counts
        brief = [
            {
                k: r[k]
                for k in ("step", "kind", "status", "evidence", "duration_ms", "elapsed_ms")
                if k in r
            }
            for r in results
        ]
        tx.audit(
            AuditKind.MONITOR_ROUND,
            actor=SYSTEM.id,
            run_id=run.id,
            data={
                "phase": phase.id,
                "round": index + 1,
                "of": len(offsets),
                "minute": minute,
                "status": status,
                "steps": brief,
            },
            at=now,
        )
        if failed:
            tx.audit(
                AuditKind.MONITOR_BREACH,
                actor=SYSTEM.id,
                run_id=run.id,
                data={
                    "phase": phase.id,
                    "round": index + 1,
                    "failures": [
                        {"step": r["step"], "status": r["status"], "evidence": r["evidence"]}
                        for r in failed
                    ],
                },
                at=now,
            )
    head = "🚨" if failed else "📈"
    lines = [f"{head} Monitoring round {label} (T+{minute} min): {status}"]
    lines += [_summary_line(r) for r in results]
    engine.notify.notice(run.id, "\n".join(lines))
    if failed:
        what = "; ".join(f"{r['name']}: {r['evidence']}" for r in failed)
        engine.notify.notice(
            None,
            f"🚨 Monitoring breach on {run.environment}, run #{run.id}, round {label}: {what}. "
            f"Roll back with /cutover abort {run.environment} --reason …, or keep watching.",
            run.channel,
        )


def _combine(
    step_id: str, name: str, rounds: Sequence[MonitorRound], missed: Sequence[int] = ()
) -> StepResult:
    """One check over every round: FAIL if a round failed or was missed (`missed`: round
    numbers, from 1, whose slot passed while no bot ran them), with where and why."""
    seen: list[tuple[int, dict[str, Any]]] = []
    for r in rounds:
        for item in json.loads(r.results):
            if item.get("step") == step_id:
                seen.append((r.round, item))
    if not seen:
        return StepResult(Status.ERROR, "no round ran this check")
    bad = [(i, it) for i, it in seen if Status(it["status"]).blocks_gate]
    timings = [it["elapsed_ms"] for _, it in seen if isinstance(it.get("elapsed_ms"), int)]
    avg = f"; avg {round(sum(timings) / len(timings))} ms" if timings else ""
    total_ms = sum(int(it.get("duration_ms") or 0) for _, it in seen)
    if bad:
        statuses = {Status(it["status"]) for _, it in bad}
        status = Status.FAIL if Status.FAIL in statuses else Status.ERROR
        where = ", ".join(str(i + 1) for i, _ in bad)
        return StepResult(
            status,
            f"failed in round(s) {where} of {len(seen)}{avg}: {bad[0][1]['evidence']}"[:300],
            total_ms,
        )
    if missed:
        rounds_of = len(seen) + len(missed)
        return StepResult(
            Status.FAIL,
            f"round(s) {', '.join(map(str, missed))} of {rounds_of} missed (the bot was not "
            f"running): not continuous; {len(seen)}/{len(seen)} rounds that ran passed{avg}",
            total_ms,
        )
    warn = any(it["status"] == "warn" for _, it in seen)
    return StepResult(
        Status.WARN if warn else Status.PASS,
        f"{len(seen)}/{len(seen)} rounds passed{avg}; last: {seen[-1][1]['evidence']}"[:300],
        total_ms,
    )


def _finish(engine: MonitorHost, phase_run_id: int) -> list[str]:
    with engine.store.tx() as tx:
        pr = tx.get(PhaseRun, phase_run_id)
        rounds = monitor_rounds.in_order(tx, phase_run_id)
    assert pr is not None and pr.id is not None
    if pr.status != PhaseStatus.MONITORING or any(r.status == "running" for r in rounds):
        return []
    phase = engine.runbook.phases[pr.phase_index]
    ran = [r for r in rounds if r.status in ("passed", "failed")]
    missed = [r.round + 1 for r in rounds if r.status == "missed"]
    passed = bool(ran) and not missed and all(r.status == "passed" for r in ran)
    note = (
        f"monitoring rounds {', '.join(map(str, missed))} were missed while the bot was not "
        "running; monitoring was not continuous, so the window did not pass"
        if missed
        else None
    )
    gate_id = engine.open_gate(pr.run_id, pr.id, phase, passed, note)
    if gate_id is None:
        return []
    for step in phase.checks:
        engine.record_step(
            pr.run_id, pr.id, StepOutcome(step, "checks", _combine(step.id, step.name, ran, missed))
        )
    engine.notify.run_changed(pr.run_id)
    engine.notify.checkpoint(gate_id)
    return [f"run #{pr.run_id}: monitoring finished ({'pass' if passed else 'FAIL'}); gate open"]
