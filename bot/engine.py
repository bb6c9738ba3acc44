"""The runbook engine: runs, phases, gates, decisions and rollback, durable in the database.

Every state change and its audit row commit in one transaction. A gate is
locked (SELECT … FOR UPDATE; BEGIN IMMEDIATE on SQLite) while it is decided,
so a double click, a retried delivery or fifty clicks at once decide it once.
Nothing here knows Slack: surfaces are told what changed (`bot.surface`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import update
from sqlmodel import Session, col, select

from bot import audit
from bot.db import Database
from bot.models import (
    Gate,
    GateStatus,
    ManualTick,
    PhaseRun,
    PhaseStatus,
    Run,
    RunStatus,
    StepRun,
    Vote,
)
from bot.surface import SYSTEM, Actor, NullSurface, Surface
from bot.text import ICONS
from phases.checks.base import Clock, StepContext, SystemClock
from phases.runbook import EnvironmentSpec, PhaseSpec, Runbook, RunbookError, Value
from phases.runner import StepOutcome, run_actions, run_checks
from phases.secrets import GLOBAL_MASKER, EnvFileError, Masker, parse_env_file

log = logging.getLogger(__name__)

DecisionKind = Literal["continue", "rollback", "retry"]


class EngineError(RuntimeError):
    """A request the engine refuses; the message says why and what to do."""


@dataclass(frozen=True)
class Decision:
    outcome: Literal[
        "approved",
        "vote_recorded",
        "rolled_back",
        "retried",
        "refused",
        "already_decided",
        "already_voted",
        "ticked",
        "unknown_gate",
    ]
    message: str
    gate_id: int | None = None
    run_id: int | None = None

    @property
    def changed(self) -> bool:
        return self.outcome in ("approved", "vote_recorded", "rolled_back", "retried", "ticked")


ContextFactory = Callable[[EnvironmentSpec, bool, Masker], StepContext]


def default_context(env: EnvironmentSpec, dry_run: bool, masker: Masker) -> StepContext:
    return StepContext(dry_run=dry_run, masker=masker)


def runbook_digest(runbook: Runbook) -> str:
    return hashlib.sha256(runbook.model_dump_json().encode()).hexdigest()


class Engine:
    def __init__(
        self,
        db: Database,
        runbook: Runbook,
        *,
        surface: Surface | None = None,
        clock: Clock | None = None,
        context_factory: ContextFactory = default_context,
        background: bool = True,
        workers: int = 4,
        masker: Masker = GLOBAL_MASKER,
    ) -> None:
        self.db = db
        self.runbook = runbook
        self.digest = runbook_digest(runbook)
        self.surface: Surface = surface or NullSurface()
        self.clock = clock or SystemClock()
        self.context_factory = context_factory
        self.masker = masker
        self.background = background
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cutover-run")

    # ------------------------------------------------------------------ helpers

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now(), UTC)

    def _spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        if self.background:
            self._pool.submit(self._guard, fn, *args)
        else:
            self._guard(fn, *args)

    def _guard(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("background task %s failed", getattr(fn, "__name__", fn))

    def _tell(self, what: str, *args: Any) -> None:
        """Tells the surface; a failed post is logged and audited, never lost silently."""
        try:
            getattr(self.surface, what)(*args)
        except Exception as exc:
            log.warning("surface %s failed: %s", what, self.masker.mask(str(exc)))
            try:
                with self.db.session() as s:
                    if what in ("checkpoint", "gate_changed"):
                        gate = s.get(Gate, args[0])
                        run_id = gate.run_id if gate is not None else None
                    else:
                        run_id = args[0] if what in ("run_changed", "notice") else None
                    audit.append(
                        s,
                        "surface.failed",
                        actor=SYSTEM.id,
                        run_id=run_id,
                        data={"call": what, "error": self.masker.mask(str(exc))[:300]},
                        at=self.now(),
                    )
            except Exception:
                log.exception("could not audit a failed surface call")

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)

    def environment(self, name: str) -> EnvironmentSpec:
        return self.runbook.environment(name)

    def _context(self, run: Run) -> tuple[StepContext, dict[str, Value]]:
        env = self.environment(run.environment)
        values = self.runbook.values_for(run.environment)
        if env.env_file:
            with contextlib.suppress(EnvFileError):  # the secrets check reports it
                self.masker.add_env(parse_env_file(str(values["env_file"])))
        return self.context_factory(env, run.dry_run, self.masker), values

    # ------------------------------------------------------------------ start

    def start_run(
        self, env_name: str, actor: Actor, *, channel: str | None = None, dry_run: bool = False
    ) -> Run:
        env = self.environment(env_name)  # unknown environment: RunbookError names the known ones
        values = self.runbook.values_for(env_name)  # a missing ${VAR}: RunbookError names it
        if env.env_file:
            path = Path(str(values["env_file"]))
            if not path.is_file():
                raise EngineError(
                    f"env file {path} of environment {env_name!r} does not exist; create it or fix "
                    f"env_file in the runbook. No run was started."
                )
            try:
                self.masker.add_env(parse_env_file(path))
            except EnvFileError as exc:
                raise EngineError(f"{exc}. No run was started.") from None
        with self.db.session() as s:
            active = s.exec(select(Run).where(Run.active_env == env_name)).first()
            if active is not None:
                raise EngineError(
                    f"run #{active.id} is already active for {env_name} ({active.status}, phase "
                    f"{active.phase_index + 1}); finish or abort it first"
                )
            run = Run(
                environment=env_name,
                active_env=env_name,
                runbook_name=self.runbook.name,
                runbook_digest=self.digest,
                dry_run=dry_run,
                requested_by=actor.id,
                channel=channel or env.channel,
                started_at=self.now(),
            )
            s.add(run)
            s.flush()
            assert run.id is not None
            audit.append(
                s,
                "run.started",
                actor=actor.id,
                run_id=run.id,
                data={
                    "environment": env_name,
                    "dry_run": dry_run,
                    "runbook": self.runbook.name,
                    "version": self.runbook.version,
                },
                at=self.now(),
            )
        self._tell("run_changed", run.id)
        self._spawn(self.advance, run.id)
        return run

    # ------------------------------------------------------------------ phases

    def advance(self, run_id: int) -> None:
        """Runs the run's current phase and opens its gate; does nothing if it is not its turn."""
        # A dropped database connection is retried, not left as a phase stuck "running".
        claimed = self.db.retrying(lambda: self._claim_phase(run_id), f"run #{run_id}: start")
        if claimed is None:
            return
        run, phase_run, phase = claimed
        self._tell("run_changed", run_id)
        ctx, values = self._context(run)
        assert phase_run.id is not None

        def record(outcome: StepOutcome) -> None:
            self._record_step(run_id, phase_run.id, outcome)

        outcomes: list[StepOutcome] = []
        actions_ok = True
        for step in phase.actions:
            if not self._still_running(run_id):
                return self._stop_for_rollback(run_id, phase_run.id)
            result = run_actions([step], values, ctx, "actions", on_result=record)
            outcomes += result
            if result and result[-1].result.status.blocks_gate:
                actions_ok = False
                break
        if actions_ok and phase.monitor is not None:
            from bot.monitoring import start_monitoring

            # Checks run in rounds (bot.monitoring); the scheduler opens the gate at the end.
            return start_monitoring(self, run_id, phase_run.id, phase)
        if actions_ok and phase.checks:
            outcomes += run_checks(phase.checks, values, ctx, on_result=record)
        passed = all(not o.result.status.blocks_gate for o in outcomes)
        pr_id = phase_run.id
        gate_id = self.db.retrying(
            lambda: self._open_gate(run_id, pr_id, phase, passed), f"run #{run_id}: open gate"
        )
        if gate_id is not None:
            self._tell("run_changed", run_id)
            self._tell("checkpoint", gate_id)

    def _claim_phase(self, run_id: int) -> tuple[Run, PhaseRun, PhaseSpec] | None:
        with self.db.session() as s:
            run = s.exec(select(Run).where(Run.id == run_id).with_for_update()).one_or_none()
            if run is None or run.status != RunStatus.RUNNING:
                return None
            if run.runbook_digest != self.digest:
                log.error("run #%s was started with another version of the runbook", run_id)
                return None  # recover() has told the channel; a person restores or aborts
            if run.phase_index >= len(self.runbook.phases):
                self._complete(s, run)
                return None
            latest = s.exec(
                select(PhaseRun)
                .where(PhaseRun.run_id == run_id, PhaseRun.phase_index == run.phase_index)
                .order_by(col(PhaseRun.attempt).desc())
            ).first()
            if latest is not None and latest.status in (
                PhaseStatus.RUNNING,
                PhaseStatus.CHECKED,
                PhaseStatus.INTERRUPTED,
                PhaseStatus.MONITORING,
            ):
                return None  # executing elsewhere, or its gate is open
            phase = self.runbook.phases[run.phase_index]
            attempt = latest.attempt + 1 if latest else 1
            pr = PhaseRun(
                run_id=run_id,
                phase_id=phase.id,
                phase_index=run.phase_index,
                attempt=attempt,
                started_at=self.now(),
            )
            s.add(pr)
            s.flush()
            audit.append(
                s,
                "phase.started",
                actor=SYSTEM.id,
                run_id=run_id,
                data={"phase": phase.id, "index": run.phase_index, "attempt": attempt},
                at=self.now(),
            )
            return run, pr, phase

    def _still_running(self, run_id: int) -> bool:
        with self.db.session() as s:
            run = s.get(Run, run_id)
            return run is not None and run.status == RunStatus.RUNNING

    def _record_step(self, run_id: int, phase_run_id: int | None, outcome: StepOutcome) -> None:
        """Records a step result; retried while the database is unavailable, never twice."""
        tries = 0

        def once() -> None:
            nonlocal tries
            tries += 1
            self._record_step_once(run_id, phase_run_id, outcome, retry=tries > 1)

        self.db.retrying(once, f"run #{run_id}: record step {outcome.step.id}")

    def _record_step_once(
        self, run_id: int, phase_run_id: int | None, outcome: StepOutcome, retry: bool
    ) -> None:
        r = outcome.result
        with self.db.session() as s:
            if retry and phase_run_id is not None:
                done = s.exec(
                    select(StepRun.id).where(
                        StepRun.phase_run_id == phase_run_id,
                        StepRun.section == outcome.section,
                        StepRun.step_id == outcome.step.id,
                    )
                ).first()
                if done is not None:
                    return  # the attempt whose connection dropped did commit
            s.add(
                StepRun(
                    run_id=run_id,
                    phase_run_id=phase_run_id,
                    section=outcome.section,
                    step_id=outcome.step.id,
                    name=outcome.step.name,
                    status=r.status,
                    evidence=r.evidence,
                    duration_ms=r.duration_ms,
                    at=self.now(),
                )
            )
            audit.append(
                s,
                "step.result",
                actor=SYSTEM.id,
                run_id=run_id,
                data={
                    "section": outcome.section,
                    "step": outcome.step.id,
                    "status": str(r.status),
                    "evidence": r.evidence,
                    "duration_ms": r.duration_ms,
                },
                at=self.now(),
            )

    def _open_gate(
        self,
        run_id: int,
        phase_run_id: int,
        phase: PhaseSpec,
        passed: bool,
        note: str | None = None,
    ) -> int | None:
        gate_id: int | None = None
        with self.db.session() as s:
            run = s.exec(select(Run).where(Run.id == run_id).with_for_update()).one()
            pr = s.get(PhaseRun, phase_run_id)
            assert pr is not None
            if pr.status not in (
                PhaseStatus.RUNNING,
                PhaseStatus.INTERRUPTED,
                PhaseStatus.MONITORING,
            ):
                return None
            if run.status == RunStatus.ROLLING_BACK:  # aborted while the phase ran
                pr.status, pr.ended_at = PhaseStatus.FAILED, self.now()
                s.add(pr)
                rollback_now = True
            else:
                rollback_now = False
                if pr.status in (PhaseStatus.RUNNING, PhaseStatus.MONITORING):
                    pr.status = PhaseStatus.CHECKED
                pr.ended_at = self.now()
                env = self.environment(run.environment)
                gate = Gate(
                    run_id=run_id,
                    phase_run_id=phase_run_id,
                    phase_id=phase.id,
                    attempt=pr.attempt,
                    checks_passed=passed,
                    note=note,
                    quorum=env.quorum,
                    opened_at=self.now(),
                )
                s.add(gate)
                run.status = RunStatus.WAITING
                s.add(run)
                s.add(pr)
                s.flush()
                audit.append(
                    s,
                    "gate.opened",
                    actor=SYSTEM.id,
                    run_id=run_id,
                    data={
                        "gate": gate.id,
                        "phase": phase.id,
                        "attempt": pr.attempt,
                        "checks_passed": passed,
                        "note": note,
                    },
                    at=self.now(),
                )
                gate_id = gate.id
        if rollback_now:
            self._spawn(self.execute_rollback, run_id)
            return None
        return gate_id

    def _stop_for_rollback(self, run_id: int, phase_run_id: int) -> None:
        with self.db.session() as s:
            pr = s.get(PhaseRun, phase_run_id)
            if pr is not None and pr.status == PhaseStatus.RUNNING:
                pr.status, pr.ended_at = PhaseStatus.FAILED, self.now()
                s.add(pr)
        self._spawn(self.execute_rollback, run_id)

    def _complete(self, s: Session, run: Run) -> None:
        run.status, run.active_env, run.ended_at = RunStatus.COMPLETED, None, self.now()
        s.add(run)
        audit.append(
            s,
            "run.completed",
            actor=SYSTEM.id,
            run_id=run.id,
            data={"environment": run.environment},
            at=self.now(),
        )

    # ------------------------------------------------------------------ decisions

    def decide(
        self, gate_id: int, actor: Actor, decision: DecisionKind, reason: str | None = None
    ) -> Decision:
        """Records one click. Permission is checked here, when the click arrives."""
        result = self._decide(gate_id, actor, decision, reason)
        if result.outcome == "vote_recorded" and result.gate_id is not None:
            self._tell("gate_changed", result.gate_id)  # "1/2 approved by …", live
        return result

    def _decide(
        self, gate_id: int, actor: Actor, decision: DecisionKind, reason: str | None
    ) -> Decision:
        spawn: Callable[[int], None] | None = None
        with self.db.session() as s:
            gate = s.exec(select(Gate).where(Gate.id == gate_id).with_for_update()).one_or_none()
            if gate is None:
                return Decision("unknown_gate", f"no gate #{gate_id}; the message is out of date")
            run = s.exec(select(Run).where(Run.id == gate.run_id).with_for_update()).one()
            if gate.status != GateStatus.OPEN:
                return self._already(gate)
            env = self.environment(run.environment)
            refusal = self._refusal(s, gate, run, env, actor, decision)
            if refusal:
                audit.append(
                    s,
                    "click.refused",
                    actor=actor.id,
                    run_id=run.id,
                    data={
                        "gate": gate.id,
                        "phase": gate.phase_id,
                        "decision": decision,
                        "reason": refusal,
                    },
                    at=self.now(),
                )
                return Decision("refused", refusal, gate.id, run.id)
            pr = s.get(PhaseRun, gate.phase_run_id)
            assert pr is not None and run.id is not None
            now = self.now()

            def log_event(kind: str, **extra: Any) -> None:
                data = {"gate": gate.id, "phase": gate.phase_id, **extra}
                audit.append(s, kind, actor=actor.id, run_id=run.id, data=data, at=now)

            if decision == "rollback":
                gate.status, gate.decided_by, gate.decided_at = (
                    GateStatus.ROLLED_BACK,
                    actor.id,
                    now,
                )
                pr.status = PhaseStatus.FAILED
                run.status, run.rolled_back_by = RunStatus.ROLLING_BACK, actor.id
                # A reason is typed by a person: it may quote a secret, and is kept masked.
                run.rollback_reason = self.masker.mask(reason or "") or (
                    f"rolled back at phase {gate.phase_id}"
                )
                log_event("gate.decided", decision="rollback", reason=run.rollback_reason)
                result = Decision("rolled_back", f"rolled back by {actor.label}", gate.id, run.id)
                spawn = self.execute_rollback
            elif decision == "retry":
                gate.status, gate.decided_by, gate.decided_at = GateStatus.RETRIED, actor.id, now
                pr.status = PhaseStatus.RETRIED
                run.status = RunStatus.RUNNING
                log_event("gate.decided", decision="retry")
                result = Decision(
                    "retried", f"phase re-run requested by {actor.label}", gate.id, run.id
                )
                spawn = self.advance
            else:
                s.add(Vote(gate_id=gate_id, actor=actor.id, at=now))
                s.flush()
                votes = self._voters(s, gate.id)
                log_event("gate.vote", votes=len(votes), quorum=gate.quorum)
                if len(votes) < gate.quorum:
                    s.add(gate)
                    return Decision(
                        "vote_recorded", f"{len(votes)}/{gate.quorum} approved", gate.id, run.id
                    )
                gate.status, gate.decided_by, gate.decided_at = (
                    GateStatus.APPROVED,
                    ",".join(votes),
                    now,
                )
                pr.status = PhaseStatus.PASSED
                run.phase_index += 1
                run.status = RunStatus.RUNNING
                log_event("gate.decided", decision="continue", approvers=votes)
                if run.phase_index >= len(self.runbook.phases):
                    self._complete(s, run)
                result = Decision("approved", f"approved by {', '.join(votes)}", gate.id, run.id)
                spawn = self.advance
            s.add_all([gate, pr, run])
        self._tell("gate_changed", gate_id)
        self._tell("run_changed", result.run_id)
        if spawn is not None and result.run_id is not None:
            self._spawn(spawn, result.run_id)
        return result

    def _voters(self, s: Session, gate_id: int | None) -> list[str]:
        return list(
            s.exec(select(Vote.actor).where(Vote.gate_id == gate_id).order_by(col(Vote.id)))
        )

    def _already(self, gate: Gate) -> Decision:
        when = gate.decided_at.astimezone(UTC).strftime("%H:%M:%S UTC") if gate.decided_at else "?"
        verb = {
            GateStatus.APPROVED: "approved",
            GateStatus.ROLLED_BACK: "rolled back",
            GateStatus.RETRIED: "sent to retry",
        }.get(GateStatus(gate.status), gate.status)
        return Decision(
            "already_decided",
            f"already {verb} by {gate.decided_by} at {when}",
            gate.id,
            gate.run_id,
        )

    def is_approver(self, env: EnvironmentSpec, actor: Actor) -> bool:
        return actor.id in env.approver_set() or bool(actor.groups & set(env.approver_groups))

    def _refusal(
        self,
        s: Session,
        gate: Gate,
        run: Run,
        env: EnvironmentSpec,
        actor: Actor,
        decision: DecisionKind,
    ) -> str | None:
        if not self.is_approver(env, actor):
            return f"you are not an approver for {run.environment}; nothing was changed"
        if decision == "continue":
            if not env.allow_self_approval and actor.id == run.requested_by:
                return "you started this run, and this environment forbids approving your own run"
            # A dry run changed nothing, so a check that fails because an action was only
            # described may be passed over; a real run fails closed.
            if not gate.checks_passed and not run.dry_run:
                return (
                    "checks did not pass (or the phase was interrupted): Continue is refused. "
                    "Retry the phase or Rollback"
                )
            missing = self._unticked(s, gate)
            if missing:
                return "tick every manual step first: " + ", ".join(missing)
            if s.exec(select(Vote).where(Vote.gate_id == gate.id, Vote.actor == actor.id)).first():
                return "you already approved this gate; it needs another approver"
        return None

    def _unticked(self, s: Session, gate: Gate) -> list[str]:
        phase = self.runbook.phase(gate.phase_id)
        ticked = set(s.exec(select(ManualTick.item_id).where(ManualTick.gate_id == gate.id)))
        return [m.id for m in phase.manual if m.id not in ticked]

    def tick(self, gate_id: int, item_id: str, actor: Actor) -> Decision:
        """Marks a manual step (phase 7's browser tests) done; only approvers may."""
        with self.db.session() as s:
            gate = s.exec(select(Gate).where(Gate.id == gate_id).with_for_update()).one_or_none()
            if gate is None:
                return Decision("unknown_gate", f"no gate #{gate_id}")
            run = s.get(Run, gate.run_id)
            assert run is not None
            if gate.status != GateStatus.OPEN:
                return self._already(gate)
            env = self.environment(run.environment)
            if not self.is_approver(env, actor):
                reason = f"you are not an approver for {run.environment}; nothing was changed"
                audit.append(
                    s,
                    "click.refused",
                    actor=actor.id,
                    run_id=run.id,
                    data={"gate": gate.id, "tick": item_id, "reason": reason},
                    at=self.now(),
                )
                return Decision("refused", reason, gate.id, run.id)
            items = {m.id for m in self.runbook.phase(gate.phase_id).manual}
            if item_id not in items:
                return Decision(
                    "refused",
                    f"phase {gate.phase_id} has no manual step {item_id!r}",
                    gate.id,
                    run.id,
                )
            exists = s.exec(
                select(ManualTick).where(
                    ManualTick.gate_id == gate.id, ManualTick.item_id == item_id
                )
            ).first()
            if exists is None:
                s.add(ManualTick(gate_id=gate_id, item_id=item_id, actor=actor.id, at=self.now()))
                audit.append(
                    s,
                    "manual.ticked",
                    actor=actor.id,
                    run_id=run.id,
                    data={"gate": gate.id, "item": item_id},
                    at=self.now(),
                )
        self._tell("gate_changed", gate_id)
        return Decision("ticked", f"{item_id} ticked", gate_id, gate.run_id)

    def abort(self, env_name: str, actor: Actor, reason: str) -> Decision:
        """Rolls back the environment's active run from wherever it stands. Final."""
        env = self.environment(env_name)
        if not reason.strip():
            raise EngineError("say why: --reason is required")
        with self.db.session() as s:
            run = s.exec(select(Run).where(Run.active_env == env_name).with_for_update()).first()
            if run is None:
                raise EngineError(f"no active run for {env_name}")
            if not self.is_approver(env, actor):
                msg = f"you are not an approver for {env_name}; nothing was changed"
                audit.append(
                    s,
                    "click.refused",
                    actor=actor.id,
                    run_id=run.id,
                    data={"abort": True, "reason": msg},
                    at=self.now(),
                )
                return Decision("refused", msg, None, run.id)
            if run.status == RunStatus.ROLLING_BACK:
                return Decision(
                    "already_decided", f"run #{run.id} is already rolling back", None, run.id
                )
            gate = s.exec(
                select(Gate)
                .where(Gate.run_id == run.id, Gate.status == GateStatus.OPEN)
                .with_for_update()
            ).first()
        if gate is not None and gate.id is not None:
            return self.decide(gate.id, actor, "rollback", reason=f"aborted: {reason}")
        # A phase is executing: it stops at its next step and hands over to the rollback.
        with self.db.session() as s:
            run = s.exec(select(Run).where(Run.id == run.id).with_for_update()).one()
            run.status, run.rolled_back_by = RunStatus.ROLLING_BACK, actor.id
            run.rollback_reason = f"aborted: {self.masker.mask(reason)}"
            s.add(run)
            audit.append(
                s,
                "run.aborted",
                actor=actor.id,
                run_id=run.id,
                data={"reason": self.masker.mask(reason)},
                at=self.now(),
            )
        self._tell("run_changed", run.id)
        # With no phase executing nobody else would start it; with one, this returns at once
        # and the phase hands over at its next step. The claim keeps it to one rollback.
        self._spawn(self.execute_rollback, run.id)
        return Decision("rolled_back", f"run #{run.id} aborted by {actor.label}", None, run.id)

    # ------------------------------------------------------------------ surface refs

    def set_surface_ref(
        self, ref: str, *, run_id: int | None = None, gate_id: int | None = None
    ) -> str:
        """Records the chat message of a run or gate once; returns the ref that won.

        A conditional UPDATE (only where none is set yet) keeps two threads that
        posted at once from both owning the message: the loser updates the winner's.
        """
        with self.db.session() as s:
            if run_id is not None:
                s.execute(
                    update(Run)
                    .where(col(Run.id) == run_id, col(Run.surface_ref).is_(None))
                    .values(surface_ref=ref)
                )
                row: Run | Gate | None = s.get(Run, run_id)
            elif gate_id is not None:
                s.execute(
                    update(Gate)
                    .where(col(Gate.id) == gate_id, col(Gate.surface_ref).is_(None))
                    .values(surface_ref=ref)
                )
                row = s.get(Gate, gate_id)
            else:
                raise ValueError("set_surface_ref needs run_id or gate_id")
            if row is not None:
                s.refresh(row)
            return row.surface_ref if row is not None and row.surface_ref else ref

    # ------------------------------------------------------------------ rollback

    def execute_rollback(self, run_id: int) -> None:
        with self.db.session() as s:
            run = s.exec(select(Run).where(Run.id == run_id).with_for_update()).one_or_none()
            if run is None or run.status != RunStatus.ROLLING_BACK:
                return
            running = s.exec(
                select(PhaseRun).where(
                    PhaseRun.run_id == run_id, PhaseRun.status == PhaseStatus.RUNNING
                )
            ).first()
            if running is not None:
                return  # the executing phase hands over when it reaches its next step
            if run.rollback_started_at is not None:
                return  # another thread claimed this rollback
            run.rollback_started_at = self.now()
            s.add(run)
            failed_phase = self.runbook.phases[min(run.phase_index, len(self.runbook.phases) - 1)]
            audit.append(
                s,
                "rollback.started",
                actor=SYSTEM.id,
                run_id=run_id,
                data={
                    "phase": failed_phase.id,
                    "restore": failed_phase.on_fail == "restore_and_rollback",
                },
                at=self.now(),
            )
        self._tell(
            "notice",
            run_id,
            f"Rolling back run #{run_id} ({run.rollback_reason}). "
            + (
                "Restoring the database from backup first. "
                if failed_phase.on_fail == "restore_and_rollback"
                else ""
            ),
        )
        ctx, values = self._context(run)

        def record(outcome: StepOutcome) -> None:
            self._record_step(run_id, None, outcome)

        outcomes: list[StepOutcome] = []
        if failed_phase.on_fail == "restore_and_rollback":
            outcomes += run_actions(
                self.runbook.restore, values, ctx, "restore", record, stop_on_failure=False
            )
        outcomes += run_actions(
            self.runbook.rollback, values, ctx, "rollback", record, stop_on_failure=False
        )
        failed = [o.step.id for o in outcomes if o.result.status.blocks_gate]
        with self.db.session() as s:
            run = s.exec(select(Run).where(Run.id == run_id).with_for_update()).one()
            run.status, run.active_env, run.ended_at = RunStatus.ROLLED_BACK, None, self.now()
            s.add(run)
            audit.append(
                s,
                "run.rolled_back",
                actor=SYSTEM.id,
                run_id=run_id,
                data={"failed_steps": failed, "steps": len(outcomes)},
                at=self.now(),
            )
        lines = [
            f"{ICONS.get(o.result.status, '•')} {o.section} {o.step.name}: {o.result.evidence}"
            for o in outcomes
        ]
        summary = (
            "Rollback finished with failures in: " + ", ".join(failed) + ". Check them by hand."
            if failed
            else "Rollback finished; every step passed."
        )
        self._tell("notice", run_id, "\n".join([summary, *lines]))
        self._tell("run_changed", run_id)

    # ------------------------------------------------------------------ restart

    def recover(self) -> list[str]:
        """Picks up every active run after a restart. Nothing is re-run silently."""
        report: list[str] = []
        with self.db.session() as s:
            runs = list(s.exec(select(Run).where(col(Run.active_env).is_not(None))))
        for run in runs:
            assert run.id is not None
            if run.runbook_digest != self.digest:
                report.append(f"run #{run.id}: runbook changed since start; left waiting")
                self._tell(
                    "notice",
                    run.id,
                    f"Run #{run.id} was started with another version of "
                    "the runbook. Restore it, or abort the run.",
                )
                continue
            with self.db.session() as s:
                running = s.exec(
                    select(PhaseRun).where(
                        PhaseRun.run_id == run.id, PhaseRun.status == PhaseStatus.RUNNING
                    )
                ).first()
                if running is not None:
                    running.status = PhaseStatus.INTERRUPTED
                    s.add(running)
                    audit.append(
                        s,
                        "phase.interrupted",
                        actor=SYSTEM.id,
                        run_id=run.id,
                        data={"phase": running.phase_id, "attempt": running.attempt},
                        at=self.now(),
                    )
            if run.status == RunStatus.ROLLING_BACK:
                report.append(f"run #{run.id}: rollback resumed")
                with self.db.session() as s:
                    stale = s.get(Run, run.id)
                    if stale is not None:  # the process that claimed it is gone
                        stale.rollback_started_at = None
                        s.add(stale)
                    audit.append(
                        s,
                        "rollback.resumed",
                        actor=SYSTEM.id,
                        run_id=run.id,
                        data={},
                        at=self.now(),
                    )
                self._spawn(self.execute_rollback, run.id)
            elif running is not None:
                phase = self.runbook.phases[running.phase_index]
                assert running.id is not None
                note = (
                    "the bot stopped while this phase ran; its actions may be half done. "
                    "Check by hand, then Retry the phase or Rollback"
                )
                gate_id = self._open_gate(run.id, running.id, phase, passed=False, note=note)
                report.append(f"run #{run.id}: phase {phase.id} interrupted; gate opened")
                if gate_id is not None:
                    self._tell("run_changed", run.id)
                    self._tell("checkpoint", gate_id)
            elif run.status == RunStatus.RUNNING:
                report.append(f"run #{run.id}: continuing at phase {run.phase_index + 1}")
                self._spawn(self.advance, run.id)
            else:
                report.append(f"run #{run.id}: waiting at phase {run.phase_index + 1}")
                self._tell(
                    "notice",
                    run.id,
                    f"cutover-bot restarted; run #{run.id} is still "
                    f"waiting for a decision at phase {run.phase_index + 1}.",
                )
        return report


__all__ = ["Actor", "Decision", "Engine", "EngineError", "RunbookError", "default_context"]
