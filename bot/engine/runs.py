"""Starting a run and executing its phases: claim, steps, gate."""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
import uuid
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, Literal

from bot import metrics
from bot.domain import approvals
from bot.domain.audit_kinds import AuditKind
from bot.domain.errors import Conflict, Refused
from bot.engine import restore_point
from bot.engine.core import EngineError, LeaseLost
from bot.engine.locks import Locks
from bot.engine.manual_done import tick_done_by_actions, tick_unless_asked
from bot.engine.monitoring import start_monitoring
from bot.models import Gate, PhaseRun, PhaseStatus, Run, RunStatus
from bot.store import gates as gate_rows
from bot.store import leases, override_votes
from bot.store import runs as run_rows
from bot.store.unit import DatabaseUnavailable, Duplicate
from bot.surface import SYSTEM, Actor
from phases.checks.base import StopRequest
from phases.runbook import EnvironmentSpec, PhaseSpec
from phases.runner import StepOutcome, run_actions, run_checks
from phases.secrets import EnvFileError

log = logging.getLogger(__name__)


class Runs(Locks):
    def start_run(
        self,
        env_name: str,
        actor: Actor,
        *,
        channel: str | None = None,
        dry_run: bool = False,
        group_members: Collection[str] | None = None,
        emergency: str | None = None,
        ref: str | None = None,
    ) -> Run:
        """Starts a run; refused (and audited) unless the actor may and quorum is reachable.

        `group_members`: qualified ids of the environment's approver groups' members, when
        the surface can list them, so an unreachable quorum is refused before anything runs.
        """
        env = self.environment(env_name)  # unknown environment: RunbookError names the known ones
        refusal = approvals.start_refusal(env_name, env, actor, group_members)
        if refusal:
            raise Refused(self.refuse(actor, "start", refusal, environment=env_name))
        blocked = self.start_blocker(env_name, actor, dry_run)  # a lock: audited there
        if blocked:
            raise Refused(blocked)
        frozen = None if dry_run else self.frozen(env_name)
        spend = None
        if frozen is not None and emergency is None:
            need = env.override_quorum_for()
            said = (
                f"{frozen.text(env_name)}; nothing was started. An emergency start is a "
                f"break-glass: {need} override approvers each type /cutover start {env_name} "
                "--emergency --reason WHY"
            )
            raise Refused(
                self.refuse(actor, "start", said, environment=env_name, freeze=frozen.freeze.id)
            )
        if frozen is not None and emergency is not None:
            subject, approvers, said_by = self.emergency_vote(env_name, actor, emergency, frozen)
            spend = (subject, approvers, said_by, frozen)
        values = self.runbook.values_for(env_name)  # a missing ${VAR}: RunbookError names it
        if ref is not None and "ref" not in values:
            said = (
                f"ref={ref} given, but this runbook deploys no ref (it has no `ref` var for "
                f"{env_name!r}); start without ref=, or add `ref: main` to its vars and use "
                "{ref} in its git steps. No run was started."
            )
            raise Refused(self.refuse(actor, "start", said, environment=env_name))
        if env.env_file:
            path = Path(str(values["env_file"]))
            if not path.is_file():
                raise EngineError(
                    f"env file {path} of environment {env_name!r} does not exist; create it or fix "
                    f"env_file in the runbook. No run was started."
                )
            try:
                self.register_secrets(env_name, strict=True)
            except EnvFileError as exc:
                raise EngineError(f"{exc}. No run was started.") from None
        try:
            run = self._insert_run(env_name, env, actor, channel, dry_run, spend, ref, values)
        except Duplicate:
            run = None  # another start won the race for the environment's one active slot
        if run is None or run.id is None:
            raise self._already_active(env_name)
        self.notify.run_changed(run.id)
        assert run.id is not None
        if spend is not None:
            self.feed(
                run.id,
                f"🟥 {env_name}: EMERGENCY START during the change freeze "
                f"{spend[3].freeze.id!r} ({spend[3].freeze.reason}) by break-glass override of "
                f"{', '.join(spend[1])} (run #{run.id}). Why: {'; '.join(spend[2])}",
            )
        self.feed(
            run.id,
            f"🚀 {self.runbook.name}: cutover of {env_name} started by {actor.label} "
            f"(run #{run.id}{', DRY RUN' if dry_run else ''}); expected "
            f"{self.runbook.estimate_text()}.",
        )
        self.spawn(self.advance, run.id)
        return run

    def _already_active(self, env_name: str) -> Conflict:
        with self.store.tx() as tx:
            active = run_rows.active(tx, env_name)
        if active is None:
            return Conflict(f"another run of {env_name} was starting at the same time; try again")
        return Conflict(
            f"run #{active.id} is already active for {env_name} ({active.status}, phase "
            f"{active.phase_index + 1}); finish or abort it first"
        )

    def _insert_run(
        self,
        env_name: str,
        env: EnvironmentSpec,
        actor: Actor,
        channel: str | None,
        dry_run: bool,
        spend: tuple[str, tuple[str, ...], tuple[str, ...], Any] | None = None,
        ref: str | None = None,
        values: dict[str, Any] | None = None,
    ) -> Run | None:
        with self.store.tx() as tx:
            if run_rows.active_id(tx, env_name) is not None:
                return None
            # The votes are spent by the one transaction that starts.
            if spend is not None and override_votes.spend(tx, spend[0]) < len(spend[1]):
                return None  # another start spent them first
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
            tx.add(run)
            tx.flush()
            assert run.id is not None
            tx.audit(
                AuditKind.RUN_STARTED,
                actor=actor.id,
                run_id=run.id,
                data={
                    "environment": env_name,
                    "dry_run": dry_run,
                    "runbook": self.runbook.name,
                    "version": self.runbook.version,
                    **_ref_data(ref, values),
                },
                at=self.now(),
            )
            if spend is not None:
                _, approvers, said_by, frozen = spend
                tx.audit(
                    AuditKind.FREEZE_OVERRIDDEN,
                    actor=actor.id,
                    run_id=run.id,
                    data={
                        "environment": env_name,
                        "freeze": frozen.freeze.id,
                        "reason": frozen.freeze.reason,
                        "by": frozen.freeze.by,
                        "until": frozen.until.isoformat(),
                        "approvers": list(approvers),
                        "justifications": list(said_by),
                    },
                    at=self.now(),
                )
        return run

    def advance(self, run_id: int) -> None:
        """Runs the run's current phase and opens its gate; does nothing if it is not its turn.

        While it runs, the phase's StopRequest is known to this process (`_executing`), before
        the claim commits: an abort or a lost lease stops its running step, and the rollback
        begins only once that step has ended (`execute_rollback` waits for the hand-over)."""
        stop = StopRequest()
        stop.leash = self.leash
        with self._threads_lock:
            self._executing[run_id] = (stop, "phase")
        try:
            self._advance(run_id, stop)
        finally:
            with self._threads_lock:
                if self._executing.get(run_id, (None, ""))[0] is stop:
                    del self._executing[run_id]

    def _advance(self, run_id: int, stop: StopRequest) -> None:
        # A dropped database connection is retried, not left as a phase stuck "running".
        token = uuid.uuid4().hex  # a retried claim whose COMMIT did land finds its own row
        try:
            claimed = self.db.retrying(
                lambda: self._claim_phase(run_id, token), f"run #{run_id}: start"
            )
        except LeaseLost:
            return  # another process claimed it in the same instant
        if claimed is None:
            if token in self._completed_by:
                self._completed_by.discard(token)
                self.run_ended(run_id)
            return
        run, phase_run, phase = claimed
        self._ensure_heartbeat()
        self.notify.run_changed(run_id)
        if phase_run.phase_index == len(self.runbook.phases) - 1:
            # The last phase (NostrMaxi: monitoring): the cutover is live, people can vouch.
            self.db.retrying(lambda: self.request_signoffs(run_id), f"run #{run_id}: sign-offs")
        ctx, values = self.context(run, [*phase.actions, *phase.checks])
        ctx = dataclasses.replace(
            ctx,
            phase_started_at=self.clock.now(),
            stop=stop,
            fencing_token=self._epochs.get(run_id),
        )
        assert phase_run.id is not None
        pr_id = phase_run.id

        def record(outcome: StepOutcome) -> None:
            try:
                self.record_step(run_id, pr_id, outcome, fenced=True)
            except LeaseLost:  # another process holds the run now: stop, record nothing more
                stop.set("the lease was lost", kill_by=time.monotonic())

        outcomes: list[StepOutcome] = []
        actions_ok = True
        for step in [*phase.actions, None]:
            if step is None and not phase.actions and phase.monitor is None:
                # Nothing ran since the claim found the phase ours: on to the checks, which
                # change nothing; an abort meanwhile is found by the gate's own transaction
                # (open_gate hands over to the rollback), a take-over by its fencing.
                break
            # A read: retried while the database drops connections, never a dead phase.
            standing = self.db.retrying(
                lambda: self._standing(run_id), f"run #{run_id}: is the phase still ours"
            )
            if standing == "rolling_back":
                return self._stop_for_rollback(run_id, pr_id, phase, stop, outcomes)
            if standing != "mine":
                log.warning("run #%s: phase %s was taken over; stopping", run_id, phase.id)
                return None
            if step is None or not actions_ok:
                break  # the actions are done: on to the checks, or to the gate
            stop.step = step.name
            result = run_actions([step], values, ctx, "actions", on_result=record)
            stop.step = None
            outcomes += result
            if result and result[-1].result.status.blocks_gate:
                actions_ok = False
        if actions_ok and phase.monitor is not None:
            # Checks run in rounds (monitoring.py); the scheduler opens the gate at the end.
            start_monitoring(self, run_id, pr_id, phase)
            self.release(run_id)
            return None
        checks: list[StepOutcome] = []
        if actions_ok and phase.checks:
            # Checks change nothing: their results are recorded with the gate that shows
            # them, in its transaction (one commit instead of one per check). An action's
            # result is recorded the moment it ends (above), before anything else runs.
            checks = run_checks(phase.checks, values, ctx)
            outcomes += checks
        passed = all(not o.result.status.blocks_gate for o in outcomes)
        try:
            gate_id = self.open_gate(run_id, pr_id, phase, passed, executor=True, checks=checks)
        except DatabaseUnavailable:
            # A flapping database may never let the one long transaction through: each
            # result on its own then (found, not doubled, if that transaction did commit),
            # and the gate in a short one, each retried.
            for outcome in checks:
                self.db.retrying(
                    functools.partial(self._record_step_once, run_id, pr_id, outcome, retry=True),
                    f"run #{run_id}: record step {outcome.step.id}",
                )
            gate_id = self.db.retrying(
                lambda: self.open_gate(run_id, pr_id, phase, passed, executor=True),
                f"run #{run_id}: open gate",
            )
        for outcome in checks:
            r = outcome.result
            metrics.observe_step(outcome.section, outcome.step.kind, str(r.status), r.duration_ms)
        if gate_id is not None:
            self.notify.run_changed(run_id)
            self.notify.checkpoint(gate_id)
        return None

    def release(self, run_id: int) -> None:
        """This process no longer executes the run (monitoring rounds are the scheduler's)."""
        with self.store.tx() as tx:
            leases.release(tx, run_id, self.me, self._epochs.get(run_id, -1))
        with self._threads_lock:
            self._epochs.pop(run_id, None)

    def _claim_phase(
        self, run_id: int, token: str | None = None
    ) -> tuple[Run, PhaseRun, PhaseSpec] | None:
        """Claims the run's current phase for this process. `token` names this claim: if the
        database dropped the connection after the COMMIT landed, the retry finds the phase
        it claimed (executor = token) and carries on instead of leaving it stuck."""
        token = token or uuid.uuid4().hex
        with self.store.tx() as tx:
            run = tx.lock_run(run_id)
            if run is None or run.status != RunStatus.RUNNING:
                return None
            if run.runbook_digest != self.digest:
                log.error("run #%s was started with another version of the runbook", run_id)
                return None  # recover() has told the channel; a person restores or aborts
            if run.owner is not None and run.owner != self.me:
                return None  # another process executes it, or the reaper will take it over
            if run.phase_index >= len(self.runbook.phases):
                self._complete(tx, run)
                self._completed_by.add(token)  # advance: run_ended once this committed
                return None
            latest = run_rows.latest_attempt(tx, run_id, run.phase_index)
            if (
                latest is not None
                and latest.status == PhaseStatus.RUNNING
                and latest.executor == token
                and run.owner == self.me
            ):
                return run, latest, self.runbook.phases[run.phase_index]
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
                executor=token,
            )
            tx.add(pr)
            self._take_lease(tx, run)
            tx.flush()
            tx.audit(
                AuditKind.PHASE_STARTED,
                actor=SYSTEM.id,
                run_id=run_id,
                data={"phase": phase.id, "index": run.phase_index, "attempt": attempt},
                at=self.now(),
            )
            restore_point.fix_at_phase_start(tx, self.runbook, run_id, pr, self.now())
            return run, pr, phase

    def _standing(self, run_id: int) -> Literal["mine", "rolling_back", "lost"]:
        """Whether the executing phase may go on: still ours, aborted, or taken over."""
        with self.store.tx() as tx:
            run = run_rows.get(tx, run_id)
            if run is None:
                return "lost"
            if run.status == RunStatus.ROLLING_BACK:
                return "rolling_back"
            if (
                run.status == RunStatus.RUNNING
                and run.owner == self.me
                and run.lease_epoch == self._epochs.get(run_id)
            ):
                return "mine"
            return "lost"

    def open_gate(
        self,
        run_id: int,
        phase_run_id: int,
        phase: PhaseSpec,
        passed: bool,
        note: str | None = None,
        *,
        executor: bool = False,
        checks: Sequence[StepOutcome] = (),
    ) -> int | None:
        """Opens the checkpoint of a phase whose steps are done (or that was interrupted).

        `executor`: the caller is the process that ran the phase; it opens the gate only
        while it still owns the run, so a phase another replica took over is not decided
        twice. `checks`: the phase's check results, recorded (each with its audit row) in
        this transaction, before the gate's own row. Returns the gate id, or None if there
        is nothing to open (the results are then dropped: the phase was taken over).
        """
        gate_id: int | None = None
        rollback_now = False
        released = False
        with self.store.tx() as tx:
            # The run row locked, the phase run read with it (one round trip).
            run, pr = run_rows.lock_with_phase(tx, run_id, phase_run_id)
            if pr.status not in (
                PhaseStatus.RUNNING,
                PhaseStatus.INTERRUPTED,
                PhaseStatus.MONITORING,
            ):
                return None
            if (
                executor
                and pr.status == PhaseStatus.RUNNING
                and (run.owner != self.me or run.lease_epoch != self._epochs.get(run_id))
            ):
                log.warning(
                    "run #%s: phase %s was taken over (lease epoch %s is not ours, %s); "
                    "not opening its gate",
                    run_id,
                    phase.id,
                    run.lease_epoch,
                    self._epochs.get(run_id),
                )
                return None
            if pr.status == PhaseStatus.INTERRUPTED and gate_rows.opened_for(tx, phase_run_id):
                return None  # opened already (by the replica that took the phase over)
            for outcome in checks:
                self.add_step(tx, run_id, phase_run_id, outcome)
            if run.status == RunStatus.ROLLING_BACK:  # aborted while the phase ran
                tx.apply(pr, "failed", SYSTEM.id)
                rollback_now = True
            else:
                if pr.status == PhaseStatus.RUNNING:
                    tx.apply(pr, "checked", SYSTEM.id)
                elif pr.status == PhaseStatus.MONITORING:
                    tx.apply(pr, "monitoring_done", SYSTEM.id)
                else:  # interrupted: it ends with its gate
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
                tx.add(gate)
                tx.apply(run, "gate_opened", SYSTEM.id)  # releases the run's lease
                released = True  # its epoch is forgotten once this commits, not before
                tx.add(pr)
                tx.flush()
                tx.audit(
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
                assert gate.id is not None
                tick_done_by_actions(tx, run_id, phase_run_id, gate.id, phase, self.now())
                tick_unless_asked(tx, run_id, phase_run_id, gate.id, phase, self.now())
                gate_id = gate.id
        if released:  # a retried attempt whose commit did not land still holds the epoch
            with self._threads_lock:
                self._epochs.pop(run_id, None)
        if rollback_now:
            self.spawn(self.execute_rollback, run_id)
            return None
        if gate_id is not None:  # its click finds the gate's run without a read
            with self._threads_lock:
                self._gate_runs[gate_id] = (run_id, run.environment)
        return gate_id

    def _stop_for_rollback(
        self,
        run_id: int,
        phase_run_id: int,
        phase: PhaseSpec,
        stop: StopRequest,
        outcomes: Sequence[StepOutcome],
    ) -> None:
        """The run was aborted while this phase executed: its running step has ended now (on
        its own, or stopped); says which, in the trail and the channel, then hands over."""
        stopped = handover(phase, stop, outcomes)
        with self.store.tx() as tx:
            if not self.holds(tx, run_id):
                log.warning("run #%s: lease lost; the rollback is another process's", run_id)
                return
            pr = tx.get(PhaseRun, phase_run_id)
            if pr is not None and pr.status == PhaseStatus.RUNNING:
                tx.apply(pr, "failed", SYSTEM.id)
                tx.audit(
                    AuditKind.PHASE_STOPPED,
                    actor=SYSTEM.id,
                    run_id=run_id,
                    data={"phase": phase.id, "attempt": pr.attempt, **stopped},
                    at=self.now(),
                )
        if stopped["step"] is not None:
            self.notify.notice(run_id, f"{stopped['said']} Rolling back now.")
        self.spawn(self.execute_rollback, run_id)


def handover(
    phase: PhaseSpec, stop: StopRequest, outcomes: Sequence[StepOutcome]
) -> dict[str, Any]:
    """How the step that ran when the abort arrived ended (from its own result): finished on
    its own, stopped by SIGTERM, or killed after its grace; None: none was running."""
    step = stop.during
    last = outcomes[-1] if outcomes else None
    if step is None or last is None or last.step.name != step:
        return {"step": None, "how": "between_steps", "seconds": None, "said": None}
    r = last.result
    how = str(r.details.get("stopped") or "finished")
    seconds = r.details.get("stop_seconds")
    if how == "sigterm":
        said = f"*{step}* stopped by SIGTERM after {seconds:.1f} s."
    elif how == "sigkill":
        said = (
            f"*{step}* ignored SIGTERM and was killed (SIGKILL) after its "
            f"{last.step.stop_grace_seconds:g} s grace."
        )
    else:
        said = f"*{step}* finished on its own ({r.status}: {r.evidence})."
    return {"step": step, "how": how, "seconds": seconds, "said": said}


def _ref_data(ref: str | None, values: dict[str, Any] | None) -> dict[str, Any]:
    """The run.started fields naming what the run deploys: the ref given at start (`ref=`),
    else the environment's default (the runbook's `ref` var); none for a runbook without."""
    if ref is not None:
        return {"ref": ref, "ref_from": "start"}
    default = (values or {}).get("ref")
    return {"ref": default, "ref_from": "runbook"} if isinstance(default, str) else {}
