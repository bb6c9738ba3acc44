"""The runbook engine: runs, phases, gates, decisions and rollback, durable in the database.

Every state change and its audit row commit in one transaction, and every status change
goes through the transition table (`bot.domain.states`); who may do what is asked of
`bot.domain.approvals` when the request arrives. Locks are always taken in one order,
run row → gate row → audit head, so an abort racing a click never deadlocks: whichever
locks the run first decides, and the other sees what it did.

A phase or rollback belongs to the process executing it: `run.owner` with a lease it
renews (`lease_until`). Another replica takes over (marks the phase interrupted and opens
a Retry/Rollback gate, or resumes the rollback) only once that lease has lapsed, or at once
when the owner was an earlier incarnation of its own replica (a restart). Nothing here
knows Slack: surfaces are told what changed (`bot.surface`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot import audit
from bot.db import Database, DatabaseUnavailable
from bot.domain import approvals, states
from bot.domain.approvals import GateFacts
from bot.domain.audit_kinds import AuditKind
from bot.domain.errors import Conflict, CutoverError, InvalidInput, NotFound, Refused
from bot.domain.states import DecisionKind
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
from phases.checks.base import Clock, Status, StepContext, SystemClock
from phases.runbook import EnvironmentSpec, PhaseSpec, Runbook, RunbookError, Value
from phases.runner import StepOutcome, run_actions, run_checks
from phases.secrets import GLOBAL_MASKER, EnvFileError, Masker, parse_env_file

log = logging.getLogger(__name__)

DecisionName = Literal["continue", "rollback", "retry"]


class EngineError(CutoverError):
    """A request the engine refuses; the message says why and what to do."""


@dataclass(frozen=True)
class Decision:
    outcome: Literal[
        "approved",
        "vote_recorded",
        "rolled_back",
        "retried",
        "cancelled",
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
        return self.outcome in (
            "approved",
            "vote_recorded",
            "rolled_back",
            "retried",
            "cancelled",
            "ticked",
        )


ContextFactory = Callable[[EnvironmentSpec, bool, Masker], StepContext]


def default_context(env: EnvironmentSpec, dry_run: bool, masker: Masker) -> StepContext:
    return StepContext(dry_run=dry_run, masker=masker)


def runbook_digest(runbook: Runbook) -> str:
    return hashlib.sha256(runbook.model_dump_json().encode()).hexdigest()


def _wall() -> datetime:
    """Lease time is wall time shared by every replica, never a test's manual clock."""
    return datetime.now(UTC)


def _aware(dt: datetime | None) -> datetime | None:
    return dt if dt is None or dt.tzinfo else dt.replace(tzinfo=UTC)


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
        replica_id: str | None = None,
        lease_seconds: float = 30.0,
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
        # A replica id names one replica across its restarts (CUTOVER_REPLICA_ID; the
        # hostname by default, which is one per container): leases left by an earlier
        # incarnation of this replica are known dead at once, others only once they lapse.
        self.replica = replica_id or os.environ.get("CUTOVER_REPLICA_ID") or socket.gethostname()
        self.me = f"{self.replica}#{os.getpid()}.{uuid.uuid4().hex[:8]}"
        self.lease = timedelta(seconds=lease_seconds)
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._reaper: threading.Thread | None = None
        self._threads_lock = threading.Lock()
        self._claims = 0  # bumped after each committed claim (see _renew_loop)

    # ------------------------------------------------------------------ helpers

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now(), UTC)

    def spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        """Runs follow-up work (the next phase, a rollback) on the engine's pool."""
        if self.background:
            self._pool.submit(self._guard, fn, *args)
        else:
            self._guard(fn, *args)

    def _guard(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("background task %s failed", getattr(fn, "__name__", fn))

    def tell(self, what: str, *args: Any) -> None:
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
                        AuditKind.SURFACE_FAILED,
                        actor=SYSTEM.id,
                        run_id=run_id,
                        data={"call": what, "error": self.masker.mask(str(exc))[:300]},
                        at=self.now(),
                    )
            except Exception:
                log.exception("could not audit a failed surface call")

    def shutdown(self, wait: bool = True) -> None:
        self._stop.set()
        self._pool.shutdown(wait=wait)

    def environment(self, name: str) -> EnvironmentSpec:
        return self.runbook.environment(name)

    def is_approver(self, env: EnvironmentSpec, actor: Actor) -> bool:
        return approvals.is_approver(env, actor)

    def context(self, run: Run) -> tuple[StepContext, dict[str, Value]]:
        """The step context and template values of a run (its env file's secrets masked)."""
        env = self.environment(run.environment)
        values = self.runbook.values_for(run.environment)
        if env.env_file:
            with contextlib.suppress(EnvFileError):  # the secrets check reports it
                self.masker.add_env(parse_env_file(str(values["env_file"])))
        return self.context_factory(env, run.dry_run, self.masker), values

    def refuse(
        self,
        actor: Actor,
        action: str,
        reason: str,
        *,
        run_id: int | None = None,
        session: Session | None = None,
        **data: Any,
    ) -> str:
        """Audits a refusal the same way for every action and surface; returns the reason."""

        def write(s: Session) -> None:
            audit.append(
                s,
                AuditKind.ACTION_REFUSED,
                actor=actor.id,
                run_id=run_id,
                data={"action": action, "reason": reason, **data},
                at=self.now(),
            )

        if session is not None:
            write(session)
        else:
            with self.db.session() as s:
                write(s)
        return reason

    # ------------------------------------------------------------------ leases

    def _dead(self, owner: str | None, lease_until: datetime | None) -> bool:
        """True when the owner of a run's execution is gone: its lease lapsed, or it was an
        earlier incarnation of this very replica (this process replaced it)."""
        if owner is None:
            return True
        if owner == self.me:
            return False
        if owner.rsplit("#", 1)[0] == self.replica:
            return True
        until = _aware(lease_until)
        return until is None or until < _wall()

    def _take_lease(self, run: Run) -> None:
        """Inside the claiming transaction; call `_ensure_heartbeat()` once it committed."""
        run.owner, run.lease_until = self.me, _wall() + self.lease

    def _ensure_heartbeat(self) -> None:
        with self._threads_lock:
            self._claims += 1
            if self._heartbeat is None or not self._heartbeat.is_alive():
                self._heartbeat = threading.Thread(
                    target=self._renew_loop, name="cutover-lease", daemon=True
                )
                self._heartbeat.start()

    def renew_leases(self) -> int:
        """Extends the lease of every run this process executes; returns how many."""
        with self.db.session() as s:
            res = s.execute(
                update(Run)
                .where(col(Run.owner) == self.me, col(Run.active_env).is_not(None))
                .values(lease_until=_wall() + self.lease)
            )
            return int(getattr(res, "rowcount", 0) or 0)

    def _renew_loop(self) -> None:
        """Renews while this process owns runs; ends when it owns none and claimed nothing
        meanwhile (a claim after that starts a new one)."""
        interval = max(self.lease.total_seconds() / 3, 0.05)
        while not self._stop.wait(interval):
            with self._threads_lock:
                claims = self._claims
            try:
                renewed = self.renew_leases()
            except DatabaseUnavailable as exc:
                log.warning("cannot renew leases: %s", exc)
                continue
            except Exception:
                log.exception("lease renewal failed")
                continue
            if renewed == 0:
                with self._threads_lock:
                    if self._claims == claims:
                        self._heartbeat = None
                        return

    def start_reaper(self, interval: float | None = None) -> None:
        """Takes over, every `interval` seconds, what a dead replica left executing."""
        every = interval if interval is not None else max(self.lease.total_seconds() / 3, 0.05)

        def loop() -> None:
            while not self._stop.wait(every):
                try:
                    for line in self.reap():
                        log.warning("took over: %s", line)
                except DatabaseUnavailable as exc:
                    log.warning("cannot look for dead replicas' runs: %s", exc)
                except Exception:
                    log.exception("reaper failed")

        with self._threads_lock:
            if self._reaper is None:
                self._reaper = threading.Thread(target=loop, name="cutover-reaper", daemon=True)
                self._reaper.start()

    # ------------------------------------------------------------------ start

    def start_run(
        self,
        env_name: str,
        actor: Actor,
        *,
        channel: str | None = None,
        dry_run: bool = False,
        group_members: Collection[str] | None = None,
    ) -> Run:
        """Starts a run; refused (and audited) unless the actor may and quorum is reachable.

        `group_members`: qualified ids of the environment's approver groups' members, when
        the surface can list them, so an unreachable quorum is refused before anything runs.
        """
        env = self.environment(env_name)  # unknown environment: RunbookError names the known ones
        refusal = approvals.may_start(env_name, env, actor) or approvals.quorum_shortfall(
            env, actor, group_members
        )
        if refusal:
            self.refuse(actor, "start", refusal, environment=env_name)
            raise Refused(refusal)
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
        try:
            run = self._insert_run(env_name, env, actor, channel, dry_run)
        except IntegrityError:
            run = None  # another start won the race for the environment's one active slot
        if run is None:
            raise self._already_active(env_name)
        self.tell("run_changed", run.id)
        self.spawn(self.advance, run.id)
        return run

    def _already_active(self, env_name: str) -> Conflict:
        with self.db.session() as s:
            active = s.exec(select(Run).where(Run.active_env == env_name)).first()
        if active is None:
            return Conflict(f"another run of {env_name} was starting at the same time; try again")
        return Conflict(
            f"run #{active.id} is already active for {env_name} ({active.status}, phase "
            f"{active.phase_index + 1}); finish or abort it first"
        )

    def _insert_run(
        self, env_name: str, env: EnvironmentSpec, actor: Actor, channel: str | None, dry_run: bool
    ) -> Run | None:
        with self.db.session() as s:
            if s.exec(select(Run.id).where(Run.active_env == env_name)).first() is not None:
                return None
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
                AuditKind.RUN_STARTED,
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
        return run

    # ------------------------------------------------------------------ phases

    def advance(self, run_id: int) -> None:
        """Runs the run's current phase and opens its gate; does nothing if it is not its turn."""
        # A dropped database connection is retried, not left as a phase stuck "running".
        claimed = self.db.retrying(lambda: self._claim_phase(run_id), f"run #{run_id}: start")
        if claimed is None:
            return
        run, phase_run, phase = claimed
        self._ensure_heartbeat()
        self.tell("run_changed", run_id)
        ctx, values = self.context(run)
        assert phase_run.id is not None
        pr_id = phase_run.id

        def record(outcome: StepOutcome) -> None:
            self.record_step(run_id, pr_id, outcome)

        outcomes: list[StepOutcome] = []
        actions_ok = True
        for step in phase.actions:
            standing = self._standing(run_id)
            if standing == "rolling_back":
                return self._stop_for_rollback(run_id, pr_id)
            if standing != "mine":
                log.warning("run #%s: phase %s was taken over; stopping", run_id, phase.id)
                return None
            result = run_actions([step], values, ctx, "actions", on_result=record)
            outcomes += result
            if result and result[-1].result.status.blocks_gate:
                actions_ok = False
                break
        if actions_ok and phase.monitor is not None:
            from bot.monitoring import start_monitoring

            # Checks run in rounds (bot.monitoring); the scheduler opens the gate at the end.
            start_monitoring(self, run_id, pr_id, phase)
            self.release(run_id)
            return None
        if actions_ok and phase.checks:
            outcomes += run_checks(phase.checks, values, ctx, on_result=record)
        passed = all(not o.result.status.blocks_gate for o in outcomes)
        gate_id = self.db.retrying(
            lambda: self.open_gate(run_id, pr_id, phase, passed, executor=True),
            f"run #{run_id}: open gate",
        )
        if gate_id is not None:
            self.tell("run_changed", run_id)
            self.tell("checkpoint", gate_id)
        return None

    def release(self, run_id: int) -> None:
        """This process no longer executes the run (monitoring rounds are the scheduler's)."""
        with self.db.session() as s:
            s.execute(
                update(Run)
                .where(col(Run.id) == run_id, col(Run.owner) == self.me)
                .values(owner=None, lease_until=None)
            )

    def _claim_phase(self, run_id: int) -> tuple[Run, PhaseRun, PhaseSpec] | None:
        with self.db.session() as s:
            run = s.exec(select(Run).where(Run.id == run_id).with_for_update()).one_or_none()
            if run is None or run.status != RunStatus.RUNNING:
                return None
            if run.runbook_digest != self.digest:
                log.error("run #%s was started with another version of the runbook", run_id)
                return None  # recover() has told the channel; a person restores or aborts
            if run.owner is not None and run.owner != self.me:
                return None  # another process executes it, or the reaper will take it over
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
            self._take_lease(run)
            s.add(run)
            s.flush()
            audit.append(
                s,
                AuditKind.PHASE_STARTED,
                actor=SYSTEM.id,
                run_id=run_id,
                data={"phase": phase.id, "index": run.phase_index, "attempt": attempt},
                at=self.now(),
            )
            return run, pr, phase

    def _standing(self, run_id: int) -> Literal["mine", "rolling_back", "lost"]:
        """Whether the executing phase may go on: still ours, aborted, or taken over."""
        with self.db.session() as s:
            run = s.get(Run, run_id)
            if run is None:
                return "lost"
            if run.status == RunStatus.ROLLING_BACK:
                return "rolling_back"
            if run.status == RunStatus.RUNNING and run.owner == self.me:
                return "mine"
            return "lost"

    def record_step(self, run_id: int, phase_run_id: int | None, outcome: StepOutcome) -> None:
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
                AuditKind.STEP_RESULT,
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

    def open_gate(
        self,
        run_id: int,
        phase_run_id: int,
        phase: PhaseSpec,
        passed: bool,
        note: str | None = None,
        *,
        executor: bool = False,
    ) -> int | None:
        """Opens the checkpoint of a phase whose steps are done (or that was interrupted).

        `executor`: the caller is the process that ran the phase; it opens the gate only
        while it still owns the run, so a phase another replica took over is not decided
        twice. Returns the gate id, or None if there is nothing to open.
        """
        gate_id: int | None = None
        rollback_now = False
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
            if executor and pr.status == PhaseStatus.RUNNING and run.owner != self.me:
                log.warning(
                    "run #%s: phase %s was taken over; not opening its gate", run_id, phase.id
                )
                return None
            if s.exec(select(Gate.id).where(Gate.phase_run_id == phase_run_id)).first():
                return None  # opened already (by the replica that took the phase over)
            if run.status == RunStatus.ROLLING_BACK:  # aborted while the phase ran
                states.transition(pr, "failed")
                pr.ended_at = self.now()
                s.add(pr)
                rollback_now = True
            else:
                if pr.status == PhaseStatus.RUNNING:
                    states.transition(pr, "checked")
                elif pr.status == PhaseStatus.MONITORING:
                    states.transition(pr, "monitoring_done")
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
                states.transition(run, "gate_opened")
                run.owner, run.lease_until = None, None
                s.add(run)
                s.add(pr)
                s.flush()
                audit.append(
                    s,
                    AuditKind.GATE_OPENED,
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
            self.spawn(self.execute_rollback, run_id)
            return None
        return gate_id

    def _stop_for_rollback(self, run_id: int, phase_run_id: int) -> None:
        with self.db.session() as s:
            pr = s.get(PhaseRun, phase_run_id)
            if pr is not None and pr.status == PhaseStatus.RUNNING:
                states.transition(pr, "failed")
                pr.ended_at = self.now()
                s.add(pr)
        self.spawn(self.execute_rollback, run_id)

    def _complete(self, s: Session, run: Run) -> None:
        states.transition(run, "completed")
        run.active_env, run.ended_at = None, self.now()
        run.owner, run.lease_until = None, None
        s.add(run)
        audit.append(
            s,
            AuditKind.RUN_COMPLETED,
            actor=SYSTEM.id,
            run_id=run.id,
            data={"environment": run.environment},
            at=self.now(),
        )

    # ------------------------------------------------------------------ decisions

    def decide(
        self, gate_id: int, actor: Actor, decision: DecisionName, reason: str | None = None
    ) -> Decision:
        """Records one click. Permission is checked here, when the click arrives."""
        result, spawn = self._decide(gate_id, actor, DecisionKind(decision), reason)
        if result.outcome == "vote_recorded" and result.gate_id is not None:
            self.tell("gate_changed", result.gate_id)  # "1/2 approved by …", live
        elif result.changed and result.gate_id is not None:
            self.tell("gate_changed", result.gate_id)
            self.tell("run_changed", result.run_id)
        if spawn is not None and result.run_id is not None:
            self.spawn(spawn, result.run_id)
        return result

    def _gate_run(self, gate_id: int) -> tuple[int, str] | None:
        """(run id, environment) of a gate, read without a lock: the locks come in order."""
        with self.db.session() as s:
            row = s.exec(
                select(Gate.run_id, Run.environment)
                .join(Run, col(Run.id) == col(Gate.run_id))
                .where(Gate.id == gate_id)
            ).first()
        return (row[0], row[1]) if row is not None else None

    def _decide(
        self, gate_id: int, actor: Actor, decision: DecisionKind, reason: str | None
    ) -> tuple[Decision, Callable[[int], None] | None]:
        found = self._gate_run(gate_id)
        if found is None:
            return Decision("unknown_gate", f"no gate #{gate_id}; the message is out of date"), None
        run_id, env_name = found
        env = self.environment(env_name)
        if not approvals.is_approver(env, actor):
            # Refused before any row lock: a stranger's clicks never queue behind the gate.
            reason_text = f"you are not an approver for {env_name}; nothing was changed"
            self.refuse(actor, str(decision), reason_text, run_id=run_id, gate=gate_id)
            return Decision("refused", reason_text, gate_id, run_id), None
        with self.db.session() as s:
            run = s.exec(select(Run).where(Run.id == run_id).with_for_update()).one()
            gate = s.exec(select(Gate).where(Gate.id == gate_id).with_for_update()).one()
            if gate.status != GateStatus.OPEN:
                return self._already(gate), None
            facts = self._facts(s, gate, run)
            refusal = approvals.may_decide(env, actor, decision, facts)
            if refusal is None and not states.can(gate, _GATE_TRIGGER[decision]):
                refusal = f"{decision} is not possible at this gate now"
            if refusal:
                self.refuse(
                    actor,
                    str(decision),
                    refusal,
                    run_id=run.id,
                    session=s,
                    gate=gate.id,
                    phase=gate.phase_id,
                )
                return Decision("refused", refusal, gate.id, run.id), None
            pr = s.get(PhaseRun, gate.phase_run_id)
            assert pr is not None and run.id is not None
            result, spawn = self._apply(s, run, gate, pr, actor, decision, reason)
            s.add_all([gate, pr, run])
        return result, spawn

    def _apply(
        self,
        s: Session,
        run: Run,
        gate: Gate,
        pr: PhaseRun,
        actor: Actor,
        decision: DecisionKind,
        reason: str | None,
    ) -> tuple[Decision, Callable[[int], None] | None]:
        """The decision's state changes, inside the caller's transaction (rows locked)."""
        now = self.now()
        assert run.id is not None

        def log_event(kind: str, **extra: Any) -> None:
            data = {"gate": gate.id, "phase": gate.phase_id, **extra}
            audit.append(s, kind, actor=actor.id, run_id=run.id, data=data, at=now)

        if decision == DecisionKind.ROLLBACK:
            states.transition(gate, "rollback")
            gate.decided_by, gate.decided_at = actor.id, now
            states.transition(pr, "failed")
            states.transition(run, "rolled_back_at_gate")
            run.rolled_back_by = actor.id
            # A reason is typed by a person: it may quote a secret, and is kept masked.
            run.rollback_reason = self.masker.mask(reason or "") or (
                f"rolled back at phase {gate.phase_id}"
            )
            log_event(AuditKind.GATE_DECIDED, decision="rollback", reason=run.rollback_reason)
            return (
                Decision("rolled_back", f"rolled back by {actor.label}", gate.id, run.id),
                self.execute_rollback,
            )
        if decision == DecisionKind.RETRY:
            states.transition(gate, "retry")
            gate.decided_by, gate.decided_at = actor.id, now
            states.transition(pr, "retried")
            states.transition(run, "retried")
            log_event(AuditKind.GATE_DECIDED, decision="retry")
            return (
                Decision("retried", f"phase re-run requested by {actor.label}", gate.id, run.id),
                self.advance,
            )
        assert gate.id is not None
        s.add(Vote(gate_id=gate.id, actor=actor.id, at=now))
        s.flush()
        votes = self._voters(s, gate.id)
        log_event(AuditKind.GATE_VOTE, votes=len(votes), quorum=gate.quorum)
        if len(votes) < gate.quorum:
            return (
                Decision("vote_recorded", f"{len(votes)}/{gate.quorum} approved", gate.id, run.id),
                None,
            )
        states.transition(gate, "approve")
        gate.decided_by, gate.decided_at = ",".join(votes), now
        states.transition(pr, "approved")
        states.transition(run, "approved")
        run.phase_index += 1
        log_event(AuditKind.GATE_DECIDED, decision="continue", approvers=votes)
        if run.phase_index >= len(self.runbook.phases):
            self._complete(s, run)
        return (
            Decision("approved", f"approved by {', '.join(votes)}", gate.id, run.id),
            self.advance,
        )

    def _facts(self, s: Session, gate: Gate, run: Run) -> GateFacts:
        return GateFacts(
            environment=run.environment,
            status=GateStatus(gate.status),
            checks_passed=gate.checks_passed,
            dry_run=run.dry_run,
            requested_by=run.requested_by,
            votes=tuple(self._voters(s, gate.id)),
            unticked=tuple(self._unticked(s, gate)),
            quorum=gate.quorum,
        )

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
            GateStatus.CANCELLED: "cancelled",
        }.get(GateStatus(gate.status), gate.status)
        return Decision(
            "already_decided",
            f"already {verb} by {gate.decided_by} at {when}",
            gate.id,
            gate.run_id,
        )

    def _unticked(self, s: Session, gate: Gate) -> list[str]:
        phase = self.runbook.phase(gate.phase_id)
        ticked = set(s.exec(select(ManualTick.item_id).where(ManualTick.gate_id == gate.id)))
        return [m.id for m in phase.manual if m.id not in ticked]

    def tick(self, gate_id: int, item_id: str, actor: Actor) -> Decision:
        """Marks a manual step (phase 7's browser tests) done; only approvers may."""
        found = self._gate_run(gate_id)
        if found is None:
            return Decision("unknown_gate", f"no gate #{gate_id}")
        run_id, env_name = found
        refusal = approvals.may_tick(env_name, self.environment(env_name), actor)
        if refusal:
            self.refuse(actor, "tick", refusal, run_id=run_id, gate=gate_id, item=item_id)
            return Decision("refused", refusal, gate_id, run_id)
        with self.db.session() as s:
            s.exec(select(Run.id).where(Run.id == run_id).with_for_update()).one()
            gate = s.exec(select(Gate).where(Gate.id == gate_id).with_for_update()).one()
            if gate.status != GateStatus.OPEN:
                return self._already(gate)
            items = {m.id for m in self.runbook.phase(gate.phase_id).manual}
            if item_id not in items:
                return Decision(
                    "refused",
                    f"phase {gate.phase_id} has no manual step {item_id!r}",
                    gate.id,
                    run_id,
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
                    AuditKind.MANUAL_TICKED,
                    actor=actor.id,
                    run_id=run_id,
                    data={"gate": gate.id, "item": item_id},
                    at=self.now(),
                )
        self.tell("gate_changed", gate_id)
        return Decision("ticked", f"{item_id} ticked", gate_id, run_id)

    def abort(self, env_name: str, actor: Actor, reason: str) -> Decision:
        """Ends the environment's active run from wherever it stands. Final.

        One transaction, run row then gate row: an abort racing a click either decides the
        open gate itself or finds the gate decided and stops the phase that followed. A run
        in which no action has changed anything yet is cancelled without rollback steps.
        """
        env = self.environment(env_name)
        if not reason.strip():
            raise InvalidInput("say why: --reason is required")
        masked = self.masker.mask(reason)
        refusal = approvals.may_abort(env_name, env, actor)
        if refusal:
            with self.db.session() as s:
                active = s.exec(select(Run.id).where(Run.active_env == env_name)).first()
            self.refuse(actor, "abort", refusal, run_id=active, environment=env_name)
            return Decision("refused", refusal, None, active)
        spawn = False
        with self.db.session() as s:
            run = s.exec(select(Run).where(Run.active_env == env_name).with_for_update()).first()
            if run is None:
                raise NotFound(f"no active run for {env_name}")
            assert run.id is not None
            if run.status == RunStatus.ROLLING_BACK:
                return Decision(
                    "already_decided", f"run #{run.id} is already rolling back", None, run.id
                )
            gate = s.exec(
                select(Gate)
                .where(Gate.run_id == run.id, Gate.status == GateStatus.OPEN)
                .with_for_update()
            ).first()
            now = self.now()
            if not self._changed_anything(s, run):
                result = self._cancel(s, run, gate, actor, masked, now)
            elif gate is not None:
                pr = s.get(PhaseRun, gate.phase_run_id)
                assert pr is not None
                result, _ = self._apply(
                    s, run, gate, pr, actor, DecisionKind.ROLLBACK, f"aborted: {reason}"
                )
                s.add_all([gate, pr, run])
                spawn = True
            else:
                # The gate was decided first (or a phase is executing): the phase stops at its
                # next step and hands over to the rollback.
                states.transition(run, "aborted")
                run.rolled_back_by = actor.id
                run.rollback_reason = f"aborted: {masked}"
                s.add(run)
                audit.append(
                    s,
                    AuditKind.RUN_ABORTED,
                    actor=actor.id,
                    run_id=run.id,
                    data={"reason": masked},
                    at=now,
                )
                result = Decision(
                    "rolled_back",
                    f"run #{run.id} aborted by {actor.label} while phase {run.phase_index + 1} "
                    "was executing (its gate had been decided first); it stops at its next step "
                    "and the run rolls back",
                    None,
                    run.id,
                )
                spawn = True
        if gate is not None:
            self.tell("gate_changed", gate.id)
        self.tell("run_changed", run.id)
        if spawn:
            self.spawn(self.execute_rollback, run.id)
        return result

    def _changed_anything(self, s: Session, run: Run) -> bool:
        """True once any action may have changed the target: a dry run never does; a real
        run has if an action step ran (not skipped) or a phase is executing now."""
        if run.dry_run:
            return False
        executing = s.exec(
            select(PhaseRun.id).where(
                PhaseRun.run_id == run.id,
                col(PhaseRun.status).in_([PhaseStatus.RUNNING, PhaseStatus.MONITORING]),
            )
        ).first()
        if executing is not None:
            return True
        acted = s.exec(
            select(StepRun.id).where(
                StepRun.run_id == run.id,
                StepRun.section == "actions",
                StepRun.status != Status.SKIPPED,
            )
        ).first()
        return acted is not None

    def _cancel(
        self, s: Session, run: Run, gate: Gate | None, actor: Actor, reason: str, now: datetime
    ) -> Decision:
        if gate is not None:
            states.transition(gate, "cancel")
            gate.decided_by, gate.decided_at = actor.id, now
            pr = s.get(PhaseRun, gate.phase_run_id)
            if pr is not None:
                states.transition(pr, "cancelled")
                s.add(pr)
            s.add(gate)
            audit.append(
                s,
                AuditKind.GATE_DECIDED,
                actor=actor.id,
                run_id=run.id,
                data={
                    "gate": gate.id,
                    "phase": gate.phase_id,
                    "decision": "cancel",
                    "reason": reason,
                },
                at=now,
            )
        states.transition(run, "cancelled")
        run.active_env, run.ended_at = None, now
        run.owner, run.lease_until = None, None
        run.rolled_back_by, run.rollback_reason = actor.id, f"cancelled: {reason}"
        s.add(run)
        audit.append(
            s,
            AuditKind.RUN_CANCELLED,
            actor=actor.id,
            run_id=run.id,
            data={"reason": reason, "rollback": "not needed: no action had run"},
            at=now,
        )
        return Decision(
            "cancelled",
            f"run #{run.id} cancelled by {actor.label}: no action had changed anything, so no "
            "rollback steps were run",
            gate.id if gate is not None else None,
            run.id,
        )

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
            if running is not None and run.owner not in (None, self.me):
                return  # the executing phase hands over when it reaches its next step
            if run.rollback_started_at is not None and not self._dead(run.owner, run.lease_until):
                return  # another thread or replica executes this rollback
            if running is not None:  # ours, stopped for the rollback
                states.transition(running, "failed")
                running.ended_at = self.now()
                s.add(running)
            run.rollback_started_at = self.now()
            self._take_lease(run)
            s.add(run)
            failed_phase = self.runbook.phases[min(run.phase_index, len(self.runbook.phases) - 1)]
            audit.append(
                s,
                AuditKind.ROLLBACK_STARTED,
                actor=SYSTEM.id,
                run_id=run_id,
                data={
                    "phase": failed_phase.id,
                    "restore": failed_phase.on_fail == "restore_and_rollback",
                },
                at=self.now(),
            )
        self._ensure_heartbeat()
        self.tell(
            "notice",
            run_id,
            f"Rolling back run #{run_id} ({run.rollback_reason}). "
            + (
                "Restoring the database from backup first. "
                if failed_phase.on_fail == "restore_and_rollback"
                else ""
            ),
        )
        ctx, values = self.context(run)

        def record(outcome: StepOutcome) -> None:
            self.record_step(run_id, None, outcome)

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
            if run.status != RunStatus.ROLLING_BACK:
                return  # another replica finished it (it took over a lapsed lease)
            states.transition(run, "rollback_finished")
            run.active_env, run.ended_at = None, self.now()
            run.owner, run.lease_until = None, None
            s.add(run)
            audit.append(
                s,
                AuditKind.RUN_ROLLED_BACK,
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
        self.tell("notice", run_id, "\n".join([summary, *lines]))
        self.tell("run_changed", run_id)

    # ------------------------------------------------------------------ restart, takeover

    def recover(self) -> list[str]:
        """Picks up every active run after a restart. Nothing is re-run silently, and a phase
        another live replica executes is left to it."""
        report: list[str] = []
        with self.db.session() as s:
            runs = list(s.exec(select(Run).where(col(Run.active_env).is_not(None))))
        for run in runs:
            assert run.id is not None
            if run.runbook_digest != self.digest:
                report.append(f"run #{run.id}: runbook changed since start; left waiting")
                self.tell(
                    "notice",
                    run.id,
                    f"Run #{run.id} was started with another version of "
                    "the runbook. Restore it, or abort the run.",
                )
                continue
            if run.owner is not None and not self._dead(run.owner, run.lease_until):
                report.append(f"run #{run.id}: executing on {run.owner.rsplit('#', 1)[0]}")
                continue
            taken = self._take_over(run.id) if run.owner is not None else None
            if taken is not None:
                report.append(taken)
            elif run.status == RunStatus.ROLLING_BACK:
                report.append(f"run #{run.id}: rollback resumed")
                self._audit_resumed(run.id)
                self.spawn(self.execute_rollback, run.id)
            elif run.status == RunStatus.RUNNING:
                report.append(f"run #{run.id}: continuing at phase {run.phase_index + 1}")
                self.spawn(self.advance, run.id)
            elif run.status == RunStatus.WAITING:
                report.append(f"run #{run.id}: waiting at phase {run.phase_index + 1}")
                self.tell(
                    "notice",
                    run.id,
                    f"cutover-bot restarted; run #{run.id} is still "
                    f"waiting for a decision at phase {run.phase_index + 1}.",
                )
        return report

    def reap(self) -> list[str]:
        """Takes over every run whose executing replica is gone; says what it did."""
        with self.db.session() as s:
            rows = list(
                s.exec(
                    select(Run.id, Run.owner, Run.lease_until).where(
                        col(Run.active_env).is_not(None), col(Run.owner).is_not(None)
                    )
                )
            )
        done = []
        for run_id, owner, until in rows:
            if run_id is not None and self._dead(owner, until):
                line = self._take_over(run_id)
                if line:
                    done.append(line)
        return done

    def _audit_resumed(self, run_id: int, **data: Any) -> None:
        with self.db.session() as s:
            audit.append(
                s,
                AuditKind.ROLLBACK_RESUMED,
                actor=SYSTEM.id,
                run_id=run_id,
                data=data,
                at=self.now(),
            )

    def _take_over(self, run_id: int) -> str | None:
        """One replica wins (the run row is locked and the dead owner re-checked)."""
        with self.db.session() as s:
            run = s.exec(select(Run).where(Run.id == run_id).with_for_update()).one_or_none()
            if run is None or run.owner is None or not self._dead(run.owner, run.lease_until):
                return None
            old = run.owner.rsplit("#", 1)[0]
            running = s.exec(
                select(PhaseRun).where(
                    PhaseRun.run_id == run_id, PhaseRun.status == PhaseStatus.RUNNING
                )
            ).first()
            if running is not None:
                states.transition(running, "interrupted")
                s.add(running)
                audit.append(
                    s,
                    AuditKind.PHASE_INTERRUPTED,
                    actor=SYSTEM.id,
                    run_id=run_id,
                    data={
                        "phase": running.phase_id,
                        "attempt": running.attempt,
                        "owner": old,
                    },
                    at=self.now(),
                )
            run.owner, run.lease_until = None, None
            if run.status == RunStatus.ROLLING_BACK:
                run.rollback_started_at = None
            s.add(run)
            status = run.status
        if status == RunStatus.ROLLING_BACK:
            self._audit_resumed(run_id, owner=old)
            self.spawn(self.execute_rollback, run_id)
            return f"run #{run_id}: rollback resumed"
        if running is None:
            self.spawn(self.advance, run_id)
            return f"run #{run_id}: continuing at phase {run.phase_index + 1}"
        phase = self.runbook.phases[running.phase_index]
        assert running.id is not None
        note = (
            "the bot stopped while this phase ran; its actions may be half done. "
            "Check by hand, then Retry the phase or Rollback"
        )
        gate_id = self.open_gate(run_id, running.id, phase, passed=False, note=note)
        if gate_id is not None:
            self.tell("run_changed", run_id)
            self.tell("checkpoint", gate_id)
        return f"run #{run_id}: phase {phase.id} interrupted; gate opened"


_GATE_TRIGGER = {
    DecisionKind.CONTINUE: "approve",
    DecisionKind.ROLLBACK: "rollback",
    DecisionKind.RETRY: "retry",
}

__all__ = [
    "Actor",
    "Decision",
    "Engine",
    "EngineError",
    "RunbookError",
    "default_context",
]
